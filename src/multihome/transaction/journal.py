"""The journal of an apply, and the recovery of an interrupted one.

Before the first kernel change an apply writes ``journal.json``: its changes, in order, and
the checkpoint of the state before them. It removes the journal when the last change is made
(or undone). A journal found by the next run means the apply was killed (SIGKILL, power
loss, a lost terminal): the next ``apply`` finishes it (makes the changes not yet in effect,
in order; if one fails, everything goes back to the checkpoint); ``rollback`` and ``reset`` undo
it. Either way the namespace is never left half-way. A journal from an earlier boot describes
a kernel that no longer exists and is discarded.

A ``pending.json`` whose watchdog and apply are both gone is an unconfirmed apply: it is
rolled back.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from multihome.backend import Backend, ChangeFailed
from multihome.model import HostState, Route, Rule, Sysctl
from multihome.plan import Change
from multihome.transaction import checkpoint
from multihome.transaction.statedir import (
    CONFIRM,
    JOURNAL,
    PENDING,
    RESULT,
    ROLLBACK_REQUEST,
    StateDir,
    boot_id,
    change_from_json,
    change_text,
    compose,
    json_text,
)
from multihome.values import field, record

TYPE_CHECKING = False  # typing is for the type checker only (start-up time)
if TYPE_CHECKING:
    import logging
    from typing import Any, Literal


def log() -> logging.Logger:
    """This module's logger: ``logging`` (with ``traceback``, ``string``, ``textwrap``; ~19 M
    instructions) is imported only when there is something to say, never on a clean apply."""
    import logging

    return logging.getLogger(__name__)


if TYPE_CHECKING:
    Mode = Literal["finish", "undo"]


@record
class Recovery:
    """What the recovery of an interrupted apply did."""

    action: str
    """``finished``, ``undone``, ``rolled-back`` (unconfirmed) or ``discarded``."""
    message: str
    changes: int = 0
    problems: list[str] = field(default_factory=list)


def in_effect(
    change: Change, state: HostState, present: frozenset[Route | Rule] | None = None
) -> bool:
    """True when ``state`` already shows the change's effect (``present``: the state's
    routes and rules as a set, when the caller asks about many changes)."""
    obj = change.obj
    if isinstance(obj, Sysctl):
        return state.sysctls.get(obj.name) == obj.value
    if present is None:
        present = frozenset((*state.routes, *state.rules))
    return (obj in present) == (change.action == "add")


def still_needed(changes: Sequence[Change], state: HostState) -> list[Change]:
    """``changes`` minus those already in effect; sysctls' prior values read afresh."""
    needed = []
    for change in changes:
        obj = change.obj
        if isinstance(obj, Sysctl):
            current = state.sysctls.get(obj.name)
            if current != obj.value:  # the plan's own change when it read the same value
                same = change.action == "set" and change.old == current
                needed.append(change if same else Change("set", obj, current))
            continue
        # the state's own sets (made once per read: the plan's diff asked them too)
        present = obj in (state.route_set if isinstance(obj, Route) else state.rule_set)
        if present != (change.action == "add"):
            needed.append(change)
    return needed


def begin(
    state_dir: StateDir,
    saved: checkpoint.Checkpoint,
    changes: Sequence[Change],
    saved_text: str | None = None,
) -> None:
    """Write the journal before the first kernel change (for this boot: see
    :meth:`StateDir.write_json`); ``saved_text``: the
    checkpoint's :meth:`~multihome.transaction.checkpoint.Checkpoint.text`, when the caller
    has it (the checkpoint is encoded once per apply)."""
    state_dir.write_text(
        JOURNAL,
        compose(
            {
                "version": "1",
                "pid": json_text(os.getpid()),
                "started": json_text(time.time()),
                "boot_id": json_text(saved.boot),
                # the checkpoint (key kept for compatibility)
                "snapshot": saved.text() if saved_text is None else saved_text,
                "changes": "[" + ",".join(change_text(c) for c in changes) + "]",
            }
        ),
    )


def end(state_dir: StateDir) -> None:
    state_dir.remove(JOURNAL)


def recover(backend: Backend, state_dir: StateDir, root: Path, *, mode: Mode) -> Recovery | None:
    """Finish or undo an interrupted apply; the caller holds the lock. None: nothing to do."""
    journal = state_dir.read_json(JOURNAL)
    pending = state_dir.read_json(PENDING)
    if journal is None and pending is None:
        return None
    if any(d is not None and d.get("boot_id") != boot_id() for d in (journal, pending)):
        clear(state_dir)
        return Recovery(
            "discarded",
            "discarded the journal of an apply from an earlier boot (its kernel state is gone)",
        )
    if pending is not None:
        saved = checkpoint.load(state_dir)
        if saved is None or saved.id != pending.get("id"):
            clear(state_dir)
            return Recovery(
                "discarded",
                "an unconfirmed apply was interrupted before it changed anything; nothing to undo",
            )
        recovery = undo(backend, saved, root, state_dir)
        recovery.action = "rolled-back"
        recovery.message = (
            f"rolled back the unconfirmed apply {saved.id} (its watchdog "
            f"is gone): {recovery.message}"
        )
        finish_window(
            state_dir,
            str(pending.get("id")),
            "rolled-back",
            "its apply and watchdog were gone; the next run rolled it back",
            recovery.changes,
            recovery.problems,
        )
        end(state_dir)
        return recovery
    assert journal is not None
    saved, changes, damage = _read_journal(journal, state_dir)
    if saved is None:
        # Nothing to undo it with, and without its checkpoint a finish could not be undone
        # if a change failed: the journal is dropped, the namespace left as it is.
        log().warning("%s", damage)
        end(state_dir)
        return Recovery("discarded", damage)
    if mode == "undo" or changes is None:
        recovery = undo(backend, saved, root, state_dir)
        recovery.message = f"undid the interrupted apply {saved.id}: {recovery.message}"
        if damage:
            recovery.message += f" ({damage})"
        end(state_dir)
        return recovery
    needed = still_needed(changes, backend.read())
    done = 0
    for change in needed:
        try:
            backend.apply([change])
        except ChangeFailed as failure:
            recovery = undo(backend, saved, root, state_dir)
            recovery.message = (
                f"could not finish the interrupted apply {saved.id} "
                f"({change.describe()}: {failure.reason}); undid it: "
                f"{recovery.message}"
            )
            end(state_dir)
            return recovery
        done += 1
    end(state_dir)
    return Recovery(
        "finished",
        f"finished the interrupted apply {saved.id}: made the "
        f"{done} of its {len(changes)} change(s) that were not yet in effect"
        + (f" ({damage})" if damage else ""),
        changes=done,
    )


def _read_journal(
    journal: dict[str, Any], state_dir: StateDir
) -> tuple[checkpoint.Checkpoint | None, list[Change] | None, str]:
    """The journal's checkpoint and changes, and what is damaged in it ('' when nothing).

    A journal is written atomically, so a missing or malformed part means another program
    (or a person) wrote it. Without its own checkpoint (key ``snapshot``) the saved
    checkpoint stands in: the apply saved it just before writing the journal. Without its
    changes it can only be undone."""
    where = state_dir.file(JOURNAL)
    damage = []
    saved: checkpoint.Checkpoint | None = None
    try:
        saved = checkpoint.Checkpoint.from_json(journal["snapshot"])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        damage.append(f"its checkpoint ('snapshot') is {_missing_or_bad(journal, 'snapshot', exc)}")
        try:
            saved = checkpoint.load(state_dir)
        except (KeyError, TypeError, ValueError, IndexError):
            saved = None
    changes: list[Change] | None = None
    try:
        changes = [change_from_json(c) for c in journal["changes"]]
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        damage.append(f"its changes ('changes') are {_missing_or_bad(journal, 'changes', exc)}")
    if not damage:
        return saved, changes, ""
    text = f"the journal {where} is damaged: {'; '.join(damage)}"
    if saved is None:
        text += (
            "; no saved checkpoint to undo it with either: discarded it and left the "
            "namespace as it is (`multihome plan` shows what differs from the policy, "
            "`multihome apply` converges)"
        )
    elif changes is None:
        text += f"; undone to the saved checkpoint {saved.id} instead of finished"
    else:
        text += f"; used the saved checkpoint {saved.id}"
    return saved, changes, text


def _missing_or_bad(journal: dict[str, Any], key: str, exc: BaseException) -> str:
    return "missing" if key not in journal else f"malformed ({type(exc).__name__}: {exc})"


def undo(
    backend: Backend, saved: checkpoint.Checkpoint, root: Path, state_dir: StateDir
) -> Recovery:
    """Bring the namespace back to ``saved`` (the checkpoint of an apply that failed, was
    interrupted or not confirmed), put the checkpoint before it back when that worked, and
    prune the record."""
    current = backend.read()
    changes, notes = checkpoint.restore_changes(current, saved)
    done, problems = checkpoint.execute(backend, changes)
    checkpoint.restore_files(root, saved)
    if not problems:
        checkpoint.discard(state_dir, saved.id)
    record = checkpoint.Record.load(state_dir)
    record.prune(backend.read()).save(state_dir)
    text = f"{done} change(s) back to the checkpoint of {_when(saved.created)}"
    if notes:
        text += "; " + "; ".join(notes)
    return Recovery("undone", text, done, problems)


def finish_window(
    state_dir: StateDir,
    apply_id: str,
    outcome: str,
    reason: str,
    changes: int = 0,
    problems: Sequence[str] = (),
) -> None:
    """End a confirmation window: write the result, remove pending/confirm/request files."""
    state_dir.write_json(
        RESULT,
        {
            "id": apply_id,
            "outcome": outcome,
            "reason": reason,
            "changes": changes,
            "problems": list(problems),
            "time": time.time(),
            "pid": os.getpid(),
        },
    )
    for name in (PENDING, CONFIRM, ROLLBACK_REQUEST):
        state_dir.remove(name)


def clear(state_dir: StateDir) -> None:
    for name in (JOURNAL, PENDING, CONFIRM, ROLLBACK_REQUEST):
        state_dir.remove(name)


def _when(timestamp: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(timestamp))
