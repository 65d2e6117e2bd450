"""plan.py: the ordered diff between what the host has and what the policy wants; only
multihome's own objects are ever removed."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest
from hosts import host, port, without_port
from twin import converge

from multihome.backend.fake import FakeBackend
from multihome.config import Config
from multihome.model import (
    PROTO_DHCP,
    PROTO_MULTIHOME,
    TABLE_MAIN,
    HostState,
    Route,
    Rule,
    Sysctl,
)
from multihome.plan import Assessment, Change, make_plan

CONFIG = Config()
IP = ipaddress.ip_address
NET = ipaddress.ip_network


def test_plan_text_and_json_match(howto: HostState) -> None:
    """The human plan reads like the issue's example; JSON carries the same changes."""
    assessment = Assessment.of(howto, CONFIG)
    lines = assessment.plan.lines()
    assert "+ rule 10000 from 192.168.0.112 lookup mh-eth1" in lines
    assert "~ sysctl net.ipv4.conf.eth1.arp_ignore 0 -> 1" in lines
    data = assessment.plan.to_json()
    assert len(data["changes"]) == len(lines)
    assert {t["name"] for t in data["tables"]} == {"mh-eth0", "mh-eth1"}
    kinds = [c["kind"] for c in data["changes"]]
    # sysctls, then routes, then rules, then the main removal last
    assert kinds.index("route") > max(i for i, k in enumerate(kinds) if k == "sysctl")
    assert lines[-1].startswith("- route default via 192.168.0.1 dev eth1 table main")
    assert make_plan(assessment.state, assessment.desired, CONFIG) == assessment.plan


def test_dhcp_renew_putting_the_default_back_is_corrected_again(howto: HostState) -> None:
    """After a renew, eth1's default reappears in main; the next plan removes it only."""
    backend = converge(howto)
    state = backend.read()
    readded = Route(
        table=TABLE_MAIN,
        dst=NET("0.0.0.0/0"),
        ifname="eth1",
        gateway=IP("192.168.0.1"),
        proto=PROTO_DHCP,
        prefsrc=IP("192.168.0.112"),
        metric=101,
    )
    backend.state = replace(state, routes=(*state.routes, readded))
    plan = Assessment.of(backend.read(), CONFIG).plan
    assert [c.describe() for c in plan.changes] == [
        "- route default via 192.168.0.1 dev eth1 table main proto dhcp src 192.168.0.112 "
        "metric 101"
    ]


def test_foreign_rules_routes_and_tables_are_never_removed(howto: HostState) -> None:
    """Docker-, VPN- and user-made state outside the band/protocol is never in a plan."""
    foreign_rules = (
        Rule(4, 100, 77, src=NET("10.8.0.0/24")),
        Rule(4, 5210, 52, fwmark=0x80000, fwmask=0xFF0000),
        Rule(4, 10500, 10040, proto=PROTO_MULTIHOME),
    )  # our proto, not our band
    foreign_routes = (
        Route(table=77, dst=NET("0.0.0.0/0"), ifname="eth0", gateway=IP("192.168.0.1")),
        Route(table=10040, dst=NET("10.0.0.0/8"), ifname="eth0"),
    )
    state = host(
        port("eth0", 2, "192.168.0.107/24", "192.168.0.1", 100),
        port("eth1", 3, "192.168.0.112/24", "192.168.0.1", 101),
        extra_routes=foreign_routes,
        extra_rules=foreign_rules,
    )
    assessment = Assessment.of(state, CONFIG)
    touched = {c.obj for c in assessment.plan.changes}
    assert not touched & (set(foreign_rules) | set(foreign_routes))
    assert 10040 not in {t.id for t in assessment.desired.tables}, "foreign table id reused"


def test_skipped_port_keeps_its_owned_state(howto: HostState) -> None:
    """A port that goes down keeps its table and rules: missing data never deletes."""
    backend = converge(howto)
    state = backend.read()
    links = [replace(lnk, up=False) if lnk.name == "eth1" else lnk for lnk in state.links]
    routes = [r for r in state.routes if r.ifname != "eth1"]
    backend.state = HostState.build(links, state.addresses, routes, state.rules, state.sysctls)
    plan = Assessment.of(backend.read(), CONFIG).plan
    assert not [c for c in plan.changes if c.action == "remove" and isinstance(c.obj, Rule)]


def test_vanished_port_has_its_owned_state_removed(howto: HostState) -> None:
    """A port that no longer exists: its rules and table routes go, nothing else."""
    backend = converge(howto)
    state = backend.read()
    gone = without_port(state, "eth1")
    backend.state = gone
    plan = Assessment.of(backend.read(), CONFIG).plan
    backend.apply(list(plan.changes))
    left = backend.read()
    assert not [r for r in left.rules if r.proto == PROTO_MULTIHOME]
    assert not [r for r in left.routes if r.proto == PROTO_MULTIHOME]


def test_single_port_vm_needs_nothing() -> None:
    """One managed interface: empty plan, with a note saying why."""
    state = host(port("eth0", 2, "10.0.1.5/24", "10.0.1.1", 100))
    assessment = Assessment.of(state, CONFIG)
    assert assessment.plan.empty
    assert any("only one managed interface" in n for n in assessment.plan.notes)


def test_every_change_has_an_inverse_that_undoes_it(howto: HostState) -> None:
    """An add's inverse removes the same object and the reverse; a sysctl goes back to its
    prior value; without a known prior value there is nothing to go back to."""
    plan = Assessment.of(howto, CONFIG).plan
    backend = FakeBackend(howto)
    backend.apply(plan.changes)
    backend.apply([c.inverse() for c in reversed(plan.changes)])
    assert set(backend.read().routes) == set(howto.routes)
    assert set(backend.read().rules) == set(howto.rules)
    assert dict(backend.read().sysctls) == dict(howto.sysctls)
    unknown = Change("set", Sysctl("net.ipv4.conf.eth9.rp_filter", "2"), None)
    with pytest.raises(ValueError, match="prior value is unknown"):
        unknown.inverse()


def test_restrict_keeps_one_ports_changes_and_the_shared_rule(howto: HostState) -> None:
    """``apply --interface eth1`` makes only eth1's changes: its sysctls, its table, its
    rules, its default leaving main, plus the main-suppress rule every port needs; nothing
    of eth0's."""
    plan = Assessment.of(howto, CONFIG).plan
    eth1 = next(t for t in plan.tables if t.ifname == "eth1")
    only = plan.restrict("eth1", [eth1.id])
    assert only.changes and set(only.changes) < set(plan.changes)
    assert [c for c in plan.changes if c in only.changes] == list(only.changes)  # order kept
    for change in only.changes:
        obj = change.obj
        if isinstance(obj, Sysctl):
            assert ".conf.eth1." in obj.name
        elif isinstance(obj, Route):
            assert obj.ifname == "eth1"
        else:
            assert obj.table == eth1.id or obj.suppress_prefixlength == 0
    assert any(isinstance(c.obj, Rule) and c.obj.suppress_prefixlength == 0 for c in only.changes)
    assert [c.describe() for c in only.changes if c.action == "remove"] == [plan.lines()[-1]]
