"""The table-first band (docs/design.md, section 5, "Table first, main's other specifics by
throw"): a port's address looks up its table before main, and main's specifics through
devices that are not ports reach main through ``throw`` routes. Checked on the in-memory
twin, whose lookups follow throws as the kernel does (tests/netns/test_throws_netns.py proves
the same on the kernel)."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from hosts import host, link, port
from twin import converge

from multihome.config import Config
from multihome.model import (
    PROTO_BOOT,
    PROTO_KERNEL,
    PROTO_MULTIHOME,
    RTN_THROW,
    SCOPE_LINK,
    TABLE_MAIN,
    HostState,
    Route,
)
from multihome.plan import Assessment
from multihome.policy import compute_policy

CONFIG = Config()
IP = ipaddress.ip_address
NET = ipaddress.ip_network


def main_route(dst: str, dev: str | None, *, kind: int = 1, via: str | None = None) -> Route:
    """A route of main that is not a port's (a bridge's, a VPN's, a blackhole)."""
    return Route(
        table=TABLE_MAIN,
        dst=NET(dst),
        ifname=dev,
        gateway=None if via is None else IP(via),
        proto=PROTO_KERNEL if dev else PROTO_BOOT,
        scope=SCOPE_LINK if dev and via is None else 0,
        type=kind,
    )


DOCKER = main_route("172.17.0.0/16", "docker0")
VPN = main_route("10.8.0.0/24", "tun0")
BLACKHOLE = main_route("10.99.0.0/16", None, kind=6)
SPLIT = tuple(main_route(half, "tun0", via="10.8.0.1") for half in ("0.0.0.0/1", "128.0.0.0/1"))


def two_subnets(*extra: Route) -> HostState:
    """A VM whose ports are on different subnets (eth0 10.0.0.5/24, eth1 10.1.0.5/24), with
    a container bridge and a tunnel beside them, and ``extra`` routes in main."""
    return host(
        port("eth0", 2, "10.0.0.5/24", "10.0.0.1", 100),
        port("eth1", 3, "10.1.0.5/24", "10.1.0.1", 101),
        extra_links=(link("docker0", 4, kind="bridge"), link("tun0", 5, kind="tun")),
        extra_routes=extra,
    )


def throws(state: HostState, table: int) -> set[str]:
    return {str(r.dst) for r in state.routes if r.table == table and r.type == RTN_THROW}


def tables(state: HostState) -> dict[str, int]:
    desired = compute_policy(state, CONFIG)
    return {i.name: i.table.id for i in desired.interfaces if i.table is not None}


def test_a_reply_to_another_ports_subnet_leaves_its_own_port() -> None:
    """The issue's case: from eth0's address to a host on eth1's subnet the kernel's answer
    is eth0's gateway (port security passes it), while unsourced traffic still takes main's
    link route out of eth1."""
    backend = converge(two_subnets())
    found = backend.lookup(IP("10.1.0.7"), src=IP("10.0.0.5"))
    assert found is not None and (found.ifname, str(found.gateway)) == ("eth0", "10.0.0.1")
    back = backend.lookup(IP("10.0.0.7"), src=IP("10.1.0.5"))
    assert back is not None and (back.ifname, str(back.gateway)) == ("eth1", "10.1.0.1")
    unsourced = backend.lookup(IP("10.1.0.7"))
    assert unsourced is not None and (unsourced.ifname, unsourced.gateway) == ("eth1", None)
    assert Assessment.of(backend.read(), CONFIG).plan.empty


def test_non_port_specifics_are_thrown_in_every_table_and_still_win() -> None:
    """A bridge's, a tunnel's and a blackhole's routes get a throw in each port's table, so
    a port's address reaches them through main; the split default gets none (the port's own
    default takes its replies); nothing of theirs is touched."""
    state = two_subnets(DOCKER, VPN, BLACKHOLE, *SPLIT)
    backend = converge(state)
    after = backend.read()
    for table in tables(state).values():
        assert throws(after, table) == {"172.17.0.0/16", "10.8.0.0/24", "10.99.0.0/16"}
    for foreign in (DOCKER, VPN, BLACKHOLE, *SPLIT):
        assert foreign in after.routes
    for src in ("10.0.0.5", "10.1.0.5"):
        to_docker = backend.lookup(IP("172.17.0.2"), src=IP(src))
        assert to_docker is not None and to_docker.ifname == "docker0"
        to_vpn = backend.lookup(IP("10.8.0.9"), src=IP(src))
        assert to_vpn is not None and to_vpn.ifname == "tun0"
    internet = backend.lookup(IP("198.51.100.10"), src=IP("10.1.0.5"))
    assert internet is not None and (internet.ifname, str(internet.gateway)) == ("eth1", "10.1.0.1")
    unsourced = backend.lookup(IP("198.51.100.10"))
    assert unsourced is not None and unsourced.ifname == "tun0"  # the VPN's, as it wants


def test_throws_follow_the_foreign_routes_and_the_rules_come_after_them() -> None:
    """docker0's route appearing adds a throw per table before anything else; its leaving
    removes them; an apply from the earlier layout adds the throws before the band+0 rules."""
    state = two_subnets()
    backend = converge(state)
    grown = replace(backend.read(), routes=(*backend.read().routes, DOCKER))
    plan = Assessment.of(grown, CONFIG).plan
    assert [c.describe() for c in plan.changes] == sorted(
        f"+ route throw 172.17.0.0/16 table {t} proto multihome" for t in tables(state).values()
    )
    backend.apply(plan.changes)
    shrunk = replace(backend.read(), routes=tuple(r for r in backend.read().routes if r != DOCKER))
    gone = Assessment.of(shrunk, CONFIG).plan
    assert {(c.action, getattr(c.obj, "type", None)) for c in gone.changes} == {
        ("remove", RTN_THROW)
    }
    fresh = Assessment.of(two_subnets(DOCKER), CONFIG).plan.changes
    thrown = [i for i, c in enumerate(fresh) if isinstance(c.obj, Route) and c.obj.type == 9]
    first_rule = min(i for i, c in enumerate(fresh) if c.kind == "rule")
    assert thrown and max(thrown) < first_rule


def test_ipv6_tables_throw_link_local_and_without_onlink_nothing_is_thrown() -> None:
    """A family-6 table always throws fe80::/64 (a link-local destination needs its device's
    route in main); without ``onlink`` in ``rules`` the from rule sits after main's specifics
    (band+2) and no throws are made."""
    from hosts import with_ipv6

    state = host(
        with_ipv6(port("eth0", 2, "10.0.0.5/24", "10.0.0.1", 100), "2001:db8:1::5/64"),
        with_ipv6(port("eth1", 3, "10.1.0.5/24", "10.1.0.1", 101), "2001:db8:2::5/64"),
    )
    desired = compute_policy(state, CONFIG)
    for table in {i.table.id for i in desired.interfaces if i.table is not None}:
        six = {str(r.dst) for r in desired.routes if r.table == table and r.type == RTN_THROW}
        assert six == {"fe80::/64"}
        assert all(
            r.metric == 1024 for r in desired.routes if r.type == RTN_THROW and r.family == 6
        )
    old = replace(CONFIG, rule_kinds=("from", "oif", "iif"))
    plain = compute_policy(two_subnets(DOCKER), old)
    assert not any(r.type == RTN_THROW for r in plain.routes)
    assert {r.priority for r in plain.rules if r.src is not None} == {10002}


def test_rules_grow_with_the_ports_and_throws_with_ports_times_foreign_routes() -> None:
    """O(N): 64 ports each on its own subnet get 3 rules per port plus the suppress rule
    (the earlier layout needed one rule per pair of ports), and K foreign routes K throws per
    table."""
    ports = [
        port(f"eth{i}", i + 2, f"10.{100 + i}.0.5/24", f"10.{100 + i}.0.1", 100 + i)
        for i in range(64)
    ]
    state = host(
        *ports, extra_links=(link("docker0", 99, kind="bridge"),), extra_routes=(DOCKER, VPN)
    )
    desired = compute_policy(state, CONFIG)
    assert len(desired.rules) == 3 * 64 + 1
    thrown = [r for r in desired.routes if r.type == RTN_THROW]
    assert len(thrown) == 2 * 64 and all(r.proto == PROTO_MULTIHOME for r in thrown)


def test_the_agents_memory_never_brings_a_throw_back() -> None:
    """The agent remembers each table (``PortFacts.seen``), throws included; once the
    bridge's route has left main, the memory does not put its throw back."""
    from multihome.facts import PortFacts

    state = two_subnets(DOCKER)
    backend = converge(state)
    desired = compute_policy(backend.read(), CONFIG)
    seen = {
        i.name: frozenset(r for r in desired.routes if i.table and r.table == i.table.id)
        for i in desired.interfaces
    }
    assert all(any(r.type == RTN_THROW for r in routes) for routes in seen.values())
    gone = replace(backend.read(), routes=tuple(r for r in backend.read().routes if r != DOCKER))
    after = compute_policy(gone, CONFIG, PortFacts(seen=seen))
    assert not any(r.type == RTN_THROW for r in after.routes)


def test_an_earlier_layouts_rules_go_after_the_new_ones_are_in() -> None:
    """A host applied by an earlier multihome (``from`` at band+2, per-destination band+0
    rules): the plan adds the throws and the band+0 ``from`` rules first, then removes the
    old rules, and a second plan is empty."""
    from multihome.model import Rule

    state = two_subnets(DOCKER)
    backend = converge(state)
    now = backend.read()
    old = []
    for rule in now.rules:
        if rule.priority == 10000 and rule.src is not None:
            old.append(replace(rule, priority=10002))
            old.append(
                replace(
                    rule,
                    dst=NET("10.0.0.0/24")
                    if rule.src.overlaps(NET("10.0.0.0/24"))
                    else NET("10.1.0.0/24"),
                )
            )
    earlier = replace(
        now,
        rules=tuple(r for r in now.rules if not (r.priority == 10000 and r.src is not None))
        + tuple(old),
        routes=tuple(r for r in now.routes if r.type != RTN_THROW),
    )
    plan = Assessment.of(earlier, CONFIG).plan.changes
    kinds = [(c.action, c.kind) for c in plan]
    assert kinds.index(("add", "rule")) > max(
        i for i, k in enumerate(kinds) if k == ("add", "route")
    )
    assert min(i for i, k in enumerate(kinds) if k == ("remove", "rule")) > max(
        i for i, k in enumerate(kinds) if k == ("add", "rule")
    )
    removed = {c.obj for c in plan if c.action == "remove"}
    assert removed == set(old) and all(isinstance(r, Rule) for r in removed)
    backend.state = earlier
    backend.apply(plan)
    assert Assessment.of(backend.read(), CONFIG).plan.empty
