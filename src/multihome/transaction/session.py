"""A session: the lock of the namespace, held while multihome changes it, and the recovery
of an interrupted apply that every session starts with."""

from __future__ import annotations

from multihome.files import absolute
from multihome.processes import NAMESPACE_LOCK
from multihome.transaction import DEFAULT_LOCK_TIMEOUT
from multihome.transaction.lock import Lock, acquire
from multihome.transaction.statedir import JOURNAL, PENDING, StateDir, new_id, sweep, sweep_due

# Not ``typing.TYPE_CHECKING``: the no-op apply (multihome.noop) opens its session without
# typing, the backend or the model.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from _typeshed import StrPath

    from multihome.backend import Backend
    from multihome.transaction import journal


class Session:
    """The held lock of one namespace's state directory (a plain class: see
    :class:`~multihome.transaction.statedir.StateDir`)."""

    def __init__(
        self,
        state: StateDir,
        lock: Lock,
        root: Path,
        apply_id: str,
        recovery: journal.Recovery | None = None,
    ) -> None:
        self.state = state
        self.lock = lock
        self.root = root
        self.apply_id = apply_id
        """The id the next checkpoint gets (a confirmation window refers to it)."""
        self.recovery = recovery
        """What was done about an interrupted apply found when the session opened."""

    def close(self) -> None:
        self.lock.release()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_session(
    backend: Backend,
    root: Path,
    *,
    timeout: float = DEFAULT_LOCK_TIMEOUT,
    purpose: str = "apply",
    mode: journal.Mode = "finish",
    state: StateDir | None = None,
) -> Session:
    """Take the lock, then finish (``mode="finish"``) or undo an interrupted apply.

    First removes (bounded, with a log line; at most once a minute) the state directories of
    namespaces that no longer exist (:func:`~multihome.transaction.statedir.sweep`).
    ``state``: this namespace's state directory, when the caller looked it up already (the
    agent, which never leaves its namespace: not its identity again on every repair)."""
    root = root.absolute()  # the watchdog runs from /
    found = StateDir.current(root) if state is None else state
    state, lock = _lock(found, root, timeout, purpose, backend.namespace_lock)
    recovery = None
    if state.exists(JOURNAL) or state.exists(PENDING):  # the journal's code only when needed
        from multihome.transaction import journal

        try:
            recovery = journal.recover(backend, state, root, mode=mode)
        except BaseException:
            lock.release()
            raise
    return Session(state, lock, root, new_id(), recovery)


def open_clean_session(
    state: StateDir, root: StrPath, *, timeout: float = DEFAULT_LOCK_TIMEOUT
) -> Lock | None:
    """:func:`open_session` for an apply in the namespace of ``state`` (a folder that
    exists and is this namespace's), without a backend: the lock held (all that such an
    apply, the no-op, needs of a session; ``root`` as text, without ``pathlib``), or None,
    and the lock released again, when an interrupted apply or a confirmation window waits
    (then only :func:`open_session` with a backend can go on)."""
    state, lock = _lock(state, absolute(root), timeout, "apply", NAMESPACE_LOCK)
    if state.exists(JOURNAL) or state.exists(PENDING):
        lock.release()
        return None
    return lock


def _lock(
    state: StateDir, root: StrPath, timeout: float, purpose: str, namespace: str | None
) -> tuple[StateDir, Lock]:
    """Sweep when due, then take the namespace's lock."""
    if state.identity is not None and sweep_due(state):
        sweep(root, state.identity)
    return state, acquire(state, timeout=timeout, purpose=purpose, namespace=namespace)
