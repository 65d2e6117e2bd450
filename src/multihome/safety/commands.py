"""The library side of ``confirm``, ``rollback`` and ``reset`` (the CLI only prints)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multihome.backend import Backend
from multihome.config import Config
from multihome.errors import MultihomeError, NothingToConfirmError
from multihome.names import registered_tables
from multihome.plan import Change
from multihome.processes import pid_alive
from multihome.transaction import DEFAULT_LOCK_TIMEOUT, checkpoint, journal, pause
from multihome.transaction.lock import is_locked
from multihome.transaction.statedir import (
    CHECKPOINT,
    CONFIRM,
    PENDING,
    PREVIOUS,
    RECORD,
    RESULT,
    ROLLBACK_REQUEST,
    WATCHDOG_PID,
    StateDir,
)

WAIT = 30.0


@dataclass
class Outcome:
    """What confirm, rollback or reset did."""

    message: str
    changes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    agent: str | None = None
    """``paused`` when a running agent was paused first, ``not running``; None: not asked."""

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "message": self.message,
            "changes": self.changes,
            "problems": self.problems,
            "notes": self.notes,
            "files": self.files,
            "ok": not self.problems,
        }


def _clock(timestamp: object) -> str:
    if not isinstance(timestamp, int | float):
        return "?"
    return time.strftime("%H:%M:%S", time.localtime(timestamp))


def _live_window(state: StateDir) -> dict[str, Any] | None:
    """The pending window whose watchdog is alive, if any."""
    pending = state.read_json(PENDING)
    watchdog = state.read_json(WATCHDOG_PID)
    if (
        pending is None
        or watchdog is None
        or watchdog.get("id") != pending.get("id")
        or not pid_alive(int(watchdog.get("pid", 0)))
    ):
        return None
    return pending


def _await_result(state: StateDir, apply_id: str, wait: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        result = state.read_json(RESULT)
        if result is not None and result.get("id") == apply_id:
            return result
        time.sleep(0.05)
    return None


def _pause_agent(root: Path, by: str) -> tuple[str, list[str]]:
    """Pause the namespace's running agent, so that it does not put back what ``by`` takes
    away: (``paused`` or ``not running``, the note that says so)."""
    agent = pause.pause(root, by, os.getpid())
    if agent is None:
        return "not running", []
    return "paused", [f"agent (pid {agent}) {pause.describe(by)}"]


def confirm(root: Path, *, wait: float = WAIT) -> Outcome:
    """Keep the changes of the apply that waits for a confirmation."""
    state = StateDir.current(root)
    pending = state.read_json(PENDING)
    if pending is None:
        last = state.read_json(RESULT)
        if last is not None and last.get("outcome") == "rolled-back":
            raise NothingToConfirmError(
                f"nothing waits for a confirmation: the last apply was rolled back at "
                f"{_clock(last.get('time'))} ({last.get('reason')}); run `multihome apply` "
                "again"
            )
        raise NothingToConfirmError(
            f"nothing waits for a confirmation in this network "
            f"namespace ({state.path}); `multihome apply` opens a "
            "confirmation window with --confirm-timeout"
        )
    apply_id = str(pending.get("id"))
    state.touch(CONFIRM, "multihome confirm\n")
    result = _await_result(state, apply_id, wait)
    if result is None and not is_locked(state):
        journal.finish_window(state, apply_id, "confirmed", "confirmed (watchdog gone)")
        result = state.read_json(RESULT)
    if result is None:
        raise MultihomeError(
            f"the watchdog of apply {apply_id} did not answer within "
            f"{wait:g} s; see {state.path}/watchdog.log and run "
            "`multihome confirm` again"
        )
    if result.get("outcome") != "confirmed":
        raise MultihomeError(
            f"too late: apply {apply_id} was rolled back at "
            f"{_clock(result.get('time'))} ({result.get('reason')})"
        )
    return Outcome(f"confirmed: the changes of apply {apply_id} stay")


def rollback(
    backend: Backend, root: Path, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT
) -> Outcome:
    """Go back to the checkpoint saved before the last apply that changed something."""
    from multihome.engine import locked

    state = StateDir.current(root)
    window = _live_window(state)
    if window is not None:
        agent, agent_notes = _pause_agent(root, "rollback")
        apply_id = str(window.get("id"))
        state.touch(ROLLBACK_REQUEST, "multihome rollback\n")
        result = _await_result(state, apply_id, WAIT + lock_timeout)
        if result is None:
            raise MultihomeError(
                f"the watchdog of apply {apply_id} did not roll back within "
                f"{WAIT + lock_timeout:g} s; see {state.path}/watchdog.log"
            )
        return Outcome(
            f"rolled back apply {apply_id} (it was waiting for a confirmation): "
            f"{result.get('changes', 0)} change(s)",
            problems=list(result.get("problems", [])),
            notes=agent_notes,
            agent=agent,
        )
    with locked(
        backend, root=root, timeout=lock_timeout, purpose="rollback", mode="undo"
    ) as session:
        agent, agent_notes = _pause_agent(root, "rollback")
        if session.recovery is not None:
            return Outcome(
                session.recovery.message,
                problems=session.recovery.problems,
                notes=agent_notes,
                agent=agent,
            )
        saved = checkpoint.load(state)
        if saved is None:
            return Outcome(
                f"nothing to roll back: no checkpoint in {state.path} (no apply has "
                "changed this namespace since the last reset or boot)",
                notes=agent_notes,
                agent=agent,
            )
        current = backend.read()
        names = registered_tables(root)  # read before the name files are put back
        changes, notes = checkpoint.restore_changes(current, saved)
        done, problems = checkpoint.execute(backend, changes)
        files = checkpoint.restore_files(root, saved)
        checkpoint.Record.load(state).prune(backend.read()).save(state)
    when = _clock(saved.created)
    if not changes and not files:
        message = f"nothing to roll back: the namespace is at the checkpoint of {when}"
    else:
        message = f"rolled back to the checkpoint of {when} ({saved.id}): {done} change(s)"
    return Outcome(
        message,
        _lines(changes, names),
        problems,
        [*agent_notes, *notes],
        _file_lines(files),
        agent,
    )


def _lines(changes: Sequence[Change], names: Mapping[int, str]) -> list[str]:
    """The changes as plan and apply print them: tables by their ``mh-*`` names."""
    return [c.describe(names) for c in changes]


def _file_lines(files: Sequence[Path]) -> list[str]:
    """Each file put back, saying which: ``restored PATH`` (written back as it was before the
    apply) or ``removed PATH`` (it did not exist before)."""
    return [f"{'restored' if f.exists() else 'removed'} {f}" for f in files]


def reset(
    backend: Backend, root: Path, config: Config, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT
) -> Outcome:
    """Remove everything multihome owns; put back moved routes and prior sysctl values."""
    from multihome.engine import locked

    state = StateDir.current(root)
    notes: list[str] = []
    agent, agent_notes = _pause_agent(root, "reset")
    window = _live_window(state)
    if window is not None:
        state.touch(ROLLBACK_REQUEST, "multihome reset\n")
        if _await_result(state, str(window.get("id")), WAIT) is not None:
            notes.append(f"rolled back apply {window.get('id')}, which waited for a confirmation")
    with locked(backend, root=root, timeout=lock_timeout, purpose="reset", mode="undo") as session:
        if agent != "paused":  # an agent that started while we waited for the lock
            agent, agent_notes = _pause_agent(root, "reset")
        notes += agent_notes
        if session.recovery is not None:
            notes.append(session.recovery.message)
        record = checkpoint.Record.load(state)
        if not state.exists(RECORD):
            notes.append(
                f"no record in {state.path}: sysctls are left as they are; "
                "defaults moved out of main are rebuilt from multihome's tables"
            )
        current = backend.read()
        names = registered_tables(root)
        changes, more = checkpoint.reset_changes(current, config, record, names)
        notes += more
        done, problems = checkpoint.execute(backend, changes)
        files = checkpoint.remove_name_files(root)
        if not problems:
            for name in (RECORD, CHECKPOINT, PREVIOUS, RESULT):
                state.remove(name)
    message = (
        f"reset: {done} change(s); multihome owns nothing in this namespace now"
        if changes or files
        else "nothing to reset: multihome owns nothing here"
    )
    return Outcome(message, _lines(changes, names), problems, notes, _file_lines(files), agent)
