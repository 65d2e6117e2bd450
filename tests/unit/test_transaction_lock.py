"""transaction/lock.py: one writer per namespace, a bounded wait, a message naming the
holder."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from multihome.errors import LockTimeoutError
from multihome.transaction.lock import acquire
from multihome.transaction.statedir import StateDir


def test_lock_is_exclusive_and_bounded(tmp_path: Path) -> None:
    """A second holder (another open file) waits about the timeout, then gets a message
    naming the first; after release it gets the lock."""
    state = StateDir.current(tmp_path)
    first = acquire(state, timeout=0, purpose="apply")
    start = time.monotonic()
    with pytest.raises(LockTimeoutError, match=rf"apply \(pid {os.getpid()}"):
        acquire(state, timeout=0.3, purpose="reset")
    assert 0.3 <= time.monotonic() - start < 3
    first.release()
    acquire(state, timeout=0, purpose="reset").release()
