"""policy.py: the desired state of a host (roles, tables, rules, sysctls, what is left alone),
checked on the in-memory twin: the cases docs/design.md and issue 2 name."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest
from hosts import host, howto_host, link, port, with_ipv6
from twin import converge

from multihome.backend.fake import FakeBackend
from multihome.config import Config, parse_config
from multihome.errors import InputError
from multihome.model import (
    PROTO_DHCP,
    PROTO_MULTIHOME,
    RTN_THROW,
    TABLE_MAIN,
    Address,
    HostState,
    Route,
    Rule,
)
from multihome.plan import Assessment
from multihome.policy import compute_policy

CONFIG = Config()
IP = ipaddress.ip_address
NET = ipaddress.ip_network


def test_howto_pair_gets_a_table_each_and_loses_the_secondary_default(howto: HostState) -> None:
    """The how-to's same-subnet pair: tables, rules, and eth1's default moved out of main."""
    desired = compute_policy(howto, CONFIG)
    assert desired.primary == "eth0"
    roles = {i.name: i.role for i in desired.interfaces}
    assert roles == {"eth0": "primary", "eth1": "secondary"}
    eth1 = desired.interface("eth1")
    assert eth1 is not None and eth1.table is not None
    assert eth1.table.name == "mh-eth1"
    t1 = eth1.table.id
    assert Rule(4, 10000, t1, src=NET("192.168.0.112/32"), proto=PROTO_MULTIHOME) in desired.rules
    assert Rule(4, 10003, t1, oifname="eth1", proto=PROTO_MULTIHOME) in desired.rules
    assert Rule(4, 10004, t1, iifname="eth1", proto=PROTO_MULTIHOME) in desired.rules
    assert (
        Rule(4, 10001, TABLE_MAIN, suppress_prefixlength=0, proto=PROTO_MULTIHOME) in desired.rules
    )
    table_routes = {(str(r.dst), str(r.gateway)) for r in desired.routes if r.table == t1}
    assert table_routes == {
        ("0.0.0.0/0", "192.168.0.1"),
        ("192.168.0.0/24", "None"),
        ("169.254.169.254/32", "192.168.0.100"),
    }
    assert {(r.ifname, str(r.dst)) for r in desired.main_removals} == {("eth1", "0.0.0.0/0")}
    assert all(r.proto == PROTO_MULTIHOME for r in desired.routes)


def test_same_subnet_ports_get_arp_and_rp_filter_sysctls(howto: HostState) -> None:
    """ARP flux and reverse-path sysctls are set per managed interface, explicitly."""
    desired = compute_policy(howto, CONFIG)
    values = {s.name: s.value for s in desired.sysctls}
    for ifname in ("eth0", "eth1"):
        assert values[f"net.ipv4.conf.{ifname}.arp_ignore"] == "1"
        assert values[f"net.ipv4.conf.{ifname}.arp_announce"] == "2"
        assert values[f"net.ipv4.conf.{ifname}.arp_filter"] == "1"
        assert values[f"net.ipv4.conf.{ifname}.rp_filter"] == "2"


def test_apply_then_replan_is_empty_and_replies_use_their_own_port(howto: HostState) -> None:
    """Idempotence on the twin, and the lookup from .112 leaves through eth1."""
    backend = converge(howto)
    again = Assessment.of(backend.read(), CONFIG)
    assert again.plan.empty, again.plan.lines()
    found = backend.lookup(IP("198.51.100.10"), src=IP("192.168.0.112"))
    assert found is not None and found.ifname == "eth1"
    found = backend.lookup(IP("198.51.100.10"), src=IP("192.168.0.107"))
    assert found is not None and found.ifname == "eth0"
    found = backend.lookup(IP("192.168.0.1"), src=IP("192.168.0.112"))
    assert found is not None and found.ifname == "eth1"


def test_before_apply_replies_from_the_secondary_leave_through_eth0(howto: HostState) -> None:
    """The how-to's failure, reproduced on the twin (so the lookup model can fail)."""
    found = FakeBackend(howto).lookup(IP("198.51.100.10"), src=IP("192.168.0.112"))
    assert found is not None and found.ifname == "eth0"


@pytest.mark.parametrize(
    ("ports", "expected_roles"),
    [
        pytest.param(
            [("eth0", "10.0.1.5/24", "10.0.1.1", 100), ("eth1", "10.0.2.5/24", "10.0.2.1", 101)],
            {"eth0": "primary", "eth1": "secondary"},
            id="different-subnets",
        ),
        pytest.param(
            [
                ("eth0", "10.0.1.5/24", "10.0.1.1", 100),
                ("eth1", "10.0.1.6/24", "10.0.1.1", 101),
                ("eth2", "10.0.2.5/24", "10.0.2.1", 102),
            ],
            {"eth0": "primary", "eth1": "secondary", "eth2": "secondary"},
            id="three-ports",
        ),
        pytest.param(
            [("eth0", "10.0.1.5/24", "10.0.1.1", 200), ("eth1", "10.0.2.5/24", "10.0.2.1", 50)],
            {"eth0": "secondary", "eth1": "primary"},
            id="primary-is-lowest-metric",
        ),
        pytest.param(
            [("eth0", "10.0.1.5/24", "10.0.1.1", 100), ("eth1", "10.9.0.5/24", None, 0)],
            {"eth0": "primary", "eth1": "isolated"},
            id="gateway-less-isolated",
        ),
    ],
)
def test_roles_tables_and_convergence(
    ports: list[tuple[str, str, str | None, int]], expected_roles: dict[str, str]
) -> None:
    """Each case: roles as expected, a table per gateway port, converges in one apply."""
    state = host(*(port(n, i + 2, a, g, m) for i, (n, a, g, m) in enumerate(ports)))
    desired = compute_policy(state, CONFIG)
    assert {i.name: i.role for i in desired.interfaces} == expected_roles
    for iface in desired.interfaces:
        assert (iface.table is None) == (iface.role == "isolated")
    ids = [i.table.id for i in desired.interfaces if i.table]
    assert len(ids) == len(set(ids))
    backend = converge(state)
    assert Assessment.of(backend.read(), CONFIG).plan.empty
    for iface in desired.interfaces:
        if iface.role == "isolated":
            continue
        for addr in iface.addresses:
            found = backend.lookup(IP("198.51.100.10"), src=addr.ip)
            assert found is not None and found.ifname == iface.name


def test_isolated_port_needs_no_table_and_no_rules() -> None:
    """A gateway-less network: no table, no rules that mention it, but its sysctls."""
    state = host(
        port("eth0", 2, "10.0.1.5/24", "10.0.1.1", 100), port("eth1", 3, "10.9.0.5/24", None, 0)
    )
    desired = compute_policy(state, CONFIG)
    assert not [r for r in desired.rules if "eth1" in (r.iifname, r.oifname)]
    assert not [r for r in desired.routes if r.ifname == "eth1"]
    assert any(s.name == "net.ipv4.conf.eth1.arp_ignore" for s in desired.sysctls)


def test_port_with_several_addresses_gets_a_from_rule_per_address() -> None:
    """Secondary addresses / allowed address pairs: one from-rule each."""
    lnk, addrs, routes = port("eth1", 3, "10.0.1.6/24", "10.0.1.1", 101)
    addrs.append(Address("eth1", ipaddress.ip_interface("10.0.1.50/24")))
    state = host(port("eth0", 2, "10.0.1.5/24", "10.0.1.1", 100), (lnk, addrs, routes))
    desired = compute_policy(state, CONFIG)
    sources = {str(r.src) for r in desired.rules if r.priority == 10000}
    assert sources == {"10.0.1.5/32", "10.0.1.6/32", "10.0.1.50/32"}


def test_down_and_unaddressed_ports_are_skipped_and_said_so() -> None:
    """Down or address-less interfaces are skipped with a reason."""
    down_link, _, _ = port("eth2", 4, "10.0.3.5/24", None, 0)
    state = host(
        port("eth0", 2, "10.0.1.5/24", "10.0.1.1", 100),
        port("eth1", 3, "10.0.2.5/24", "10.0.2.1", 101),
        (replace(down_link, up=False), [], []),
        (link("eth3", 5), [], []),
    )
    desired = compute_policy(state, CONFIG)
    reasons = {s.ifname: s.reason for s in desired.skipped}
    assert reasons == {"eth2": "down", "eth3": "no address"}


def test_plumbing_is_left_alone_unless_included() -> None:
    """Loopback, bridges, docker0, container veths and tunnels are not managed by default."""
    extra = (
        link("docker0", 10, kind="bridge"),
        link("veth12ab", 11),
        link("wg0", 12, kind="wireguard"),
        link("br0", 13, kind="bridge"),
        link("eth9", 14, master="br0"),
    )
    state = host(
        port("eth0", 2, "10.0.1.5/24", "10.0.1.1", 100),
        port("eth1", 3, "10.0.2.5/24", "10.0.2.1", 101),
        extra_links=extra,
    )
    desired = compute_policy(state, CONFIG)
    assert {i.name for i in desired.interfaces} == {"eth0", "eth1"}
    assert {s.ifname for s in desired.ignored} == {
        "lo",
        "docker0",
        "veth12ab",
        "wg0",
        "br0",
        "eth9",
    }
    config = parse_config("interfaces:\n  include: [eth0, eth1, wg0]\n", "test.yaml")
    wg = (
        link("wg0", 12, kind="wireguard"),
        [Address("wg0", ipaddress.ip_interface("10.8.0.2/24"))],
        [],
    )
    state = host(
        port("eth0", 2, "10.0.1.5/24", "10.0.1.1", 100),
        port("eth1", 3, "10.0.2.5/24", "10.0.2.1", 101),
        wg,
    )
    assert "wg0" in {i.name for i in compute_policy(state, config).interfaces}


def test_table_ids_are_stable_when_ports_come_and_go() -> None:
    """Adding a NIC or renumbering ifindexes never changes an assigned table id."""
    two = host(
        port("eth0", 2, "10.0.1.5/24", "10.0.1.1", 100),
        port("eth1", 3, "10.0.2.5/24", "10.0.2.1", 101),
    )
    backend = converge(two)
    before = {t.ifname: t.id for t in compute_policy(backend.read(), CONFIG).tables}
    state = backend.read()
    l2, a2, r2 = port("eth2", 9, "10.0.3.5/24", "10.0.3.1", 102)
    grown = HostState.build(
        [*state.links, l2],
        [*state.addresses, *a2],
        [*state.routes, *r2],
        state.rules,
        state.sysctls,
    )
    after = {t.ifname: t.id for t in compute_policy(grown, CONFIG).tables}
    assert {k: after[k] for k in before} == before
    renumbered = host(
        port("eth1", 2, "10.0.2.5/24", "10.0.2.1", 101),
        port("eth0", 7, "10.0.1.5/24", "10.0.1.1", 100),
    )
    fresh = {t.ifname: t.id for t in compute_policy(renumbered, CONFIG).tables}
    assert fresh["eth0"] != fresh["eth1"]
    ids_by_mac_only = {t.ifname: t.id for t in compute_policy(two, CONFIG).tables}
    assert set(ids_by_mac_only.values()) == set(before.values())


def test_new_gateway_on_renew_replaces_the_table_default(howto: HostState) -> None:
    """A renewed lease with another router moves the table's default to it."""
    backend = converge(howto)
    state = backend.read()
    moved = Route(
        table=TABLE_MAIN,
        dst=NET("0.0.0.0/0"),
        ifname="eth1",
        gateway=IP("192.168.0.254"),
        proto=PROTO_DHCP,
        prefsrc=IP("192.168.0.112"),
        metric=101,
    )
    backend.state = replace(state, routes=(*state.routes, moved))
    plan = Assessment.of(backend.read(), CONFIG).plan
    backend.apply(list(plan.changes))
    desired = compute_policy(backend.read(), CONFIG)
    eth1 = desired.interface("eth1")
    assert eth1 is not None and str(eth1.gateway) == "192.168.0.254"
    assert Assessment.of(backend.read(), CONFIG).plan.empty
    found = backend.lookup(IP("198.51.100.10"), src=IP("192.168.0.112"))
    assert found is not None and str(found.gateway) == "192.168.0.254"


def test_configured_primary_wins() -> None:
    """`primary:` overrides the lowest-metric choice."""
    state = host(
        port("eth0", 2, "10.0.1.5/24", "10.0.1.1", 100),
        port("eth1", 3, "10.0.2.5/24", "10.0.2.1", 101),
    )
    desired = compute_policy(state, parse_config("primary: eth1\n", "c.yaml"))
    assert desired.primary == "eth1"
    assert {r.ifname for r in desired.main_removals} == {"eth0"}


def test_host_level_config_errors_name_the_key() -> None:
    """Unknown interfaces and an occupied priority band are input errors."""
    state = host(
        port("eth0", 2, "10.0.1.5/24", "10.0.1.1", 100),
        port("eth1", 3, "10.0.2.5/24", "10.0.2.1", 101),
        extra_rules=(Rule(4, 10005, 77),),
    )
    with pytest.raises(InputError, match=r"c.yaml: primary: interface 'eth7' does not exist"):
        compute_policy(state, parse_config("primary: eth7\n", "c.yaml"))
    with pytest.raises(InputError, match=r"priorities.range \[10000, 10099\] overlaps"):
        compute_policy(state, CONFIG)
    ok = compute_policy(state, parse_config("priorities:\n  range: [20000, 20099]\n", "c.yaml"))
    assert min(r.priority for r in ok.rules) == 20000


def test_a_rule_another_tool_puts_into_the_band_later_is_left_alone_and_noted() -> None:
    """Found by ``make fuzz`` (seed 2002): once multihome's rules are in the band, another
    tool's rule added to it afterwards (``fwmark 0x1 lookup 4001`` at 10002) no longer makes
    every policy computation an input error (the agent's repairs all failed, so a lease
    that expired next was never followed): the policy is the same as without it, the
    rule is left alone and named in a note."""
    applied = converge(howto_host(), CONFIG).read()
    foreign = Rule(4, 10002, 4001, fwmark=1)
    intruded = replace(applied, rules=(*applied.rules, foreign))
    desired = compute_policy(intruded, CONFIG)
    assert desired.rules == compute_policy(applied, CONFIG).rules
    assert any("another tool's rule" in n and "fwmark 0x1" in n for n in desired.notes)
    assert Assessment.of(intruded, CONFIG).plan.empty


def test_a_band_the_agent_worked_in_stays_its_own_without_a_rule_of_multihomes() -> None:
    """A single port needs no rule, so the band may hold none of multihome's and only
    another tool's: a first apply refuses (choose a free band), an agent that has already
    repaired here (``band_claimed``) goes on and notes the rule (fuzz seed 4004)."""
    state = host(
        port("eth1", 3, "192.168.0.112/24", "192.168.0.1", 101),
        extra_rules=(Rule(4, 10002, 4001, fwmark=1),),
    )
    with pytest.raises(InputError, match="overlaps the existing rule"):
        compute_policy(state, CONFIG)
    desired = compute_policy(state, replace(CONFIG, band_claimed=True))
    assert any("another tool's rule" in n for n in desired.notes), desired.notes


def test_after_a_flap_the_table_keeps_its_copies_while_main_lacks_the_port_routes() -> None:
    """A link flap flushes eth1's DHCP routes from main (the client re-adds them only at its
    next renewal); with eth1's table restored (as the agent does) the policy keeps it all:
    the metadata host route and its rule stay beside the default (found by the lab's flap
    test: they used to be deleted while the default was kept)."""
    config = Config()
    applied = converge(howto_host(), config).read()
    flapped = HostState.build(
        applied.links,
        applied.addresses,
        [r for r in applied.routes
         if not (r.table == TABLE_MAIN and r.ifname == "eth1" and r.proto == PROTO_DHCP)],
        applied.rules,
        dict(applied.sysctls),
    )  # fmt: skip
    desired = compute_policy(flapped, config)
    assert desired.routes == compute_policy(applied, config).routes
    plan = Assessment.of(flapped, config).plan
    assert plan.empty, plan.lines()
    # A copy that no longer fits the port (its gateway off eth1's subnet) is not kept.
    table = next(r.table for r in desired.routes if r.ifname == "eth1")
    stray = Route(table, ipaddress.ip_network("10.9.9.0/24"), ifname="eth1",
                  gateway=IP("10.0.0.1"), proto=PROTO_MULTIHOME, prefsrc=IP("192.168.0.112"),
                  metric=101)  # fmt: skip
    odd = HostState.build(flapped.links, flapped.addresses, [*flapped.routes, stray],
                          flapped.rules, dict(flapped.sysctls))  # fmt: skip
    assert stray not in compute_policy(odd, config).routes
    assert compute_policy(odd, config).routes == desired.routes


def _without(state: HostState, ifname: str) -> HostState:
    """``state`` after the port ``ifname`` is detached (the kernel drops its routes)."""
    return HostState.build(
        links=[x for x in state.links if x.name != ifname],
        addresses=[a for a in state.addresses if a.ifname != ifname],
        routes=[r for r in state.routes if r.ifname != ifname],
        rules=state.rules,
        sysctls=state.sysctls,
    )


def test_the_port_left_alone_gets_back_the_default_multihome_took_out_of_main(
    howto: HostState,
) -> None:
    """Found by the event fuzzer (tests/fuzz, detach('eth0')): the how-to's pair converged
    (eth1's default moved out of main into its table), then eth0, the primary, is detached.
    eth1 alone needs no table, but main must hold its default again (multihome took it out):
    else the VM has no default at all. Converging again changes nothing more; when a
    second port comes back, eth1 stays the primary with its default in main."""
    backend = converge(howto, CONFIG)
    alone = converge(_without(backend.read(), "eth0"), CONFIG)
    state = alone.read()
    defaults = [r for r in state.routes if r.table == TABLE_MAIN and r.is_default]
    assert [(r.ifname, str(r.gateway), r.metric) for r in defaults] == [
        ("eth1", "192.168.0.1", 101)
    ]
    assert not [r for r in state.rules if r.proto == PROTO_MULTIHOME]
    assert Assessment.of(alone.read(), CONFIG).plan.empty
    # A port is attached again: eth1 keeps its default in main as the primary.
    eth2 = port("eth2", 4, "192.168.0.10/24", "192.168.0.1", 102, "192.168.0.100")
    both = HostState.build(
        links=[*state.links, eth2[0]],
        addresses=[*state.addresses, *eth2[1]],
        routes=[*state.routes, *eth2[2]],
        rules=state.rules,
        sysctls=state.sysctls,
    )
    again = converge(both, CONFIG).read()
    main_defaults = {r.ifname for r in again.routes if r.table == TABLE_MAIN and r.is_default}
    assert main_defaults == {"eth1"}
    assert compute_policy(again, CONFIG).primary == "eth1"


def test_the_primary_default_goes_back_to_main_only_through_a_route_to_its_gateway(
    howto: HostState,
) -> None:
    """Found by the event fuzzer (an agent-addressed port, ``noprefixroute``, flapped twice):
    main held no route of eth0 at all, not even its subnet; putting eth0's default back in
    main then failed ("Nexthop has invalid gateway") and took the whole repair down with it.
    Without a main route to eth0's gateway, eth1 (whose subnet route main holds) is the
    primary and its default goes back to main; with eth0's subnet route back, eth0 is the
    primary again and its default returns to main."""
    state = converge(howto, CONFIG).read()
    bare = replace(
        state,
        routes=tuple(r for r in state.routes if not (r.table == TABLE_MAIN and r.ifname == "eth0")),
    )
    desired = compute_policy(bare, CONFIG)
    assert desired.primary == "eth1"
    assert [(r.ifname, r.proto) for r in desired.routes if r.table == TABLE_MAIN] == [
        ("eth1", PROTO_MULTIHOME)
    ]
    subnet = next(
        r
        for r in state.routes
        if r.table == TABLE_MAIN and r.ifname == "eth0" and str(r.dst) == "192.168.0.0/24"
    )
    with_subnet = replace(bare, routes=(*bare.routes, subnet))
    back = [r for r in compute_policy(with_subnet, CONFIG).routes if r.table == TABLE_MAIN]
    assert [(r.ifname, str(r.gateway), r.proto) for r in back] == [
        ("eth0", "192.168.0.1", PROTO_MULTIHOME)
    ]


def _fresh_properties(value: Route | Rule) -> dict[str, object]:
    """The cached properties of a new copy of ``value``, computed from its fields."""
    again = replace(value)
    return {name: getattr(again, name) for name in ("texts", "key", "order", "family")}


def test_properties_given_to_the_policys_routes_and_rules_are_those_computed() -> None:
    """The policy gives its copies, throws and rules their texts and family instead of
    formatting them again (``model.with_cached``): on a dual-stack host with a scoped
    IPv4-mapped address (whose text keeps its scope, its host network's not),
    a container bridge (throws) and a second apply's own routes, every desired route's and
    rule's texts, key, order and family are what a new copy computes."""
    eth0 = with_ipv6(port("eth0", 2, "10.0.0.5/24", "10.0.0.1", 100), "2001:db8::5/64")
    eth1 = with_ipv6(port("eth1", 3, "10.1.0.5/24", "10.1.0.1", 101), "2001:db8:1::5/64")
    lnk, addrs, routes = eth1
    scoped = Address("eth1", ipaddress.IPv6Interface("::ffff:10.1.0.6%7/120"))
    docker = Route(TABLE_MAIN, NET("172.17.0.0/16"), "docker0", scope=253)
    state = host(
        eth0,
        (lnk, [*addrs, scoped], routes),
        extra_links=(link("docker0", 4, kind="bridge"),),
        extra_routes=(docker,),
    )
    applied = converge(state).read()
    for each in (state, applied):
        desired = compute_policy(each, CONFIG)
        assert any(r.type == RTN_THROW for r in desired.routes)
        assert any(r.family == 6 and r.src is not None for r in desired.rules)
        for value in (*desired.routes, *desired.rules):
            assert {name: getattr(value, name) for name in _fresh_properties(value)} == (
                _fresh_properties(value)
            ), value
