"""Helpers and fixtures of the cloud tests: a real Neutron API on 127.0.0.1, started by the suite.

The Neutron venv is built once from ``neutron-requirements.lock`` (every package pinned) into
``/var/cache/multihome-test/neutron-venv-<hash of the lock>`` (``MULTIHOME_TEST_CACHE``
overrides the directory), with a template SQLite database next to it; each test session
copies the template and starts ``neutron_server.py serve`` on a free port.

Servers go to a real Nova (``compute_driver = fake.FakeDriver``), built the same way from
``nova-requirements.lock`` into ``nova-venv-<hash>`` (with Placement and Glance) and started by
the session fixture ``nova`` on free ports, with a RabbitMQ node of its own (``rabbitmq-server``
from apt, see .ci/apt.d/nova.txt) and wired to the session's Neutron, which binds the ports
(see ``nova_server.py``). Tests that use it are marked ``xdist_group("nova")``: one xdist worker
(``--dist loadgroup``) starts it and runs them all.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
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


def lock_hash(lock: Path = LOCK) -> str:
    return hashlib.sha256(lock.read_bytes()).hexdigest()[:12]


def server_hash(script: Path = SERVER) -> str:
    return hashlib.sha256(script.read_bytes()).hexdigest()[:12]


def skip_unless_ours(path: Path, what: str) -> None:
    """Skip the tests that need ``what`` when this user cannot build it in ``path`` (the
    cache of another user, typically root's, for a test run as an ordinary user)."""
    if not os.access(path, os.W_OK):
        pytest.skip(
            f"{what} is not built yet and {path} is not writable by this user: run the cloud "
            "tests once as the cache's owner, or set MULTIHOME_TEST_CACHE to a folder of yours"
        )


def template(venv: Path, script: Path = SERVER, cache: Path = CACHE) -> Path:
    """The template state (configuration, databases) that ``script setup`` builds in
    ``venv``, once per version of the script (under the lock of ``cache``)."""
    tmpl = venv / f"template-{server_hash(script)}"
    if (tmpl / ".ready").exists():
        return tmpl
    skip_unless_ours(venv, f"the template state of {script.name}")
    with open(cache / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (tmpl / ".ready").exists():
            shutil.rmtree(tmpl, ignore_errors=True)
            done = subprocess.run(
                [str(venv / "bin/python"), str(script), "setup", str(tmpl)],
                check=False,
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise RuntimeError(f"{script.name} setup failed:\n{done.stderr[-3000:]}")
            (tmpl / ".ready").write_text(server_hash(script))
    return tmpl


def build_venv(lock: Path = LOCK, prefix: str = "neutron-venv") -> Path:
    """The venv of ``lock`` (every package pinned), built once under ``CACHE`` as
    ``PREFIX-<hash of the lock>``; later runs reuse it."""
    venv = CACHE / f"{prefix}-{lock_hash(lock)}"
    ready = venv / ".multihome-ready"
    if ready.exists():
        if not os.access(venv / "bin/python", os.X_OK):  # built by another user: its Python
            pytest.skip(  # (a pyenv or venv under their home) may not be executable here
                f"{venv} was built by another user and its Python is not executable by this "
                "one: run the cloud tests as that user, or set MULTIHOME_TEST_CACHE to a folder "
                "of yours"
            )
        return venv
    if CACHE.is_dir():
        skip_unless_ours(CACHE, venv.name)
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".build.lock", "w") as build_lock:
        fcntl.flock(build_lock, fcntl.LOCK_EX)  # one builder; xdist workers wait for it
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
            [*pip, "--no-deps", "-r", str(lock)], capture_output=True, check=False, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"building {venv} failed:\n{done.stderr[-3000:]}")
        ready.write_text(lock_hash(lock))
    return venv


def eui64(prefix: str, mac: str) -> str:
    """The SLAAC address a port with ``mac`` forms on ``prefix`` (RFC 4291, appendix A), as
    Neutron computes it for the port."""
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02
    iid = bytes([*octets[:3], 0xFF, 0xFE, *octets[3:]])
    net = ipaddress.ip_network(prefix)
    return str(net.network_address + int.from_bytes(iid, "big"))


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
        if proc.stdout is not None:
            proc.stdout.close()
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


# -- a real Nova (fake compute driver), Placement, Glance and RabbitMQ ----------------------

NOVA_LOCK = HERE / "nova-requirements.lock"
NOVA_SERVER = HERE / "nova_server.py"
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
COMPUTE_HOST = "mhtest-compute"  # nova_server.COMPUTE_HOST
IMAGE = "ubuntu-24.04"  # the examples' image: a few bytes in Glance's file store
# ram MB, vcpus, disk GB; no host has room for m1.huge (Nova puts such a server in ERROR)
FLAVORS = {"m1.small": (2048, 1, 20), "m1.tiny": (512, 1, 1), "m1.huge": (4_000_000, 1, 1)}
KEYPAIR = "mykey"
NOVA_START_TIMEOUT = float(os.environ.get("MULTIHOME_TEST_NOVA_TIMEOUT", "300"))


@dataclass
class Nova:
    """A running Nova API (with conductor, scheduler, a fake compute host), Placement, Glance
    and the session's Neutron, reachable through ``clouds_yaml`` as cloud ``mhnova``."""

    compute_url: str
    image_url: str
    placement_url: str
    neutron: Neutron
    state: Path
    clouds_yaml: Path
    cloud: str = "mhnova"

    def connect(self) -> Any:
        import openstack

        return openstack.connect(
            auth_type="none",
            network_endpoint_override=self.neutron.url + "/",
            compute_endpoint_override=self.compute_url,
            image_endpoint_override=self.image_url,
            region_name="RegionOne",
        )

    def _stats_url(self, service: str) -> str:
        url = {"compute": self.compute_url.removesuffix("/v2.1"), "image": self.image_url}
        return url[service].rstrip("/") + "/__mh_stats"

    def stats(self, service: str = "compute") -> dict[str, Any]:
        """Requests to the compute (or image) API since the last reset (``reset_stats``)."""
        with urllib.request.urlopen(self._stats_url(service), timeout=10) as resp:
            data: dict[str, Any] = json.load(resp)
            return data

    def reset_stats(self) -> None:
        """Forget the requests counted so far by Nova, Glance and Neutron."""
        for service in ("compute", "image"):
            req = urllib.request.Request(self._stats_url(service), method="DELETE")
            with urllib.request.urlopen(req, timeout=10):
                pass
        self.neutron.reset_stats()


class Processes:
    """Child processes, each in its own session (process group), logged to ``logs``;
    :meth:`stop` kills each group."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen[str]]] = []

    def start(
        self,
        name: str,
        args: list[str],
        *,
        env: dict[str, str] | None = None,
        ready_line: bool = False,
    ) -> subprocess.Popen[str]:
        log = open(self.logs / f"{name}.log", "w")  # noqa: SIM115 - the child owns it
        try:
            proc = subprocess.Popen(
                args,
                stdout=subprocess.PIPE if ready_line else log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                text=True,
                env=dict(os.environ, **(env or {})),
                start_new_session=True,
            )
        finally:
            log.close()
        self.started.append((name, proc))
        return proc

    def check(self) -> None:
        """Raise if a process has died, with the end of its log."""
        for name, proc in self.started:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def wait_ready(self, name: str, deadline: float) -> None:
        """Wait for the ``READY`` line of a ``ready_line`` process."""
        proc = dict(self.started)[name]
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.strip() == "READY":
                return
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not start:\n{self.tail(name)}")

    def stop(self) -> None:
        # SIGKILL at once: the state is thrown away, and a graceful stop of the Nova services
        # takes seconds (compute 6 s) for nothing
        for _name, proc in reversed(self.started):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, 9)  # the group: also erl_child_setup, inet_gethost, ...
        for _name, proc in self.started:
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def _start_rabbitmq(procs: Processes, workdir: Path, ports: dict[str, int]) -> None:
    """A RabbitMQ node of our own (own epmd, own ports, own data), bound to 127.0.0.1."""
    if not RABBITMQ_SERVER.exists():
        raise RuntimeError("rabbitmq-server is not installed; run `make deps` (.ci/apt.d)")
    base = workdir / "rabbitmq"
    base.mkdir()
    (base / "enabled_plugins").write_text("[].\n")
    (base / "rabbitmq.conf").write_text("loopback_users = none\n")
    (base / "rabbitmq-env.conf").write_text("")
    epmd = {"ERL_EPMD_PORT": str(ports["epmd"]), "ERL_EPMD_ADDRESS": "127.0.0.1"}
    procs.start("epmd", ["epmd", "-port", str(ports["epmd"])], env=epmd)
    procs.start(
        "rabbitmq",
        [str(RABBITMQ_SERVER)],
        env=dict(
            epmd,
            HOME=str(base),  # the Erlang cookie
            RABBITMQ_NODENAME=f"mhtest-{ports['rabbit']}@localhost",
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(ports["rabbit"]),
            RABBITMQ_DIST_PORT=str(ports["rabbit_dist"]),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
            RABBITMQ_LOG_BASE=str(base / "log"),
            RABBITMQ_LOGS="-",
            RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=str(base / "rabbitmq"),
            RABBITMQ_CONF_ENV_FILE=str(base / "rabbitmq-env.conf"),
            RABBITMQ_PID_FILE=str(base / "pid"),
        ),
    )


def _json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def _compute_ready(state: Path, placement_url: str) -> bool:
    """The compute host reported its inventory to Placement and is mapped to the cell."""
    import sqlite3

    try:
        providers = _json(f"{placement_url}/resource_providers?name={COMPUTE_HOST}")
    except OSError:
        return False
    if not providers.get("resource_providers"):
        return False
    rp = providers["resource_providers"][0]["uuid"]
    inventories = _json(f"{placement_url}/resource_providers/{rp}/inventories")
    if "VCPU" not in inventories.get("inventories", {}):
        return False
    con = sqlite3.connect(f"file:{state / 'nova_api.sqlite'}?mode=ro", uri=True, timeout=10)
    try:
        (mapped,) = con.execute(
            "SELECT count(*) FROM host_mappings WHERE host = ?", (COMPUTE_HOST,)
        ).fetchone()
    except sqlite3.OperationalError:
        return False
    finally:
        con.close()
    return bool(mapped)


def _seed(conn: Any) -> None:
    """What the examples name: the image, the flavors, the key pair."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    for name, (ram, vcpus, disk) in FLAVORS.items():
        conn.compute.create_flavor(name=name, ram=ram, vcpus=vcpus, disk=disk)
    with warnings.catch_warnings():
        # create_image looks the name up itself with find_image's deprecated default
        # (openstack/image/v2/_proxy.py); no argument of ours reaches that call
        warnings.filterwarnings("ignore", "The ignore_missing parameter", PendingDeprecationWarning)
        image = conn.image.create_image(
            name=IMAGE,
            disk_format="raw",
            container_format="bare",
            data=b"multihome test image\n" * 16,
        )
    conn.image.wait_for_status(image, status="active", interval=0.2, wait=60)
    public = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    conn.compute.create_keypair(name=KEYPAIR, public_key=f"{public} multihome-test")


@contextlib.contextmanager
def start_nova(workdir: Path, neutron: Neutron) -> Iterator[Nova]:
    """Start RabbitMQ, Placement, Glance and Nova (API, conductor, scheduler, compute with
    ``fake.FakeDriver``) on free ports, wired to ``neutron``; seed the image, flavors and key
    pair of the examples; stop every process afterwards, also when starting fails."""
    venv = build_venv(NOVA_LOCK, "nova-venv")
    python = str(venv / "bin/python")
    tmpl = template(venv, NOVA_SERVER)
    logs = workdir / "logs"
    logs.mkdir(parents=True)
    state = workdir / "state"
    names = ("rabbit", "rabbit_dist", "epmd", "placement", "glance", "nova")
    ports = {name: free_port() for name in names}
    ports["neutron"] = int(neutron.url.rsplit(":", 1)[1])
    procs = Processes(logs)
    try:
        _start_rabbitmq(procs, workdir, ports)
        subprocess.run(
            [python, str(NOVA_SERVER), "clone", str(tmpl), str(state), json.dumps(ports)],
            check=True,
        )
        for name, port in (("placement", "placement"), ("glance", "glance"), ("nova-api", "nova")):
            procs.start(
                name,
                [python, str(NOVA_SERVER), "wsgi", name, str(state), str(ports[port])],
                ready_line=True,
            )
        for name in ("conductor", "scheduler", "compute"):
            procs.start(f"nova-{name}", [python, str(NOVA_SERVER), "service", name, str(state)])
        deadline = time.monotonic() + NOVA_START_TIMEOUT
        for name in ("placement", "glance", "nova-api"):
            procs.wait_ready(name, deadline)
        placement_url = f"http://127.0.0.1:{ports['placement']}"
        while not _compute_ready(state, placement_url):
            procs.check()
            if time.monotonic() > deadline:
                raise RuntimeError(
                    "the fake compute host did not come up; see "
                    f"{logs}/nova-compute.log:\n{procs.tail('nova-compute')}"
                )
            time.sleep(0.5)
        clouds = workdir / "clouds.yaml"
        nova = Nova(
            compute_url=f"http://127.0.0.1:{ports['nova']}/v2.1",
            image_url=f"http://127.0.0.1:{ports['glance']}/",
            placement_url=placement_url,
            neutron=neutron,
            state=state,
            clouds_yaml=clouds,
        )
        clouds.write_text(
            f"clouds:\n  {nova.cloud}:\n    auth_type: none\n    region_name: RegionOne\n"
            f"    network_endpoint_override: {neutron.url}/\n"
            f"    compute_endpoint_override: {nova.compute_url}\n"
            f"    image_endpoint_override: {nova.image_url}\n"
        )
        _seed(nova.connect())
        yield nova
    finally:
        procs.stop()


@pytest.fixture(scope="session")
def nova(neutron: Neutron, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nova]:
    """A real Nova API (fake compute driver) with Placement, Glance and RabbitMQ for the whole
    session, wired to the session's Neutron; the examples' image, flavors and key pair exist.
    Tests using it carry ``@pytest.mark.xdist_group("nova")`` so that one worker starts it."""
    with start_nova(tmp_path_factory.mktemp("nova"), neutron) as server:
        yield server


@pytest.fixture
def nova_env(nova: Nova, monkeypatch: pytest.MonkeyPatch) -> Nova:
    """Point openstacksdk (in this process and in child processes) at Nova and Neutron."""
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(nova.clouds_yaml))
    monkeypatch.setenv("OS_CLOUD", nova.cloud)
    for var in [
        v
        for v in os.environ
        if v.startswith("OS_") and v not in ("OS_CLIENT_CONFIG_FILE", "OS_CLOUD")
    ]:
        monkeypatch.delenv(var)
    return nova


# -- a real Heat (heat-api, heat-engine) on the session's Nova ------------------------------

HEAT_LOCK = HERE / "heat-requirements.lock"
HEAT_SERVER = HERE / "heat_server.py"
HEAT_CACHE = CACHE / "heat"  # a subfolder of its own, with its own build lock
HEAT_PROJECT = "admin"  # heat's noauth middleware: the project of every request


def build_cached_venv(lock: Path, cache: Path, prefix: str) -> Path:
    """The venv of ``lock`` as ``cache/PREFIX-<hash of the lock>``, built once: in a
    temporary folder under ``cache``'s lock, then renamed, so that no run ever sees half of
    it. Only its ``bin/python`` is used (entry points through ``-c``), which a rename keeps
    working, unlike the scripts' shebangs."""
    venv = cache / f"{prefix}-{lock_hash(lock)}"
    if (venv / ".multihome-ready").exists():
        return venv
    if CACHE.is_dir():
        skip_unless_ours(CACHE, venv.name)
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".build.lock", "w") as build_lock:
        fcntl.flock(build_lock, fcntl.LOCK_EX)  # one builder; other runs wait for it
        if (venv / ".multihome-ready").exists():
            return venv
        tmp = cache / f".tmp-{venv.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(tmp)], check=True)
        done = subprocess.run(
            [
                str(tmp / "bin/python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "-r",
                str(lock),
            ],
            capture_output=True,
            check=False,
            text=True,
        )
        if done.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise RuntimeError(f"building {venv} failed:\n{done.stderr[-3000:]}")
        (tmp / ".multihome-ready").write_text(lock_hash(lock))
        tmp.rename(venv)
    return venv


class HeatError(RuntimeError):
    """Heat refused a request, or a stack ended in a FAILED state."""


@dataclass
class Heat:
    """A running Heat API and engine, wired to the session's Nova, Glance and Neutron.

    Stacks are created, updated and deleted with python-heatclient (as `openstack stack`
    does), their resources read through Heat's REST API (openstacksdk cannot find Heat's
    version document without Keystone: the project id in the endpoint)."""

    url: str
    """The orchestration endpoint (``.../v1/<project>``)."""
    venv: Path
    nova: Nova

    def connect(self) -> Any:
        """openstacksdk on the Nova, Glance and Neutron that Heat drives."""
        return self.nova.connect()

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            # any token: heat's noauth middleware accepts it, and heat-engine passes it on
            # (Neutron and Nova run without authentication here)
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "X-Auth-Token": "multihome-test",
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                text = resp.read()
        except urllib.error.HTTPError as exc:
            raise HeatError(f"{method} {path}: {exc.code} {exc.read().decode()[-2000:]}") from exc
        return json.loads(text) if text else None

    def client(self, action: str, name: str, template: Path | None = None) -> str:
        """Run python-heatclient (heat_server.py stack, in the Heat venv) to create, update
        or delete stack ``name`` and wait for it; the stack's id."""
        args = [str(self.venv / "bin/python"), str(HEAT_SERVER), "stack", action, self.url, name]
        done = subprocess.run(
            [*args, *([str(template)] if template else [])],
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        if done.returncode != 0:
            raise HeatError(f"stack {action} {name}: {done.stderr[-3000:]}")
        return str(json.loads(done.stdout.splitlines()[-1])["id"])

    def create(self, name: str, template: Path) -> str:
        """`openstack stack create -t TEMPLATE --wait NAME`; the stack's id."""
        return self.client("create", name, template)

    def update(self, name: str, template: Path) -> None:
        """`openstack stack update -t TEMPLATE --wait NAME`."""
        self.client("update", name, template)

    def delete(self, name: str) -> None:
        """`openstack stack delete --wait NAME`."""
        self.client("delete", name)

    def stack(self, name: str, stack_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.request("GET", f"/stacks/{name}/{stack_id}")["stack"]
        return data

    def resources(self, name: str, stack_id: str) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self.request("GET", f"/stacks/{name}/{stack_id}/resources")[
            "resources"
        ]
        return data


def _heat_engine_ready(state: Path) -> bool:
    import sqlite3

    con = sqlite3.connect(f"file:{state / 'heat.sqlite'}?mode=ro", uri=True, timeout=10)
    try:
        (count,) = con.execute("SELECT count(*) FROM service").fetchone()
    except sqlite3.OperationalError:
        return False
    finally:
        con.close()
    return bool(count)


@contextlib.contextmanager
def start_heat(workdir: Path, nova: Nova) -> Iterator[Heat]:
    """Start heat-api and heat-engine (one worker) on the RabbitMQ node of ``nova``, with a
    catalogue pointing at ``nova``'s services; stop both afterwards."""
    venv = build_cached_venv(HEAT_LOCK, HEAT_CACHE, "heat-venv")
    python = str(venv / "bin/python")
    tmpl = template(venv, HEAT_SERVER, HEAT_CACHE)
    logs = workdir / "logs"
    logs.mkdir(parents=True)
    state = workdir / "state"
    nova_ports = json.loads((nova.state / "ports.json").read_text())
    port = free_port()
    settings = {
        "rabbit": nova_ports["rabbit"],
        "heat": port,
        "network": nova.neutron.url,
        "compute": nova.compute_url,
        "image": nova.image_url.rstrip("/"),
    }
    subprocess.run(
        [python, str(HEAT_SERVER), "clone", str(tmpl), str(state), json.dumps(settings)],
        check=True,
    )
    procs = Processes(logs)
    try:
        procs.start(
            "heat-api", [python, str(HEAT_SERVER), "api", str(state), str(port)], ready_line=True
        )
        procs.start("heat-engine", [python, str(HEAT_SERVER), "engine", str(state)])
        deadline = time.monotonic() + NOVA_START_TIMEOUT
        procs.wait_ready("heat-api", deadline)
        heat = Heat(url=f"http://127.0.0.1:{port}/v1/{HEAT_PROJECT}", venv=venv, nova=nova)
        # the engine records itself in the service table once it listens on RabbitMQ (a
        # request sent before that would wait out the RPC timeout)
        while not _heat_engine_ready(state):
            procs.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"heat-engine did not start:\n{procs.tail('heat-engine')}")
            time.sleep(0.2)
        heat.request("GET", "/stacks")
        yield heat
    finally:
        procs.stop()


@pytest.fixture(scope="session")
def heat(nova: Nova, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Heat]:
    """A real Heat (API and engine) for the whole session, on the session's Nova and
    Neutron. Tests using it carry ``@pytest.mark.xdist_group("nova")``."""
    with start_heat(tmp_path_factory.mktemp("heat"), nova) as server:
        yield server


# -- what `cloud apply` must have created: shared by the apply and the Heat tests -----------


def tagged(conn: Any, tag: str) -> dict[str, list[str]]:
    """The names of every resource carrying ``tag``, by kind (floating IPs: descriptions)."""
    net = conn.network
    return {
        "networks": sorted(n.name for n in net.networks(tags=tag)),
        "subnets": sorted(s.name for s in net.subnets(tags=tag)),
        "security_groups": sorted(g.name for g in net.security_groups(tags=tag)),
        "routers": sorted(r.name for r in net.routers(tags=tag)),
        "ports": sorted(p.name for p in net.ports(tags=tag)),
        "floating_ips": sorted(f.description for f in net.ips(tags=tag)),
        "servers": sorted(s.name for s in conn.compute.servers(tags=tag)),
    }


def check_found(found: dict[str, list[str]], topo: Any) -> None:
    """``found`` (names by kind, as :func:`tagged` gives them) holds every resource of
    ``topo``, and nothing else."""
    assert found["networks"] == sorted(n.name for n in topo.networks)
    assert found["subnets"] == sorted(s.name for s in topo.subnets)
    assert found["security_groups"] == sorted(g.name for g in topo.security_groups)
    assert found["routers"] == sorted(r.name for r in topo.routers)
    assert found["ports"] == sorted(p.name for p in topo.ports)
    assert found["servers"] == sorted(s.name for s in topo.servers)
    assert len(found["floating_ips"]) == sum(1 for p in topo.ports if p.floating_ip)


def macs_in_boot_order(server: Any) -> list[str]:
    """The MACs of the server's interfaces in the order Nova plugs them (eth0, eth1, ...):
    Nova's network info cache, which ``addresses`` lists network by network, in order
    (floating IPs, once Nova has seen them, repeat the MAC of their port: left out)."""
    return [
        a["OS-EXT-IPS-MAC:mac_addr"]
        for addrs in server.addresses.values()
        for a in addrs
        if a["OS-EXT-IPS:type"] == "fixed"
    ]


def check_server(
    conn: Any, topo: Any, spec: Any, out: str | None = None, tag: str | None = None
) -> Any:
    """The server of ``spec`` runs as the topology says, on its ports, in order, tagged
    ``tag`` (the topology's by default; each fixed IP is in the command's output ``out``,
    when given). Returns the server."""
    from multihome.cloud.userdata import for_server

    tag = tag or topo.tag
    (server,) = [s for s in conn.compute.servers(details=True, tags=tag) if s.name == spec.name]
    server = conn.compute.get_server(server.id)  # user_data: admin, microversion 2.3+
    assert server.status == "ACTIVE"
    # Nova says "True" or "" (not False): the drive is there exactly when asked for
    assert (server.has_config_drive in (True, "True")) is spec.config_drive
    assert server.key_name == spec.key_name
    assert server.flavor["original_name"] == spec.flavor
    assert server.tags == [tag]
    stored = server.user_data
    assert (base64.b64decode(stored).decode() if stored else None) == for_server(topo, spec)
    ports = [next(conn.network.ports(name=p.name, tags=tag)) for p in spec.ports]
    for port, port_spec in zip(ports, spec.ports, strict=True):
        assert port.device_id == server.id
        assert port.device_owner.startswith("compute:")
        assert port.binding_host_id == COMPUTE_HOST
        assert port.status == "ACTIVE"
        if port_spec.fixed_ip is not None:
            assert [f["ip_address"] for f in port.fixed_ips] == [str(port_spec.fixed_ip)]
            if out is not None:
                assert str(port_spec.fixed_ip) in out
    assert macs_in_boot_order(server) == [p.mac_address for p in ports]
    assert {i.port_id for i in conn.compute.server_interfaces(server)} == {p.id for p in ports}
    return server


def _one(items: Any, what: str) -> Any:
    found = list(items)
    assert len(found) == 1, f"{what}: {len(found)} found"
    return found[0]


def check_network_side(conn: Any, topo: Any, tag: str, *, groups_tagged: bool = True) -> None:
    """Subnets (gateway, DHCP, DNS servers), security-group rules, routers (gateway,
    interfaces), ports (fixed IPs, groups, address pairs, port security) and floating IPs
    are in the cloud as ``topo`` declares them, found by ``tag`` (security groups by name
    alone when ``groups_tagged`` is false: Heat cannot tag them)."""
    net = conn.network
    ext = {n.name: n.id for n in net.networks(is_router_external=True)}
    subnet_names = {s.id: s.name for s in net.subnets()}
    group_names = {g.id: g.name for g in net.security_groups()}
    for spec in topo.subnets:
        sub = _one(net.subnets(name=spec.name, tags=tag), f"subnet {spec.name}")
        assert sub.gateway_ip == (None if spec.gateway is None else str(spec.gateway)), spec
        assert sub.is_dhcp_enabled is spec.dhcp, spec
        assert sorted(sub.dns_nameservers) == sorted(str(d) for d in spec.dns_nameservers)
    for spec in topo.security_groups:
        query = {"name": spec.name, **({"tags": tag} if groups_tagged else {})}
        group = _one(net.security_groups(**query), f"security group {spec.name}")
        have = {
            (
                r["direction"],
                r["ethertype"],
                r["protocol"],
                r["port_range_min"],
                r["port_range_max"],
                r["remote_ip_prefix"],
                group_names.get(r["remote_group_id"]) if r["remote_group_id"] else None,
            )
            for r in group.security_group_rules
        }
        want = {
            (
                r.direction,
                r.ethertype,
                r.protocol,
                r.port_min,
                r.port_max,
                r.remote_ip_prefix,
                r.remote_group,
            )
            for r in spec.rules
        }
        assert want <= have, (spec.name, want - have, have)
    for spec in topo.routers:
        router = _one(net.routers(name=spec.name, tags=tag), f"router {spec.name}")
        gateway = (router.external_gateway_info or {}).get("network_id")
        assert gateway == (ext[spec.external_network] if spec.external_network else None)
        interfaces = {
            subnet_names[f["subnet_id"]]
            for p in net.ports(device_id=router.id)
            if p.device_owner == "network:router_interface"
            for f in p.fixed_ips
        }
        assert interfaces == set(spec.subnets), (spec.name, interfaces)
    for spec in topo.ports:
        port = _one(net.ports(name=spec.name, tags=tag), f"port {spec.name}")
        if spec.fixed_ip is not None:
            assert [f["ip_address"] for f in port.fixed_ips] == [str(spec.fixed_ip)]
        if spec.subnet is not None:
            assert [subnet_names[f["subnet_id"]] for f in port.fixed_ips] == [spec.subnet]
        if spec.security_groups is not None:
            assert sorted(group_names[g] for g in port.security_group_ids) == sorted(
                spec.security_groups
            )
        pairs = sorted(p["ip_address"] for p in port.allowed_address_pairs or ())
        assert pairs == sorted(p.ip for p in spec.allowed_address_pairs), spec.name
        security = spec.port_security
        if security is None and topo.network(spec.network) is not None:
            security = topo.network(spec.network).port_security
        if security is not None:
            assert port.is_port_security_enabled is security, spec.name
        fips = list(net.ips(port_id=port.id))
        if spec.floating_ip is None:
            assert not fips, spec.name
            continue
        fip = _one(fips, f"floating IP of {spec.name}")
        assert fip.floating_network_id == ext[spec.floating_ip]
        assert fip.fixed_ip_address == next(f["ip_address"] for f in port.fixed_ips)
