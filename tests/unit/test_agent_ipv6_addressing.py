"""The agent addressing a hot-plugged port's IPv6 from the metadata, on the in-memory backend:
a DHCP-disabled IPv6 network (``ipv6``) configured from ``network_data.json`` (and refused for
another port's address, the subnet-router anycast address or an address outside any global
prefix, logged once), a DHCPv6-stateful one given a ``dhclient -6`` once its link-local address
passed DAD (and no DHCPv4 client for an IPv6-only port), a SLAAC one only brought up."""

from __future__ import annotations

import ipaddress
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hosts import howto_host, link

from multihome.agent import addressing
from multihome.agent.service import Agent, AgentOptions
from multihome.backend.fake import FakeBackend
from multihome.config import Config
from multihome.model import SCOPE_LINK, TABLE_MAIN, Address
from multihome.source.network_data import MetaData, parse_network_data
from multihome.source.ports import STATIC_METRIC_BASE6
from multihome.source.readers import Metadata

MAC = "52:54:00:00:00:04"  # eth2 of hosts.link("eth2", 4)
LINK_LOCAL = Address("eth2", ipaddress.ip_interface("fe80::5054:ff:fe00:4/64"), SCOPE_LINK)


def _metadata(kind: str, ip: str = "2001:db8:3::82") -> Metadata:
    """Nova's network_data.json for one port on an IPv6 subnet of type ``kind``."""
    doc = {
        "links": [{"id": "tap2", "type": "ovs", "ethernet_mac_address": MAC, "vif_id": "port-2"}],
        "networks": [
            {
                "id": "network2",
                "type": kind,
                "link": "tap2",
                "ip_address": ip,
                "netmask": "ffff:ffff:ffff:ffff::",
                "network_id": "net-6",
                "routes": [{"network": "::", "netmask": "::", "gateway": "2001:db8:3::1"}],
                "services": [],
            }
        ],
        "services": [],
    }
    network = parse_network_data(json.dumps(doc).encode(), "test")
    return Metadata(network, MetaData(uuid="0000", name="vm1"), "config drive (test)")


def _agent(tmp_path: Path, kind: str, ip: str = "2001:db8:3::82", **options: Any) -> Agent:
    backend = FakeBackend(howto_host())
    agent = Agent(backend, Config, tmp_path, AgentOptions(source="openstack", **options))
    agent.metadata = _metadata(kind, ip)
    agent.reconcile("start", 0.0)
    return agent


def _fake(agent: Agent) -> FakeBackend:
    assert isinstance(agent.backend, FakeBackend)
    return agent.backend


def test_a_static_ipv6_port_gets_address_routes_and_its_table(tmp_path: Path) -> None:
    """``ipv6``: the hot-plugged eth2 gets the metadata's address, its prefix and default in
    main with the IPv6 static metric (above the other ports' RA defaults), and its own table
    with that default and a family-6 ``from`` rule; the repair says so; an IPv6-only port
    gets no DHCPv4 client (nothing to start: the option is off here anyway)."""
    agent = _agent(tmp_path, "ipv6", dhcp=False)
    backend = _fake(agent)
    backend.add_link(link("eth2", 4, mac=MAC))
    plan = agent.reconcile("link new eth2 up", 0.0)
    assert plan is not None
    state = backend.read()
    assert [str(a.interface) for a in state.addresses_of("eth2", 6)] == ["2001:db8:3::82/64"]
    main = sorted(r.describe() for r in state.routes_in(TABLE_MAIN) if r.ifname == "eth2")
    metric = STATIC_METRIC_BASE6 + 4
    assert main == sorted(
        [
            f"2001:db8:3::/64 dev eth2 table main proto static metric {metric}",
            f"default via 2001:db8:3::1 dev eth2 table main proto static metric {metric}",
        ]
    )
    tables = {r.table for r in state.rules if r.oifname == "eth2"}
    assert len(tables) == 1
    table = tables.pop()
    assert any(r.is_default and str(r.gateway) == "2001:db8:3::1" for r in state.routes_in(table))
    assert any(str(r.src) == "2001:db8:3::82/128" and r.table == table for r in state.rules)
    assert agent.status.configured6["eth2"] == "static IPv6 from config drive (test)"
    assert agent.status.last_repair is not None
    assert any("static 2001:db8:3::82/64" in c for c in agent.status.last_repair.changes)
    # The port has its address now: nothing more is done for it.
    assert agent.reconcile("addr new", 0.0) is None


@pytest.mark.parametrize(
    ("ip", "why"),
    [
        ("2001:db8:3::70", "2001:db8:3::70 is eth1's address"),
        ("2001:db8:3::", "is the subnet-router anycast address of 2001:db8:3::/64"),
        ("fe80::82", "is a link-local address, outside any global prefix"),
    ],
)
def test_a_refused_static_ipv6_address_leaves_the_port_bare(
    tmp_path: Path, ip: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Another port's IPv6 address, the subnet-router anycast address and a link-local one
    are refused: eth2 stays without IPv6 address and table, the log says why once, and
    ``configured6`` holds the refusal."""
    agent = _agent(tmp_path, "ipv6", ip, dhcp=False)
    backend = _fake(agent)
    backend.add_address(Address("eth1", ipaddress.ip_interface("2001:db8:3::70/64")))
    backend.add_link(link("eth2", 4, mac=MAC))
    agent.reconcile("link new eth2 up", 0.0)
    agent.reconcile("addr new", 0.0)
    assert backend.read().addresses_of("eth2") == ()
    assert not [r for r in backend.read().rules if r.oifname == "eth2"]
    refusals = [r.getMessage() for r in caplog.records if "metadata refused" in r.getMessage()]
    assert len(refusals) == 1 and why in refusals[0], refusals
    assert agent.status.configured6["eth2"].startswith("refused: ")


class _Client:
    """What the agent keeps of a started DHCP client (no process)."""

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self.pid = 4242

    def running(self) -> bool:
        return True

    def stop(self) -> None:
        pass


def test_a_dhcpv6_port_gets_dhclient_6_after_dad_and_no_dhcpv4_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ipv6_dhcpv6-stateful``: the hot-plugged eth2 (down) is brought up after the grace
    period; its DHCPv6 client starts only once its link-local address has passed DAD (the
    client binds to it); nothing starts a DHCPv4 client for the IPv6-only port; once the
    lease's address went again (a flap), the client starts again, once; the client stops
    when the port goes."""
    started: list[tuple[str, int]] = []

    def start(ifname: str, root: Path, family: int = 4) -> _Client:
        started.append((ifname, family))
        return _Client(ifname)

    monkeypatch.setattr(addressing, "start_dhclient", start)
    monkeypatch.setattr(addressing, "dhclient_available", lambda: "/sbin/dhclient")
    monkeypatch.setattr(addressing, "manager_of", lambda *args, **kwargs: None)
    agent = _agent(tmp_path, "ipv6_dhcpv6-stateful", grace=0.0)
    backend = _fake(agent)
    backend.add_link(link("eth2", 4, up=False, mac=MAC))
    agent.hotplugged.add("eth2")
    agent.reconcile("link new eth2", 0.0)
    eth2 = backend.read().link("eth2")
    assert eth2 is not None and eth2.up
    assert started == []  # no link-local address past DAD yet
    backend.add_address(LINK_LOCAL)
    agent.reconcile("addr new fe80::5054:ff:fe00:4 dev eth2", 0.0)
    assert started == [("eth2", 6)]
    assert agent.status.configured6["eth2"] == "dhcpv6 (dhclient -6 pid 4242)"
    assert "eth2" not in agent.status.configured
    # The lease's address comes (the hook adds it), then goes (a flap flushes IPv6
    # addresses): the client starts again to ask for its lease; not before it had bound.
    lease = Address("eth2", ipaddress.ip_interface("2001:db8:3::82/128"))
    backend.add_address(lease)
    agent.reconcile("addr new 2001:db8:3::82 dev eth2", 0.0)
    assert started == [("eth2", 6)]
    backend.remove_address(lease)
    agent.reconcile("addr del 2001:db8:3::82 dev eth2", 0.0)
    assert started == [("eth2", 6), ("eth2", 6)]
    agent.reconcile("nothing new", 0.0)
    assert len(started) == 2  # asked again once, until the address is back
    backend.remove_link("eth2")
    agent.reconcile("link del eth2", 0.0)
    assert agent.dhcp6.clients == {} and "eth2" not in agent.status.configured6


def _lease6(starts: int, max_life: int) -> str:
    """A lease block as dhclient 4.4 writes it (the real one's, seen here)."""
    return (
        f'lease6 {{\n  interface "eth2";\n  ia-na 3e:00:00:0b {{\n    starts {starts};\n'
        f"    renew 60;\n    rebind 105;\n    iaaddr 2001:db8:3::82 {{\n      starts {starts};\n"
        f"      preferred-life {max_life};\n      max-life {max_life};\n    }}\n  }}\n}}\n"
    )


def test_an_expired_dhcpv6_lease_is_left_to_its_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lease's address went with the lease (its client's EXPIRE6, or the kernel at the
    end of its valid lifetime): the newest lease in the client's lease file is over (or the
    server gave it a lifetime of 0), so the agent does not restart the client, which
    solicits a new lease by itself; the policy drops the address's rule. A lease that is
    still valid (a flap flushed the address) restarts it, as before."""
    started: list[tuple[str, int]] = []

    def start(ifname: str, root: Path, family: int = 4) -> _Client:
        started.append((ifname, family))
        return _Client(ifname)

    monkeypatch.setattr(addressing, "start_dhclient", start)
    monkeypatch.setattr(addressing, "dhclient_available", lambda: "/sbin/dhclient")
    monkeypatch.setattr(addressing, "manager_of", lambda *args, **kwargs: None)
    agent = _agent(tmp_path, "ipv6_dhcpv6-stateful", grace=0.0)
    backend = _fake(agent)
    backend.add_link(link("eth2", 4, up=True, mac=MAC))
    backend.add_address(LINK_LOCAL)
    agent.reconcile("link new eth2", 0.0)
    assert started == [("eth2", 6)]
    leases = addressing.lease_file("eth2", tmp_path, 6)
    lease = Address("eth2", ipaddress.ip_interface("2001:db8:3::82/128"))
    now = int(time.time())
    for text, restarts in (
        (_lease6(now - 200, 120) + _lease6(now - 130, 120), 0),  # the newest ran out
        (_lease6(now - 10, 120) + _lease6(now, 0), 0),  # lifetime 0: no longer leased
        (_lease6(now - 10, 120), 1),  # still valid: the address went in a flap
    ):
        leases.write_text(text)
        backend.add_address(lease)
        agent.reconcile("addr new 2001:db8:3::82 dev eth2", 0.0)
        backend.remove_address(lease)
        before = len(started)
        agent.reconcile("addr del 2001:db8:3::82 dev eth2", 0.0)
        assert len(started) - before == restarts, text
    assert addressing.lease6_over("eth9", tmp_path, now) is False  # no lease file


def test_a_slaac_port_is_only_brought_up(tmp_path: Path) -> None:
    """``ipv6_slaac`` (and ``ipv6_dhcpv6-stateless``): the hot-plugged eth2 comes up, so that
    the router's advertisements address it; no address is added, no client started."""
    agent = _agent(tmp_path, "ipv6_dhcpv6-stateless", dhcp=False)
    backend = _fake(agent)
    backend.add_link(link("eth2", 4, up=False, mac=MAC))
    agent.hotplugged.add("eth2")
    agent.reconcile("link new eth2", 0.0)
    eth2 = backend.read().link("eth2")
    assert eth2 is not None and eth2.up
    assert backend.read().addresses_of("eth2") == ()
    assert agent.status.configured6["eth2"] == "slaac"
    assert agent.dhcp6.clients == {}
