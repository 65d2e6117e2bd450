"""``apply --confirm-timeout``: apply, check, then keep only what is confirmed.

Under the namespace's lock: open the confirmation window (watchdog started), apply the plan
(checkpoint and journal first), announce and verify it (:func:`multihome.engine.settle`, the
step every apply shares), run the post-apply checks; a failed verification or check rolls
back at once; otherwise wait for ``multihome confirm`` or a keypress until the deadline, then
roll back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multihome.backend import Backend
from multihome.config import Config
from multihome.engine import ApplyResult, Convergence, Progress, apply_plan, settle
from multihome.errors import ApplyError
from multihome.plan import Assessment
from multihome.safety import window
from multihome.safety.checks import CheckResult, Peer, Probe, run_checks
from multihome.transaction.session import Session
from multihome.transaction.statedir import CONFIRM, ROLLBACK_REQUEST


@dataclass(frozen=True)
class Guard:
    """What protects one apply."""

    timeout: float
    """Seconds to wait for a confirmation after the checks; 0: keep when the checks pass."""
    peer: Peer | None = None
    probes: tuple[Probe, ...] = ()


@dataclass
class GuardedResult:
    """How a guarded apply ended."""

    settled: Convergence
    """The apply, its announcement and its verification."""
    outcome: str
    """``unchanged``, ``confirmed`` or ``rolled-back``."""
    reason: str = ""
    checks: list[CheckResult] = field(default_factory=list)
    restored: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def result(self) -> ApplyResult:
        return self.settled.result


Announce = Callable[[ApplyResult, list[CheckResult], float], None]


def guarded_apply(
    backend: Backend,
    session: Session,
    assessment: Assessment,
    config: Config,
    root: Path,
    guard: Guard,
    *,
    progress: Progress | None = None,
    announce: Announce | None = None,
    poll: Callable[[float], bool] | None = None,
) -> GuardedResult:
    """Apply ``assessment.plan`` inside a confirmation window (the caller holds ``session``).

    ``announce(result, checks, deadline)`` is called when the window starts counting down;
    ``poll(seconds_left)`` waits a little and returns True when the user confirmed.
    """
    if assessment.plan.empty:
        result = apply_plan(
            backend,
            assessment.plan,
            root=root,
            config=config,
            session=session,
            state=assessment.state,
        )
        return GuardedResult(settle(backend, assessment, result, config), "unchanged")
    win = window.open_window(session, guard.timeout)
    try:
        result = apply_plan(
            backend,
            assessment.plan,
            root=root,
            config=config,
            session=session,
            progress=progress,
            state=assessment.state,
        )
    except ApplyError as exc:
        window.end_unchanged(win, f"the apply failed and undid itself: {exc}")
        raise
    except BaseException:
        win.state.touch(ROLLBACK_REQUEST, "the apply was interrupted\n")
        raise
    settled = settle(backend, assessment, result, config)
    if result.checkpoint_id is None:
        window.end_unchanged(win, "nothing to change")
        return GuardedResult(settled, "unchanged")
    if settled.failed:
        reason = "verification failed: " + "; ".join(
            f"{c.interface} {c.address} {c.name} -> {c.destination}: expected {c.expected}, "
            f"got {c.got}"
            for c in settled.failed
        )
        return _ended(settled, [], window.request(win, ROLLBACK_REQUEST, reason, backend))
    checks = run_checks(backend, guard.peer, guard.probes, assessment.desired.interfaces)
    failed = [c for c in checks if not c.ok]
    if failed:
        reason = "check failed: " + "; ".join(f"{c.name}: {c.detail}" for c in failed)
        return _ended(settled, checks, window.request(win, ROLLBACK_REQUEST, reason, backend))
    if guard.timeout <= 0:
        return _ended(settled, checks, window.request(win, CONFIRM, "checks passed", backend))
    try:  # from the first second of the countdown on, Ctrl-C means "no"
        deadline = win.start_countdown()
        if announce is not None:
            announce(result, checks, deadline)
        data = window.wait(win, backend, poll=poll)
    except KeyboardInterrupt:
        reason = "interrupted (Ctrl-C) before a confirmation"
        data = window.request(win, ROLLBACK_REQUEST, reason, backend)
    return _ended(settled, checks, data)


def _ended(settled: Convergence, checks: list[CheckResult], data: dict[str, Any]) -> GuardedResult:
    return GuardedResult(
        settled,
        str(data.get("outcome")),
        str(data.get("reason", "")),
        checks,
        int(data.get("changes", 0)),
        list(data.get("problems", [])),
    )
