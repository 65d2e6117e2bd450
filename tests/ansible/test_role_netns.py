"""The collection's playbook ``multihome.guest.fleet`` (its role) for real, on one namespace
host, as in an air-gapped cloud: multihome installed with pip from a wheel directory (this
checkout's wheel and its dependencies, made on the controller; the namespace has no network)
into a new venv, linked, the agent unit written and enabled (as in an image: no systemd runs
here), the policy persisted; a second run changes nothing. Everything lands under a temporary
root."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest
from ansible_support import REPO, Ansible, ansible_venv, howto_host, inventory, recap
from netns_util import rules

BAND = range(10000, 10100)
pytestmark = pytest.mark.slow  # a venv and pip install from a wheel directory: ~30 s idle


def test_the_fleet_playbook_installs_enables_and_persists(tmp_path: Path) -> None:
    """After the fleet playbook: the venv's multihome behind the link, the unit (valid for
    ``systemd-analyze verify``, ExecStart the link) enabled by its wants link, the policy
    in the kernel and persisted under the root; the second run reports changed=0."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    ansible = Ansible(ansible_venv(), tmp_path)
    ansible.install_collection(tmp_path / "dist")
    package = tmp_path / "package"  # a copy: pip builds in the source tree
    shutil.copytree(
        REPO / "src", package / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, package / name)
    wheels = tmp_path / "wheels"
    made = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels), str(package)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    (wheel,) = wheels.glob("multihome-*.whl")
    root = tmp_path / "root"
    units, link, venv = (
        root / "etc/systemd/system",
        root / "usr/local/bin/multihome",
        root / "opt/mh",
    )
    for folder in (units, link.parent):
        folder.mkdir(parents=True)
    with ExitStack() as stack:
        ns = howto_host(stack, "role", 2, root)
        path = inventory(
            tmp_path / "inventory.json",
            {"vm": {"ansible_host": ns}},
            fleet_pip_spec=str(wheel),
            fleet_pip_extra_args=f"--no-index --find-links {wheels}",
            fleet_venv=str(venv),
            fleet_link=str(link),
            fleet_unit_dir=str(units),
            fleet_system_packages=[],
            fleet_systemd=False,
            fleet_backend="networkd",
            fleet_root=str(root),
        )
        runs = [ansible.run("ansible-playbook", "-i", path, "multihome.guest.fleet") for _ in "12"]
        kernel = rules(ns)
    for run in runs:
        assert run.returncode == 0, run.stdout + run.stderr
    assert recap(runs[0].stdout)["vm"]["changed"] >= 4
    assert recap(runs[1].stdout)["vm"]["changed"] == 0, runs[1].stdout
    assert link.resolve() == (venv / "bin/multihome").resolve() and os.access(link, os.X_OK)
    unit = units / "multihome-agent.service"
    assert f"ExecStart={link} agent\n" in unit.read_text()
    assert (units / "multi-user.target.wants/multihome-agent.service").resolve() == unit
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr
    assert {"192.168.0.107", "192.168.0.112"} <= {
        str(r.get("src")) for r in kernel if int(str(r["priority"])) in BAND
    }
    assert (root / "var/lib/multihome/persist.json").exists()
    assert (root / "etc/systemd/network/50-multihome-eth1.network").exists()
