"""Files and folders multihome writes are never writable by other users, whatever the umask
it was started with (some launchers leave 000): the state directory, persisted files' drop-in
folders, the agent's ``agent.json`` and the manifest. Written under a temporary root."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from multihome.agent.state import AgentStatus, write_status
from multihome.files import make_dirs, write_atomic
from multihome.transaction.statedir import StateDir


@pytest.fixture
def no_umask() -> Iterator[None]:
    """umask 000 for the test: every mode is what the code asked for."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def writable_by_others(root: Path) -> list[str]:
    """Every path under ``root`` that the group or others may write to."""
    return [
        f"{p} {stat.filemode(p.lstat().st_mode)}"
        for p in [root, *root.rglob("*")]
        if not p.is_symlink() and p.lstat().st_mode & 0o022
    ]


def test_state_directory_and_agent_file_under_umask_000(tmp_path: Path, no_umask: None) -> None:
    """The namespace's folder (0700, parents 0755) and its JSON files (0600), agent.json
    among them, are writable by their owner only."""
    root = tmp_path / "root"
    root.mkdir(mode=0o755)
    state = StateDir.current(root)
    state.write_json("journal.json", {"id": 1})
    write_status(state, AgentStatus(pid=1, started="now"))
    assert writable_by_others(root) == []
    assert stat.S_IMODE(os.stat(state.path).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(state.file("journal.json")).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(state.file("agent.json")).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(state.path)).st_mode) == 0o755


def test_write_atomic_makes_parents_0755_under_umask_000(tmp_path: Path, no_umask: None) -> None:
    """A persisted drop-in's new folders get 0755, not 0777; folders that exist keep theirs."""
    root = tmp_path / "root"
    root.mkdir(mode=0o755)
    target = root / "etc/systemd/network/10-eth1.network.d/50-multihome.conf"
    write_atomic(target, "x\n")
    assert writable_by_others(root) == []
    shared = root / "shared"
    shared.mkdir(mode=0o1777)
    make_dirs(shared / "a/b", 0o700)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert stat.S_IMODE((shared / "a/b").stat().st_mode) == 0o700
