"""model.py: the frozen value types, their identity keys and the kernel's one-route-per-slot
rule, their ``ip``-style text and JSON, and the canonical host state (sorted, de-duplicated,
read-only, so that two reads of the same namespace compare equal)."""

from __future__ import annotations

import dataclasses
import ipaddress
import pickle
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multihome.model import (
    PROTO_DHCP,
    PROTO_KERNEL,
    PROTO_MULTIHOME,
    SCOPE_LINK,
    TABLE_MAIN,
    Address,
    HostState,
    Link,
    NextHop,
    Route,
    Rule,
    Sysctl,
    conf_sysctl,
    default_network,
    ip_text,
    is_link_local_net,
    is_multicast_net,
    need_strict,
    net_text,
    table_label,
)

IP = ipaddress.ip_address
NET = ipaddress.ip_network


def default_via(gateway: str, ifname: str, metric: int, proto: int = PROTO_DHCP) -> Route:
    """A default route in main."""
    return Route(TABLE_MAIN, NET("0.0.0.0/0"), ifname, IP(gateway), metric, proto)


def test_values_are_frozen() -> None:
    """A model object cannot be changed in place: a change is a new object."""
    route = default_via("192.168.0.1", "eth0", 100)
    with pytest.raises(dataclasses.FrozenInstanceError):
        route.metric = 5  # type: ignore[misc]
    assert dataclasses.replace(route, metric=5).metric == 5 and route.metric == 100


def test_route_identity_is_every_attribute_and_its_slot_is_table_dst_metric() -> None:
    """Two defaults that differ only in gateway are two routes, but they share the kernel's
    slot (one IPv4 route per table, destination and metric); another metric is another
    slot."""
    one = default_via("192.168.0.1", "eth1", 101)
    other = default_via("192.168.0.254", "eth1", 101)
    assert one != other and one.key != other.key
    assert one.slot == other.slot == (4, TABLE_MAIN, "0.0.0.0/0", 101)
    assert default_via("192.168.0.1", "eth1", 102).slot != one.slot
    assert one.is_default and one.family == 4
    assert not Route(TABLE_MAIN, NET("10.0.0.0/8")).is_default


def test_route_text_reads_like_ip_route() -> None:
    """``describe`` prints what ``ip route`` would, with multihome's table names."""
    on_link = Route(
        10001, NET("192.168.0.0/24"), "eth1", None, 0, PROTO_KERNEL, SCOPE_LINK, IP("192.168.0.112")
    )
    assert on_link.describe({10001: "mh-eth1"}) == (
        "192.168.0.0/24 dev eth1 table mh-eth1 proto kernel scope link src 192.168.0.112"
    )
    assert on_link.describe().startswith("192.168.0.0/24 dev eth1 table 10001 ")
    assert default_via("192.168.0.1", "eth1", 101).describe() == (
        "default via 192.168.0.1 dev eth1 table main proto dhcp metric 101"
    )


def test_rule_text_reads_like_ip_rule() -> None:
    """``describe`` prints host sources without /32, names tables, and marks IPv6."""
    rule = Rule(4, 10002, 10001, src=NET("192.168.0.112/32"), proto=PROTO_MULTIHOME)
    assert rule.describe({10001: "mh-eth1"}) == "10002 from 192.168.0.112 lookup mh-eth1"
    specifics = Rule(4, 10001, TABLE_MAIN, suppress_prefixlength=0)
    assert specifics.describe() == "10001 from all lookup main suppress_prefixlength 0"
    v6 = Rule(6, 10003, 10001, oifname="eth1")
    assert v6.describe() == "-6 10003 from all oif eth1 lookup 10001"
    marked = Rule(4, 5210, 52, fwmark=0x80000, iifname="wg0")
    assert marked.describe() == "5210 from all fwmark 0x80000 iif wg0 lookup 52"


def test_json_forms_carry_every_attribute() -> None:
    """Route and rule JSON name their attributes by iproute2's words (what ``plan --json``
    shows)."""
    route = default_via("192.168.0.1", "eth1", 101)
    assert route.to_json() == {
        "table": TABLE_MAIN, "dst": "0.0.0.0/0", "dev": "eth1", "gateway": "192.168.0.1",
        "metric": 101, "proto": PROTO_DHCP, "scope": 0, "prefsrc": None, "type": 1,
    }  # fmt: skip
    rule = Rule(4, 10002, 10001, src=NET("192.168.0.112/32"), oifname="eth1", proto=222)
    assert rule.to_json() == {
        "family": 4, "priority": 10002, "table": 10001, "src": "192.168.0.112/32", "dst": None,
        "iif": None, "oif": "eth1", "suppress_prefixlength": None, "fwmark": None,
        "rule_action": 1, "proto": 222,
    }  # fmt: skip


def test_helpers_for_networks_tables_and_sysctls() -> None:
    """Host networks print without /32 (like iproute2), table labels prefer given names,
    then the kernel's, then the number; per-interface sysctls escape dots in names."""
    assert net_text(NET("10.0.0.1/32")) == "10.0.0.1"
    assert net_text(NET("10.0.0.0/24")) == "10.0.0.0/24"
    assert net_text(NET("2001:db8::1/128")) == "2001:db8::1"
    assert default_network(4) == NET("0.0.0.0/0") and default_network(6) == NET("::/0")
    assert table_label(TABLE_MAIN) == "main"
    assert table_label(10001) == "10001"
    assert table_label(10001, {10001: "mh-eth1"}) == "mh-eth1"
    vlan = conf_sysctl("eth0.100", "rp_filter", 2)
    assert vlan == Sysctl("net.ipv4.conf.eth0/100.rp_filter", "2")
    assert vlan.path == "net/ipv4/conf/eth0.100/rp_filter"
    assert conf_sysctl("eth1", "accept_ra", 0, family=6).name == "net.ipv6.conf.eth1.accept_ra"


def test_address_properties() -> None:
    """An address knows its IP, its network and its family; its key names the interface."""
    address = Address("eth1", ipaddress.ip_interface("192.168.0.112/24"))
    assert address.ip == IP("192.168.0.112")
    assert address.network == NET("192.168.0.0/24")
    assert address.family == 4
    assert address.key == ("eth1", "192.168.0.112/24")


def test_host_state_is_canonical() -> None:
    """Built in any order with duplicates, two states of the same namespace are equal:
    sorted, de-duplicated, and the sysctls read-only."""
    links = [Link("eth1", 3), Link("eth0", 2), Link("eth1", 3)]
    routes = [default_via("192.168.0.1", "eth1", 101), default_via("192.168.0.1", "eth0", 100)]
    rules = [Rule(4, 32766, TABLE_MAIN), Rule(4, 0, 255)]
    one = HostState.build(links, (), routes, rules, {"b": "1", "a": "0"})
    two = HostState.build(
        reversed(links), (), [*reversed(routes), routes[0]], reversed(rules), {"a": "0", "b": "1"}
    )
    assert one == two
    assert [lnk.name for lnk in one.links] == ["eth0", "eth1"]
    assert [r.priority for r in one.rules] == [0, 32766]
    assert list(one.sysctls) == ["a", "b"]
    with pytest.raises(TypeError):
        one.sysctls["a"] = "1"  # type: ignore[index]
    # Of equal routes and rules (they differ in what is not compared) the first one met stays.
    route = routes[0]
    first = dataclasses.replace(route, expires=5)
    kept = HostState.build(routes=[first, dataclasses.replace(route, expires=9), route])
    assert [r.expires for r in kept.routes] == [5]
    placed = dataclasses.replace(rules[0], position=2)
    assert HostState.build(rules=[placed, rules[0]]).rules[0].position == 2


def test_host_state_lookups() -> None:
    """By name: a link, an interface's addresses (per family), a table's routes."""
    v4 = Address("eth1", ipaddress.ip_interface("192.168.0.112/24"))
    v6 = Address("eth1", ipaddress.ip_interface("2001:db8::112/64"))
    other = Address("eth0", ipaddress.ip_interface("192.168.0.107/24"))
    table = Route(10001, NET("0.0.0.0/0"), "eth1", IP("192.168.0.1"))
    state = HostState.build(
        [Link("eth0", 2), Link("eth1", 3)],
        [v4, v6, other],
        [table, default_via("192.168.0.1", "eth0", 100)],
    )
    link = state.link("eth1")
    assert link is not None and link.index == 3
    assert state.link("eth9") is None
    assert state.addresses_of("eth1") == (v4, v6)
    assert state.addresses_of("eth1", family=6) == (v6,)
    assert state.addresses_of("eth9") == ()
    assert state.routes_in(10001) == (table,)


def test_hashes_follow_the_key_and_survive_another_processs_hash_seed() -> None:
    """Routes, rules and addresses hash by their (cached) key: equal values hash alike, a
    different attribute makes another value, and values pickled by a process with another
    hash seed (the bench worker's plan, after their keys were computed there) are still found
    in this process's sets."""
    route = Route(table=10042, dst=NET("10.0.1.0/24"), ifname="p1", gateway=IP("10.0.1.1"))
    rule = Rule(family=4, priority=10002, table=10042, src=NET("10.0.1.10/32"), proto=222)
    address = Address("p1", ipaddress.ip_interface("10.0.1.10/24"))
    for value in (route, rule, address):
        assert hash(value) == hash(dataclasses.replace(value)) == hash(value.key)
    assert len({route, dataclasses.replace(route, metric=5)}) == 2
    assert dataclasses.replace(rule, position=9) in {rule}
    made_elsewhere = subprocess.run(
        [
            sys.executable,
            "-c",
            "import pickle, sys, ipaddress as i\n"
            "from multihome.model import Route, Rule\n"
            "r = Route(table=10042, dst=i.ip_network('10.0.1.0/24'), ifname='p1', "
            "gateway=i.ip_address('10.0.1.1'))\n"
            "u = Rule(family=4, priority=10002, table=10042, "
            "src=i.ip_network('10.0.1.10/32'), proto=222)\n"
            "hash(r), hash(u)\n"
            "sys.stdout.buffer.write(pickle.dumps((r, u)))",
        ],
        capture_output=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"},
    ).stdout
    theirs = pickle.loads(made_elsewhere)
    assert theirs[0] in {route} and theirs[1] in {rule}
    assert hash(theirs[0]) == hash(route)


def test_routes_and_rules_are_equal_exactly_when_every_compared_field_is() -> None:
    """Route and Rule compare by their cached key: a value differing from another in any
    one compared field (each field of the dataclass but ``expires`` and ``position``) is
    unequal to it, a copy is equal, and another type is never equal."""
    hop = NextHop(IP("fe80::1"), "eth0")
    other_values = {
        "table": 10043, "dst": NET("10.0.2.0/24"), "ifname": "p2", "gateway": IP("10.0.1.2"),
        "metric": 7, "proto": 4, "scope": SCOPE_LINK, "prefsrc": IP("10.0.1.10"), "type": 9,
        "nexthops": (hop, NextHop(IP("fe80::2"), "eth1")),
        "family": 6, "priority": 10003, "src": NET("10.0.1.11/32"), "iifname": "p1",
        "oifname": "p1", "suppress_prefixlength": 0, "fwmark": 1, "fwmask": 1, "action": 2,
        "ipproto": 6, "sport": (1, 2), "dport": (1, 2), "uid": (0, 0), "goto": 10004,
        "l3mdev": True, "suppress_ifgroup": 1, "invert": True, "tos": 4,
    }  # fmt: skip
    route = Route(table=10042, dst=NET("10.0.1.0/24"), ifname="p1", gateway=IP("10.0.1.1"))
    rule = Rule(family=4, priority=10002, table=10042, src=NET("10.0.1.10/32"), proto=222)
    for value in (route, rule):
        assert value == dataclasses.replace(value)
        for field in dataclasses.fields(value):
            changed = dataclasses.replace(value, **{field.name: other_values.get(field.name, 9)})
            assert (changed == value) is (not field.compare), field.name
            assert (changed != value) is field.compare, field.name
    assert route not in (rule, route.key)
    assert rule != rule.key


#: IPv6 values with runs of zero groups (where RFC 5952's "::" rules bite), and the dotted forms.
_GROUPS = st.lists(
    st.sampled_from([0, 0, 0, 1, 0xFFFF, 0x0DB8, 0xFE80]) | st.integers(0, 0xFFFF),
    min_size=8,
    max_size=8,
)


@settings(max_examples=400, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    _GROUPS,
    st.integers(0, 32),
    st.integers(0, 128),
    st.sampled_from([0, 0xFFFF]),
)
def test_ip_text_is_str(v4: int, groups: list[int], len4: int, len6: int, mapped: int) -> None:
    """ip_text (formatted in C, for keys, JSON and text) equals ``str`` for every address,
    network and interface of both families: the identity keys and the order they sort in
    stay as they were. The IPv4-mapped and -compatible forms, which ``inet_ntop`` writes
    dotted, included."""
    v6 = int.from_bytes(b"".join(g.to_bytes(2, "big") for g in groups), "big")
    compat = (mapped << 32) | v4  # ::ffff:a.b.c.d and ::a.b.c.d
    values: list[object] = []
    for addr in (
        ipaddress.IPv4Address(v4),
        ipaddress.IPv6Address(v6),
        ipaddress.IPv6Address(compat),
    ):
        prefix = len4 if addr.version == 4 else len6
        values += [
            addr,
            ipaddress.ip_network(f"{addr}/{prefix}", strict=False),
            ipaddress.ip_interface(f"{addr}/{prefix}"),
        ]
    for value in values:
        assert ip_text(value) == str(value), repr(value)  # type: ignore[arg-type]
    assert ip_text(None) == "None"
    assert ip_text(ipaddress.IPv6Address("fe80::1%eth0")) == "fe80::1%eth0"


_FIRST_GROUP = st.sampled_from([0xFE80, 0xFEBF, 0xFEC0, 0xFE7F, 0xFF00, 0xFFFF, 0xFEFF, 0x00FF])


@settings(max_examples=400, deadline=None)
@given(_FIRST_GROUP | st.integers(0, 0xFFFF), st.integers(0, 2**112 - 1), st.integers(0, 128))
def test_network_classes_are_ipaddress_own(first: int, rest: int, prefix: int) -> None:
    """``is_link_local_net`` and ``is_multicast_net`` (the policy's, without the broadcast
    address) answer as ``ipaddress``'s ``is_link_local`` and ``is_multicast`` of a network,
    at and around the edges of fe80::/10 and ff00::/8 and every prefix length, and for
    IPv4."""
    net = ipaddress.IPv6Network(((first << 112) | rest, prefix), strict=False)
    assert is_link_local_net(net) == net.is_link_local, net
    assert is_multicast_net(net) == net.is_multicast, net
    v4 = ipaddress.IPv4Network(((first << 16 | rest >> 96) & 0xFFFFFFFF, prefix % 33), strict=False)
    assert is_link_local_net(v4) == v4.is_link_local, v4
    assert is_multicast_net(v4) == v4.is_multicast, v4


@settings(max_examples=400, deadline=None)
@given(_FIRST_GROUP | st.integers(0, 0xFFFF), st.integers(0, 2**112 - 1) | st.sampled_from([0, 1]))
def test_need_strict_is_ipaddress_own(first: int, rest: int) -> None:
    """``need_strict`` (on the address's number) is ipaddress's multicast, link-local or
    loopback, at and around the edges of fe80::/10 and ff00::/8 and at ::1; never IPv4."""
    address = ipaddress.IPv6Address((first << 112) | rest)
    if address.ipv4_mapped is None:  # Python >= 3.13 answers for the IPv4 address (below)
        assert need_strict(address) == (
            address.is_multicast or address.is_link_local or address.is_loopback
        ), address
    assert not need_strict(ipaddress.IPv4Address(rest & 0xFFFFFFFF))
    assert not need_strict(ipaddress.IPv4Address("127.0.0.1"))


def test_need_strict_takes_ipv4_mapped_addresses_as_global() -> None:
    """The kernel's bit tests see ``::ffff:0:0/96`` as global: an IPv4-mapped loopback,
    multicast or link-local address is not strict (Python 3.13's ipaddress answers those
    properties for the mapped IPv4 address instead, so they are no oracle here)."""
    for text in ("::ffff:127.0.0.1", "::ffff:224.0.0.1", "::ffff:169.254.1.1", "::ffff:10.0.0.1"):
        assert not need_strict(ipaddress.IPv6Address(text)), text
    assert need_strict(ipaddress.IPv6Address("::1"))
    assert need_strict(ipaddress.IPv6Address("febf::1")) and not need_strict(
        ipaddress.IPv6Address("fec0::1")
    )


def test_ordered_values_compare_like_generated_order_methods() -> None:
    """``Ordered`` (written once) means what ``dataclass(order=True)`` generated: instances of
    one class compare as the tuples of their ``compare`` fields (Address's ``position`` and
    ``flags`` are not), and values of different classes do not compare at all."""
    a = Address("eth0", ipaddress.ip_interface("10.0.0.5/24"), position=9, flags=1)
    b = Address("eth0", ipaddress.ip_interface("10.0.0.5/24"), position=0, flags=0)
    c = Address("eth1", ipaddress.ip_interface("10.0.0.4/24"))
    assert a <= b and b <= a and a >= b and not a < b and not a > b
    assert b < c and c > b and sorted([c, a]) == [a, c]
    fields = [f.name for f in dataclasses.fields(Route) if f.compare]
    routes = [
        default_via("10.0.1.1", "eth1", 101),
        default_via("10.0.0.1", "eth0", 100),
        Route(TABLE_MAIN, NET("10.0.0.0/24"), "eth0", proto=PROTO_KERNEL, scope=SCOPE_LINK),
    ]
    as_tuples = sorted(tuple(getattr(r, name) for name in fields) for r in routes)
    assert [tuple(getattr(r, n) for n in fields) for r in sorted(routes)] == as_tuples
    assert Sysctl("a", "1") < Sysctl("a", "2") and Link("eth1", 2) < Link("eth9", 1)
    with pytest.raises(TypeError):
        _ = routes[0] < Sysctl("a", "1")
    assert routes[0].__lt__(Sysctl("a", "1")) is NotImplemented
