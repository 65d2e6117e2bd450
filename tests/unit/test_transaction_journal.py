"""transaction/journal.py: which changes of a plan are still needed, and the recovery of an
interrupted apply called directly: nothing to do, an unconfirmed apply whose watchdog is gone
(rolled back, its window's result written), and a finish that fails (undone instead)."""

from __future__ import annotations

from pathlib import Path

from hosts import howto_host

from multihome.backend.fake import FakeBackend
from multihome.config import Config
from multihome.model import Sysctl
from multihome.plan import Assessment, Change, make_plan
from multihome.policy import compute_policy
from multihome.transaction import checkpoint, journal
from multihome.transaction.statedir import (
    JOURNAL,
    PENDING,
    RESULT,
    StateDir,
    boot_id,
)

CONFIG = Config()


def test_still_needed_finishes_a_prefix() -> None:
    """After k changes, still_needed gives exactly the remaining ones, in order."""
    config = Config()
    backend = FakeBackend(howto_host())
    state = backend.read()
    plan = make_plan(state, compute_policy(state, config), config)
    backend.apply(plan.changes[:10])
    rest = journal.still_needed(plan.changes, backend.read())
    assert [c.obj for c in rest] == [c.obj for c in plan.changes[10:]]
    backend.apply(rest)
    assert journal.still_needed(plan.changes, backend.read()) == []


def test_still_needed_reads_a_sysctls_prior_value_afresh() -> None:
    """A sysctl change keeps its target but takes its prior value from the state now (what
    an undo must put back), and a sysctl already at its value is not needed."""
    state = howto_host()
    name = "net.ipv4.conf.eth1.arp_ignore"
    stale = Change("set", Sysctl(name, "1"), "7")
    (needed,) = journal.still_needed([stale], state)
    assert needed == Change("set", Sysctl(name, "1"), state.sysctls[name]) != stale
    assert not journal.in_effect(stale, state)
    done = Change("set", Sysctl(name, state.sysctls[name]), None)
    assert journal.in_effect(done, state) and journal.still_needed([done], state) == []


def test_a_removal_is_in_effect_when_the_object_is_gone() -> None:
    """Removing eth1's default from main is needed while it is there, not after."""
    state = howto_host()
    plan = Assessment.of(state, CONFIG).plan
    removal = plan.changes[-1]
    assert removal.action == "remove"
    assert not journal.in_effect(removal, state)
    backend = FakeBackend(state)
    backend.apply([removal])
    assert journal.in_effect(removal, backend.read())


def test_nothing_to_recover(tmp_path: Path) -> None:
    """Without a journal or a pending window, recovery does nothing and says None."""
    backend = FakeBackend(howto_host())
    state_dir = StateDir.of(tmp_path, "net-1")
    assert journal.recover(backend, state_dir, tmp_path, mode="finish") is None
    assert backend.calls == 0


def saved_apply(tmp_path: Path, backend: FakeBackend) -> tuple[StateDir, checkpoint.Checkpoint]:
    """The checkpoint of the how-to's apply saved in a state directory, and the apply made."""
    state_dir = StateDir.of(tmp_path, "net-1")
    state = backend.read()
    plan = make_plan(state, compute_policy(state, CONFIG), CONFIG)
    saved = checkpoint.capture(state, plan.changes, CONFIG, tmp_path)
    checkpoint.save(state_dir, saved)
    backend.apply(plan.changes)
    return state_dir, saved


def test_an_unconfirmed_apply_without_its_watchdog_is_rolled_back(tmp_path: Path) -> None:
    """A pending confirmation window whose apply and watchdog are gone: the apply is rolled
    back to its checkpoint, and the window's result says so."""
    backend = FakeBackend(howto_host())
    state_dir, saved = saved_apply(tmp_path, backend)
    state_dir.write_json(PENDING, {"id": saved.id, "boot_id": boot_id(), "deadline": 0.0})
    recovery = journal.recover(backend, state_dir, tmp_path, mode="finish")
    assert recovery is not None and recovery.action == "rolled-back"
    assert saved.id in recovery.message and recovery.changes > 0
    assert set(backend.read().routes) == set(howto_host().routes)
    assert dict(backend.read().sysctls) == dict(howto_host().sysctls)
    result = state_dir.read_json(RESULT)
    assert result is not None and (result["id"], result["outcome"]) == (saved.id, "rolled-back")
    assert not state_dir.exists(PENDING)


def test_a_pending_window_of_an_apply_that_changed_nothing_is_discarded(
    tmp_path: Path,
) -> None:
    """A pending window whose checkpoint was never saved (killed before any change) leaves
    nothing to undo: it is discarded and the namespace is not touched."""
    backend = FakeBackend(howto_host())
    state_dir = StateDir.of(tmp_path, "net-1")
    state_dir.write_json(PENDING, {"id": "never-saved", "boot_id": boot_id()})
    recovery = journal.recover(backend, state_dir, tmp_path, mode="finish")
    assert recovery is not None and recovery.action == "discarded"
    assert backend.calls == 0 and not state_dir.exists(PENDING)


def test_a_finish_that_fails_undoes_the_apply(tmp_path: Path) -> None:
    """When a change of the interrupted apply is refused while finishing it, the apply is
    undone instead: never half-way."""
    half = FakeBackend(howto_host())
    state = half.read()
    plan = make_plan(state, compute_policy(state, CONFIG), CONFIG)
    state_dir = StateDir.of(tmp_path, "net-1")
    saved = checkpoint.capture(state, plan.changes, CONFIG, tmp_path)
    journal.begin(state_dir, saved, plan.changes)
    half.apply(plan.changes[:6])
    refusing = FakeBackend(half.read(), fail_at=2)  # the second change still needed fails
    recovery = journal.recover(refusing, state_dir, tmp_path, mode="finish")
    assert recovery is not None and recovery.action == "undone"
    assert recovery.message.startswith(f"could not finish the interrupted apply {saved.id}")
    assert set(refusing.read().routes) == set(state.routes)
    assert set(refusing.read().rules) == set(state.rules)
    assert not state_dir.exists(JOURNAL)


def _interrupted(tmp_path: Path) -> tuple[FakeBackend, StateDir, checkpoint.Checkpoint, int]:
    """The how-to's apply killed after 6 of its changes: checkpoint saved, journal written."""
    half = FakeBackend(howto_host())
    state = half.read()
    plan = make_plan(state, compute_policy(state, CONFIG), CONFIG)
    state_dir = StateDir.of(tmp_path, "net-1")
    saved = checkpoint.capture(state, plan.changes, CONFIG, tmp_path)
    checkpoint.save(state_dir, saved)
    journal.begin(state_dir, saved, plan.changes)
    half.apply(plan.changes[:6])
    return half, state_dir, saved, len(plan.changes)


def test_a_journal_without_its_checkpoint_uses_the_saved_one(tmp_path: Path) -> None:
    """A journal without the "snapshot" key (once a bare KeyError): finishing uses the
    checkpoint saved just before the journal, and the message names the damage; undoing
    (rollback, reset) goes back to that checkpoint."""
    for mode in ("finish", "undo"):
        backend, state_dir, saved, total = _interrupted(tmp_path / mode)
        data = state_dir.read_json(JOURNAL)
        assert data is not None
        del data["snapshot"]
        state_dir.write_json(JOURNAL, data)
        recovery = journal.recover(backend, state_dir, tmp_path, mode=mode)  # type: ignore[arg-type]
        assert recovery is not None and not state_dir.exists(JOURNAL)
        assert "its checkpoint ('snapshot') is missing" in recovery.message
        assert f"used the saved checkpoint {saved.id}" in recovery.message
        if mode == "finish":
            assert recovery.action == "finished" and recovery.changes == total - 6
        else:
            assert recovery.action == "undone"
            assert set(backend.read().rules) == set(howto_host().rules)


def test_a_damaged_journal_with_no_checkpoint_is_discarded_with_the_reason(
    tmp_path: Path,
) -> None:
    """No checkpoint in the journal and none saved, changes malformed: nothing to undo it
    with, so the journal is discarded, the namespace left untouched, and the message says
    where the journal is, what is damaged and what to run."""
    backend, state_dir, _, _ = _interrupted(tmp_path)
    state_dir.remove("snapshot.json")
    state_dir.write_json(JOURNAL, {"version": 1, "boot_id": boot_id(), "changes": [{"x": 1}]})
    calls = backend.calls
    recovery = journal.recover(backend, state_dir, tmp_path, mode="finish")
    assert recovery is not None and recovery.action == "discarded"
    assert str(state_dir.file(JOURNAL)) in recovery.message
    assert (
        "'snapshot') is missing" in recovery.message
        and "'changes') are malformed" in recovery.message
    )
    assert "`multihome apply`" in recovery.message
    assert backend.calls == calls and not state_dir.exists(JOURNAL)
