"""IPv6 in the policy, the plan, verify, the announcement and status, on the in-memory backend:
the router advertisement's default and prefix copied into the port's table, family-6 rules per
address past DAD, the kernel's own RA routes left in main, link-local and temporary addresses."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import replace

from hosts import host, howto_host, ipv6_port, port, with_ipv6
from twin import converge

from multihome.backend import Announcement
from multihome.backend.fake import FakeBackend
from multihome.backend.netlink import _address, _checksum, na_frame
from multihome.backend.rtnl import IFA_FLAGS, IFA_LOCAL, IFADDRMSG, attr, attr_u32
from multihome.config import Config, parse_config
from multihome.engine import announce_addresses
from multihome.errors import InputError
from multihome.model import (
    IFA_F_DADFAILED,
    IFA_F_DEPRECATED,
    IFA_F_NOPREFIXROUTE,
    IFA_F_TEMPORARY,
    IFA_F_TENTATIVE,
    PROTO_MULTIHOME,
    PROTO_RA,
    RTN_THROW,
    TABLE_MAIN,
    Address,
    HostState,
    Route,
    Rule,
)
from multihome.plan import Assessment
from multihome.policy import DesiredState, compute_policy
from multihome.status import check_defaults, check_reply_paths
from multihome.verify import verify

CONFIG = Config()
ROUTER = "fe80::1"


def two_on_one_prefix(**flags: int) -> HostState:
    """An IPv6-only VM: eth0 and eth1 on 2001:db8:1::/64, one router, a default each."""
    return host(
        ipv6_port("eth0", 2, "2001:db8:1::10/64", flags=flags.get("eth0", 0)),
        ipv6_port("eth1", 3, "2001:db8:1::11/64", flags=flags.get("eth1", 0)),
    )


def dual_stack() -> HostState:
    """The how-to's VM with an IPv6 prefix per port (two routers' advertisements)."""
    return host(
        with_ipv6(
            port("eth0", 2, "192.168.0.107/24", "192.168.0.1", 100), "2001:db8:1::10/64", ROUTER
        ),
        with_ipv6(
            port("eth1", 3, "192.168.0.112/24", "192.168.0.1", 101), "2001:db8:2::11/64", "fe80::2"
        ),
    )


def rules6(desired: DesiredState, table: int | None = None) -> set[str]:
    return {
        r.describe()
        for r in desired.rules
        if r.family == 6 and (table is None or r.table in (table, TABLE_MAIN))
    }


def table_of(desired: DesiredState, ifname: str) -> int:
    iface = desired.interface(ifname)
    assert iface is not None and iface.table is not None
    return iface.table.id


def test_two_ports_on_one_prefix_get_their_ra_default_prefix_and_rules() -> None:
    """Each port's table holds its prefix and its router-advertised default via the router's
    link-local address through the port; the rules are the IPv4 band's in family 6, with a
    /128 source per address; no link-local prefix is copied."""
    desired = compute_policy(two_on_one_prefix(), CONFIG)
    t1 = table_of(desired, "eth1")
    assert {r.describe() for r in desired.routes if r.table == t1} == {
        f"2001:db8:1::/64 dev eth1 table {t1} proto multihome metric 256",
        f"default via fe80::1 dev eth1 table {t1} proto multihome metric 1024",
        f"throw fe80::/64 table {t1} proto multihome metric 1024",  # link-local: main's
    }
    assert rules6(desired, t1) == {
        f"-6 10000 from 2001:db8:1::11 lookup {t1}",
        "-6 10001 from all lookup main suppress_prefixlength 0",
        f"-6 10003 from all oif eth1 lookup {t1}",
        f"-6 10004 from all iif eth1 lookup {t1}",
    }
    assert not any(r.family == 4 for r in desired.rules)
    assert [(i.name, i.role, str(i.gateway6)) for i in desired.interfaces] == [
        ("eth0", "primary", "fe80::1"),
        ("eth1", "secondary", "fe80::1"),
    ]


def test_the_kernels_ra_defaults_stay_in_main_while_ipv4s_secondary_default_moves() -> None:
    """Dual-stack: both families share the port's table; the secondary's IPv4 default leaves
    main as before, its RA default stays (the kernel re-adds it on every advertisement; the
    rules decide which replies use it)."""
    desired = compute_policy(dual_stack(), CONFIG)
    removed = {(r.family, r.ifname) for r in desired.main_removals}
    assert removed == {(4, "eth1")}
    t1 = table_of(desired, "eth1")
    families = {(r.family, r.is_default) for r in desired.routes if r.table == t1}
    assert families == {(4, True), (4, False), (6, True), (6, False)}
    default6 = next(r for r in desired.routes if r.table == t1 and r.family == 6 and r.is_default)
    assert (str(default6.gateway), default6.ifname, default6.proto) == (
        "fe80::2",
        "eth1",
        PROTO_MULTIHOME,
    )


def test_plan_adds_ipv6_copies_and_a_second_apply_is_empty() -> None:
    """The plan removes no RA route from main; after it, the policy asks for nothing more."""
    state = dual_stack()
    plan = Assessment.of(state, CONFIG).plan
    assert not [
        c
        for c in plan.changes
        if c.action == "remove" and isinstance(c.obj, Route | Rule) and c.obj.family == 6
    ]
    backend = converge(state)
    assert Assessment.of(backend.read(), CONFIG).plan.empty
    kept = [r for r in backend.read().routes if r.table == TABLE_MAIN and r.proto == PROTO_RA]
    assert {r.ifname for r in kept} == {"eth0", "eth1"}


def test_tentative_and_dadfailed_addresses_are_never_used() -> None:
    """An address whose DAD is pending or failed gets no rule; a port with nothing else is
    skipped (no address), so the other port alone needs nothing."""
    state = host(
        with_ipv6(
            ipv6_port("eth0", 2, "2001:db8:1::10/64"),
            "2001:db8:1::99/64",
            flags=IFA_F_DADFAILED,
        ),
        ipv6_port("eth1", 3, "2001:db8:1::11/64", flags=IFA_F_TENTATIVE),
    )
    desired = compute_policy(state, CONFIG)
    assert [(s.ifname, s.reason) for s in desired.skipped] == [("eth1", "no address")]
    assert not desired.rules
    assert "2001:db8:1::99" not in {str(a.ip) for i in desired.interfaces for a in i.addresses}


def test_a_port_whose_addresses_are_checked_again_keeps_its_ipv6_table() -> None:
    """After a flap the kernel runs DAD again: the dual-stack port's IPv6 copies and rules
    stay meanwhile (missing data, rule 7), and come back unchanged afterwards."""
    backend = converge(dual_stack())
    applied = backend.read()
    flapping = HostState.build(
        applied.links,
        [
            a if a.family == 4 or a.scope != 0 or a.ifname != "eth1" else _flagged(a)
            for a in applied.addresses
        ],
        [r for r in applied.routes if not (r.family == 6 and r.table == TABLE_MAIN)],
        applied.rules,
        applied.sysctls,
    )
    plan = Assessment.of(flapping, CONFIG).plan
    assert not [c for c in plan.changes if c.action == "remove"], plan.describe()


def _flagged(address: Address) -> Address:
    return replace(address, flags=IFA_F_TENTATIVE)


def test_a_flap_that_took_the_address_keeps_the_rules_and_a_lost_address_loses_them() -> None:
    """A link down removes eth1's SLAAC address and flushes its routes (its table's IPv6
    copies too, not the throws); up again, before the router answers, eth1 has IPv4 but no
    global IPv6 address: missing data (rule 7), its family-6 rules stay and nothing is
    removed; the address and the advertisement back, only the two copies come back. An
    address that went while the link stayed up (its table's copies still there: a lifetime's
    or a lease's end) takes the port's IPv6 part with it, its IPv4 side stays."""
    backend = converge(dual_stack())
    applied = backend.read()
    t1 = table_of(compute_policy(applied, CONFIG), "eth1")
    before = rules6(compute_policy(applied, CONFIG), t1)
    eth1_v6 = [a for a in applied.addresses if a.ifname == "eth1" and a.family == 6]
    flapped = HostState.build(
        applied.links,
        [a for a in applied.addresses if a not in eth1_v6 or a.scope != 0],
        [
            r
            for r in applied.routes
            if not (r.family == 6 and r.ifname == "eth1" and not r.dst.is_link_local)
        ],
        applied.rules,
        applied.sysctls,
    )
    plan = Assessment.of(flapped, CONFIG).plan
    assert not [c for c in plan.changes if c.action == "remove"], plan.describe()
    assert rules6(compute_policy(flapped, CONFIG), t1) == before
    back = Assessment.of(
        HostState.build(
            flapped.links,
            applied.addresses,
            [*flapped.routes, *(r for r in applied.routes if r.proto == PROTO_RA)],
            flapped.rules,
            flapped.sysctls,
        ),
        CONFIG,
    ).plan
    assert sorted(c.describe() for c in back.changes) == [
        f"+ route 2001:db8:2::/64 dev eth1 table {t1} proto multihome metric 256",
        f"+ route default via fe80::2 dev eth1 table {t1} proto multihome metric 1024",
    ]
    gone = HostState.build(
        applied.links,
        [a for a in applied.addresses if a not in eth1_v6 or a.scope != 0],
        applied.routes,
        applied.rules,
        applied.sysctls,
    )
    removed = {c.describe() for c in Assessment.of(gone, CONFIG).plan.changes}
    assert f"- rule -6 10000 from 2001:db8:2::11 lookup {t1}" in removed
    assert all(" -6 " in c or "2001:db8" in c or "fe80" in c for c in removed), removed


def test_temporary_and_deprecated_addresses_get_rules_and_link_local_none() -> None:
    """A privacy address and a deprecated one are sources of live connections: each has its
    /128 rule, so its packets leave through its port; the link-local address has none."""
    state = host(
        with_ipv6(
            ipv6_port("eth0", 2, "2001:db8:1::10/64"),
            "2001:db8:1::20/64",
            more=[("2001:db8:1::21/64", IFA_F_TEMPORARY | IFA_F_DEPRECATED)],
        ),
        ipv6_port("eth1", 3, "2001:db8:1::11/64"),
    )
    desired = compute_policy(state, CONFIG)
    sources = {str(r.src) for r in desired.rules if r.priority == 10000}
    assert sources == {
        "2001:db8:1::10/128",
        "2001:db8:1::20/128",
        "2001:db8:1::21/128",
        "2001:db8:1::11/128",
    }
    assert not any(r.dst.is_link_local and r.type != RTN_THROW for r in desired.routes)
    assert not any(r.src is not None and r.src.is_link_local for r in desired.rules)


def test_a_deprecated_dhcpv6_address_keeps_its_rule_until_it_goes() -> None:
    """A DHCPv6 lease's /128 (``noprefixroute``) past its preferred lifetime: still valid, so
    it keeps its ``from`` rule (replies to connections made to it must leave its port), it is
    announced and verified; no route of the policy names it as a preferred source (IPv6
    table routes name none: the kernel's selection, which avoids deprecated addresses, picks
    the source of new connections). When the kernel removes it (its valid lifetime over), the
    next plan removes its rule and nothing else."""
    lease = ("2001:db8:2::70/128", IFA_F_DEPRECATED | IFA_F_NOPREFIXROUTE)
    state = host(
        with_ipv6(port("eth0", 2, "192.168.0.107/24", "192.168.0.1", 100), "2001:db8:1::10/64"),
        with_ipv6(
            port("eth1", 3, "192.168.0.112/24", "192.168.0.1", 101),
            "2001:db8:2::11/64",
            "fe80::2",
            more=[lease],
        ),
    )
    backend = converge(state)
    desired = compute_policy(backend.read(), CONFIG)
    deprecated = ipaddress.ip_address("2001:db8:2::70")
    table = table_of(desired, "eth1")
    assert f"-6 10000 from 2001:db8:2::70 lookup {table}" in rules6(desired, table)
    assert not [r for r in desired.routes if r.family == 6 and r.prefsrc is not None]
    announce_addresses(backend, backend.read(), desired)
    assert ("eth1", str(deprecated)) in {(i, a) for i, _mac, a in backend.announced}
    checks = verify(backend, desired, CONFIG, delay=0)
    assert all(c.ok for c in checks)
    assert ("eth1", "egress") in {
        (c.interface, c.name) for c in checks if c.address == str(deprecated)
    }

    (gone,) = [a for a in backend.read().addresses if a.ip == deprecated]
    backend.remove_address(gone)
    changes = Assessment.of(backend.read(), CONFIG).plan.changes
    assert [(c.action, str(c.obj.src)) for c in changes] == [("remove", "2001:db8:2::70/128")]


def test_verify_proves_each_ipv6_address_and_fails_before_the_fix() -> None:
    """Before the fix one port's address leaves through the other port (two equal RA
    defaults); after it every address leaves by its own port and router, the router is
    reached through the port and a socket bound to the port uses its router."""
    state = two_on_one_prefix()
    desired = compute_policy(state, CONFIG)
    before = verify(FakeBackend(state), desired, CONFIG, retries=0)
    assert not all(c.ok for c in before)
    backend = converge(state)
    checks = verify(backend, compute_policy(backend.read(), CONFIG), CONFIG, delay=0)
    assert {(c.interface, c.name) for c in checks} == {
        (ifname, name)
        for ifname in ("eth0", "eth1")
        for name in ("egress", "gateway", "bound-to-device")
    }
    assert all(c.ok for c in checks), [c.to_json() for c in checks if not c.ok]
    egress = next(c for c in checks if c.interface == "eth1" and c.name == "egress")
    assert (egress.destination, egress.got) == ("2001:db8:ffff::10", "dev eth1 via fe80::1")


def test_ipv6_addresses_are_announced_beside_ipv4_ones() -> None:
    """After a change each managed global address is announced from its port: gratuitous ARP
    for IPv4, a neighbour advertisement for IPv6, one batch."""
    backend = converge(dual_stack())
    state = backend.read()
    sent = announce_addresses(backend, state, compute_policy(state, CONFIG))
    assert sent == 4
    assert backend.announce_calls == 1
    assert {(ifname, addr) for ifname, _mac, addr in backend.announced} == {
        ("eth0", "192.168.0.107"),
        ("eth0", "2001:db8:1::10"),
        ("eth1", "192.168.0.112"),
        ("eth1", "2001:db8:2::11"),
    }


def test_the_neighbour_advertisement_frame() -> None:
    """To all nodes from the address, hop limit 255, override set, the port's MAC as the
    target link-layer address, and a checksum that sums to zero over the pseudo-header."""
    item = Announcement("eth1", "52:54:00:00:00:03", ipaddress.IPv6Address("2001:db8:1::11"))
    frame = na_frame(item)
    assert frame[:6] == bytes.fromhex("333300000001")
    assert frame[6:12] == bytes.fromhex("525400000003")
    ip6 = frame[14:54]
    icmp = frame[54:]
    assert ip6[6:8] == bytes((58, 255))  # next header ICMPv6, hop limit 255
    assert ip6[8:24] == item.address.packed
    assert icmp[0] == 136 and icmp[4] & 0x20 and not icmp[4] & 0xC0  # NA, override only
    assert icmp[8:24] == item.address.packed
    assert icmp[24:] == bytes((2, 1)) + bytes.fromhex("525400000003")
    pseudo = ip6[8:40] + struct.pack("!I3xB", len(icmp), 58)
    assert _checksum(pseudo + icmp) == 0


def test_the_codec_reads_ipv6_flags_and_keeps_temporary_apart_from_secondary() -> None:
    """IFA_F_TEMPORARY and IFA_F_SECONDARY are one bit: an IPv6 address with it is a privacy
    address, never "secondary"; DAD's flags and ``permanent`` (a static address: persist
    writes it) come through as the model's, bits the model does not keep do not."""
    packed = ipaddress.IPv6Address("2001:db8:1::21").packed
    body = (
        IFADDRMSG.pack(10, 64, 0, 0, 7)
        + attr(IFA_LOCAL, packed)
        + attr_u32(IFA_FLAGS, IFA_F_TEMPORARY | IFA_F_TENTATIVE | 0x80 | 0x100)
    )
    address = _address(body, {7: "eth1"})
    assert address is not None
    assert (address.secondary, address.flag_names, address.tentative, address.usable) == (
        False,
        ["temporary", "tentative", "permanent"],
        True,
        False,
    )


def test_status_names_several_ipv6_defaults_and_wrong_ipv6_reply_paths() -> None:
    """Before the fix status says main has two IPv6 defaults and no policy, and which IPv6
    address replies through the other port; after it, neither."""
    state = two_on_one_prefix()
    assert [p.message for p in check_defaults(state, CONFIG)] == [
        "main holds 2 IPv6 default routes (eth0, eth1) and no policy rules: only the lowest "
        "metric (eth0) is used, replies from eth1 leave through eth0"
    ]
    wrong = check_reply_paths(FakeBackend(state), state, CONFIG)
    assert [(p.code, p.interface) for p in wrong] == [("reply-wrong-interface", "eth1")]
    backend = converge(state)
    assert not check_defaults(backend.read(), CONFIG)
    assert not check_reply_paths(backend, backend.read(), CONFIG)


def test_an_ipv4_only_host_has_no_ipv6_rules() -> None:
    """The how-to's IPv4 VM: nothing of family 6 is planned."""
    desired = compute_policy(howto_host(), CONFIG)
    assert not [r for r in desired.rules if r.family == 6]
    assert all(isinstance(r, Rule) for r in desired.rules)


def test_probe6_is_an_ipv6_address() -> None:
    """``probe6`` defaults to a documentation address and takes IPv6 only (exit 2 otherwise,
    naming the key and the fix)."""
    assert str(CONFIG.probe6) == "2001:db8:ffff::10"
    assert str(parse_config("probe6: 2001:db8:9::1\n", "c.yaml").probe6) == "2001:db8:9::1"
    try:
        parse_config("probe6: 198.51.100.1\n", "c.yaml")
    except InputError as exc:
        assert "probe6" in str(exc) and "IPv6" in str(exc)
    else:
        raise AssertionError("an IPv4 probe6 was accepted")


def test_a_new_router_replaces_the_tables_default_in_its_slot() -> None:
    """The advertisement now comes from another router: the copy follows it, the old one is
    removed first (one route per table, destination and metric)."""
    backend = converge(two_on_one_prefix())
    state = backend.read()
    moved = HostState.build(
        state.links,
        state.addresses,
        [
            replace(r, gateway=ipaddress.IPv6Address("fe80::2"))
            if r.table == TABLE_MAIN and r.proto == PROTO_RA and r.ifname == "eth1"
            else r
            for r in state.routes
        ],
        state.rules,
        state.sysctls,
    )
    changes = [c.describe() for c in Assessment.of(moved, CONFIG).plan.changes]
    t1 = table_of(compute_policy(moved, CONFIG), "eth1")
    assert changes == [
        f"- route default via fe80::1 dev eth1 table {t1} proto multihome metric 1024",
        f"+ route default via fe80::2 dev eth1 table {t1} proto multihome metric 1024",
    ]


def test_a_flap_keeps_the_ipv6_copies_and_a_new_prefix_replaces_the_old() -> None:
    """Main losing the port's RA routes (a flap) removes nothing while the address lives; the
    address moving to a new prefix (renumbering) takes the old prefix's copy and rules."""
    backend = converge(two_on_one_prefix())
    state = backend.read()
    flapped = HostState.build(
        state.links,
        state.addresses,
        [r for r in state.routes if not (r.table == TABLE_MAIN and r.ifname == "eth1")],
        state.rules,
        state.sysctls,
    )
    assert Assessment.of(flapped, CONFIG).plan.empty
    renumbered = host(
        ipv6_port("eth0", 2, "2001:db8:1::10/64"), ipv6_port("eth1", 3, "2001:db8:3::11/64")
    )
    renumbered = HostState.build(
        renumbered.links,
        renumbered.addresses,
        [*renumbered.routes, *(r for r in state.routes if r.proto == PROTO_MULTIHOME)],
        state.rules,
        renumbered.sysctls,
    )
    plan = Assessment.of(renumbered, CONFIG).plan
    removed = {c.describe() for c in plan.changes if c.action == "remove"}
    t1 = table_of(compute_policy(renumbered, CONFIG), "eth1")
    assert f"- route 2001:db8:1::/64 dev eth1 table {t1} proto multihome metric 256" in removed
    assert f"- rule -6 10000 from 2001:db8:1::11 lookup {t1}" in removed
    added = {c.describe() for c in plan.changes if c.action == "add"}
    assert f"+ route 2001:db8:3::/64 dev eth1 table {t1} proto multihome metric 256" in added


def test_a_router_that_left_takes_the_tables_default_but_not_its_prefix_or_rules() -> None:
    """The kernel removed eth1's RA default but not its other routes (fe80::/64 stays: no
    flap): the router announced lifetime 0, or its lifetime ran out. That is positive
    information: the copy in eth1's table goes, its prefix and rules stay, and the next
    plan (the copy gone) changes nothing; a router advertising again brings a default back."""
    backend = converge(two_on_one_prefix())
    state = backend.read()
    t1 = table_of(compute_policy(state, CONFIG), "eth1")
    left = HostState.build(
        state.links,
        state.addresses,
        [
            r
            for r in state.routes
            if not (r.table == TABLE_MAIN and r.ifname == "eth1" and r.proto == PROTO_RA)
        ],
        state.rules,
        state.sysctls,
    )
    changes = [c.describe() for c in Assessment.of(left, CONFIG).plan.changes]
    assert changes == [
        f"- route default via fe80::1 dev eth1 table {t1} proto multihome metric 1024"
    ]
    backend = FakeBackend(left)
    backend.apply(Assessment.of(left, CONFIG).plan.changes)
    after = backend.read()
    assert Assessment.of(after, CONFIG).plan.empty
    assert rules6(compute_policy(after, CONFIG), t1) == rules6(compute_policy(state, CONFIG), t1)
    back = HostState.build(
        after.links,
        after.addresses,
        [*after.routes, *(r for r in state.routes if r.proto == PROTO_RA and r.ifname == "eth1")],
        after.rules,
        after.sysctls,
    )
    changes = [c.describe() for c in Assessment.of(back, CONFIG).plan.changes]
    assert changes == [
        f"+ route default via fe80::1 dev eth1 table {t1} proto multihome metric 1024"
    ]


def test_a_network_managers_persisted_ipv6_copies_stand_for_ours() -> None:
    """After a boot with persisted configuration the IPv6 copies in the ports' tables are the
    network manager's (protocol static from NetworkManager, ra from networkd's
    ``Gateway=_ipv6ra``, with an expiry): the plan adds and removes nothing beside them."""
    backend = converge(two_on_one_prefix())
    state = backend.read()
    persisted = HostState.build(
        state.links,
        state.addresses,
        [
            replace(r, proto=PROTO_RA if r.is_default else 4, expires=30 if r.is_default else None)
            if r.proto == PROTO_MULTIHOME and r.family == 6
            else r
            for r in state.routes
        ],
        state.rules,
        state.sysctls,
    )
    assert Assessment.of(persisted, CONFIG).plan.empty
