"""engine.py on the in-memory backend: the transaction (apply, undo on a failing change),
what it writes under ``--root`` (checkpoint, record, journal, table names), the recovery of
an apply that was killed half-way, the lock, and the gratuitous ARP after a change."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from hosts import host, howto_host, port, without_port
from twin import DyingBackend, Killed, converge

from multihome import engine
from multihome.backend import Announcement, ChangeFailed, Lookup
from multihome.backend.fake import FakeBackend
from multihome.config import Config
from multihome.engine import announce_addresses, apply_plan, assess, locked
from multihome.errors import ApplyError, ConcurrentChangeError, LockTimeoutError
from multihome.faults import ENV as FAILPOINT
from multihome.model import PROTO_DHCP, PROTO_MULTIHOME, HostState, IPAddress, Route, Rule
from multihome.names import RT_TABLES_FILE
from multihome.plan import Change, Plan
from multihome.policy import compute_policy
from multihome.transaction import checkpoint
from multihome.transaction.lock import is_locked
from multihome.transaction.statedir import JOURNAL, RECORD, StateDir

CONFIG = Config()


def kernel_view(state: HostState) -> tuple[frozenset[Route | Rule], dict[str, str]]:
    """What a namespace is, for comparing two of them: its routes and rules, its sysctls."""
    return frozenset((*state.routes, *state.rules)), dict(state.sysctls)


def howto_plan() -> Plan:
    """The plan that fixes the how-to's VM."""
    return assess(FakeBackend(howto_host()), CONFIG).plan


def state_dir(root: Path) -> StateDir:
    """The state directory an apply under ``root`` writes (this process's namespace)."""
    return StateDir.current(root)


def test_assess_plans_from_what_the_backend_reads() -> None:
    """assess reads the backend once: the plan is the policy's diff of that state, and empty
    once the backend shows the policy."""
    state = howto_host()
    assessment = assess(FakeBackend(state), CONFIG)
    assert assessment.state == state
    assert assessment.desired == compute_policy(state, CONFIG)
    assert not assessment.plan.empty
    assert assess(converge(state), CONFIG).plan.empty


def test_apply_makes_the_plan_and_writes_checkpoint_record_and_names(tmp_path: Path) -> None:
    """Every change is made; the checkpoint holds the state before them (eth1's default
    moved out of main, the sysctls' prior values), the journal is gone, the table names are
    registered under the root, and the lock is free again."""
    backend = FakeBackend(howto_host())
    plan = howto_plan()
    result = apply_plan(backend, plan, root=tmp_path, config=CONFIG)
    assert result.applied == len(plan.changes) and result.changed
    assert kernel_view(backend.read()) == kernel_view(converge(howto_host()).read())
    saved = checkpoint.load(state_dir(tmp_path))
    assert saved is not None and saved.id == result.checkpoint_id
    assert [(r.ifname, str(r.dst)) for r in saved.moved] == [("eth1", "0.0.0.0/0")]
    assert saved.sysctls["net.ipv4.conf.eth1.arp_ignore"] == "0"
    assert saved.rules == () and saved.routes == ()  # nothing was multihome's before
    record = checkpoint.Record.load(state_dir(tmp_path))
    assert record.moved == saved.moved
    assert not state_dir(tmp_path).exists(JOURNAL)
    names = (tmp_path / RT_TABLES_FILE.lstrip("/")).read_text()
    assert "\tmh-eth0\t" in names and "\tmh-eth1\t" in names
    with locked(backend, root=tmp_path, timeout=0) as session:
        assert session.recovery is None


def test_the_record_is_written_only_when_an_apply_adds_to_it(tmp_path: Path) -> None:
    """An apply that moves the defaults and sets the sysctls the record already holds (the
    same apply again, after its changes were undone) leaves record.json as it is; one whose
    record lacks a sysctl (the file edited) writes it again, complete."""
    backend = FakeBackend(howto_host())
    plan = howto_plan()
    apply_plan(backend, plan, root=tmp_path, config=CONFIG)
    path = Path(state_dir(tmp_path).file(RECORD))
    first, inode = path.read_text(), path.stat().st_ino
    backend.apply([c.inverse() for c in reversed(plan.changes)])
    apply_plan(backend, plan, root=tmp_path, config=CONFIG)
    assert path.read_text() == first and path.stat().st_ino == inode  # not rewritten
    data = json.loads(first)
    del data["sysctls"]["net.ipv4.conf.eth1.arp_ignore"]
    path.write_text(json.dumps(data))
    backend.apply([c.inverse() for c in reversed(plan.changes)])
    apply_plan(backend, plan, root=tmp_path, config=CONFIG)
    record = checkpoint.Record.load(state_dir(tmp_path))
    assert record.sysctls["net.ipv4.conf.eth1.arp_ignore"] == "0"
    assert [(r.ifname, str(r.dst)) for r in record.moved] == [("eth1", "0.0.0.0/0")]


def test_an_apply_inside_a_session_uses_its_state_and_its_apply_id(tmp_path: Path) -> None:
    """A caller that plans under the lock passes its session and the state it read: the
    backend is not read again, and the checkpoint gets the session's apply id (the id a
    confirmation window and ``rollback`` refer to)."""

    class CountingReads(FakeBackend):
        reads = 0

        def read(self) -> HostState:
            self.reads += 1
            return super().read()

    backend = CountingReads(howto_host())
    with locked(backend, root=tmp_path) as session:
        state = backend.read()
        plan = assess(FakeBackend(state), CONFIG).plan
        result = apply_plan(backend, plan, root=tmp_path, session=session, state=state)
    assert backend.reads == 1
    assert result.checkpoint_id == session.apply_id
    saved = checkpoint.load(state_dir(tmp_path))
    assert saved is not None and saved.id == session.apply_id


def test_an_empty_plan_changes_nothing_and_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    """Applying again on a converged namespace makes no change, saves no new checkpoint and
    rewrites no file: rollback still goes back to before the first apply."""
    backend = FakeBackend(howto_host())
    first = apply_plan(backend, howto_plan(), root=tmp_path)
    again = apply_plan(backend, assess(backend, CONFIG).plan, root=tmp_path)
    assert (again.applied, again.checkpoint_id, again.files) == (0, None, [])
    assert not again.changed
    saved = checkpoint.load(state_dir(tmp_path))
    assert saved is not None and saved.id == first.checkpoint_id


def test_changes_already_in_effect_are_skipped(tmp_path: Path) -> None:
    """A plan whose first changes the namespace already shows makes only the rest."""
    plan = howto_plan()
    backend = FakeBackend(howto_host())
    backend.apply(plan.changes[:5])
    result = apply_plan(backend, plan, root=tmp_path)
    assert result.applied == len(plan.changes) - 5
    assert [c.obj for c in result.plan.changes] == [c.obj for c in plan.changes[5:]]
    assert assess(backend, CONFIG).plan.empty


def test_progress_reports_every_change_in_order(tmp_path: Path) -> None:
    """The progress callback sees (done, total, change) after each change, in plan order."""
    plan = howto_plan()
    seen: list[tuple[int, int, Change]] = []
    apply_plan(
        FakeBackend(howto_host()),
        plan,
        root=tmp_path,
        progress=lambda done, total, change: seen.append((done, total, change)),
    )
    total = len(plan.changes)
    assert seen == [(i, total, c) for i, c in enumerate(plan.changes, start=1)]


def test_failure_halfway_undoes_everything(tmp_path: Path) -> None:
    """A change refused at any position k: the k-1 changes before it are undone, the twin is
    exactly as it was, the error names the change and the journal is gone."""
    howto = howto_host()
    plan = howto_plan()
    for k in range(1, len(plan.changes) + 1):
        backend = FakeBackend(howto, fail_at=k)
        with pytest.raises(ApplyError, match=f"change {k} of") as failed:
            apply_plan(backend, plan, root=tmp_path)
        assert f"undid the {k - 1} change(s) made before it" in str(failed.value)
        assert plan.changes[k - 1].describe(plan.table_names) in str(failed.value)
        assert backend.read() == howto
        assert not state_dir(tmp_path).exists(JOURNAL)


def test_injected_failpoint_fails_the_kth_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``MULTIHOME_FAILPOINT=change:3`` fails the third change like a kernel refusal; the
    two before it are undone."""
    monkeypatch.setenv(FAILPOINT, "change:3")
    backend = FakeBackend(howto_host())
    with pytest.raises(ApplyError, match=r"change 3 of .*injected failure \(MULTIHOME_FAILPOINT\)"):
        apply_plan(backend, howto_plan(), root=tmp_path)
    assert backend.read() == howto_host()


class StubbornBackend(FakeBackend):
    """Refuses the changes at the given call numbers (counted from 1, undo calls included)."""

    def __init__(self, state: HostState, refuse: set[int]) -> None:
        super().__init__(state)
        self.refuse = refuse

    def apply(self, changes: Sequence[Change]) -> int:
        done = 0
        for change in changes:
            if self.calls + 1 in self.refuse:
                self.calls += 1
                raise ChangeFailed(change, done, "refused")
            done += super().apply([change])
        return done


def test_an_incomplete_undo_keeps_the_journal_for_the_next_run(tmp_path: Path) -> None:
    """When the undo itself fails, the error says INCOMPLETE and the journal stays; the next
    session finishes that apply, so the namespace is never left half-way."""
    plan = howto_plan()
    k = 4  # changes 1-3 made, the 4th refused, then the undo of the 3rd refused too
    backend = StubbornBackend(howto_host(), refuse={k, k + 1})
    with pytest.raises(ApplyError, match=r"undo was INCOMPLETE \(1 change\(s\)"):
        apply_plan(backend, plan, root=tmp_path)
    assert state_dir(tmp_path).exists(JOURNAL)
    assert backend.read() != howto_host()
    backend.refuse = set()
    with locked(backend, root=tmp_path) as session:
        assert session.recovery is not None and session.recovery.action == "finished"
    assert not state_dir(tmp_path).exists(JOURNAL)
    assert kernel_view(backend.read()) == kernel_view(converge(howto_host()).read())


@pytest.mark.parametrize("dies_at", [1, 7, 15])
def test_a_killed_apply_is_finished_by_the_next_session(tmp_path: Path, dies_at: int) -> None:
    """An apply killed before change k leaves its journal; the next session makes the
    changes not yet in effect, in order, and removes the journal: the plan is then empty."""
    plan = howto_plan()
    dying = DyingBackend(howto_host(), dies_at=dies_at)
    with pytest.raises(Killed):
        apply_plan(dying, plan, root=tmp_path)
    assert state_dir(tmp_path).exists(JOURNAL)
    backend = FakeBackend(dying.read())  # the next run, on the namespace the kill left
    with locked(backend, root=tmp_path) as session:
        recovery = session.recovery
    assert recovery is not None and recovery.action == "finished"
    assert recovery.changes == len(plan.changes) - (dies_at - 1)
    assert not state_dir(tmp_path).exists(JOURNAL)
    assert assess(backend, CONFIG).plan.empty


def test_a_killed_apply_is_undone_when_the_next_run_undoes(tmp_path: Path) -> None:
    """``rollback`` and ``reset`` open their session in undo mode: the half-made apply goes
    back to its checkpoint, routes, rules and sysctls alike."""
    dying = DyingBackend(howto_host(), dies_at=12)
    with pytest.raises(Killed):
        apply_plan(dying, howto_plan(), root=tmp_path)
    backend = FakeBackend(dying.read())
    assert kernel_view(backend.read()) != kernel_view(howto_host())
    with locked(backend, root=tmp_path, mode="undo") as session:
        assert session.recovery is not None and session.recovery.action == "undone"
    assert kernel_view(backend.read()) == kernel_view(howto_host())
    assert not state_dir(tmp_path).exists(JOURNAL)


def test_a_journal_from_an_earlier_boot_is_discarded(tmp_path: Path) -> None:
    """After a reboot the journal describes a kernel that is gone: it is dropped, and the
    namespace is not touched on its account."""
    dying = DyingBackend(howto_host(), dies_at=5)
    with pytest.raises(Killed):
        apply_plan(dying, howto_plan(), root=tmp_path)
    journal_file = Path(state_dir(tmp_path).file(JOURNAL))
    data = json.loads(journal_file.read_text())
    journal_file.write_text(json.dumps({**data, "boot_id": "an-earlier-boot"}))
    backend = FakeBackend(dying.read())
    with locked(backend, root=tmp_path) as session:
        assert session.recovery is not None and session.recovery.action == "discarded"
    assert backend.read() == dying.read() and backend.calls == 0
    assert not journal_file.exists()


def test_a_second_apply_waits_for_the_lock_and_then_gives_up(tmp_path: Path) -> None:
    """While one session holds the namespace, an apply waits ``lock_timeout`` seconds and
    fails naming the holder, without changing anything."""
    backend = FakeBackend(howto_host())
    with (
        locked(backend, root=tmp_path, purpose="rollback"),
        pytest.raises(LockTimeoutError, match="rollback"),
    ):
        apply_plan(backend, howto_plan(), root=tmp_path, lock_timeout=0.1)
    assert backend.read() == howto_host() and backend.calls == 0


def test_announce_addresses_sends_one_gratuitous_arp_per_managed_address() -> None:
    """Each managed address is announced from its own port with that port's MAC, all of them
    in one batch (one packet socket for the whole apply)."""
    howto = howto_host()
    backend = FakeBackend(howto)
    sent = announce_addresses(backend, howto, compute_policy(howto, CONFIG))
    assert sent == 2
    assert backend.announce_calls == 1
    assert sorted(backend.announced) == [
        ("eth0", "52:54:00:00:00:02", "192.168.0.107"),
        ("eth1", "52:54:00:00:00:03", "192.168.0.112"),
    ]


def test_a_single_port_is_not_announced_and_a_failed_announce_is_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With one managed port there is no ARP flux to correct; an address whose send fails is
    logged and the others are still announced; no packet socket at all is no error either."""
    single = host(port("eth0", 2, "10.0.1.5/24", "10.0.1.1", 100))
    backend = FakeBackend(single)
    assert announce_addresses(backend, single, compute_policy(single, CONFIG)) == 0
    assert backend.announced == []

    class Unplugged(FakeBackend):
        def announce(self, items: Sequence[Announcement]) -> list[tuple[Announcement, str]]:
            failed = [(item, "No such device") for item in items if item.ifname == "eth0"]
            super().announce([item for item in items if item.ifname != "eth0"])
            return failed

    howto = howto_host()
    flaky = Unplugged(howto)
    assert announce_addresses(flaky, howto, compute_policy(howto, CONFIG)) == 1
    assert [a[0] for a in flaky.announced] == ["eth1"]
    assert "gratuitous ARP for 192.168.0.107 on eth0 failed" in caplog.text

    class NoSocket(FakeBackend):
        def announce(self, items: Sequence[Announcement]) -> list[tuple[Announcement, str]]:
            raise PermissionError(1, "Operation not permitted")

    assert announce_addresses(NoSocket(howto), howto, compute_policy(howto, CONFIG)) == 0


# -- converge: the one apply path ---------------------------------------------------------
class LockWitness(FakeBackend):
    """A twin that notes, at every announcement and route lookup, whether the namespace's
    lock is held."""

    def __init__(self, state: HostState, root: Path) -> None:
        super().__init__(state)
        self.root = root
        self.locked_at: list[tuple[str, bool]] = []

    def _note(self, what: str) -> None:
        self.locked_at.append((what, is_locked(StateDir.current(self.root))))

    def announce(self, items: Sequence[Announcement]) -> list[tuple[Announcement, str]]:
        self._note("announce")
        return super().announce(items)

    def lookup(
        self, dst: IPAddress, src: IPAddress | None = None, oif: str | None = None
    ) -> Lookup | None:
        self._note("lookup")
        return super().lookup(dst, src, oif)


def test_converge_announces_and_verifies_under_the_lock(tmp_path: Path) -> None:
    """converge plans, applies, announces every managed address and proves the policy, all
    while the namespace's lock is held (a reset cannot slip in between); then it is free."""
    backend = LockWitness(howto_host(), tmp_path)
    done = engine.converge(backend, CONFIG, root=tmp_path)
    assert done is not None and done.result.applied == len(howto_plan().changes)
    assert done.announced == 2 and len(backend.announced) == 2
    assert done.checks and not done.failed
    assert {what for what, _ in backend.locked_at} == {"announce", "lookup"}
    assert all(held for _, held in backend.locked_at), backend.locked_at
    assert not is_locked(StateDir.current(tmp_path))


def test_converge_with_nothing_to_change_neither_announces_nor_verifies(tmp_path: Path) -> None:
    """A second converge finds nothing to do: no change, no announcement, no proof."""
    first = FakeBackend(howto_host())
    assert engine.converge(first, CONFIG, root=tmp_path) is not None
    backend = LockWitness(first.read(), tmp_path)
    done = engine.converge(backend, CONFIG, root=tmp_path)
    assert done is not None and not done.changed
    assert (done.announced, done.checks, backend.locked_at) == (0, [], [])


def test_converge_counts_the_changes_that_finished_an_interrupted_apply(tmp_path: Path) -> None:
    """The recovery finished a killed apply and left nothing to plan: that is a change
    (``apply --detailed-exit-codes`` exits 2), announced and verified."""
    dying = DyingBackend(howto_host(), dies_at=9)
    with pytest.raises(Killed):
        apply_plan(dying, howto_plan(), root=tmp_path)
    backend = FakeBackend(dying.read())
    done = engine.converge(backend, CONFIG, root=tmp_path)
    assert done is not None and done.result.applied == 0
    assert done.result.recovered_changes == len(howto_plan().changes) - 8
    assert done.changed and done.announced == 2 and done.checks and not done.failed


def test_converge_prepare_can_decline_and_postpone_leaves_the_proof_owed(tmp_path: Path) -> None:
    """``prepare`` returning None changes nothing; ``postpone`` saying yes applies the plan
    but leaves the announcement and the verification to a later pass, which makes them when
    ``prepare`` says changes are owed."""
    backend = FakeBackend(howto_host())
    assert engine.converge(backend, CONFIG, root=tmp_path, prepare=lambda _a: None) is None
    assert backend.read() == howto_host()
    done = engine.converge(backend, CONFIG, root=tmp_path, postpone=lambda: True)
    assert done is not None and done.result.applied and done.postponed
    assert (done.announced, done.checks, backend.announced) == (0, [], [])
    later = engine.converge(backend, CONFIG, root=tmp_path, prepare=lambda a: (a, 1))
    assert later is not None and later.result.applied == 0 and later.prepared == 1
    assert later.announced == 2 and later.checks and not later.failed


class StealingWriter(FakeBackend):
    """A twin with another writer (a DHCP client's hook) that, before each of the next
    ``times`` batches adding a route, puts its own route (``proto dhcp``) into that
    route's slot: the kernel then says "File exists"."""

    def __init__(self, state: HostState, times: int) -> None:
        super().__init__(state)
        self.times = times

    def apply(self, changes: Sequence[Change]) -> int:
        added = [c.obj for c in changes if c.action == "add" and isinstance(c.obj, Route)]
        if self.times and added:
            self.times -= 1
            stolen = replace(added[0], proto=PROTO_DHCP)
            self.state = replace(self.state, routes=(*self.state.routes, stolen))
        return super().apply(changes)


@pytest.mark.parametrize(("races", "succeeds"), [(2, True), (3, False)])
def test_an_apply_plans_again_a_bounded_number_of_times_when_another_writer_races_it(
    tmp_path: Path, races: int, succeeds: bool
) -> None:
    """Read, plan and apply again (under the one lock) while another writer takes a slot of
    the plan between the read and the apply: each time the apply undoes itself, and the
    next plan builds on the writer's route. Two races are absorbed (the third attempt
    converges, both noted); a third race makes the ConcurrentChangeError stand, with the
    namespace as the last race left it (nothing of multihome's half-made)."""
    backend = StealingWriter(howto_host(), races)
    notes: list[int] = []

    def attempt() -> engine.Convergence | None:
        return engine.converge(backend, CONFIG, root=tmp_path, verify_retries=0)

    def note(_exc: ConcurrentChangeError, failed: int) -> None:
        notes.append(failed)

    if succeeds:
        done = engine.again_on_conflict(attempt, note)
        assert done is not None and done.result.applied > 0 and not done.failed
        assert assess(backend, CONFIG).plan.empty
        assert notes == [1, 2]
    else:
        with pytest.raises(ConcurrentChangeError):
            engine.again_on_conflict(attempt, note)
        assert notes == [1, 2]
        assert not [r for r in backend.state.routes if r.proto == PROTO_MULTIHOME]
        assert not [r for r in backend.state.rules if r.proto == PROTO_MULTIHOME]


def test_a_verification_interrupted_by_waiting_events_is_owed_to_the_next_pass(
    tmp_path: Path,
) -> None:
    """``postpone`` is asked again after the announcement and between the verification's
    batches of lookups (the agent: an event arrived meanwhile, whose repair must not wait
    behind the proof of the last one): when it says yes there, the pass is postponed with
    no checks (neither passed nor failed), and the next pass proves everything."""
    backend = FakeBackend(howto_host())
    asked: list[bool] = []

    def postpone() -> bool:
        asked.append(len(asked) >= 1)  # no after the last change; yes afterwards
        return asked[-1]

    done = engine.converge(backend, CONFIG, root=tmp_path, postpone=postpone)
    assert done is not None and done.result.applied and done.postponed
    assert done.announced == 2 and done.checks == [] and asked == [False, True]
    later = engine.converge(backend, CONFIG, root=tmp_path, prepare=lambda a: (a, 1))
    assert later is not None and later.result.applied == 0 and not later.postponed
    assert later.announced == 2 and len(later.checks) == 6 and not later.failed


class NamesAtEachChange(FakeBackend):
    """The in-memory namespace, noting the table names file under ``root`` at each change."""

    def __init__(self, state: HostState, root: Path) -> None:
        super().__init__(state)
        self.names = root / RT_TABLES_FILE.lstrip("/")
        self.seen: list[str] = []

    def apply(self, changes: Sequence[Change]) -> int:
        self.seen.append(self.names.read_text() if self.names.exists() else "")
        return super().apply(changes)


def test_the_names_file_gains_a_table_before_the_first_change_and_loses_one_after(
    tmp_path: Path,
) -> None:
    """The tables an apply gives out are in the names file before the first kernel change
    that fills them (reset and doctor know multihome's tables by it); a port that left takes
    its table's name out only after the last change (its durable write is not in a repair's
    latency), and a failed apply leaves the name."""
    three = host(
        port("eth0", 2, "192.168.0.107/24", "192.168.0.1", 100),
        port("eth1", 3, "192.168.0.112/24", "192.168.0.1", 101),
        port("eth2", 4, "192.168.0.22/24", "192.168.0.1", 102),
    )
    backend = NamesAtEachChange(three, tmp_path)
    apply_plan(backend, assess(backend, CONFIG).plan, root=tmp_path, config=CONFIG)
    assert all(f"\tmh-eth{n}\t" in backend.seen[0] for n in range(3)), backend.seen[0]
    gone = without_port(backend.read(), "eth2")
    plan = assess(FakeBackend(gone), CONFIG).plan
    assert any(c.action == "remove" for c in plan.changes)
    failing = NamesAtEachChange(gone, tmp_path)
    failing.fail_at = 1
    with pytest.raises(ApplyError):
        apply_plan(failing, plan, root=tmp_path, config=CONFIG)
    assert "\tmh-eth2\t" in failing.names.read_text()
    detached = NamesAtEachChange(gone, tmp_path)
    apply_plan(detached, plan, root=tmp_path, config=CONFIG)
    assert detached.seen and all("\tmh-eth2\t" in names for names in detached.seen)
    assert "\tmh-eth2\t" not in detached.names.read_text()
