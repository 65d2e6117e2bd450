"""transaction/checkpoint.py on the in-memory backend: capture the owned state before an
apply, restore it exactly (also from half-way), reset with and without the record, the
record's first-value rule and pruning, the checkpoint's JSON form."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from hosts import howto_host

from multihome.backend.fake import FakeBackend
from multihome.config import Config
from multihome.model import PROTO_DHCP, PROTO_MULTIHOME, TABLE_MAIN
from multihome.plan import make_plan
from multihome.policy import compute_policy
from multihome.transaction import checkpoint


def test_restore_after_apply_is_exact_and_idempotent(tmp_path: Path) -> None:
    """capture -> apply -> restore_changes brings routes, rules and sysctls back exactly;
    restoring again finds nothing to do."""
    config = Config()
    backend = FakeBackend(howto_host())
    before = backend.read()
    plan = make_plan(before, compute_policy(before, config), config)
    saved = checkpoint.capture(before, plan.changes, config, tmp_path)
    assert [r.ifname for r in saved.moved] == ["eth1"]
    assert saved.sysctls["net.ipv4.conf.eth1.arp_ignore"] == "0"
    backend.apply(plan.changes)
    assert backend.read() != before
    changes, notes = checkpoint.restore_changes(backend.read(), saved)
    assert notes == []
    done, problems = checkpoint.execute(backend, changes)
    assert problems == [] and done == len(changes) == len(plan.changes)
    after = backend.read()
    assert set(after.routes) == set(before.routes)
    assert set(after.rules) == set(before.rules)
    assert dict(after.sysctls) == dict(before.sysctls)
    assert checkpoint.restore_changes(after, saved) == ([], [])


def test_restore_from_half_way(tmp_path: Path) -> None:
    """A restore from any prefix of the plan (a killed apply) is exact too."""
    config = Config()
    for k in (0, 1, 9, 17, 25):
        backend = FakeBackend(howto_host())
        before = backend.read()
        plan = make_plan(before, compute_policy(before, config), config)
        saved = checkpoint.capture(before, plan.changes, config, tmp_path)
        backend.apply(plan.changes[:k])
        changes, _ = checkpoint.restore_changes(backend.read(), saved)
        checkpoint.execute(backend, changes)
        assert set(backend.read().routes) == set(before.routes), k
        assert set(backend.read().rules) == set(before.rules), k


def test_reset_changes_with_and_without_record(tmp_path: Path) -> None:
    """reset removes everything owned and puts back the moved default: from the record with
    its own protocol, or rebuilt from the owned copy (proto boot) when the record is lost."""
    config = Config()
    backend = FakeBackend(howto_host())
    before = backend.read()
    plan = make_plan(before, compute_policy(before, config), config)
    record = checkpoint.Record().add(checkpoint.capture(before, plan.changes, config, tmp_path))
    backend.apply(plan.changes)
    applied = backend.read()

    changes, _ = checkpoint.reset_changes(applied, config, record)
    checkpoint.execute(backend, changes)
    assert set(backend.read().routes) == set(before.routes)
    assert set(backend.read().rules) == set(before.rules)
    assert dict(backend.read().sysctls) == dict(before.sysctls)

    lost = FakeBackend(applied)
    changes, _ = checkpoint.reset_changes(applied, config, checkpoint.Record())
    checkpoint.execute(lost, changes)
    defaults = {(r.ifname, r.proto) for r in lost.read().routes if r.is_default}
    assert defaults == {("eth0", PROTO_DHCP), ("eth1", 3)}
    assert set(lost.read().rules) == set(before.rules)


def test_record_first_value_wins_and_prune(tmp_path: Path) -> None:
    """The record keeps the first prior value of a sysctl and forgets routes back in main."""
    config = Config()
    state = howto_host()
    plan = make_plan(state, compute_policy(state, config), config)
    first = checkpoint.capture(state, plan.changes, config, tmp_path)
    record = checkpoint.Record().add(first)
    later = checkpoint.Checkpoint(
        id="x",
        created=0.0,
        boot="b",
        table_range=(1, 2),
        priority_range=(1, 5),
        sysctls={"net.ipv4.conf.eth1.arp_ignore": "1"},
    )
    assert record.add(later).sysctls["net.ipv4.conf.eth1.arp_ignore"] == "0"
    assert len(record.moved) == 1
    assert record.prune(state).moved == ()


def test_checkpoint_survives_json_unchanged(tmp_path: Path) -> None:
    """A checkpoint of the how-to's apply is read back from its JSON form unchanged."""
    config = Config()
    state = howto_host()
    plan = make_plan(state, compute_policy(state, config), config)
    saved = checkpoint.capture(state, plan.changes, config, tmp_path)
    assert saved.moved and saved.sysctls  # a checkpoint with something in it
    assert checkpoint.Checkpoint.from_json(saved.to_json()) == saved


def test_reset_gives_the_moved_default_its_slot_back_from_our_own_in_main(
    tmp_path: Path,
) -> None:
    """Once eth0 (the primary) is gone, the policy puts eth1's default, which apply had
    moved into eth1's table, back in main as multihome's own route, in the slot of the
    moved one. reset then removes ours and puts the moved one back (its own protocol):
    eth1 keeps a default, and nothing of multihome's is left."""
    config = Config()
    backend = FakeBackend(howto_host())
    before = backend.read()
    plan = make_plan(before, compute_policy(before, config), config)
    record = checkpoint.Record().add(checkpoint.capture(before, plan.changes, config, tmp_path))
    backend.apply(plan.changes)
    applied = backend.read()
    alone = FakeBackend(
        replace(
            applied,
            links=tuple(x for x in applied.links if x.name != "eth0"),
            addresses=tuple(a for a in applied.addresses if a.ifname != "eth0"),
            routes=tuple(r for r in applied.routes if r.ifname != "eth0"),
        )
    )
    state = alone.read()
    alone.apply(make_plan(state, compute_policy(state, config), config).changes)
    ours = [r for r in alone.read().routes if r.table == TABLE_MAIN and r.is_default]
    assert [(r.ifname, r.proto) for r in ours] == [("eth1", PROTO_MULTIHOME)]

    changes, notes = checkpoint.reset_changes(alone.read(), config, record)
    done, problems = checkpoint.execute(alone, changes)
    assert (done, problems, notes) == (len(changes), [], [])
    defaults = [r for r in alone.read().routes if r.table == TABLE_MAIN and r.is_default]
    assert [(r.ifname, r.proto) for r in defaults] == [("eth1", PROTO_DHCP)]
    assert not [r for r in alone.read().routes if r.proto == PROTO_MULTIHOME]


def test_the_record_is_written_only_when_an_apply_adds_to_it(tmp_path: Path) -> None:
    """checkpoint.record adds what an apply moves to the record file as Record.load/add/save
    did: the first apply's routes and prior sysctl values; an apply that moves the very same
    routes and sets the same sysctls again leaves the file untouched (same inode, same text:
    its routes are not decoded); one that moves another route or a sysctl the record lacks
    grows it, the first values kept."""
    from multihome.transaction.statedir import RECORD, StateDir

    config = Config()
    state = howto_host()
    plan = make_plan(state, compute_policy(state, config), config)
    first = checkpoint.capture(state, plan.changes, config, tmp_path)
    folder = StateDir.current(tmp_path)
    checkpoint.record(folder, first)
    expected = checkpoint.Record().add(first)
    assert checkpoint.Record.load(folder) == expected and expected.moved
    written = Path(folder.file(RECORD))
    text, inode = written.read_text(), written.stat().st_ino
    again = replace(first, id="again", sysctls={k: "9" for k in first.sysctls})
    checkpoint.record(folder, again)
    assert (written.read_text(), written.stat().st_ino) == (text, inode)
    (moved,) = first.moved
    other = replace(moved, ifname="eth2", metric=moved.metric + 1)
    grown = replace(first, moved=(other,), sysctls={"net.ipv4.conf.eth2.rp_filter": "1"})
    checkpoint.record(folder, grown)
    assert checkpoint.Record.load(folder) == expected.add(grown)
    assert checkpoint.Record.load(folder).sysctls == {
        **expected.sysctls,
        "net.ipv4.conf.eth2.rp_filter": "1",
    }
    assert len(checkpoint.Record.load(folder).moved) == 2
