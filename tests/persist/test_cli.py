"""`multihome persist` / `unpersist` end to end, inside a namespace holding the how-to's VM."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from persist_util import Namespaces, howto_vm, multihome, run


def files_under(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): (p.read_text() if not p.is_symlink() else "link")
        for p in sorted(root.rglob("*"))
        if p.is_file() or p.is_symlink()
    }


def fake_install(root: Path, *paths: str) -> None:
    """Make a backend look installed on the target under ``root``."""
    for path in paths:
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("#!/bin/sh\n")
        target.chmod(0o755)


@pytest.fixture
def vm(namespaces: Namespaces) -> str:
    return howto_vm(namespaces)


def test_dry_run_shows_a_diff_and_writes_nothing(vm: str, tmp_path: Path) -> None:
    """--dry-run prints unified diffs of the files it would write, and writes none of them."""
    fake_install(tmp_path, "/lib/systemd/systemd-networkd")
    before = files_under(tmp_path)
    proc = multihome(vm, "persist", "--backend", "networkd", "--root", str(tmp_path), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "+++ b/etc/systemd/network/50-multihome-eth1.network" in proc.stdout
    assert "+RouteTable=" in proc.stdout and "+OutgoingInterface=eth1" in proc.stdout
    assert "would change" in proc.stdout
    assert files_under(tmp_path) == before


def test_persist_writes_then_is_idempotent_then_unpersist_removes_only_its_files(
    vm: str, tmp_path: Path
) -> None:
    """A second persist changes nothing; unpersist removes exactly multihome's files and
    leaves the user's .network file (which persist extended with a drop-in) untouched."""
    fake_install(tmp_path, "/lib/systemd/systemd-networkd")
    user = tmp_path / "etc/systemd/network/10-eth1.network"
    user.parent.mkdir(parents=True)
    user.write_text("[Match]\nName=eth1\n\n[Network]\nDHCP=ipv4\n")
    first = multihome(vm, "persist", "--backend", "networkd", "--root", str(tmp_path))
    assert first.returncode == 0, first.stderr
    dropin = tmp_path / "etc/systemd/network/10-eth1.network.d/50-multihome.conf"
    assert dropin.exists() and "RouteTable=" in dropin.read_text()
    assert (tmp_path / "etc/systemd/network/50-multihome-eth0.network").exists()
    assert (tmp_path / "etc/iproute2/rt_tables.d/multihome.conf").read_text().count("mh-eth") == 2
    assert "222\tmultihome" in (tmp_path / "etc/iproute2/rt_protos.d/multihome.conf").read_text()
    again = multihome(vm, "persist", "--backend", "networkd", "--root", str(tmp_path))
    assert "no changes" in again.stdout
    gone = multihome(vm, "unpersist", "--root", str(tmp_path))
    assert gone.returncode == 0, gone.stderr
    assert files_under(tmp_path) == {
        "etc/systemd/network/10-eth1.network": "[Match]\nName=eth1\n\n[Network]\nDHCP=ipv4\n",
        "lib/systemd/systemd-networkd": "#!/bin/sh\n",
    }


@pytest.mark.parametrize(
    ("setup", "chosen", "why"),
    [
        (["/usr/sbin/netplan", "/etc/netplan/50-cloud-init.yaml"], "netplan", "netplan configures"),
        (
            [
                "/usr/sbin/NetworkManager",
                "/etc/systemd/system/multi-user.target.wants/NetworkManager.service",
            ],
            "networkmanager",
            "NetworkManager is enabled",
        ),
        (
            [
                "/usr/sbin/NetworkManager",
                "/etc/sysconfig/network-scripts/ifcfg-eth0",
                "/etc/systemd/system/multi-user.target.wants/NetworkManager.service",
            ],
            "ifcfg",
            "ifcfg files",
        ),
        (
            [
                "/lib/systemd/systemd-networkd",
                "/etc/systemd/system/multi-user.target.wants/systemd-networkd.service",
            ],
            "networkd",
            "networkd is enabled",
        ),
        (["/bin/systemctl"], "systemd", "multihome@.service"),
    ],
)
def test_auto_says_what_it_chose_and_why(
    vm: str, tmp_path: Path, setup: list[str], chosen: str, why: str
) -> None:
    """--backend auto detects the system's network configuration and names its reason."""
    fake_install(tmp_path, *setup)
    netplan = tmp_path / "etc/netplan/50-cloud-init.yaml"
    if netplan.exists():
        netplan.write_text("network:\n  version: 2\n  ethernets:\n    eth0: {dhcp4: true}\n")
    proc = multihome(vm, "persist", "--root", str(tmp_path), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith(f"backend: {chosen} (") and why in first


def test_unknown_backend_is_bad_input(vm: str, tmp_path: Path) -> None:
    """An unknown backend: exit 2, a message naming the choices, nothing written."""
    proc = multihome(vm, "persist", "--backend", "wicked", "--root", str(tmp_path))
    assert proc.returncode == 2
    assert "--backend wicked: unknown backend" in proc.stderr and "networkd" in proc.stderr
    assert files_under(tmp_path) == {}


def test_backend_not_installed_is_bad_input(vm: str, tmp_path: Path) -> None:
    """A backend missing on the target: exit 2, what to install, nothing written."""
    proc = multihome(vm, "persist", "--backend", "netplan", "--root", str(tmp_path))
    assert proc.returncode == 2
    assert "not installed" in proc.stderr and "install netplan.io" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert files_under(tmp_path) == {}


def test_root_not_writable_is_bad_input(vm: str, tmp_path: Path) -> None:
    """A read-only --root: exit 2 before the first write."""
    root = tmp_path / "ro"
    root.mkdir()
    fake_install(root, "/lib/systemd/systemd-networkd")
    run("mount", "--bind", "-o", "ro", str(root), str(root))
    try:
        run("mount", "-o", "remount,bind,ro", str(root))
        proc = multihome(vm, "persist", "--backend", "networkd", "--root", str(root))
        assert proc.returncode == 2, proc.stderr
        assert "not writable" in proc.stderr and "nothing was written" in proc.stderr
        assert files_under(root) == {"lib/systemd/systemd-networkd": "#!/bin/sh\n"}
    finally:
        subprocess.run(["umount", str(root)], check=False)


def test_root_that_is_not_a_directory_is_bad_input(vm: str, tmp_path: Path) -> None:
    """--root pointing at a file: exit 2 with the fix."""
    plain = tmp_path / "file"
    plain.write_text("x")
    proc = multihome(vm, "persist", "--backend", "systemd", "--root", str(plain))
    assert proc.returncode == 2 and "not a directory" in proc.stderr


def test_foreign_file_in_the_way_is_never_overwritten(vm: str, tmp_path: Path) -> None:
    """A file at one of multihome's paths that is not multihome's stops persist (exit 2)."""
    fake_install(tmp_path, "/usr/sbin/NetworkManager")
    theirs = tmp_path / "etc/NetworkManager/system-connections/multihome-eth1.nmconnection"
    theirs.parent.mkdir(parents=True)
    theirs.write_text("[connection]\nid=mine\n")
    proc = multihome(vm, "persist", "--backend", "networkmanager", "--root", str(tmp_path))
    assert proc.returncode == 2 and "is not multihome's" in proc.stderr
    assert theirs.read_text() == "[connection]\nid=mine\n"
    assert not (
        tmp_path / "etc/NetworkManager/system-connections/multihome-eth0.nmconnection"
    ).exists()


def test_switching_backend_removes_the_old_files(vm: str, tmp_path: Path) -> None:
    """Files of an earlier persist that the new backend does not render are removed."""
    fake_install(tmp_path, "/usr/sbin/NetworkManager", "/bin/systemctl")
    assert (
        multihome(vm, "persist", "--backend", "networkmanager", "--root", str(tmp_path)).returncode
        == 0
    )
    proc = multihome(vm, "persist", "--backend", "systemd", "--root", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    gone = "removed /etc/NetworkManager/system-connections/multihome-eth1.nmconnection"
    assert gone in proc.stdout
    unit = tmp_path / "etc/systemd/system/multi-user.target.wants/multihome@eth1.service"
    assert unit.is_symlink() and unit.resolve().name == "multihome@.service"
