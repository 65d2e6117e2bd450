"""The lock that keeps two applies (a user and the agent, say) from interleaving.

Two locks, taken in this order. The namespace lock: a unix socket bound to the abstract name
``@multihome/lock`` (:data:`~multihome.processes.NAMESPACE_LOCK`). Abstract names live in
the network namespace, so it serialises every multihome changing this namespace whatever its
``--root`` (two roots mean two state directories, which must not decide alone); the kernel
frees the name when the last descriptor of the socket closes, also on SIGKILL. A backend that
is not a kernel namespace (the in-memory one) has none. Then an exclusive ``flock(2)`` on
``<state dir>/lock``, which guards the state directory. ``flock`` belongs to the open file, not to
the process: the watchdog of a confirmation window inherits the descriptors (both) and so keeps
the locks after the apply process is gone, until the window ends. Releasing is closing (never
``LOCK_UN``, which would also drop the watchdog's share).
"""

from __future__ import annotations

import _socket  # not socket.py (its enums): on every apply's path, see statedir
import errno
import fcntl
import os
import sys
import time

from multihome.errors import LockTimeoutError
from multihome.processes import pid_alive
from multihome.transaction import DEFAULT_LOCK_TIMEOUT
from multihome.transaction.statedir import LOCK, LOCK_OWNER, PENDING, StateDir, flock_held

# Not ``typing.TYPE_CHECKING``: on every apply's path (multihome.noop imports no typing).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from _typeshed import StrPath

#: How long a second apply waits for the first, by default (seconds).
POLL = 0.05


class Lock:
    """A held lock; ``release`` (or leaving the ``with`` block) closes it."""

    def __init__(self, state: StateDir, fd: int, namespace: _socket.socket | None = None) -> None:
        self.state = state
        self._fd: int | None = fd
        self._namespace = namespace

    @property
    def fd(self) -> int:
        if self._fd is None:
            raise ValueError("the lock was released")
        return self._fd

    @property
    def fds(self) -> tuple[int, ...]:
        """Every descriptor of the lock (what a watchdog inherits to hold it)."""
        if self._namespace is None:
            return (self.fd,)
        return (self.fd, self._namespace.fileno())

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._namespace is not None:
            self._namespace.close()
            self._namespace = None

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire(
    state: StateDir,
    *,
    timeout: float = DEFAULT_LOCK_TIMEOUT,
    purpose: str = "apply",
    namespace: str | None = None,
) -> Lock:
    """Take the lock, waiting at most ``timeout`` seconds; raise :class:`LockTimeoutError`.

    ``namespace``: the abstract socket name of the namespace lock, taken first (None: the
    state directory's ``flock`` only)."""
    deadline = time.monotonic() + max(timeout, 0.0)
    held = None if namespace is None else _bind_namespace(state, namespace, deadline, timeout)
    try:
        state.ensure()
        fd = os.open(state.file(LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except BaseException:
        if held is not None:
            held.close()
        raise
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                if held is not None:
                    held.close()
                raise LockTimeoutError(_busy_message(state, timeout)) from None
            time.sleep(POLL)
    # Who holds the lock is a hint for messages: not worth an fsync on every apply and repair.
    state.write_json(
        LOCK_OWNER,
        {"pid": os.getpid(), "purpose": purpose, "since": time.time(), "argv": sys.argv},
    )
    return Lock(state, fd, held)


def _bind_namespace(state: StateDir, name: str, deadline: float, timeout: float) -> _socket.socket:
    """Bind the abstract socket ``name``, polling until ``deadline`` while another holds it."""
    address = b"\0" + name.encode()
    while True:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            sock.bind(address)
            return sock
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE:
                raise
        if time.monotonic() >= deadline:
            raise LockTimeoutError(_busy_message(state, timeout, holders(name))) from None
        time.sleep(POLL)


def holders(name: str, proc: StrPath = "/proc") -> list[int]:
    """The pids that hold a descriptor of the socket bound to the abstract name ``name`` in
    this network namespace (``/proc/net/unix``, then every process's ``fd/``): the holder,
    and a confirmation watchdog that inherited it. Only called after a lock timeout."""
    from pathlib import Path  # (not on every apply's path)

    proc = Path(proc)
    wanted = "@" + name
    inodes = set()
    try:
        lines = (proc / "net/unix").read_text().splitlines()[1:]
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) >= 8 and fields[7] == wanted:
            inodes.add(f"socket:[{fields[6]}]")
    pids = []
    for task in proc.glob("[0-9]*"):
        try:
            links = {os.readlink(fd) for fd in (task / "fd").iterdir()}
        except OSError:
            continue  # exited, or not ours to read
        if links & inodes:
            pids.append(int(task.name))
    return sorted(pids)


def is_locked(state: StateDir) -> bool:
    """True when someone holds the state directory's lock right now (a probe)."""
    return flock_held(state.file(LOCK))


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


def _busy_message(state: StateDir, timeout: float, pids: Sequence[int] | None = None) -> str:
    hint = ""
    if state.exists(PENDING):
        hint = (
            "; end its confirmation window with `multihome confirm` (keep) or "
            "`multihome rollback` (undo)"
        )
    owner, lock = describe_owner(state), str(state.file(LOCK))
    if pids is not None and not is_locked(state):  # a holder with another --root
        lock = "@multihome/lock (an abstract unix socket)"
        owner = ", ".join(f"pid {pid} ({_command(pid)})" for pid in pids) or (
            "a process this one cannot see (`ss -xlp | grep multihome/lock` names it)"
        )
    return (
        f"another multihome is changing this network namespace: {owner}; "
        f"waited {timeout:g} s for the lock {lock}. Wait for it to finish "
        f"and run the command again, or give a longer --lock-timeout{hint}"
    )


def _clock(timestamp: float) -> str:
    from datetime import datetime  # in messages only: not on every apply's path

    return datetime.fromtimestamp(timestamp).strftime("%H:%M:%S")


def _command(pid: int) -> str:
    """The command line of ``pid``, for a message."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().split(b"\0")
    except OSError:
        return "exited"
    return " ".join(w.decode(errors="replace") for w in words if w) or "?"
