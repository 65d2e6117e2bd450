"""`lab up` without a program it needs: exit 2, the Debian package to install, nothing made."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from labtools import leftovers, new_name, run_cli

from multihome.lab.runtime import REQUIRED_PROGRAMS


@pytest.mark.parametrize(
    ("program", "package"),
    [("dnsmasq", "dnsmasq-base"), ("dhclient", "isc-dhcp-client"), ("nft", "nftables")],
)
def test_missing_program_names_the_package(program: str, package: str, tmp_path: Path) -> None:
    """With PATH lacking one program, `up` and `demo` exit 2 and say what to install."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in REQUIRED_PROGRAMS:
        found = shutil.which(name)
        if name != program and found is not None:
            (bin_dir / name).symlink_to(found)
    env = dict(os.environ, PATH=str(bin_dir))
    name = new_name()
    for verb in ("up", "demo"):
        done = run_cli("lab", verb, "--name", name, env=env)
        assert done.returncode == 2, done.stderr
        assert f"`{program}` (package {package})" in done.stderr
        assert "apt-get install" in done.stderr and package in done.stderr
        assert "Traceback" not in done.stderr
        assert leftovers(name) == []
    assert Path(sys.executable).exists()


def test_down_needs_only_ip(lab_name: str, tmp_path: Path) -> None:
    """A lab can be removed even after dnsmasq & co. were uninstalled: `down` needs `ip`."""
    assert run_cli("lab", "up", "--scenario", "1", "--name", lab_name).returncode == 0
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ip").symlink_to(str(shutil.which("ip")))
    done = run_cli("lab", "down", "--name", lab_name, env=dict(os.environ, PATH=str(bin_dir)))
    assert done.returncode == 0, done.stderr
    assert leftovers(lab_name) == []


def test_missing_pyroute2_says_how_to_get_it(tmp_path: Path) -> None:
    """Without pyroute2 (it is the lab's alone: the Debian package does not depend on it),
    `lab up` exits 2 naming the library and how to install it, and makes nothing."""
    hidden = tmp_path / "hide" / "pyroute2"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    env = dict(os.environ, PYTHONPATH=str(hidden.parent))
    name = new_name()
    done = run_cli("lab", "up", "--name", name, env=env)
    assert done.returncode == 2, done.stderr
    assert "needs the Python library pyroute2" in done.stderr
    assert "multihome[lab]" in done.stderr and "Traceback" not in done.stderr
    assert leftovers(name) == []
