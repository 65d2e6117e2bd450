"""Multipath routes in main (design.md section 5, "Multipath routes"), on the in-memory backend:
networkd's and NetworkManager's RA defaults of one metric merged by the kernel into one route
with a next hop per port, and an IPv4 multipath default. Each port's table gets the single
path through its own next hop; main's multipath route stays; a next hop leaving or joining
changes only its port's table."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from hosts import host, ipv6_port, port, with_ipv6
from twin import converge

from multihome.agent.service import Agent, AgentOptions
from multihome.backend.fake import FakeBackend
from multihome.config import Config
from multihome.model import PROTO_MULTIHOME, PROTO_RA, TABLE_MAIN, HostState, NextHop, Route
from multihome.plan import Assessment
from multihome.policy import DesiredState, compute_policy
from multihome.status import check_defaults, check_reply_paths

CONFIG = Config()
LL = ipaddress.IPv6Address("fe80::1")
GW = ipaddress.IPv4Address("192.168.0.1")


def merged(state: HostState, family: int, hops: list[NextHop], metric: int) -> HostState:
    """``state`` with its defaults of ``family`` in main replaced by one multipath route."""
    kept = [
        r
        for r in state.routes
        if not (r.table == TABLE_MAIN and r.is_default and r.family == family)
    ]
    proto = PROTO_RA if family == 6 else 16
    multipath = Route(
        table=TABLE_MAIN,
        dst=ipaddress.ip_network("::/0" if family == 6 else "0.0.0.0/0"),
        metric=metric,
        proto=proto,
        nexthops=tuple(hops),
    )
    return HostState.build(state.links, state.addresses, [*kept, multipath], state.rules,
                           state.sysctls)  # fmt: skip


def networkd_v6() -> HostState:
    """Two IPv6 ports on one prefix whose RA defaults networkd added at its stock metric."""
    base = host(
        ipv6_port("eth0", 2, "2001:db8:1::10/64"), ipv6_port("eth1", 3, "2001:db8:1::11/64")
    )
    return merged(base, 6, [NextHop(LL, "eth0"), NextHop(LL, "eth1")], 1024)


def table_defaults(desired: DesiredState) -> dict[str, str]:
    tables = {t.id: t.ifname for t in desired.tables}
    return {
        tables[r.table]: r.describe() for r in desired.routes if r.table in tables and r.is_default
    }


def test_each_port_gets_its_next_hop_of_the_multipath_ra_default() -> None:
    """Each port's table holds the single path via the router's link-local address through
    the port; main's multipath route is not removed; eth0 (lowest index) is primary; the
    plan says why main's route stays."""
    desired = compute_policy(networkd_v6(), CONFIG)
    defaults = table_defaults(desired)
    assert {name: text.split(" table")[0] for name, text in defaults.items()} == {
        "eth0": "default via fe80::1 dev eth0",
        "eth1": "default via fe80::1 dev eth1",
    }
    assert not desired.main_removals
    assert [(i.name, i.role, str(i.gateway6)) for i in desired.interfaces] == [
        ("eth0", "primary", "fe80::1"),
        ("eth1", "secondary", "fe80::1"),
    ]
    assert any("multipath across eth0, eth1: it stays in main" in n for n in desired.notes)


def test_converged_replies_leave_their_port_and_status_is_quiet() -> None:
    """Before: status names the multipath default with no policy. After apply: every
    address's lookup leaves through its own port, the multipath route is still in main,
    a second plan is empty and status finds nothing."""
    state = networkd_v6()
    assert [p.message for p in check_defaults(state, CONFIG)] == [
        "main's IPv6 default is multipath across eth0, eth1 and there are no policy rules: "
        "the kernel hashes each flow to one of them, so some replies from each of eth0, eth1 "
        "leave through another port"
    ]
    backend = converge(state)
    after = backend.read()
    assert Assessment.of(after, CONFIG).plan.empty
    assert [r.nexthops for r in after.routes if r.table == TABLE_MAIN and r.multipath] == [
        (NextHop(LL, "eth0"), NextHop(LL, "eth1"))
    ]
    for ifname, addr in (("eth0", "2001:db8:1::10"), ("eth1", "2001:db8:1::11")):
        found = backend.lookup(CONFIG.probe6, src=ipaddress.ip_address(addr))
        assert found is not None and (found.ifname, found.gateway) == (ifname, LL)
    assert not check_defaults(after, CONFIG)
    assert not check_reply_paths(backend, after, CONFIG)


def test_a_next_hop_leaving_and_joining_changes_only_its_ports_table() -> None:
    """eth1's router says lifetime 0: networkd removes eth1's sibling, main's default is a
    single path via eth0 (fe80::/64 of eth1 stays: no flap). Only eth1's table default goes;
    when the router comes back and the sibling joins again, only it comes back."""
    backend = converge(networkd_v6())
    converged = backend.read()
    t1 = next(t.id for t in compute_policy(converged, CONFIG).tables if t.ifname == "eth1")
    left = merged(converged, 6, [], 0)
    single = Route(table=TABLE_MAIN, dst=ipaddress.ip_network("::/0"), ifname="eth0",
                   gateway=LL, metric=1024, proto=PROTO_RA)  # fmt: skip
    left = HostState.build(left.links, left.addresses,
                           [r for r in left.routes if not r.multipath] + [single],
                           left.rules, left.sysctls)  # fmt: skip
    changes = [c.describe() for c in Assessment.of(left, CONFIG).plan.changes]
    assert changes == [
        f"- route default via fe80::1 dev eth1 table {t1} proto multihome metric 1024"
    ]
    backend = FakeBackend(left)
    backend.apply(Assessment.of(left, CONFIG).plan.changes)
    joined = merged(backend.read(), 6, [NextHop(LL, "eth0"), NextHop(LL, "eth1")], 1024)
    changes = [c.describe() for c in Assessment.of(joined, CONFIG).plan.changes]
    assert changes == [
        f"+ route default via fe80::1 dev eth1 table {t1} proto multihome metric 1024"
    ]


def test_a_port_going_down_leaves_its_peers_path() -> None:
    """The in-memory kernel drops a down port's next hop as the kernel does: one left is a
    single-path route."""
    backend = FakeBackend(networkd_v6())
    backend.set_link_down("eth1")
    defaults = [r for r in backend.read().routes if r.table == TABLE_MAIN and r.is_default]
    assert [(r.ifname, r.multipath) for r in defaults] == [("eth0", False)]


def test_an_ipv4_multipath_default_stays_in_main_and_each_table_gets_its_path() -> None:
    """IPv4 (`ip route add default nexthop via .1 dev eth0 nexthop via .1 dev eth1`): the
    how-to moves a secondary's default out of main, but a multipath default belongs to no
    single port: it stays (unsourced traffic keeps the admin's load sharing), each table
    gets the path through its port, and the replies of each address leave their port."""
    base = host(
        port("eth0", 2, "192.168.0.107/24", "192.168.0.1", 100),
        port("eth1", 3, "192.168.0.112/24", "192.168.0.1", 100),
    )
    state = merged(base, 4, [NextHop(GW, "eth0"), NextHop(GW, "eth1", 2)], 100)
    desired = compute_policy(state, CONFIG)
    assert not desired.main_removals
    assert desired.primary == "eth0"
    defaults = table_defaults(desired)
    assert {name: text.split(" table")[0] for name, text in defaults.items()} == {
        "eth0": "default via 192.168.0.1 dev eth0",
        "eth1": "default via 192.168.0.1 dev eth1",
    }
    backend = converge(state)
    for ifname, addr in (("eth0", "192.168.0.107"), ("eth1", "192.168.0.112")):
        found = backend.lookup(CONFIG.probe, src=ipaddress.ip_address(addr))
        assert found is not None and found.ifname == ifname
    assert any(r.multipath for r in backend.read().routes if r.table == TABLE_MAIN)
    assert Assessment.of(backend.read(), CONFIG).plan.empty


def test_the_agent_follows_a_next_hop_leaving_and_joining(tmp_path: Path) -> None:
    """The agent on networkd's multipath RA default: its start sets both tables up, a quiet
    reconcile changes nothing (no fight with main's multipath route); eth1's router leaving
    (networkd removes eth1's sibling: main keeps a single path via eth0) takes only eth1's
    table default, and the sibling joining again brings it back."""
    backend = FakeBackend(networkd_v6())
    agent = Agent(backend, Config, tmp_path, AgentOptions(source="kernel", dhcp=False))
    assert agent.reconcile("start", 0.0) is not None
    assert agent.reconcile("nothing happened", 0.0) is None
    joined = backend.read()
    t1 = next(t.id for t in compute_policy(joined, CONFIG).tables if t.ifname == "eth1")
    single = Route(table=TABLE_MAIN, dst=ipaddress.ip_network("::/0"), ifname="eth0",
                   gateway=LL, metric=1024, proto=PROTO_RA)  # fmt: skip
    left = HostState.build(joined.links, joined.addresses,
                           [r for r in joined.routes if not r.multipath] + [single],
                           joined.rules, joined.sysctls)  # fmt: skip
    backend.foreign(left, "route del 6")
    plan = agent.reconcile("route del 6", 0.0)
    assert plan is not None and [c.describe() for c in plan.changes] == [
        f"- route default via fe80::1 dev eth1 table {t1} proto multihome metric 1024"
    ]
    backend.foreign(merged(backend.read(), 6, [NextHop(LL, "eth0"), NextHop(LL, "eth1")], 1024),
                    "route new 6")  # fmt: skip
    plan = agent.reconcile("route new 6", 0.0)
    assert plan is not None and [c.describe() for c in plan.changes] == [
        f"+ route default via fe80::1 dev eth1 table {t1} proto multihome metric 1024"
    ]
    assert agent.status.last_error is None


def test_doctor_does_not_call_a_multipath_defaults_ports_moved(tmp_path: Path) -> None:
    """An IPv4 multipath default stays in main: a DHCP client serving eth1 will not put a
    moved default back (there is none), so no ``dhcp-will-undo``; a single-path secondary
    default that apply moved is still found."""
    from multihome.safety.doctor import Evidence, Process, check_dhcp_clients

    def problems(state: HostState) -> list[str]:
        backend = converge(state)
        evidence = Evidence(
            backend,
            Assessment.of(backend.read(), CONFIG),
            CONFIG,
            tmp_path,
            (Process(7, "dhclient", ("dhclient", "eth1")),),
        )
        return [p.code for p in check_dhcp_clients(evidence)]

    base = host(
        port("eth0", 2, "192.168.0.107/24", "192.168.0.1", 100),
        port("eth1", 3, "192.168.0.112/24", "192.168.0.1", 101),
    )
    assert problems(base) == ["dhcp-will-undo"]
    assert problems(merged(base, 4, [NextHop(GW, "eth0"), NextHop(GW, "eth1")], 100)) == []


def test_reset_leaves_a_multipath_default_in_main_alone() -> None:
    """reset after apply on main's multipath defaults (IPv6 RA, IPv4 nexthop), with the
    record lost (a reboot's fresh state folder): the multipath route counts for each port
    among its next hops, so no table copy is taken for a moved default (adding one in main
    next to the multipath route fails with "File exists" in the kernel); what multihome
    owns goes, main's multipath routes stay as they were."""
    from multihome.transaction import checkpoint

    base = host(
        port("eth0", 2, "192.168.0.107/24", "192.168.0.1", 100),
        port("eth1", 3, "192.168.0.112/24", "192.168.0.1", 100),
    )
    v4 = merged(base, 4, [NextHop(GW, "eth0"), NextHop(GW, "eth1")], 100)
    for state in (networkd_v6(), v4):
        applied = converge(state).read()
        changes, notes = checkpoint.reset_changes(applied, CONFIG, checkpoint.Record())
        assert [c.describe() for c in changes if c.action == "add"] == [], notes
        backend = FakeBackend(applied)
        assert checkpoint.execute(backend, changes)[1] == []
        after = backend.read()
        assert set(after.routes) == set(state.routes)
        assert not [r for r in after.rules if r.proto == PROTO_MULTIHOME]


def test_persisted_ipv6_metric_keeps_the_multipath_merge() -> None:
    """NetworkManager profiles with one ``ipv6.route-metric`` (100) on both ports, its IPv4
    metrics stock (100, 101): the keyfiles, the networkd drop-ins and the ifcfg files give
    each port's RA routes the multipath route's metric (still one route after a restart),
    the IPv4 routes each port's own; without a multipath route the port's metric."""
    from multihome.render import ifcfg, networkd, networkmanager
    from multihome.render.base import build_input

    base = host(
        with_ipv6(port("eth0", 2, "192.168.0.107/24", "192.168.0.1", 100), "2001:db8:1::10/64"),
        with_ipv6(port("eth1", 3, "192.168.0.112/24", "192.168.0.1", 101), "2001:db8:1::11/64"),
    )
    state = merged(base, 6, [NextHop(LL, "eth0"), NextHop(LL, "eth1")], 100)
    ports = {p.name: p for p in build_input(state, compute_policy(state, CONFIG)).ports}
    assert [(p.metric, p.metric6) for p in ports.values()] == [(100, 100), (101, 100)]
    text = networkmanager.keyfile(ports["eth1"])
    assert "[ipv4]\nmethod=auto\nroute-metric=101\n" in text
    assert "[ipv6]\nmethod=auto\naddr-gen-mode=eui64\nip6-privacy=0\nroute-metric=100\n" in text
    assert "IPV6_ROUTE_METRIC=100\nIPV4_ROUTE_METRIC=101" in ifcfg.ifcfg(ports["eth1"])
    sections = "\n".join(networkd.port_sections(ports["eth1"], dhcp_gateway=True))
    assert "[DHCPv4]\nRouteTable=" in sections and "RouteMetric=101" in sections
    assert "[IPv6AcceptRA]\nRouteMetric=100\n" in sections
    single = build_input(base, compute_policy(base, CONFIG)).ports
    assert [(p.metric, p.metric6) for p in single] == [(100, 100), (101, 101)]
