"""Helpers and fixtures of the cloud tests: a real Neutron API on 127.0.0.1, started by the suite.

The Neutron venv is built once from ``neutron-requirements.lock`` (every package pinned) into
``/var/cache/multihome-test/neutron-venv-<hash of the lock>`` (``MULTIHOME_TEST_CACHE``
overrides the directory), with a template SQLite database next to it; each test session
copies the template and starts ``neutron_server.py serve`` on a free port. Servers (Nova) are
driven through openstacksdk's own fakes (``openstack.test.fakes``) that bind ports in the real
Neutron the way Nova does (see ``fakenova.py``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
LOCK = HERE / "neutron-requirements.lock"
SERVER = HERE / "neutron_server.py"
REPO = HERE.parent.parent
CACHE = Path(os.environ.get("MULTIHOME_TEST_CACHE", "/var/cache/multihome-test"))
EXTERNAL = "public"
EXTERNAL_CIDR = "203.0.113.0/24"


def lock_hash() -> str:
    return hashlib.sha256(LOCK.read_bytes()).hexdigest()[:12]


def server_hash() -> str:
    return hashlib.sha256(SERVER.read_bytes()).hexdigest()[:12]


def template(venv: Path) -> Path:
    """The configured template database for the current server script (built once)."""
    tmpl = venv / f"template-{server_hash()}"
    if (tmpl / ".ready").exists():
        return tmpl
    with open(CACHE / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (tmpl / ".ready").exists():
            shutil.rmtree(tmpl, ignore_errors=True)
            subprocess.run(
                [str(venv / "bin/python"), str(SERVER), "setup", str(tmpl)],
                check=True,
                capture_output=True,
            )
            (tmpl / ".ready").write_text(server_hash())
    return tmpl


def build_venv() -> Path:
    """The Neutron venv for the current lock file (built once; later runs reuse it)."""
    venv = CACHE / f"neutron-venv-{lock_hash()}"
    ready = venv / ".multihome-ready"
    if ready.exists():
        return venv
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder; xdist workers wait for it
        if ready.exists():
            return venv
        # venvs are not relocatable: build under the final name; the stamp marks it done
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [
            str(venv / "bin/python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ]
        done = subprocess.run(
            [*pip, "--no-deps", "-r", str(LOCK)], capture_output=True, check=False, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"building the Neutron venv failed:\n{done.stderr[-3000:]}")
        ready.write_text(lock_hash())
    return venv


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Neutron:
    """A running Neutron API."""

    url: str
    venv: Path
    clouds_yaml: Path
    cloud: str = "mhtest"

    def stats(self) -> dict[str, Any]:
        """count, seconds (server time) and requests since the last reset."""
        with urllib.request.urlopen(f"{self.url}/__mh_stats", timeout=10) as resp:
            data: dict[str, Any] = json.load(resp)
            return data

    def reset_stats(self) -> None:
        req = urllib.request.Request(f"{self.url}/__mh_stats", method="DELETE")
        with urllib.request.urlopen(req, timeout=10):
            pass

    def connect(self) -> Any:
        import openstack

        return openstack.connect(
            auth_type="none", network_endpoint_override=self.url + "/", region_name="RegionOne"
        )


def start_neutron(workdir: Path) -> Iterator[Neutron]:
    """Start a Neutron API from the cached venv in ``workdir``; stop it afterwards."""
    venv = build_venv()
    python = str(venv / "bin/python")
    state = workdir / "neutron"
    subprocess.run([python, str(SERVER), "clone", str(state), str(template(venv))], check=True)
    port = free_port()
    log = open(workdir / "neutron.log", "w")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [python, str(SERVER), "serve", str(state), str(port)],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 180
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.strip() == "READY" or not line:
                break
        if line.strip() != "READY":
            raise RuntimeError(f"neutron did not start; see {workdir / 'neutron.log'}")
        url = f"http://127.0.0.1:{port}"
        clouds = workdir / "clouds.yaml"
        clouds.write_text(
            "clouds:\n  mhtest:\n    auth_type: none\n"
            f"    network_endpoint_override: {url}/\n    region_name: RegionOne\n"
        )
        yield Neutron(url=url, venv=venv, clouds_yaml=clouds)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def neutron(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Neutron]:
    """A real Neutron API for the whole session, with an (untagged) external network."""
    workdir = tmp_path_factory.mktemp("neutron")
    gen = start_neutron(workdir)
    server = next(gen)
    conn = server.connect()
    ext = conn.network.create_network(
        name=EXTERNAL,
        is_router_external=True,
        provider_network_type="flat",
        provider_physical_network="physnet1",
    )
    conn.network.create_subnet(
        name=f"{EXTERNAL}-v4",
        network_id=ext.id,
        ip_version=4,
        cidr=EXTERNAL_CIDR,
        gateway_ip="203.0.113.1",
        is_dhcp_enabled=False,
    )
    try:
        yield server
    finally:
        with contextlib.suppress(StopIteration):
            next(gen)


@pytest.fixture
def cloud_env(neutron: Neutron, monkeypatch: pytest.MonkeyPatch) -> Neutron:
    """Point openstacksdk (in this process and in child processes) at the test Neutron."""
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(neutron.clouds_yaml))
    monkeypatch.setenv("OS_CLOUD", neutron.cloud)
    for var in [
        v
        for v in os.environ
        if v.startswith("OS_") and v not in ("OS_CLIENT_CONFIG_FILE", "OS_CLOUD")
    ]:
        monkeypatch.delenv(var)
    return neutron


@pytest.fixture
def fake_nova(cloud_env: Neutron, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Servers through openstacksdk's fakes, binding ports in the real Neutron like Nova."""
    from fakenova import FakeNova

    from multihome.cloud import cli as cloud_cli

    nova = FakeNova(cloud_env.connect())
    monkeypatch.setattr(cloud_cli, "compute_api", lambda conn: nova.api())
    return nova


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``multihome ARGS`` in this process (so fixtures apply); return code, out, err."""
    from multihome.cli import main

    code = 0
    try:
        main(args)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
