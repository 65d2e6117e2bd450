"""The in-memory backend in the states tests need: converged, and dying half-way.

A :class:`~multihome.backend.fake.FakeBackend` is a namespace in memory; these helpers put
it where a unit test starts from, without the kernel and without root.
"""

from __future__ import annotations

from collections.abc import Sequence

from multihome.backend.fake import FakeBackend
from multihome.config import Config
from multihome.model import HostState
from multihome.plan import Assessment, Change


def converge(state: HostState, config: Config | None = None) -> FakeBackend:
    """A twin of ``state`` with the policy's plan made on it (no transaction, no files)."""
    backend = FakeBackend(state)
    backend.apply(Assessment.of(state, config or Config()).plan.changes)
    return backend


class Killed(BaseException):
    """The process died (SIGKILL, power loss): nothing after it runs, no ``except`` sees it."""


class DyingBackend(FakeBackend):
    """A twin whose process dies right before its ``dies_at``-th change (counted from 1):
    what an apply killed half-way leaves behind is its journal, its checkpoint and the
    changes made before that one."""

    def __init__(self, state: HostState, dies_at: int) -> None:
        super().__init__(state)
        self.dies_at = dies_at

    def apply(self, changes: Sequence[Change]) -> int:
        done = 0
        for change in changes:
            if self.calls + 1 == self.dies_at:
                raise Killed(f"killed before change {self.dies_at}")
            done += super().apply([change])
        return done
