"""The lock that keeps two applies (a user and the agent, say) from interleaving.

An exclusive ``flock(2)`` on ``<state dir>/lock``. ``flock`` belongs to the open file, not to
the process: the watchdog of a confirmation window inherits the descriptor and so keeps the
lock after the apply process is gone, until the window ends. Releasing is closing (never
``LOCK_UN``, which would also drop the watchdog's share).
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from datetime import datetime

from multihome.errors import LockTimeoutError
from multihome.processes import pid_alive
from multihome.transaction import DEFAULT_LOCK_TIMEOUT
from multihome.transaction.statedir import LOCK, LOCK_OWNER, PENDING, StateDir

#: How long a second apply waits for the first, by default (seconds).
POLL = 0.05


class Lock:
    """A held lock; ``release`` (or leaving the ``with`` block) closes it."""

    def __init__(self, state: StateDir, fd: int) -> None:
        self.state = state
        self._fd: int | None = fd

    @property
    def fd(self) -> int:
        if self._fd is None:
            raise ValueError("the lock was released")
        return self._fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire(
    state: StateDir, *, timeout: float = DEFAULT_LOCK_TIMEOUT, purpose: str = "apply"
) -> Lock:
    """Take the lock, waiting at most ``timeout`` seconds; raise :class:`LockTimeoutError`."""
    state.ensure()
    path = state.file(LOCK)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + max(timeout, 0.0)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise LockTimeoutError(_busy_message(state, timeout)) from None
            time.sleep(POLL)
    state.write_json(
        LOCK_OWNER, {"pid": os.getpid(), "purpose": purpose, "since": time.time(), "argv": sys.argv}
    )
    return Lock(state, fd)


def is_locked(state: StateDir) -> bool:
    """True when someone holds the lock right now (a probe: takes and drops it)."""
    path = state.file(LOCK)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def describe_owner(state: StateDir) -> str:
    """``apply (pid 123, since 12:00:01)``, plus the confirmation deadline when there is one."""
    owner = state.read_json(LOCK_OWNER) or {}
    pid = owner.get("pid")
    text = str(owner.get("purpose", "another multihome"))
    details = []
    if isinstance(pid, int):
        details.append(f"pid {pid}" + ("" if pid_alive(pid) else ", exited"))
    if isinstance(owner.get("since"), int | float):
        details.append(f"since {_clock(owner['since'])}")
    if details:
        text += f" ({', '.join(details)})"
    pending = state.read_json(PENDING)
    if pending and isinstance(pending.get("deadline"), int | float):
        text += (
            f", waiting for `multihome confirm` until {_clock(pending['deadline'])} "
            "(then it rolls back)"
        )
    return text


def _busy_message(state: StateDir, timeout: float) -> str:
    hint = ""
    if state.exists(PENDING):
        hint = (
            "; end its confirmation window with `multihome confirm` (keep) or "
            "`multihome rollback` (undo)"
        )
    return (
        f"another multihome is changing this network namespace: {describe_owner(state)}; "
        f"waited {timeout:g} s for the lock {state.file(LOCK)}. Wait for it to finish "
        f"and run the command again, or give a longer --lock-timeout{hint}"
    )


def _clock(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%H:%M:%S")
