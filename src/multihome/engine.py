"""Orchestration: read -> policy -> plan -> apply inside a transaction -> verify.

The transaction: changes are made in the plan's order; if one fails, the ones made before it
are undone in reverse order and :class:`ApplyError` says what failed and what was undone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from multihome import faults
from multihome.backend import Backend, ChangeFailed
from multihome.config import Config
from multihome.errors import ApplyError, NotPermittedError
from multihome.model import HostState
from multihome.names import register_names
from multihome.plan import Change, Plan, make_plan
from multihome.policy import DesiredState, compute_policy

log = logging.getLogger(__name__)
Progress = Callable[[int, int, Change], None]


@dataclass(frozen=True)
class Snapshot:
    """What one read of the host gave, and what the policy wants of it."""

    state: HostState
    desired: DesiredState
    plan: Plan


@dataclass
class ApplyResult:
    """What an apply did."""

    plan: Plan
    applied: int = 0
    files: list[Path] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.applied > 0 or bool(self.files)


def snapshot(backend: Backend, config: Config) -> Snapshot:
    """Read the host once and compute the desired state and the plan."""
    state = backend.read()
    desired = compute_policy(state, config)
    return Snapshot(state, desired, make_plan(state, desired, config))


def require_root() -> None:
    if os.geteuid() != 0:
        raise NotPermittedError("changing routes and rules needs root (CAP_NET_ADMIN); run "
                                "it with sudo, or use `multihome plan` to see the changes")


def apply_plan(backend: Backend, plan: Plan, *, root: Path = Path("/"),
               progress: Progress | None = None) -> ApplyResult:
    """Make the plan's changes as one transaction and register the table names.

    On failure everything done so far is undone and :class:`ApplyError` is raised.
    """
    result = ApplyResult(plan)
    if plan.empty:
        result.files = register_names(root, plan.tables) if plan.tables else []
        return result
    result.files = register_names(root, plan.tables)
    changes = list(plan.changes)
    try:
        result.applied = _apply_changes(backend, changes, progress)
    except ChangeFailed as failure:
        undone, problems = _undo(backend, changes[: failure.done])
        what = failure.change.describe(plan.table_names)
        message = (f"apply failed at change {failure.done + 1} of {len(changes)} "
                   f"({what}): {failure.reason}; ")
        if problems:
            message += (f"undo was INCOMPLETE ({len(problems)} change(s) could not be undone: "
                        f"{'; '.join(problems)}); run `multihome status` and fix by hand")
        else:
            message += (f"undid the {undone} change(s) made before it; the namespace is as it "
                        "was. Run `multihome plan` to see the changes again")
        raise ApplyError(message) from failure
    return result


def _apply_changes(backend: Backend, changes: Sequence[Change],
                   progress: Progress | None) -> int:
    point = faults.failpoint()
    if progress is None and point is None:
        return backend.apply(changes)  # one batch: the fast path
    done = 0
    for index, change in enumerate(changes, start=1):
        if point is not None and point[1] == index:
            if point[0] == "kill":
                faults.kill_now()
            raise ChangeFailed(change, done, "injected failure (MULTIHOME_FAILPOINT)")
        try:
            backend.apply([change])
        except ChangeFailed as failure:
            raise ChangeFailed(change, done, failure.reason) from failure
        done += 1
        if progress is not None:
            progress(done, len(changes), change)
    return done


def _undo(backend: Backend, done: Sequence[Change]) -> tuple[int, list[str]]:
    problems: list[str] = []
    undone = 0
    for change in reversed(done):
        try:
            backend.apply([change.inverse()])
            undone += 1
        except (ChangeFailed, ValueError) as exc:
            log.error("undo of %s failed: %s", change.describe(), exc)
            problems.append(f"{change.describe()}: {exc}")
    return undone, problems
