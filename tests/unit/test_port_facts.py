"""The rule of issue 13: a port's table comes from the port's own facts, not from what main
holds at the moment. Each case runs on the in-memory backend, starting from the how-to's VM
after `apply` (eth1's default moved out of main into eth1's table), and is checked with the
twin's route lookup, as the kernel would answer."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from pathlib import Path

import pytest
from hosts import host, port

from multihome.backend.fake import FakeBackend
from multihome.config import Config
from multihome.engine import assess
from multihome.facts import Declaration, DeclaredRoute, PortFacts
from multihome.model import (
    PROTO_DHCP,
    PROTO_KERNEL,
    SCOPE_LINK,
    TABLE_MAIN,
    Address,
    HostState,
    Route,
)
from multihome.policy import compute_policy

CONFIG = Config()
IP = ipaddress.ip_address
NET = ipaddress.ip_network
ETH1 = IP("192.168.0.112")
DEFAULT = NET("0.0.0.0/0")
METADATA = NET("169.254.169.254/32")
SUBNET = NET("192.168.0.0/24")
LEASE_ORIGIN = "dhclient lease /var/lib/dhcp/dhclient.eth1.leases"


def lease(*routes: tuple[str, str], address: str = "192.168.0.112") -> PortFacts:
    """Facts with eth1's lease declaring ``routes`` (destination, gateway)."""
    declared = tuple(DeclaredRoute(NET(d), IP(g)) for d, g in routes)
    return PortFacts(declared={"eth1": Declaration("eth1", IP(address), declared, LEASE_ORIGIN)})


NEUTRON_LEASE = (("169.254.169.254/32", "192.168.0.100"), ("0.0.0.0/0", "192.168.0.1"))


def applied(state: HostState, facts: PortFacts | None = None) -> FakeBackend:
    """The twin after one apply of the policy (what `multihome apply` leaves)."""
    backend = FakeBackend(state)
    backend.apply(
        list(assess(backend, CONFIG, None if facts is None else lambda _s: facts).plan.changes)
    )
    return backend


def repair(backend: FakeBackend, facts: PortFacts | None = None) -> None:
    """One reconcile: the plan for the state as it is now, applied."""
    plan = assess(backend, CONFIG, None if facts is None else lambda _s: facts).plan
    backend.apply(list(plan.changes))


def eth1_table(backend: FakeBackend) -> set[str]:
    state = backend.read()
    desired = compute_policy(state, CONFIG)
    iface = desired.interface("eth1")
    assert iface is not None and iface.table is not None
    table = iface.table.id
    return {f"{r.dst} via {r.gateway}" for r in state.routes if r.table == table}


def flap(backend: FakeBackend, ifname: str = "eth1") -> None:
    """A link flap as the kernel does it: every route through the port goes, in every table;
    when the link is up again the kernel puts back the prefix route of its address."""
    state = backend.read()
    kept = tuple(r for r in state.routes if r.ifname != ifname)
    backend.state = replace(state, routes=kept)


def add_main(backend: FakeBackend, *routes: Route) -> None:
    state = backend.read()
    backend.state = HostState.build(
        state.links, state.addresses, (*state.routes, *routes), state.rules, dict(state.sysctls)
    )


def leaves_eth1(backend: FakeBackend, dst: str, src: ipaddress.IPv4Address = ETH1) -> bool:
    found = backend.lookup(IP(dst), src=src)
    return found is not None and found.ifname == "eth1"


MAIN_DEFAULT = Route(
    table=TABLE_MAIN,
    dst=DEFAULT,
    ifname="eth1",
    gateway=IP("192.168.0.1"),
    proto=PROTO_DHCP,
    prefsrc=ETH1,
    metric=101,
)
FULL_TABLE = {
    "192.168.0.0/24 via None",
    "169.254.169.254/32 via 192.168.0.100",
    "0.0.0.0/0 via 192.168.0.1",
}


def test_flap_then_only_the_default_back_keeps_the_table_whole(howto: HostState) -> None:
    """Issue 13's sequence: after a flap the agent's memory (``seen``) restores eth1's table;
    then a DHCP client puts back only eth1's default in main. The next repair must not take
    the subnet and metadata routes, nor their rules, out of eth1's table (today's code did:
    main no longer had them)."""
    backend = applied(howto)
    seen = {
        "eth1": frozenset(
            r
            for r in backend.read().routes
            if r.table not in (TABLE_MAIN, 255) and r.ifname == "eth1"
        )
    }
    flap(backend)
    repair(backend, PortFacts(seen=seen))
    assert eth1_table(backend) == FULL_TABLE
    add_main(backend, MAIN_DEFAULT)
    repair(backend)  # no memory at all: the table's own copies are the memory
    assert eth1_table(backend) == FULL_TABLE
    state = backend.read()
    first = {r.priority for r in state.rules if r.src == NET("192.168.0.112/32")}
    assert first == {10000}  # the table first: its copies answer for the address
    assert leaves_eth1(backend, "169.254.169.254")
    assert leaves_eth1(backend, "192.168.0.1")
    assert not any(
        r.table == TABLE_MAIN and r.ifname == "eth1" and r.is_default for r in state.routes
    )


def test_agent_restart_with_main_emptied_keeps_the_table(howto: HostState) -> None:
    """Agent restarted (no memory) while main lost eth1's subnet and metadata routes but
    the table still has our copies: they are kept (main losing a route is no reason)."""
    backend = applied(howto)
    state = backend.read()
    backend.state = replace(
        state,
        routes=tuple(r for r in state.routes if not (r.table == TABLE_MAIN and r.ifname == "eth1")),
    )
    add_main(backend, MAIN_DEFAULT)
    repair(backend)
    assert eth1_table(backend) == FULL_TABLE
    assert leaves_eth1(backend, "169.254.169.254")


def test_flap_with_no_memory_rebuilds_the_table_from_the_lease(howto: HostState) -> None:
    """A flap while no agent ran (the table flushed, no memory), then a repair: eth1's table
    comes back from its lease (default, metadata route) and its address (the subnet)."""
    backend = applied(howto)
    flap(backend)
    desired = compute_policy(backend.read(), CONFIG, lease(*NEUTRON_LEASE))
    iface = desired.interface("eth1")
    assert iface is not None and iface.role == "secondary"
    assert set(desired.origins.values()) == {LEASE_ORIGIN, "the address 192.168.0.112/24"}
    repair(backend, lease(*NEUTRON_LEASE))
    assert eth1_table(backend) == FULL_TABLE
    assert leaves_eth1(backend, "169.254.169.254")
    assert leaves_eth1(backend, "198.51.100.10")


def test_a_new_gateway_in_the_lease_replaces_the_table_default(howto: HostState) -> None:
    """The lease now names router .254 (main has no eth1 default: it was moved out): the
    table's default moves to .254, the old one goes (today's code kept .1 for ever)."""
    backend = applied(howto)
    facts = lease(("169.254.169.254/32", "192.168.0.100"), ("0.0.0.0/0", "192.168.0.254"))
    repair(backend, facts)
    assert eth1_table(backend) == {
        "192.168.0.0/24 via None",
        "169.254.169.254/32 via 192.168.0.100",
        "0.0.0.0/0 via 192.168.0.254",
    }
    found = backend.lookup(IP("198.51.100.10"), src=ETH1)
    assert found is not None and str(found.gateway) == "192.168.0.254"
    assert assess(backend, CONFIG, lambda _s: facts).plan.empty


def test_a_classless_route_dropped_from_a_newer_lease_goes(howto: HostState) -> None:
    """The newer leases no longer have the metadata host route (eth0's neither, so main has
    none): eth1's table's copy and its rule go; the subnet route (from the address) and the
    default stay."""
    backend = applied(howto)
    state = backend.read()
    backend.state = replace(
        state,
        routes=tuple(r for r in state.routes if not (r.table == TABLE_MAIN and r.dst == METADATA)),
    )
    repair(backend, lease(("0.0.0.0/0", "192.168.0.1")))
    assert eth1_table(backend) == {"192.168.0.0/24 via None", "0.0.0.0/0 via 192.168.0.1"}
    assert not any(
        r.dst == METADATA and r.src == NET("192.168.0.112/32") for r in backend.read().rules
    )


def test_a_removed_address_takes_what_depends_on_it(howto: HostState) -> None:
    """eth1 has .112 and .113; .113 goes: the routes sourced from it and its rules go,
    .112's stay; a lease for .113 says nothing about .112 any more."""
    second = Address("eth1", ipaddress.ip_interface("192.168.0.113/24"))
    extra = Route(
        table=TABLE_MAIN,
        dst=NET("10.9.0.0/16"),
        ifname="eth1",
        gateway=IP("192.168.0.9"),
        proto=PROTO_DHCP,
        prefsrc=second.ip,
        metric=101,
    )
    state = HostState.build(
        howto.links,
        (*howto.addresses, second),
        (*howto.routes, extra),
        howto.rules,
        dict(howto.sysctls),
    )
    backend = applied(state)
    assert "10.9.0.0/16 via 192.168.0.9" in eth1_table(backend)
    now = backend.read()
    backend.state = HostState.build(
        now.links,
        [a for a in now.addresses if a != second],
        [r for r in now.routes if r.prefsrc != second.ip or r.table != TABLE_MAIN],
        now.rules,
        dict(now.sysctls),
    )
    stale = lease(("0.0.0.0/0", "192.168.0.77"), address="192.168.0.113")
    repair(backend, stale)
    assert eth1_table(backend) == FULL_TABLE
    assert not any(r.src == NET("192.168.0.113/32") for r in backend.read().rules)


def test_main_getting_a_route_back_changes_nothing(howto: HostState) -> None:
    """When the kernel puts the prefix route back in main after a flap (it does on link up)
    and the lease restores the rest, the table built from the facts is already right."""
    backend = applied(howto)
    flap(backend)
    repair(backend, lease(*NEUTRON_LEASE))
    add_main(
        backend,
        Route(
            table=TABLE_MAIN,
            dst=SUBNET,
            ifname="eth1",
            proto=PROTO_KERNEL,
            scope=SCOPE_LINK,
            prefsrc=ETH1,
            metric=101,
        ),
        MAIN_DEFAULT,
    )
    plan = assess(backend, CONFIG, lambda _s: lease(*NEUTRON_LEASE)).plan
    assert [c.describe() for c in plan.changes] == [
        "- route default via 192.168.0.1 dev eth1 table main proto dhcp src 192.168.0.112 "
        "metric 101"
    ]


def test_without_a_lease_a_port_never_loses_its_table_copies() -> None:
    """No lease known (another DHCP client): earlier copies through a gateway stay while
    they fit the address, whatever main holds."""
    state = host(
        port("eth0", 2, "192.168.0.107/24", "192.168.0.1", 100, "192.168.0.100"),
        port("eth1", 3, "192.168.0.112/24", "192.168.0.1", 101, "192.168.0.100"),
    )
    backend = applied(state)
    now = backend.read()
    backend.state = replace(
        now,
        routes=tuple(r for r in now.routes if not (r.table == TABLE_MAIN and r.ifname == "eth1")),
    )
    repair(backend)
    assert eth1_table(backend) == FULL_TABLE


def test_another_ports_specific_route_in_main_leaves_through_the_own_port(
    howto: HostState,
) -> None:
    """eth1's newer lease has no metadata host route, eth0's route to it stays in main. The
    band's ``lookup main suppress_prefixlength 0`` would let eth0's route win for eth1's
    source address (port security drops it): eth1's table gets the same host route through
    eth1 (its gateway is on eth1's subnet), with eth1's band+0 rule, and the lookup from
    eth1's address leaves eth1 (design.md, section 5)."""
    backend = applied(howto)
    state = backend.read()
    backend.state = replace(
        state,
        routes=tuple(r for r in state.routes if not (r.dst == METADATA and r.ifname == "eth1")),
    )
    facts = lease(("0.0.0.0/0", "192.168.0.1"))
    repair(backend, facts)
    assert "169.254.169.254/32 via 192.168.0.100" in eth1_table(backend)
    found = backend.lookup(IP("169.254.169.254"), src=ETH1)
    assert found is not None and found.ifname == "eth1", found
    desired = compute_policy(backend.read(), CONFIG, facts)
    origins = {str(r.dst): o for r, o in desired.origins.items() if r.ifname == "eth1"}
    assert origins["169.254.169.254/32"].startswith("eth0's route in main"), origins
    # eth0's own traffic is unchanged: its own copy, through eth0.
    found = backend.lookup(IP("169.254.169.254"), src=IP("192.168.0.107"))
    assert found is not None and found.ifname == "eth0", found


def test_a_commands_lease_reader_looks_for_dhclient_processes_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one-shot reader of apply, plan and status scans /proc for dhclient processes once:
    its read, signature and next expiry all use the same files (they scanned it thrice)."""
    from multihome.source import leases
    from multihome.source.portfacts import host_reader

    lease = tmp_path / "dhclient.eth1.leases"
    lease.write_text("")
    scans: list[int] = []

    def scan() -> list[Path]:
        scans.append(1)
        return [lease]

    monkeypatch.setattr(leases, "dhclient_lease_files", scan)
    reader = host_reader(tmp_path)
    reader.read([])
    assert str(lease) in reader.signature()
    assert reader.next_expiry() is None
    assert len(scans) == 1
