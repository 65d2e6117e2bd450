"""The confirmation window of an apply, seen from the apply process.

Before the first kernel change the apply writes ``pending.json`` (its id and a deadline) and
starts the watchdog (:mod:`multihome.safety.watchdog`), a double-forked process in its own
session that inherits the namespace's lock and holds the rollback timer: it outlives the
terminal, the SSH session and the apply process, and needs no systemd. The window ends when
``multihome confirm`` (or a keypress in the apply) writes ``confirm``, when a check fails or
``multihome rollback`` writes ``rollback-request``, or at the deadline; the watchdog then
writes ``result.json``. Should the watchdog die, whoever waits does its work.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multihome.backend import Backend
from multihome.errors import MultihomeError
from multihome.faults import ENV as FAILPOINT_ENV
from multihome.processes import pid_alive
from multihome.transaction import checkpoint, journal
from multihome.transaction.session import Session
from multihome.transaction.statedir import (
    CONFIRM,
    PENDING,
    RESULT,
    ROLLBACK_REQUEST,
    WATCHDOG_LOG,
    WATCHDOG_PID,
    StateDir,
    boot_id,
)

#: Time the apply and its checks may take before the first deadline (seconds).
APPLY_ALLOWANCE = 60.0
START_TIMEOUT = 10.0
POLL = 0.1


@dataclass
class Window:
    """An open confirmation window."""

    state: StateDir
    root: Path
    id: str
    timeout: float
    watchdog: int
    """The watchdog's pid."""

    def result(self) -> dict[str, Any] | None:
        """The window's result once it has ended."""
        data = self.state.read_json(RESULT)
        return data if data is not None and data.get("id") == self.id else None

    @property
    def deadline(self) -> float:
        pending = self.state.read_json(PENDING) or {}
        return float(pending.get("deadline", 0.0))

    def start_countdown(self) -> float:
        """The changes are made and checked: the window runs from now; return the deadline."""
        deadline = time.time() + self.timeout
        pending = self.state.read_json(PENDING)
        if pending is not None and pending.get("id") == self.id:
            pending["deadline"] = deadline
            self.state.write_json(PENDING, pending)
        return deadline


def open_window(session: Session, timeout: float) -> Window:
    """Write ``pending.json`` and start the watchdog (before any kernel change)."""
    state = session.state
    for name in (CONFIRM, ROLLBACK_REQUEST):
        state.remove(name)
    now = time.time()
    state.write_json(
        PENDING,
        {
            "id": session.apply_id,
            "pid": os.getpid(),
            "created": now,
            "timeout": timeout,
            "deadline": now + timeout + APPLY_ALLOWANCE,
            "boot_id": boot_id(),
        },
    )
    pid = _spawn(session)
    if pid is None:
        state.remove(PENDING)
        raise MultihomeError(
            f"could not start the rollback watchdog (see "
            f"{state.file(WATCHDOG_LOG)}); nothing was changed. Run without "
            "--confirm-timeout (or with 0) to apply unguarded"
        )
    return Window(state, session.root, session.apply_id, timeout, pid)


def _spawn(session: Session) -> int | None:
    state = session.state
    env = {k: v for k, v in os.environ.items() if k != FAILPOINT_ENV}
    # 0600 whatever the umask: only root reads (or appends to) the watchdog's log
    fd = os.open(
        state.file(WATCHDOG_LOG), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600
    )
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as log:
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "multihome.safety.watchdog",
                "--state-dir",
                str(state.path),
                "--root",
                str(session.root),
                "--id",
                session.apply_id,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            cwd="/",
            pass_fds=session.lock.fds,
            start_new_session=True,
            close_fds=True,
        )
    try:
        child.wait(timeout=START_TIMEOUT)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        return None
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        started = state.read_json(WATCHDOG_PID)
        if started and started.get("id") == session.apply_id:
            return int(started["pid"])
        time.sleep(0.02)
    return None


def end_unchanged(window: Window, reason: str) -> None:
    """Nothing was changed (or the transaction undid itself): close the window."""
    journal.finish_window(window.state, window.id, "unchanged", reason)


def request(window: Window, name: str, reason: str, backend: Backend) -> dict[str, Any]:
    """Ask the watchdog to confirm (``CONFIRM``) or roll back (``ROLLBACK_REQUEST``) now."""
    window.state.touch(name, reason + "\n")
    return wait(window, backend, grace=30.0)


def wait(
    window: Window,
    backend: Backend,
    *,
    poll: Callable[[float], bool] | None = None,
    grace: float = 30.0,
) -> dict[str, Any]:
    """Wait for the window's result; ``poll(seconds_left)`` returns True to confirm now.

    If the watchdog is gone, do its work here (the apply process shares its lock).
    """
    confirmed_here = False
    while True:
        result = window.result()
        if result is not None:
            return result
        if not pid_alive(window.watchdog):
            return take_over(window, backend)
        left = window.deadline - time.time()
        if left < -grace:
            return take_over(window, backend)
        if poll is not None and not confirmed_here and poll(max(left, 0.0)):
            window.state.touch(CONFIRM, "keypress\n")
            confirmed_here = True
        elif poll is None or confirmed_here:
            time.sleep(POLL)


def take_over(window: Window, backend: Backend) -> dict[str, Any]:
    """End the window here, as the watchdog would have."""
    result = window.result()
    if result is not None:
        return result
    state = window.state
    if state.exists(CONFIRM) and not state.exists(ROLLBACK_REQUEST):
        journal.finish_window(state, window.id, "confirmed", "confirmed (watchdog gone)")
    else:
        roll_back(
            state,
            window.root,
            window.id,
            backend,
            "the watchdog is gone; rolled back by the apply process",
        )
    result = window.result()
    assert result is not None
    return result


def roll_back(state: StateDir, root: Path, apply_id: str, backend: Backend, reason: str) -> None:
    """Restore the checkpoint of apply ``apply_id`` and end its window with ``reason``."""
    saved = checkpoint.load(state)
    if saved is None or saved.id != apply_id:
        journal.finish_window(state, apply_id, "rolled-back", f"{reason}; nothing had been changed")
        return
    recovery = journal.undo(backend, saved, root, state)
    journal.end(state)
    journal.finish_window(
        state, apply_id, "rolled-back", reason, recovery.changes, recovery.problems
    )
