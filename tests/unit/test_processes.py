"""multihome.processes: the one liveness check (a zombie is not alive) and the root check."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from multihome.errors import NotPermittedError
from multihome.processes import pid_alive, require_root


def test_a_running_process_is_alive_and_a_zombie_is_not() -> None:
    """A child is alive while it runs; once it exits, unreaped (a zombie), it is not."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        assert pid_alive(child.pid)
        assert child.stdin is not None
        child.stdin.close()  # the child exits; nobody reaps it yet: a zombie
        deadline = time.monotonic() + 10
        while pid_alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        with open(f"/proc/{child.pid}/stat", encoding="utf-8") as stat:
            assert stat.read().rpartition(")")[2].split()[0] == "Z"
        assert not pid_alive(child.pid)
    finally:
        child.kill()
        child.wait()
    assert not pid_alive(child.pid)


def test_no_process_and_process_groups_are_not_alive() -> None:
    """This process is alive; pid 0 and negative pids (process groups) and a free pid are not."""
    assert pid_alive(os.getpid())
    assert not pid_alive(0)
    assert not pid_alive(-1)
    free = int(Path("/proc/sys/kernel/pid_max").read_text(encoding="utf-8")) + 1
    assert not pid_alive(free)


def test_require_root_names_what_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not root: NotPermittedError saying what needs root and how to go on; root: nothing."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(NotPermittedError, match=r"^the lab needs root \(CAP_NET_ADMIN\); sudo$"):
        require_root("the lab", "sudo")
    with pytest.raises(NotPermittedError, match="multihome plan"):
        require_root()
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    require_root()
