"""Table identity and ownership on the in-memory twin: another tool's rule or route in a
multihome table never moves the port (issue 17), and a changed ``tables.range`` leaves
nothing behind (re-apply, reset, the checkpoint's moved routes)."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from pathlib import Path

from hosts import howto_host

from multihome.backend.fake import FakeBackend
from multihome.config import Config, parse_config
from multihome.engine import assess
from multihome.model import PROTO_MULTIHOME, PROTO_STATIC, HostState, Route, Rule, Table
from multihome.names import register_names, registered_tables
from multihome.plan import Change
from multihome.policy import owned_routes, stray_routes
from multihome.status import build_report, foreign_references
from multihome.transaction import checkpoint

CONFIG = Config()
MOVED = parse_config("tables:\n  range: [20000, 20999]\n", "c.yaml")
NET = ipaddress.ip_network
IP = ipaddress.ip_address


def converge(backend: FakeBackend, config: Config = CONFIG) -> int:
    """Apply the plan on the twin; return how many changes it made."""
    changes = list(assess(backend, config).plan.changes)
    backend.apply(changes)
    return len(changes)


def tables_of(backend: FakeBackend, config: Config = CONFIG) -> dict[str, int]:
    return {t.ifname: t.id for t in assess(backend, config).desired.tables}


def with_extra(
    backend: FakeBackend, rules: tuple[Rule, ...] = (), routes: tuple[Route, ...] = ()
) -> None:
    """Another tool adds ``rules`` and ``routes`` behind multihome's back."""
    state = backend.read()
    backend.state = replace(state, rules=(*state.rules, *rules), routes=(*state.routes, *routes))


def fwmark_rule(table: int) -> Rule:
    """``ip rule add priority 10500 fwmark 0x1 lookup <table>``: outside the band."""
    return Rule(4, 10500, table, fwmark=0x1)


def test_a_foreign_rule_into_a_table_does_not_move_the_port(howto: HostState) -> None:
    """The fwmark rule of issue 17 points at eth1's table: the next plan is empty, the ids
    stay, and status names the rule (priority, protocol) as another tool's reference."""
    backend = FakeBackend(howto)
    assert converge(backend) > 0
    before = tables_of(backend)
    foreign = fwmark_rule(before["eth1"])
    with_extra(backend, rules=(foreign,))
    assessment = assess(backend, CONFIG)
    assert assessment.plan.empty, assessment.plan.lines()
    assert tables_of(backend) == before
    report = build_report(backend, assessment, CONFIG)
    refs = report.to_json()["references"]
    assert refs == [
        {
            "table": before["eth1"],
            "table_name": "mh-eth1",
            "interface": "eth1",
            "kind": "rule",
            "priority": 10500,
            "protocol": "boot",
            "text": "10500 from all fwmark 0x1 lookup mh-eth1",
        }
    ]
    assert [p.code for p in report.problems] == ["shared-table"]
    assert "10500 from all fwmark 0x1 lookup mh-eth1" in report.problems[0].message


def test_a_foreign_route_through_another_device_does_not_move_the_port(
    howto: HostState,
) -> None:
    """A user's route in eth1's table through eth0: nothing moves, the route is reported and
    never part of a plan; a second converge makes no change."""
    backend = FakeBackend(howto)
    converge(backend)
    before = tables_of(backend)
    foreign = Route(
        table=before["eth1"],
        dst=NET("10.9.0.0/24"),
        ifname="eth0",
        gateway=IP("192.168.0.1"),
        proto=PROTO_STATIC,
    )
    with_extra(backend, routes=(foreign,))
    assert converge(backend) == 0
    assert tables_of(backend) == before
    assert foreign in backend.read().routes
    desired = assess(backend, CONFIG).desired
    refs = foreign_references(backend.read(), desired, CONFIG)
    assert [(r.table.ifname, r.obj) for r in refs] == [("eth1", foreign)]


def test_a_foreign_reference_before_the_first_apply_still_steers_new_ids(
    howto: HostState,
) -> None:
    """A table id that another tool uses before multihome assigned it is never given out:
    only an id multihome already holds is kept against foreign references."""
    first = tables_of(FakeBackend(howto))
    backend = FakeBackend(howto)
    with_extra(backend, rules=(fwmark_rule(first["eth1"]),))
    fresh = tables_of(backend)
    assert fresh["eth1"] != first["eth1"]
    assert fresh["eth0"] == first["eth0"]


def test_two_ports_never_share_a_kept_table() -> None:
    """Evidence naming one table for two ports (a hand-edited state) still ends with one
    table per port."""
    backend = FakeBackend(howto_host())
    converge(backend)
    ids = tables_of(backend)
    state = backend.read()
    # eth0's oif rule now says eth0 lives in eth1's table too.
    bogus = Rule(4, 10003, ids["eth1"], oifname="eth0", proto=PROTO_MULTIHOME)
    backend.state = replace(state, rules=(*state.rules, bogus))
    desired = assess(backend, CONFIG).desired
    assert len({t.id for t in desired.tables}) == len(desired.tables) == 2


def test_a_changed_table_range_moves_the_ports_and_leaves_nothing(howto: HostState) -> None:
    """tables.range changes: re-apply moves every port into the new range and removes the
    old tables' routes (multihome's own rules pointed at them); the next plan is empty."""
    backend = FakeBackend(howto)
    converge(backend)
    old = set(tables_of(backend).values())
    assert {r.table for r in owned_routes(backend.read(), MOVED)} >= old
    assert converge(backend, MOVED) > 0
    state = backend.read()
    assert not [r for r in state.routes if r.table in old], "routes left in the old tables"
    assert not [r for r in state.rules if r.table in old]
    assert all(20000 <= t <= 20999 for t in tables_of(backend, MOVED).values())
    assert assess(backend, MOVED).plan.empty
    assert not stray_routes(state, MOVED)


def test_reset_after_a_range_change_removes_the_old_tables(howto: HostState) -> None:
    """reset under the new range removes the old tables' routes and rules too."""
    backend = FakeBackend(howto)
    converge(backend)
    changes, _ = checkpoint.reset_changes(backend.read(), MOVED, checkpoint.Record())
    backend.apply(changes)
    state = backend.read()
    assert not [r for r in state.routes if r.proto == PROTO_MULTIHOME]
    assert not [r for r in state.rules if r.proto == PROTO_MULTIHOME]


def test_reset_removes_orphans_only_in_tables_multihome_registered(
    howto: HostState, tmp_path: Path
) -> None:
    """Without rules pointing at them, protocol-222 routes outside the range go only when
    multihome's rt_tables.d lists their table; another tool's elsewhere stay, with a note."""
    backend = FakeBackend(howto)
    converge(backend)
    ids = tables_of(backend)
    register_names(tmp_path, [Table(i, f"mh-{n}", n) for n, i in ids.items()])
    assert registered_tables(tmp_path) == {i: f"mh-{n}" for n, i in ids.items()}
    state = backend.read()
    other = Route(table=500, dst=NET("10.5.0.0/16"), ifname="eth0", proto=PROTO_MULTIHOME)
    # The rules went (an older re-apply), the routes stayed: what issue 17 found.
    backend.state = replace(
        state,
        rules=tuple(r for r in state.rules if r.proto != PROTO_MULTIHOME),
        routes=(*state.routes, other),
    )
    assert {r.table for r in stray_routes(backend.read(), MOVED)} == {*ids.values(), 500}
    changes, notes = checkpoint.reset_changes(
        backend.read(), MOVED, checkpoint.Record(), registered_tables(tmp_path)
    )
    backend.apply(changes)
    left = [r for r in backend.read().routes if r.proto == PROTO_MULTIHOME]
    assert left == [other]
    assert any("table(s) 500" in note for note in notes), notes


def test_routes_removed_from_old_tables_are_not_taken_for_moved_ones(
    howto: HostState, tmp_path: Path
) -> None:
    """The checkpoint of a range-moving apply counts the old tables' routes as owned, not as
    foreign routes to put back on rollback or reset."""
    backend = FakeBackend(howto)
    converge(backend)
    state = backend.read()
    plan = assess(backend, MOVED).plan
    removed = [c.obj for c in plan.changes if c.action == "remove" and isinstance(c.obj, Route)]
    assert any(r.proto == PROTO_MULTIHOME for r in removed)
    saved = checkpoint.capture(state, plan.changes, MOVED, tmp_path)
    assert not [r for r in saved.moved if r.proto == PROTO_MULTIHOME]
    assert {r.table for r in saved.routes} == set(tables_of(backend).values())
    restore, _ = checkpoint.restore_changes(state, saved)
    assert restore == [], [c.describe() for c in restore]
    assert Change("remove", removed[0]) in plan.changes
