"""Helpers of the Ansible tests: ansible-core from PyPI in a cached venv, the collection built
with ``ansible-galaxy collection build`` and installed from its tarball, and playbook runs
whose hosts are network namespaces (the collection's ``multihome.guest.netns`` connection).

The venv is built once from ``ansible-requirements.lock`` (every package pinned) into
``/var/cache/multihome-test/ansible/venv-<hash of the lock>`` (``MULTIHOME_TEST_CACHE``
overrides the cache), under the folder's own lock: a venv is not relocatable (its scripts name
its path), so it is built under its final name and marked ready last, by renaming a finished
stamp into place; a reader trusts only the stamp, and a builder that finds a folder without one
(an interrupted build) removes it and starts again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from netns_util import build_howto, namespaces, unique

HERE = Path(__file__).parent
REPO = HERE.parent.parent
LOCK = HERE / "ansible-requirements.lock"
COLLECTION = REPO / "ansible" / "multihome" / "guest"
CACHE = Path(os.environ.get("MULTIHOME_TEST_CACHE", "/var/cache/multihome-test")) / "ansible"
READY = ".multihome-ready"
#: The managed host's Python (Debian's own, not a pyenv shim: TESTING.md, "Ansible").
HOST_PYTHON = "/usr/bin/python3"
RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)\s+skipped=\d+\s+"
    r"rescued=\d+\s+ignored=(?P<ignored>\d+)",
    re.MULTILINE,
)
#: A task's result as ``ansible-playbook -v`` prints it (one line of JSON per host).
RESULT = re.compile(
    r"^(?P<status>ok|changed|fatal): \[(?P<host>[^\]]+)\](?:: FAILED!)? => (?P<json>\{.*\})$",
    re.MULTILINE,
)


def ansible_venv() -> Path:
    """The venv with ansible-core and ansible-lint of ``LOCK``; built on first use."""
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:12]
    venv = CACHE / f"venv-{digest}"
    if (venv / READY).exists():
        return venv
    CACHE.mkdir(parents=True, exist_ok=True)
    if not os.access(CACHE, os.W_OK):
        pytest.skip(f"{venv} is not built and {CACHE} is not writable: set MULTIHOME_TEST_CACHE")
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder; xdist workers and other runs wait
        if (venv / READY).exists():
            return venv
        shutil.rmtree(venv, ignore_errors=True)  # an interrupted build
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        done = subprocess.run(
            [
                str(venv / "bin/python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "-r",
                str(LOCK),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"building {venv} failed:\n{done.stderr[-3000:]}")
        stamp = venv / f"{READY}.tmp"
        stamp.write_text(digest)
        stamp.rename(venv / READY)
    return venv


@dataclass(frozen=True)
class Ansible:
    """ansible-core from the cached venv, with its state (home, temp, collections) in ``work``."""

    venv: Path
    work: Path

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ANSIBLE_", "SSH_")) and k != "PYTHONPATH"
        }
        env.update(
            PATH=f"{self.venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
            ANSIBLE_HOME=str(self.work / "home"),
            ANSIBLE_LOCAL_TEMP=str(self.work / "tmp"),
            ANSIBLE_REMOTE_TEMP=str(self.work / "remote-tmp"),
            ANSIBLE_COLLECTIONS_PATH=str(self.work / "collections"),
            ANSIBLE_PIPELINING="1",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_RETRY_FILES_ENABLED="0",
            ANSIBLE_DEPRECATION_WARNINGS="0",
        )
        return env

    def run(
        self, program: str, *args: str | Path, timeout: float = 300, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run one of the venv's programs in ``cwd`` (default ``work``: no ansible.cfg from
        elsewhere)."""
        return subprocess.run(
            [str(self.venv / "bin" / program), *args],
            cwd=cwd or self.work,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def install_collection(self, out: Path) -> Path:
        """``ansible-galaxy collection build`` the collection, install the tarball; return it."""
        built = self.run(
            "ansible-galaxy", "collection", "build", str(COLLECTION), "--output-path", out
        )
        assert built.returncode == 0, built.stdout + built.stderr
        (tarball,) = out.glob("multihome-guest-*.tar.gz")
        installed = self.run("ansible-galaxy", "collection", "install", "--force", str(tarball))
        assert installed.returncode == 0, installed.stdout + installed.stderr
        return tarball


def howto_host(stack: ExitStack, name: str, ports: int, root: Path) -> str:
    """A namespace holding the how-to's VM with ``ports`` ports (its switch beside it), removed
    by name when ``stack`` closes; ``root`` (the host's ``--root``) gets a networkd that looks
    installed, which persist detects."""
    ns = unique(f"mhans-{name}")
    stack.enter_context(namespaces(ns, f"{ns}-sw"))
    build_howto(ns, f"{ns}-sw", ports=ports)
    fake = root / "lib/systemd/systemd-networkd"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    return ns


def inventory(path: Path, hosts: dict[str, dict[str, Any]], **group: Any) -> Path:
    """Write an inventory of namespace ``hosts`` (name -> host variables) reached through the
    collection's netns connection, with the group variables ``group``."""
    common = {
        "ansible_connection": "multihome.guest.netns",
        "ansible_python_interpreter": HOST_PYTHON,
        "ansible_become": False,  # root already; sudo may not be installed
    }
    path.write_text(json.dumps({"all": {"hosts": hosts, "vars": dict(common, **group)}}))
    return path


def recap(output: str) -> dict[str, dict[str, int]]:
    """The PLAY RECAP of ``ansible-playbook``: host -> ok, changed, unreachable, failed, ignored."""
    return {
        m["host"]: {k: int(v) for k, v in m.groupdict().items() if k != "host"}
        for m in RECAP.finditer(output)
    }


def results(output: str) -> list[dict[str, dict[str, Any]]]:
    """Per task, each host's result as ``ansible-playbook -v`` printed it, with its status
    (``ok``, ``changed`` or ``fatal``) under the key ``status``."""
    return [
        {m["host"]: dict(json.loads(m["json"]), status=m["status"]) for m in RESULT.finditer(task)}
        for task in output.split("\nTASK [")[1:]
    ]


if __name__ == "__main__":  # `make collection`: the venv's path, built first if need be
    print(ansible_venv())
