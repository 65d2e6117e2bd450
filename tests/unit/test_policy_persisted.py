"""The policy on a host whose policy was persisted with a native backend and rebooted.

networkd and NetworkManager make the rules and routes from multihome's files with their own
protocol numbers (they cannot set multihome's). Found by the reboot tests: `multihome persist`
run again after the reboot dropped the primary's table routes from the files (they were "kept"
by the network manager, so no longer desired), and the next boot lost eth0's default in its
table; a persisted route naming an old gateway was never replaced.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from types import MappingProxyType

import pytest
from twin import converge

from multihome.backend.fake import FakeBackend
from multihome.config import Config
from multihome.errors import InputError
from multihome.model import (
    PROTO_DHCP,
    PROTO_KERNEL,
    PROTO_MULTIHOME,
    PROTO_STATIC,
    TABLE_MAIN,
    HostState,
    Route,
    Rule,
)
from multihome.plan import Assessment, make_plan
from multihome.policy import compute_policy
from multihome.render import HostFacts, build_input, networkd, networkmanager

CONFIG = Config()
IP = ipaddress.ip_address
NET = ipaddress.ip_network


def tables_of(state: HostState) -> dict[str, int]:
    desired = compute_policy(state, CONFIG)
    return {i.name: i.table.id for i in desired.interfaces if i.table is not None}


def rebooted(state: HostState, backend: str) -> HostState:
    """``state`` after `multihome persist --backend BACKEND` and a reboot, as observed in the
    reboot tests: every rule with protocol static; eth1's DHCP routes (and its prefix route)
    in eth1's table; eth0's copies as networkd's [Route]s (multihome's protocol, the default
    following the lease: dhcp) or NetworkManager's static routes (no preferred source)."""
    desired = compute_policy(state, CONFIG)
    tables = tables_of(state)
    routes: list[Route] = []
    for route in state.routes:
        if route.table == TABLE_MAIN and route.ifname == "eth1":
            proto = (
                PROTO_KERNEL if backend == "networkmanager" and not route.gateway else PROTO_DHCP
            )
            routes.append(replace(route, table=tables["eth1"], proto=proto))
        else:
            routes.append(route)
    for route in desired.routes:
        if route.table != tables["eth0"]:
            continue
        if backend == "networkmanager":
            routes.append(replace(route, proto=PROTO_STATIC, prefsrc=None))
        else:
            routes.append(replace(route, proto=PROTO_DHCP) if route.is_default else route)
    rules = [*state.rules, *(replace(r, proto=PROTO_STATIC) for r in desired.rules)]
    return HostState.build(state.links, state.addresses, routes, rules, dict(state.sysctls))


def route_and_rule_changes(state: HostState) -> list[str]:
    plan = make_plan(state, compute_policy(state, CONFIG), CONFIG)
    return [f"{c.action} {c.obj}" for c in plan.changes if isinstance(c.obj, Route | Rule)]


@pytest.mark.parametrize("backend", ["networkd", "networkmanager"])
def test_a_persisted_host_needs_no_route_or_rule_change(howto: HostState, backend: str) -> None:
    """After the reboot the policy recognises the persisted rules and routes as multihome's:
    same tables, same roles, and a plan that adds and removes nothing (no duplicates)."""
    after = rebooted(howto, backend)
    desired = compute_policy(after, CONFIG)
    assert tables_of(after) == tables_of(howto)
    assert {i.name: i.role for i in desired.interfaces} == {"eth0": "primary", "eth1": "secondary"}
    assert route_and_rule_changes(after) == []


def test_a_stale_persisted_route_is_replaced_in_its_slot(howto: HostState) -> None:
    """A persisted static copy that names an old gateway is replaced (not duplicated), since
    the kernel holds one route per table, destination and metric."""
    after = rebooted(howto, "networkmanager")
    table = tables_of(howto)["eth0"]
    old_gateway = ipaddress.ip_address("192.168.0.254")
    routes = tuple(
        replace(r, gateway=old_gateway) if r.table == table and r.is_default else r
        for r in after.routes
    )
    changes = route_and_rule_changes(replace(after, routes=routes))
    assert [c.split("(")[0] for c in changes] == ["remove Route", "add Route"]
    assert "192.168.0.254" in changes[0] and "192.168.0.1" in changes[1]


def test_a_foreign_rule_in_the_band_is_still_refused(howto: HostState) -> None:
    """Only rules that look up multihome's tables count as persisted: another tool's rule in
    the band (table 100) is still an error, nothing planned."""
    foreign = Rule(
        family=4,
        priority=10002,
        table=100,
        proto=PROTO_STATIC,
        src=ipaddress.ip_network("10.9.9.9/32"),
    )
    with pytest.raises(InputError, match="does not own"):
        compute_policy(replace(howto, rules=(*howto.rules, foreign)), CONFIG)


@pytest.mark.parametrize(
    ("backend", "module", "facts"),
    [
        (
            "networkd",
            networkd,
            HostFacts(
                networkd_files=MappingProxyType(
                    {"eth0": "10-eth0.network", "eth1": "10-eth1.network"}
                )
            ),
        ),
        ("networkmanager", networkmanager, HostFacts()),
    ],
)
def test_persist_again_after_the_reboot_renders_the_same_files(
    howto: HostState, backend: str, module: object, facts: HostFacts
) -> None:
    """`multihome persist` run again on the rebooted host writes what it wrote before: eth1 is
    still a DHCP port whose routes the client puts into its table, with the same rules."""
    render = module.render  # type: ignore[attr-defined]
    before = render(build_input(howto, compute_policy(howto, CONFIG), facts))
    after_state = rebooted(howto, backend)
    after = render(build_input(after_state, compute_policy(after_state, CONFIG), facts))
    assert after == before


def _as_persisted(state: HostState, applied: HostState) -> HostState:
    """What networkd makes of `multihome persist`: the same rules with its own protocol
    (static), eth1's DHCP routes written straight into eth1's table (RouteTable=), the
    [Route] sections with multihome's protocol."""
    tables = {r.oifname: r.table for r in applied.rules if r.oifname}
    rules = [
        replace(r, proto=PROTO_STATIC) if r.proto == PROTO_MULTIHOME else r for r in applied.rules
    ]
    routes = [r for r in state.routes if r.ifname != "eth1" or r.proto == PROTO_KERNEL]
    routes += [
        replace(r, table=tables["eth1"])
        for r in state.routes
        if r.ifname == "eth1" and r.proto == PROTO_DHCP
    ]
    dhcp = {r.dst for r in state.routes if r.ifname == "eth1" and r.proto == PROTO_DHCP}
    routes += [
        r
        for r in applied.routes
        if r.proto == PROTO_MULTIHOME and (r.ifname == "eth0" or r.dst not in dhcp)
    ]  # [Route] sections: ours
    return HostState.build(applied.links, applied.addresses, routes, rules, applied.sysctls)


def test_a_natively_persisted_host_is_recognised_not_refused(howto: HostState) -> None:
    """Rules a network manager installed from multihome's persisted files (its own protocol
    number, same band and tables) are neither an overlap error nor duplicated; DHCP routes
    in the port's own table count as the port's routes."""
    applied = converge(howto).read()
    persisted = _as_persisted(howto, applied)
    assessment = Assessment.of(persisted, CONFIG)
    assert {i.name: i.role for i in assessment.desired.interfaces} == {
        "eth0": "primary",
        "eth1": "secondary",
    }
    assert assessment.desired.tables == compute_policy(applied, CONFIG).tables
    assert assessment.plan.empty, assessment.plan.lines()
    found = FakeBackend(persisted).lookup(IP("198.51.100.10"), src=IP("192.168.0.112"))
    assert found is not None and found.ifname == "eth1"


def test_a_stale_persisted_rule_is_left_to_its_owner(howto: HostState) -> None:
    """A persisted rule for an old address stays (it is the network manager's), and the
    rule for the new address is added by multihome."""
    applied = converge(howto).read()
    persisted = _as_persisted(howto, applied)
    table = next(r.table for r in persisted.rules if r.oifname == "eth1")
    stale = Rule(4, 10002, table, src=NET("192.168.0.99/32"), proto=PROTO_STATIC)
    state = replace(persisted, rules=(*persisted.rules, stale))
    plan = Assessment.of(state, CONFIG).plan
    assert not [c for c in plan.changes if c.obj == stale]


def test_a_managers_copy_at_another_metric_stands_for_ours() -> None:
    """A static IPv6 port persisted by netplan or NetworkManager, after the reboot: the
    address brought the kernel's prefix route (metric 256) to main, while the manager's copy
    in the port's table kept the agent's metric (2051, protocol static). The one route of
    that destination in the table stands for ours, as our own copies do: no second copy."""
    from hosts import host, port, with_ipv6, with_static_ipv6

    before = host(
        with_ipv6(port("eth0", 2, "192.168.0.107/24", "192.168.0.1", 100), "2001:db8:1::7/64"),
        with_static_ipv6(
            port("eth1", 3, "192.168.0.112/24", "192.168.0.1", 101),
            "2001:db8:2::5/64",
            "2001:db8:2::1",
        ),
    )
    table = tables_of(before)["eth1"]
    prefix = NET("2001:db8:2::/64")
    kernel = Route(table=TABLE_MAIN, dst=prefix, ifname="eth1", proto=PROTO_KERNEL, metric=256)
    managers = Route(table=table, dst=prefix, ifname="eth1", proto=PROTO_STATIC, metric=2051)
    routes = [r for r in before.routes if not (r.dst == prefix and r.table == TABLE_MAIN)]
    # The manager's rules (its protocol) say the table is the port's.
    rules = [replace(r, proto=PROTO_STATIC) for r in compute_policy(before, CONFIG).rules]
    after = HostState.build(
        before.links, before.addresses, [*routes, kernel, managers], rules, before.sysctls
    )
    desired = compute_policy(after, CONFIG)
    assert [r for r in desired.routes if r.dst == prefix] == [managers]
    elsewhere = replace(managers, ifname="eth0")  # not the port's: no stand-in
    other = HostState.build(
        after.links, after.addresses, [*routes, kernel, elsewhere], after.rules, after.sysctls
    )
    wanted = [r for r in compute_policy(other, CONFIG).routes if r.dst == prefix]
    assert [(r.proto, r.metric) for r in wanted] == [(PROTO_MULTIHOME, 256)]
