"""transaction/session.py: a session holds the namespace's lock from open to close, and
never keeps it when the recovery it starts with fails."""

from __future__ import annotations

from pathlib import Path

import pytest
from hosts import howto_host
from twin import DyingBackend, Killed

from multihome.backend.fake import FakeBackend
from multihome.config import Config
from multihome.engine import apply_plan
from multihome.model import HostState
from multihome.plan import Assessment
from multihome.transaction.lock import is_locked
from multihome.transaction.session import open_session
from multihome.transaction.statedir import JOURNAL, StateDir


def test_the_lock_is_held_while_the_session_is_open(tmp_path: Path) -> None:
    """Opening takes the lock of this namespace's state directory under the root; closing
    (or leaving the ``with`` block) gives it back; a fresh session recovers nothing."""
    backend = FakeBackend(howto_host())
    state = StateDir.current(tmp_path)
    with open_session(backend, tmp_path, timeout=0) as session:
        assert session.state == state and session.root == tmp_path.absolute()
        assert session.recovery is None and session.apply_id
        assert is_locked(state)
    assert not is_locked(state)


class Unreadable(FakeBackend):
    """A namespace that cannot be read (netlink gone away)."""

    def read(self) -> HostState:
        raise OSError(104, "Connection reset by peer")


def test_a_failing_recovery_releases_the_lock(tmp_path: Path) -> None:
    """When the recovery of a killed apply fails (the namespace cannot be read), the error
    reaches the caller, the journal stays for the next run and the lock is free for it."""
    dying = DyingBackend(howto_host(), dies_at=3)
    with pytest.raises(Killed):
        apply_plan(dying, Assessment.of(howto_host(), Config()).plan, root=tmp_path)
    state = StateDir.current(tmp_path)
    with pytest.raises(OSError, match="Connection reset"):
        open_session(Unreadable(dying.read()), tmp_path, timeout=0)
    assert not is_locked(state)
    assert state.exists(JOURNAL)
