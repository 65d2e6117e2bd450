"""Which networkd counts as "the running manager of these files" (pure logic on a fake /proc:
hard links stand for namespace files, a symlink for /proc/PID/root)."""

from __future__ import annotations

import os
from pathlib import Path

from multihome.managers import NETWORKD_COMM, find_networkd


def fake_proc(tmp_path: Path, daemon_root: Path, same_net: bool, comm: str = NETWORKD_COMM) -> Path:
    """A /proc with ``self`` and one daemon (pid 42) whose root is ``daemon_root``."""
    proc = tmp_path / "proc"
    for pid in ("self", "42"):
        (proc / pid / "ns").mkdir(parents=True)
    (proc / "self/ns/net").write_text("")
    (proc / "self/ns/mnt").write_text("")
    if same_net:
        os.link(proc / "self/ns/net", proc / "42/ns/net")
    else:
        (proc / "42/ns/net").write_text("")
    (proc / "42/ns/mnt").write_text("")  # another mount namespace (a container, a test)
    (proc / "42/comm").write_text(comm + "\n")
    (proc / "42/root").symlink_to(daemon_root)
    return proc


def test_networkd_counts_only_when_it_reads_the_written_directory(tmp_path: Path) -> None:
    """A networkd in this network namespace whose /etc/systemd/network is the root's (same
    inode) is found, with commands entering its mount namespace; an image's root that it does
    not read, or a networkd of another network namespace, or another program, is not."""
    system = tmp_path / "system"
    (system / "etc/systemd/network").mkdir(parents=True)
    image = tmp_path / "image"
    (image / "etc/systemd/network").mkdir(parents=True)
    proc = fake_proc(tmp_path, system, same_net=True)
    found = find_networkd(system, proc)
    assert found is not None and found.pid == 42 and found.own_mounts
    assert found.command("networkctl", "reload")[:4] == ["nsenter", "-t", "42", "-m"]
    assert find_networkd(image, proc) is None


def test_networkd_of_another_namespace_or_another_program_is_not_asked(tmp_path: Path) -> None:
    """The host's networkd seen from a namespace (another network namespace) and a process of
    another name reading the same directory are never asked to reload."""
    system = tmp_path / "system"
    (system / "etc/systemd/network").mkdir(parents=True)
    assert find_networkd(system, fake_proc(tmp_path / "a", system, same_net=False)) is None
    assert find_networkd(system, fake_proc(tmp_path / "b", system, True, comm="sshd")) is None
