"""The agent's reconcile logic on the in-memory backend: hot-plug, flap, detach, a foreign
default put back into main, a pause by reset, refused metadata. Every repair goes through
the one transaction (plan, apply, announce, verify) and the tests check that the announcement
and the verification ran, and what the namespace holds afterwards."""

from __future__ import annotations

import gc
import ipaddress
import json
import os
import signal
import stat
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from subprocess import Popen
from typing import Any, cast

import pytest
from hosts import host, howto_host, link

from multihome import policy
from multihome.agent import addressing, dhcphook
from multihome.agent.events import Event, EventSource
from multihome.agent.service import (
    IDLE_COLLECT,
    RECHECK_DELAY,
    SCAN_AHEAD,
    Agent,
    AgentOptions,
)
from multihome.agent.state import AgentStatus, run_dir, write_status
from multihome.backend import Lookup
from multihome.backend.fake import FakeBackend
from multihome.config import Config
from multihome.facts import PortFacts
from multihome.files import under_root
from multihome.model import (
    PROTO_DHCP,
    PROTO_STATIC,
    TABLE_MAIN,
    Address,
    HostState,
    IPAddress,
    Route,
)
from multihome.names import RT_TABLES_FILE
from multihome.plan import Assessment, Change
from multihome.source import leases
from multihome.source.network_data import MetaData, parse_network_data
from multihome.source.readers import Metadata
from multihome.transaction.pause import pause, paused, resume
from multihome.transaction.statedir import StateDir

GATEWAY = ipaddress.ip_address("192.168.0.1")
ETH1 = ipaddress.ip_address("192.168.0.112")
PROBE = ipaddress.ip_address("198.51.100.10")


def dhcp_default(ifname: str, src: IPAddress, metric: int) -> Route:
    """The default a DHCP client puts into main for a port."""
    return Route(
        table=TABLE_MAIN,
        dst=ipaddress.ip_network("0.0.0.0/0"),
        ifname=ifname,
        gateway=GATEWAY,
        proto=PROTO_DHCP,
        prefsrc=src,
        metric=metric,
    )


def make_agent(
    tmp_path: Path, state: HostState, source: str = "kernel"
) -> tuple[Agent, FakeBackend]:
    backend = FakeBackend(state)
    return Agent(backend, Config, tmp_path, AgentOptions(source=source, dhcp=False)), backend


def table_of(state: HostState, ifname: str) -> int | None:
    tables = {r.table for r in state.rules if ifname in (r.oifname, r.iifname)}
    assert len(tables) <= 1, tables
    return tables.pop() if tables else None


def has_table_default(state: HostState, ifname: str) -> bool:
    table = table_of(state, ifname)
    return table is not None and any(
        r.is_default and r.ifname == ifname for r in state.routes_in(table)
    )


def main_defaults(state: HostState) -> list[str | None]:
    return sorted(r.ifname for r in state.routes_in(TABLE_MAIN) if r.is_default)


def converged(backend: FakeBackend, ports: tuple[str, ...] = ("eth0", "eth1")) -> bool:
    """Each port has its table's default and its replies leave through it; main keeps only
    eth0's default."""
    state = backend.state
    for ifname in ports:
        if not has_table_default(state, ifname):
            return False
        for address in state.addresses_of(ifname, 4):
            found = backend.lookup(PROBE, src=address.ip)
            if found is None or found.ifname != ifname:
                return False
    return main_defaults(state) == ["eth0"]


def assert_settled(agent: Agent, backend: FakeBackend, announced_before: int) -> None:
    """The last repair announced every managed address and every verify check passed."""
    repair = agent.status.last_repair
    assert repair is not None
    assert repair.announced > 0 and len(backend.announced) == announced_before + repair.announced
    passed, total = (int(n) for n in repair.verified.split("/"))
    assert total > 0 and passed == total, repair
    assert agent.status.last_error is None, agent.status.last_error


def started(tmp_path: Path, state: HostState | None = None) -> tuple[Agent, FakeBackend]:
    agent, backend = make_agent(tmp_path, state or howto_host())
    assert agent.reconcile("start", 0.0) is not None
    assert converged(backend)
    assert_settled(agent, backend, 0)
    return agent, backend


def test_start_applies_announces_and_verifies(tmp_path: Path) -> None:
    """The first reconcile applies the policy, sends one gratuitous ARP per managed address
    from its own port and proves each address's path with kernel lookups."""
    agent, backend = started(tmp_path)
    assert sorted(backend.announced) == sorted(
        [("eth0", "52:54:00:00:00:02", "192.168.0.107"), ("eth1", "52:54:00:00:00:03", str(ETH1))]
    )
    assert backend.route_lookups > 0
    lookups = backend.route_lookups
    assert agent.reconcile("nothing happened", 0.0) is None
    assert backend.route_lookups == lookups  # nothing changed: nothing to announce or prove
    assert len(backend.announced) == 2


def test_foreign_default_readded_to_main_is_removed(tmp_path: Path) -> None:
    """A DHCP client putting eth1's default back into main is undone, and the repair is
    announced and verified."""
    agent, backend = started(tmp_path)
    before = len(backend.announced)
    foreign = dhcp_default("eth1", ETH1, 101)
    backend.apply([Change("add", foreign)])
    assert main_defaults(backend.state) == ["eth0", "eth1"]
    plan = agent.reconcile("route new default table 254 dev eth1", 0.0)
    assert plan is not None and Change("remove", foreign) in plan.changes
    assert converged(backend)
    assert_settled(agent, backend, before)
    assert agent.status.last_repair is not None
    assert any(
        "default via 192.168.0.1 dev eth1" in line for line in agent.status.last_repair.changes
    )


def test_link_flap_restores_the_table(tmp_path: Path) -> None:
    """eth1 down flushes every route through it (its table's too); once up again the agent
    puts eth1's table back, so its replies leave through eth1 again. The table names file
    is not written at all: the resting port keeps its rules, so its table keeps its name."""
    agent, backend = started(tmp_path)
    names = under_root(tmp_path, RT_TABLES_FILE)
    text, written = names.read_text(), names.stat().st_ino
    assert "\tmh-eth1\t" in text
    backend.set_link_down("eth1")
    assert not has_table_default(backend.state, "eth1")
    agent.reconcile("link new eth1 down", 0.0)
    assert (names.read_text(), names.stat().st_ino) == (text, written)
    backend.set_link_up("eth1")
    before = len(backend.announced)
    agent.reconcile("link new eth1 up", 0.0)
    assert (names.read_text(), names.stat().st_ino) == (text, written)
    assert converged(backend)
    assert_settled(agent, backend, before)
    found = backend.lookup(PROBE, src=ETH1)
    assert found is not None and (found.ifname, found.gateway) == ("eth1", GATEWAY)


def test_hotplug_then_detach(tmp_path: Path) -> None:
    """A third port attached while the agent runs gets its table and rules and is announced;
    detached, it leaves no rule or table behind."""
    agent, backend = started(tmp_path)
    eth2 = ipaddress.ip_interface("192.168.0.120/24")
    backend.add_link(link("eth2", 4))
    backend.add_address(Address("eth2", eth2))
    backend.apply([Change("add", dhcp_default("eth2", eth2.ip, 102))])
    before = len(backend.announced)
    agent.reconcile("link new eth2 up", 0.0)
    assert converged(backend, ("eth0", "eth1", "eth2"))
    assert_settled(agent, backend, before)
    assert ("eth2", "52:54:00:00:00:04", "192.168.0.120") in backend.announced[before:]
    table = table_of(backend.state, "eth2")
    backend.remove_link("eth2")
    agent.reconcile("link del eth2 removed", 0.0)
    state = backend.state
    assert table_of(state, "eth2") is None
    assert not [r for r in state.rules if r.src is not None and eth2.ip in r.src]
    assert table is not None and not state.routes_in(table)
    assert converged(backend)


def test_reset_pause_leaves_the_namespace_alone_until_resumed(tmp_path: Path) -> None:
    """While the pause marker exists (a reset or rollback wrote it) a reconcile changes
    nothing and the status says paused; once it is gone the next event repairs."""
    agent, backend = started(tmp_path)
    running = AgentStatus(pid=os.getpid(), started="now")  # an agent "runs"
    write_status(StateDir.current(tmp_path), running)
    assert pause(tmp_path, "reset", os.getpid()) == os.getpid()
    foreign = dhcp_default("eth1", ETH1, 101)
    backend.apply([Change("add", foreign)])
    state = backend.state
    assert agent.reconcile("route new default table 254 dev eth1", 0.0) is None
    assert backend.state is state
    assert agent.status.paused is not None and agent.status.paused.startswith("by reset at ")
    assert not agent.timers.dhcp and agent.timers.retry_at is None
    assert resume(tmp_path) is not None and paused(tmp_path) is None
    agent.reconcile("resume", 0.0)
    assert agent.status.paused is None
    assert converged(backend)


def test_pause_without_a_running_agent_writes_nothing(tmp_path: Path) -> None:
    """No agent runs: `reset` has nobody to pause and leaves no marker behind that would
    pause an agent started later."""
    assert pause(tmp_path, "reset", os.getpid()) is None
    assert paused(tmp_path) is None


def _metadata(ip: str) -> Metadata:
    doc = {
        "links": [
            {
                "id": "tap2",
                "type": "ovs",
                "ethernet_mac_address": "52:54:00:00:00:04",
                "vif_id": "port-2",
            }
        ],
        "networks": [
            {
                "id": "network2",
                "type": "ipv4",
                "link": "tap2",
                "ip_address": ip,
                "netmask": "255.255.255.0",
                "network_id": "net-1",
                "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.168.0.1"}],
            }
        ],
        "services": [],
    }
    network = parse_network_data(json.dumps(doc).encode(), "test")
    return Metadata(network, MetaData(uuid="0000", name="vm1"), "config drive (test)")


@pytest.mark.parametrize(
    ("ip", "why"),
    [
        ("192.168.0.112", "192.168.0.112 is eth1's address"),
        ("192.168.0.0", "is the network address of 192.168.0.0/24"),
        ("192.168.0.255", "is the broadcast address of 192.168.0.0/24"),
    ],
)
def test_metadata_giving_a_taken_or_special_address_is_refused(
    tmp_path: Path, ip: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A hot-plugged DHCP-disabled port whose metadata gives it another port's IP, or its
    subnet's network or broadcast address, stays unaddressed; the log says why, once."""
    agent, backend = make_agent(tmp_path, howto_host(), source="openstack")
    agent.metadata = _metadata(ip)
    agent.reconcile("start", 0.0)
    backend.add_link(link("eth2", 4))
    agent.reconcile("link new eth2 up", 0.0)
    agent.reconcile("addr new", 0.0)
    assert backend.state.addresses_of("eth2") == ()
    assert table_of(backend.state, "eth2") is None
    assert converged(backend)
    refusals = [r.getMessage() for r in caplog.records if "metadata refused" in r.getMessage()]
    assert len(refusals) == 1 and why in refusals[0], refusals
    assert agent.status.configured["eth2"].startswith("refused: ")


def test_metadata_with_a_free_address_configures_the_port(tmp_path: Path) -> None:
    """The same metadata with a free host address addresses the port, routes it, and the
    repair is announced and verified (the refusal above is not a blanket one)."""
    agent, backend = make_agent(tmp_path, howto_host(), source="openstack")
    agent.metadata = _metadata("192.168.0.130")
    agent.reconcile("start", 0.0)
    backend.add_link(link("eth2", 4))
    before = len(backend.announced)
    agent.reconcile("link new eth2 up", 0.0)
    assert [str(a.interface) for a in backend.state.addresses_of("eth2")] == ["192.168.0.130/24"]
    assert has_table_default(backend.state, "eth2")
    assert_settled(agent, backend, before)


class Waiting(EventSource):
    """An event source whose queue holds ``waiting`` events (nothing is read from it)."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = 0

    def pending(self) -> int:
        return self.waiting


def test_announce_and_verify_wait_while_more_events_wait(tmp_path: Path) -> None:
    """A repair made while more events wait leaves the announcement and the verification to
    the next pass, which makes them even when it has nothing to change; the repair counts
    once."""
    events = Waiting()
    backend = FakeBackend(howto_host())
    agent = Agent(backend, Config, tmp_path, AgentOptions(source="kernel", dhcp=False), events)
    agent.reconcile("start", 0.0)
    repairs, announced, lookups = (
        agent.status.repairs,
        len(backend.announced),
        backend.route_lookups,
    )
    events.waiting = 3
    backend.apply([Change("add", dhcp_default("eth1", ETH1, 101))])
    assert agent.reconcile("route new default table 254 dev eth1", 0.0) is not None
    assert (len(backend.announced), backend.route_lookups) == (announced, lookups)
    assert converged(backend)
    assert agent.status.last_repair is not None and agent.status.last_repair.verified == ""
    events.waiting = 0
    assert agent.reconcile("route del default table 254 dev eth1", 0.0) is None
    assert agent.status.repairs == repairs + 1
    assert_settled(agent, backend, announced)
    assert agent.status.last_repair.trigger == "route new default table 254 dev eth1"
    assert agent.reconcile("nothing", 0.0) is None
    assert len(backend.announced) == announced + agent.status.last_repair.announced


class RacingDhcpHook(FakeBackend):
    """The twin with a DHCP client's hook that adds ``route`` to main just before the
    agent's next batch of changes reaches the kernel (once), as a concurrent writer does."""

    route: Route | None = None

    def apply(self, changes: Sequence[Change]) -> int:
        if self.route is not None and any(c.action == "add" for c in changes):
            self.state = replace(self.state, routes=(*self.state.routes, self.route))
            self.route = None
        return super().apply(changes)


def test_a_default_added_concurrently_by_the_dhcp_hook_is_no_error(tmp_path: Path) -> None:
    """eth0's default left main (a flap no client followed): the agent's repair puts it back
    (multihome's own, from the port's facts), while the DHCP client's hook adds its own into
    the same slot between the agent's read and its apply: the kernel says "File exists".
    The agent undoes its batch, reads and plans again at once, and the repair succeeds with
    no error logged or counted; main keeps the client's default."""
    backend = RacingDhcpHook(howto_host())
    agent = Agent(backend, Config, tmp_path, AgentOptions(source="kernel", dhcp=False))
    assert agent.reconcile("start", 0.0) is not None
    eth0 = ipaddress.ip_address("192.168.0.107")
    client = dhcp_default("eth0", eth0, 100)
    assert client in backend.state.routes
    backend.state = replace(
        backend.state, routes=tuple(r for r in backend.state.routes if r != client)
    )
    backend.route = client
    errors = agent.status.errors
    agent.reconcile("route del default dev eth0", 0.0)
    assert backend.route is None  # the hook did race the repair
    assert agent.status.errors == errors and agent.status.last_error is None
    assert client in backend.state.routes and main_defaults(backend.state) == ["eth0"]
    assert converged(backend)


class _Running:
    """Stands for the DHCP client process the agent started (it never exits)."""

    pid = 4242

    def poll(self) -> None:
        return None


LEASE = """lease {
  interface "eth1";
  fixed-address 192.168.0.112;
  option subnet-mask 255.255.255.0;
  option routers 192.168.0.1;
  option rfc3442-classless-static-routes 32,169,254,169,254,192,168,0,100,0,192,168,0,1;
  expire never;
}
"""


def _agent_addressed_eth1(tmp_path: Path) -> tuple[Agent, FakeBackend]:
    """eth1 is the host's only port, addressed by the agent's own DHCP client: its lease in
    the client's lease file, the address ``noprefixroute`` and the routes as the client's
    script leaves them (proto dhcp, metric 1000 + ifindex)."""
    backend = FakeBackend(host((link("eth1", 3), [], [])))
    agent = Agent(backend, Config, tmp_path, AgentOptions(source="kernel"))
    run_dir(tmp_path, create=True)  # the namespace's folder, with its identity
    addressing.lease_file("eth1", tmp_path).write_text(LEASE)
    agent.clients["eth1"] = addressing.DhcpClient("eth1", cast("Popen[bytes]", _Running()))
    routes = [
        (ipaddress.ip_network("169.254.169.254/32"), ipaddress.ip_address("192.168.0.100")),
        (ipaddress.ip_network("0.0.0.0/0"), GATEWAY),
    ]
    dhcphook.bind(backend, "eth1", 3, ipaddress.IPv4Interface("192.168.0.112/24"), routes)
    agent.reconcile("start", 0.0)
    return agent, backend


def test_a_flap_of_a_port_on_the_agents_dhcp_client_puts_its_lease_routes_back(
    tmp_path: Path,
) -> None:
    """The sole port eth1, addressed by the agent's own DHCP client, flaps: the flap takes
    every route of eth1 out of main and, its address being ``noprefixroute``, the kernel
    puts none back (ISC dhclient does not notice). The agent puts the lease's routes back
    into main at once, as the client's script does, so eth1 reaches its gateway and beyond
    again; a second reconcile changes nothing."""
    agent, backend = _agent_addressed_eth1(tmp_path)
    found = backend.lookup(PROBE, src=ETH1)
    assert found is not None and (found.ifname, found.gateway) == ("eth1", GATEWAY)
    before = set(backend.state.routes_in(TABLE_MAIN))
    backend.set_link_down("eth1")
    agent.reconcile("link new eth1 down", 0.0)
    backend.set_link_up("eth1")
    assert backend.lookup(PROBE, src=ETH1) is None  # the kernel puts nothing back
    agent.reconcile("link new eth1 up", 0.0)
    found = backend.lookup(PROBE, src=ETH1)
    assert found is not None and (found.ifname, found.gateway) == ("eth1", GATEWAY)
    assert set(backend.state.routes_in(TABLE_MAIN)) == before
    last = agent.status.last_repair
    assert last is not None and "eth1: its lease's routes back in main" in last.changes[0]
    assert agent.reconcile("nothing", 0.0) is None


def test_no_lease_routes_put_back_for_an_address_the_lease_does_not_give(
    tmp_path: Path,
) -> None:
    """The same flap, but eth1's address is no longer the one in the client's lease (an
    admin changed it): the agent does not invent routes for it from that lease."""
    agent, backend = _agent_addressed_eth1(tmp_path)
    backend.remove_address(Address("eth1", ipaddress.ip_interface("192.168.0.112/24")))
    backend.add_address(
        Address("eth1", ipaddress.ip_interface("192.168.0.113/24")), prefix_route=False
    )
    backend.set_link_down("eth1")
    backend.set_link_up("eth1")
    agent.reconcile("link new eth1 up", 0.0)
    assert not [r for r in backend.state.routes_in(TABLE_MAIN) if r.ifname == "eth1"]


def test_a_restarted_agent_puts_back_the_static_routes_an_earlier_one_configured(
    tmp_path: Path,
) -> None:
    """An agent configures the DHCP-disabled eth2 from the metadata (``noprefixroute``,
    its routes ``proto static`` in main) and stops; eth2 flaps while a new agent, which has
    no metadata (a sole port without routes cannot reach the metadata service), starts:
    the new agent puts eth2's routes back into main from what the first one recorded in the
    namespace's folder. A port with another MAC under that name gets nothing from it."""
    first, backend = make_agent(tmp_path, howto_host(), source="openstack")
    first.metadata = _metadata("192.168.0.130")
    first.reconcile("start", 0.0)
    backend.add_link(link("eth2", 4))
    first.reconcile("link new eth2 up", 0.0)
    static = {r for r in backend.state.routes_in(TABLE_MAIN) if r.ifname == "eth2"}
    assert static and all(r.proto == PROTO_STATIC for r in static)
    record = first._state_dir().file("static.eth2.json")  # as every file of the folder: 0600
    assert stat.S_IMODE(os.stat(record).st_mode) == 0o600
    backend.set_link_down("eth2")
    backend.set_link_up("eth2")
    assert not [r for r in backend.state.routes_in(TABLE_MAIN) if r.ifname == "eth2"]
    second = Agent(backend, Config, tmp_path, AgentOptions(source="kernel", dhcp=False))
    second.reconcile("start", 0.0)
    assert {r for r in backend.state.routes_in(TABLE_MAIN) if r.ifname == "eth2"} == static
    assert converged(backend, ("eth0", "eth1", "eth2"))

    backend.remove_link("eth2")
    backend.add_link(link("eth2", 5, mac="52:54:00:00:00:99"))
    backend.add_address(
        Address("eth2", ipaddress.ip_interface("192.168.0.130/24")), prefix_route=False
    )
    third = Agent(backend, Config, tmp_path, AgentOptions(source="kernel", dhcp=False))
    third.reconcile("start", 0.0)
    assert not [r for r in backend.state.routes_in(TABLE_MAIN) if r.ifname == "eth2"]


class Scripted(EventSource):
    """One route event, then a stop; at each wait the collector's state is noted (and at the
    first, containers are made that live on, as a repair's decodings do)."""

    def __init__(self) -> None:
        super().__init__()
        self.agent: Agent | None = None
        self.seen: list[tuple[bool, int, int]] = []
        self.kept: list[list[int]] = []

    def start(self, timeout: float = 10.0) -> None:
        return None

    def wait(self, timeout: float | None) -> Event | None:
        self.seen.append((gc.isenabled(), gc.get_freeze_count(), gc.get_count()[0]))
        if len(self.seen) == 1:
            self.kept = [[n] for n in range(5 * IDLE_COLLECT)]
            return Event("route", "new", detail="default table 254", at=time.monotonic())
        assert self.agent is not None
        self.agent.request_stop()
        return None

    def burst(self, first: Event, quiet: float, limit: float) -> list[Event]:
        return [first]

    def pending(self) -> int:
        return 0


def test_the_garbage_collector_runs_between_repairs_not_in_them(tmp_path: Path) -> None:
    """After the start the agent freezes what it made (never scanned again) and turns the
    automatic collector off: it collects itself while no event waits, once enough was
    allocated, never in the middle of a repair. Stopped, it leaves the collector as it was."""
    events = Scripted()
    agent = Agent(
        FakeBackend(howto_host()),
        Config,
        tmp_path,
        AgentOptions(source="kernel", dhcp=False),
        events,
    )
    events.agent = agent
    handlers = {
        s: signal.getsignal(s)
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)
    }
    try:
        agent.run()
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
    (enabled, frozen, _), (_, _, allocated) = events.seen
    assert not enabled and frozen > 0
    assert allocated < IDLE_COLLECT, events.seen  # collected before waiting again
    assert len(events.kept) == 5 * IDLE_COLLECT
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_the_static_records_of_ports_gone_are_removed_and_nothing_else(tmp_path: Path) -> None:
    """`_forget_static` (a hot-plug's or detach's repair) keeps the records of the ports
    that remain, removes those of ports gone, and leaves every other file of the folder."""
    from multihome.agent.service import _forget_static

    folder = run_dir(tmp_path, create=True)
    for name in ("static.eth1.json", "static.eth2.json", "static.json", "dhclient.eth2.leases"):
        (folder / name).write_text("{}")
    assert _forget_static(folder, {"eth0", "eth1"}) == {"eth1"}
    left = sorted(p.name for p in folder.iterdir() if p.name.endswith((".json", ".leases")))
    assert "static.eth2.json" not in left
    assert {"static.eth1.json", "static.json", "dhclient.eth2.leases"} <= set(left)


class Halfway(FakeBackend):
    """The twin answering the route lookups from ``misrouted`` sources through eth0, as the
    kernel does for a hot-plugged port on eth0's subnet that has its address and not yet its
    DHCP default (isolated, no table: main's first subnet route is eth0's)."""

    misrouted: frozenset[IPAddress] = frozenset()

    def lookup(
        self, dst: IPAddress, src: IPAddress | None = None, oif: str | None = None
    ) -> Lookup | None:
        found = super().lookup(dst, src, oif)
        if found is None or src not in self.misrouted:
            return found
        return replace(found, ifname="eth0")


ETH2 = ipaddress.ip_interface("192.168.0.120/24")


def _halfway_hotplug(tmp_path: Path) -> tuple[Agent, Halfway]:
    """The agent after its repair of eth2's address alone: eth2's on-link check failed."""
    backend = Halfway(howto_host())
    agent = Agent(backend, Config, tmp_path, AgentOptions(source="kernel", dhcp=False))
    agent.reconcile("start", 0.0)
    backend.misrouted = frozenset({ETH2.ip})
    backend.add_link(link("eth2", 4))
    backend.add_address(Address("eth2", ETH2))
    assert agent.reconcile("addr new 192.168.0.120/24 dev eth2", 0.0) is not None
    repair = agent.status.last_repair
    assert repair is not None and repair.verified == "6/7", repair
    return agent, backend


def test_a_failed_check_is_checked_again_before_it_is_an_error(tmp_path: Path) -> None:
    """A check that fails after a repair is not counted yet: it is checked again after
    RECHECK_DELAY (the loop's timer), with no event. The port's default came meanwhile
    and nothing is left to change: the re-check verifies again (no announcement), passes,
    and no error is counted; the timer is off again."""
    agent, backend = _halfway_hotplug(tmp_path)
    assert agent.status.errors == 0 and agent.status.last_error is None
    due = agent.timers.recheck_at
    assert due is not None and agent.timers.next() == due
    assert not agent._timer_due(due - RECHECK_DELAY / 2) and agent._timer_due(due)
    backend.misrouted = frozenset()  # the transient is over (and eth2's default is seen)
    announced, lookups = len(backend.announced), backend.route_lookups
    agent.timers.recheck_at = time.monotonic()  # as the timer fires
    assert agent.reconcile("re-check", 0.0) is None  # nothing to change
    assert backend.route_lookups > lookups and len(backend.announced) == announced
    assert agent.status.errors == 0 and agent.status.last_error is None
    assert agent.timers.recheck_at is None and not agent.proof.suspects
    assert agent.status.last_repair is not None and agent.status.last_repair.verified == "7/7"


def test_a_failed_check_that_a_repair_proves_is_no_error(tmp_path: Path) -> None:
    """The next event comes before the re-check is due (the port's DHCP default, 18 ms
    later in the benchmark): its repair's verification passes, which ends the matter."""
    agent, backend = _halfway_hotplug(tmp_path)
    backend.misrouted = frozenset()
    backend.apply([Change("add", dhcp_default("eth2", ETH2.ip, 102))])
    assert agent.reconcile("route new default table 254 dev eth2", 0.0) is not None
    assert converged(backend, ("eth0", "eth1", "eth2"))
    assert agent.status.errors == 0 and agent.status.last_error is None
    assert agent.timers.recheck_at is None and not agent.proof.suspects


def test_a_failed_check_that_persists_is_one_error(tmp_path: Path) -> None:
    """Still failing at the re-check: one error, its details in ``last_error``; then
    nothing is checked again until a repair (no timer, no lookups)."""
    agent, backend = _halfway_hotplug(tmp_path)
    assert agent.timers.recheck_at is not None
    # RECHECK_DELAY later, in the agent's clock:
    agent.proof.suspects = {
        key: replace(suspect, since=suspect.since - RECHECK_DELAY)
        for key, suspect in agent.proof.suspects.items()
    }
    agent.timers.recheck_at = time.monotonic()
    assert agent.reconcile("re-check", 0.0) is None
    assert agent.status.errors == 1
    error = agent.status.last_error
    assert error is not None
    assert "after addr new 192.168.0.120/24 dev eth2: verification: eth2 192.168.0.120 " in error
    assert "on-link: expected dev eth2, got dev eth0 (still failing 1.0 s later)" in error
    assert agent.timers.recheck_at is None and not agent.proof.suspects
    lookups = backend.route_lookups
    assert agent.reconcile("nothing", 0.0) is None
    assert backend.route_lookups == lookups and agent.status.errors == 1


def test_a_failed_check_no_longer_asked_ends_its_recheck(tmp_path: Path) -> None:
    """Every port goes down before the re-check (a host-side outage of the vNICs): the
    re-check's verification asks nothing. The suspect is not asked any more, so it is no
    error, and its timer is off: a timer left due would wake the loop at once, again and
    again (a full read and plan each time, the CPU at 100%, for the whole outage)."""
    agent, backend = _halfway_hotplug(tmp_path)
    for port in ("eth0", "eth1", "eth2"):
        backend.set_link_down(port)
    agent.timers.recheck_at = time.monotonic()  # as the timer fires
    agent.reconcile("re-check", 0.0)
    assert agent.status.errors == 0 and agent.status.last_error is None
    assert agent.timers.recheck_at is None and not agent.proof.suspects
    assert not agent._timer_due(time.monotonic() + 3600)


def test_no_timer_wakes_the_loop_during_a_hold(tmp_path: Path) -> None:
    """During a hold (a fight with another tool) the loop handles no timer, so none may
    wake it before the hold ends (a due one would, at once, again and again); the watchdog
    is still fed in time."""
    agent = Agent(FakeBackend(howto_host()), Config, tmp_path, AgentOptions(source="kernel"))
    now = time.monotonic()
    timers = agent.timers
    timers.recheck_at, timers.retry_at, timers.dhcp["eth1"] = now - 1, now - 2, now - 3
    timers.hold_until = now + 10
    assert timers.next() == now + 10
    timers.watchdog_at = now + 4
    assert timers.next() == now + 4
    timers.hold_until = None
    assert timers.next() == now - 3


class LateHotplug(FakeBackend):
    """The twin where eth2 is plugged in (address, DHCP default) just after the agent's
    read, its link event queued for the agent as the reader thread does."""

    events: EventSource | None = None

    def read(self) -> HostState:
        state = super().read()
        self.plug()
        return state

    def plug(self) -> None:
        """eth2 plugged in now, once ``events`` is set."""
        if self.events is not None:
            events, self.events = self.events, None
            self.add_link(link("eth2", 4))
            self.add_address(Address("eth2", ETH2))
            self.apply([Change("add", dhcp_default("eth2", ETH2.ip, 102))])
            events._queue.put(Event("link", "new", 4, "eth2", "up", time.monotonic()))


def late_hotplug(tmp_path: Path) -> tuple[Agent, LateHotplug, EventSource]:
    """An agent on :class:`LateHotplug` after its start, with a DHCP default put back into
    main (to repair), and its event source (no reader thread: the twin queues the event)."""
    events = EventSource()
    backend = LateHotplug(howto_host())
    agent = Agent(backend, Config, tmp_path, AgentOptions(source="kernel", dhcp=False), events)
    agent.reconcile("start", 0.0)
    backend.apply([Change("add", dhcp_default("eth1", ETH1, 101))])
    return agent, backend, events


def test_events_that_come_while_a_repair_plans_are_planned_with_it(tmp_path: Path) -> None:
    """A DHCP default put back into main is being repaired when eth2 is plugged in: its
    event, queued while the repair read and planned, is taken into the same repair before
    its first change (read and planned again, once): one repair moves eth1's default and
    gives eth2 its table, and nothing is left queued or to do."""
    agent, backend, events = late_hotplug(tmp_path)
    backend.events = events
    repairs = agent.status.repairs
    assert agent.reconcile("route new default table 254 dev eth1", 0.0) is not None
    assert backend.events is None and events.pending() == 0
    assert agent.status.repairs == repairs + 1 and agent.status.events == 1
    assert converged(backend, ("eth0", "eth1", "eth2"))
    assert "eth2" in agent.hotplugged
    assert agent.reconcile("nothing", 0.0) is None


def test_events_that_come_while_a_repair_reads_are_taken_before_its_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events queued while the repair took the lock and read (eth2 plugged in) are taken
    before the policy is computed: the policy runs once, for the read that has them, not
    once for the out-of-date read and again for the new one; the repair is the same."""
    agent, backend, events = late_hotplug(tmp_path)
    backend.events = events
    computed: list[HostState] = []
    policy = Assessment.of

    def counted(state: HostState, *args: Any, **kwargs: Any) -> Assessment:
        computed.append(state)
        return policy(state, *args, **kwargs)

    monkeypatch.setattr(Assessment, "of", counted)
    assert agent.reconcile("route new default table 254 dev eth1", 0.0) is not None
    assert len(computed) == 1 and computed[0].link("eth2") is not None
    assert converged(backend, ("eth0", "eth1", "eth2"))


def test_a_pass_that_plans_again_finds_the_owned_rules_once_per_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """eth2 is plugged in while the repair computes its policy: the pass reads and plans
    again with its event, and the policy, the plan and the checkpoint of each read share
    one search for the owned rules and routes (kept for the pass's config object): two
    searches for two reads, not a third for the checkpoint; the repair is the same."""
    agent, backend, events = late_hotplug(tmp_path)
    facts = agent._facts
    plugged: list[EventSource] = [events]

    def plugged_while_planning(state: HostState) -> PortFacts:
        if plugged:
            backend.events = plugged.pop()
            backend.plug()
        return facts(state)

    monkeypatch.setattr(agent, "_facts", plugged_while_planning)
    searches: list[object] = []
    elsewhere = policy._elsewhere

    def counted(*args: Any) -> Any:
        searches.append(args)
        return elsewhere(*args)

    monkeypatch.setattr(policy, "_elsewhere", counted)
    assert agent.reconcile("route new default table 254 dev eth1", 0.0) is not None
    assert len(searches) == 2
    assert converged(backend, ("eth0", "eth1", "eth2"))
    assert events.pending() == 0


def test_the_claimed_config_is_one_object_until_the_configuration_is_loaded_again(
    tmp_path: Path,
) -> None:
    """Once the band is claimed every pass sees one Config object (the owned rules and
    routes found for a read are kept for it, by identity), not a new one per call; a
    configuration loaded again (a reload) is the one seen from then on."""
    agent, _backend = started(tmp_path)
    assert agent.claimed
    seen = agent._config()
    assert seen.band_claimed and agent._config() is seen
    agent.config = replace(Config(), probe=ipaddress.ip_address("192.0.2.7"))
    now = agent._config()
    assert now.band_claimed and now.probe == ipaddress.ip_address("192.0.2.7")
    assert agent._config() is now


class Quiet(EventSource):
    """An event source with nothing to wait for: ``wait`` returns at once, with no event."""

    def wait(self, timeout: float | None) -> Event | None:
        return None


def test_the_scan_for_dhclient_processes_is_made_while_idle_not_in_the_repair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The /proc scan for other tools' dhclient processes, due every 2 s, is made when the
    agent waits with no event queued and it is due within SCAN_AHEAD, so that the next
    repair reads the leases without it; a repair still scans when the scan is due then (no
    idle moment since), and the lease files the idle scan found are the ones it reads."""
    lease = tmp_path / "other.leases"
    scans: list[float] = []

    def scanned() -> list[Path]:
        scans.append(time.monotonic())
        return [lease]

    monkeypatch.setattr(leases, "dhclient_lease_files", scanned)
    agent, backend = make_agent(tmp_path, howto_host())
    agent.events = Quiet()
    agent.reconcile("start", 0.0)
    assert len(scans) == 1

    def aged(seconds: float) -> None:
        """The last scan made ``seconds`` ago."""
        assert agent.leases._procs is not None
        agent.leases._procs = (time.monotonic() - seconds, [])

    def repaired() -> None:
        backend.apply([Change("add", dhcp_default("eth1", ETH1, 101))])
        assert agent.reconcile("route new default table 254 dev eth1", 0.0) is not None
        assert converged(backend)

    aged(2.0 - SCAN_AHEAD - 0.5)
    assert agent._wait() == [] and len(scans) == 1  # not due within SCAN_AHEAD
    aged(2.0 - SCAN_AHEAD + 0.2)
    assert agent._wait() == [] and len(scans) == 2  # due soon, idle: scanned now
    repaired()
    assert len(scans) == 2 and agent.leases._procs is not None
    assert agent.leases._procs[1] == [lease]
    aged(2.0 - SCAN_AHEAD + 0.2)
    repaired()
    assert len(scans) == 2  # due soon, not yet: the repair does not scan
    aged(2.5)
    repaired()
    assert len(scans) == 3  # due at the repair, with no idle moment before it


def test_the_readers_error_stays_queued_for_the_loop() -> None:
    """The reader thread's error (its last item: it stopped) is never swallowed: ``take``
    (inside a repair) returns the events before it and leaves it, and every ``wait`` raises
    it, so the agent's loop stops rather than wait forever on a reader that is gone."""
    source = EventSource()
    event = Event("route", "new", detail="default table 254", at=time.monotonic())
    source._queue.put(event)
    source._queue.put(OSError(5, "Input/output error"))
    assert source.take() == [event]
    for _ in range(2):
        with pytest.raises(OSError, match="Input/output error"):
            source.wait(0)
    assert source.take() == []
