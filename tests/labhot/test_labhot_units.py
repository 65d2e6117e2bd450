"""Pure tests of the live-lab verbs' decisions and texts, and of the policy fix the lab's flap
test found (no root, no namespaces)."""

from __future__ import annotations

import ipaddress
import itertools
import json
from dataclasses import replace
from pathlib import Path

import pytest

from multihome.backend.fake import FakeBackend
from multihome.config import Config
from multihome.engine import apply_plan, assess
from multihome.errors import InputError
from multihome.lab import topology as topo
from multihome.lab.hotplug import PortRequest, plan_port
from multihome.lab.scenario import GuestPort, load_scenario
from multihome.model import (
    PROTO_DHCP,
    PROTO_KERNEL,
    PROTO_MULTIHOME,
    SCOPE_LINK,
    TABLE_MAIN,
    Address,
    HostState,
    Link,
    Route,
    Rule,
)
from multihome.policy import compute_policy

IP = ipaddress.IPv4Address


def counting(start: int = 1) -> object:
    """Deterministic "random" bytes for MACs: 00:00:01, 00:00:02, ..."""
    numbers = itertools.count(start)
    return lambda size: next(numbers).to_bytes(size, "big")


def test_plan_port_takes_the_next_name_a_free_address_and_floating_ip() -> None:
    """eth2 after eth0/eth1, metric 102, the first free address from .10, the floating IP
    with the same last byte, a Neutron MAC, DHCP, hot-plugged."""
    scenario = load_scenario("4")
    port = plan_port(scenario, PortRequest(floating_ip="auto"), random_bytes=counting())
    assert (port.name, port.network, port.metric) == ("eth2", "private", 102)
    assert port.ips == (IP("192.168.0.10"),)
    assert port.floating_ips == {IP("192.168.0.10"): IP("203.0.113.10")}
    assert port.mac == "fa:16:3e:00:00:01"
    assert port.dhcp and port.hotplugged
    taken = plan_port(scenario, PortRequest(), taken={"eth2"}, random_bytes=counting())
    assert taken.name == "eth3" and taken.floating_ips == {}
    static = plan_port(scenario, PortRequest(dhcp=False, ip="192.168.0.200"))
    assert static.ips == (IP("192.168.0.200"),) and not static.dhcp


def test_plan_port_never_reuses_a_mac_name_address_or_floating_ip() -> None:
    """A MAC already in the lab is drawn again; a detached eth1 frees its name."""
    scenario = load_scenario("4")
    eth0 = scenario.ports[0]
    draws = iter([bytes.fromhex(eth0.mac[-8:].replace(":", "")), b"\x01\x02\x03"])
    port = plan_port(scenario, PortRequest(), random_bytes=lambda _size: next(draws))
    assert port.mac == "fa:16:3e:01:02:03"
    without_eth1 = scenario.with_ports((eth0,))
    again = plan_port(without_eth1, PortRequest(ip="192.168.0.112", floating_ip="auto"))
    assert again.name == "eth1" and again.floating_ips == {IP("192.168.0.112"): IP("203.0.113.112")}


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (PortRequest(network="nope"), "--network nope: no such network"),
        (PortRequest(ip="192.168.0.107"), "already used by eth0"),
        (PortRequest(ip="192.168.0.1"), "already used by the router (gateway)"),
        (PortRequest(ip="192.168.0.100"), "already used by the DHCP port"),
        (PortRequest(ip="192.168.0.255"), "not a host address"),
        (PortRequest(ip="10.0.0.1"), "not a host address of network private"),
        (PortRequest(ip="x"), "--ip x: not an IPv4 address"),
        (PortRequest(floating_ip="203.0.113.107"), "already eth0's floating IP"),
        (PortRequest(floating_ip="203.0.113.2"), "the router's SNAT address"),
        (PortRequest(floating_ip="198.51.100.9"), "come from 203.0.113.0/24"),
        (PortRequest(floating_ip="203.0.113.0"), "come from 203.0.113.0/24"),
        (PortRequest(floating_ip="bad"), "not an IPv4 address"),
    ],
)
def test_plan_port_refuses_bad_requests(request_: PortRequest, message: str) -> None:
    """Every bad request is an InputError (exit 2) that names the option and the fix."""
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plan_port(load_scenario("4"), request_)


def test_plan_port_on_networks_without_router_or_behind_none() -> None:
    """Scenario 2: no floating IP on the gateway-less or the external network; a port
    attached to the DHCP-less network is static."""
    scenario = load_scenario("2")
    with pytest.raises(InputError, match="has no router"):
        plan_port(scenario, PortRequest(network="isolated", floating_ip="auto"))
    with pytest.raises(InputError, match="is external"):
        plan_port(scenario, PortRequest(floating_ip="auto"))
    port = plan_port(scenario, PortRequest(network="isolated"))
    assert port.ips == (IP("192.168.10.10"),) and not port.dhcp


def test_port_json_round_trip() -> None:
    """The lab's port list is stored as JSON and read back unchanged."""
    scenario = load_scenario("5")
    port = replace(plan_port(scenario, PortRequest(floating_ip="auto")), router=IP("192.168.0.254"))
    for each in (*scenario.ports, port):
        assert GuestPort.from_json(json.loads(json.dumps(each.to_json()))) == each


def test_port_security_add_and_remove_name_the_same_objects() -> None:
    """What render_portsec_add creates, render_portsec_remove deletes: chain, set, four
    counters and the verdict-map element; the full ruleset renders a port the same way."""
    scenario = load_scenario("4")
    port = plan_port(scenario, PortRequest(), random_bytes=counting())
    added = topo.render_portsec_add(port)
    removed = topo.render_portsec_remove(port)
    assert 'add element bridge portsec ports { "tap2" : jump port_eth2 }' in added
    assert f"192.168.0.10 . {port.mac}" in added
    assert 'delete element bridge portsec ports { "tap2" }' in removed
    for name in ("chain bridge portsec port_eth2", "set bridge portsec eth2_allowed"):
        assert f"delete {name}" in removed
    for reason in topo.DROP_REASONS:
        assert f"counter eth2_{reason} {{ }}" in added
        assert f"delete counter bridge portsec eth2_{reason}" in removed
    full = topo.render_portsec(scenario.with_ports((*scenario.ports, port)))
    block = added.split("table bridge portsec {\n", 1)[1].split("\n}\n", 1)[0]
    assert block in full


def test_nat_add_and_remove_both_directions() -> None:
    """A floating IP is one element in each NAT map; no floating IP, no nft script."""
    scenario = load_scenario("4")
    port = plan_port(scenario, PortRequest(ip="192.168.0.120", floating_ip="203.0.113.120"))
    assert topo.render_nat_add(port) == (
        "add element ip nat floating_dnat { 203.0.113.120 : 192.168.0.120 }\n"
        "add element ip nat floating_snat { 192.168.0.120 : 203.0.113.120 }\n"
    )
    assert topo.render_nat_remove(port) == (
        "delete element ip nat floating_dnat { 203.0.113.120 }\n"
        "delete element ip nat floating_snat { 192.168.0.120 }\n"
    )
    assert topo.render_nat_add(plan_port(scenario, PortRequest())) == ""
    assert "floating_dnat {\n\t\ttype ipv4_addr : ipv4_addr\n\t}" in topo.render_router_nat(
        load_scenario("2")
    )  # no floating IP at all: empty maps


def test_dhcp_hosts_opts_and_metadata_follow_the_ports() -> None:
    """A --no-dhcp port is not a DHCP host and is "ipv4" in network_data.json; a port's own
    router is sent with its tag (router option, 121 and 249); hot-plugged ports get no lab
    DHCP client."""
    scenario = load_scenario("4")
    static = plan_port(scenario, PortRequest(ip="192.168.0.130", dhcp=False))
    eth1 = replace(scenario.ports[1], router=IP("192.168.0.254"))
    live = scenario.with_ports((scenario.ports[0], eth1, static))
    assert "192.168.0.130" not in topo.dhcp_hosts(live)
    assert f"{eth1.mac},set:eth1,192.168.0.112" in topo.dhcp_hosts(live)
    routes = "169.254.169.254/32,192.168.0.100,0.0.0.0/0,192.168.0.254"
    assert topo.dhcp_opts(live) == (
        "tag:eth1,option:router,192.168.0.254\n"
        f"tag:eth1,option:classless-static-route,{routes}\n"
        f"tag:eth1,249,{routes}\n"
    )
    networks = topo.network_data(live)["networks"]
    assert isinstance(networks, list)
    assert [(n["ip_address"], n["type"]) for n in networks] == [
        ("192.168.0.107", "ipv4_dhcp"),
        ("192.168.0.112", "ipv4_dhcp"),
        ("192.168.0.130", "ipv4"),
    ]
    assert [p.name for p in topo.lab_clients(live)] == ["eth0", "eth1"]
    hotplugged = plan_port(scenario, PortRequest())
    assert topo.lab_clients(scenario.with_ports((*scenario.ports, hotplugged))) == list(
        scenario.ports
    )
    meta = json.loads(topo.meta_data_json(topo.LabNames("lab2")))
    assert meta["name"] == "lab2-vm" and len(meta["uuid"]) == 36


# -- the policy after a link flap ---------------------------------------------------------
def _howto() -> HostState:
    """eth0 .107 (metric 100) and eth1 .112 (101) as dhclient leaves them, with the
    metadata host route per port."""
    net = ipaddress.ip_network("192.168.0.0/24")
    links = [Link("lo", 1, loopback=True, up=True)]
    addresses: list[Address] = []
    routes: list[Route] = []
    for index, (name, ip, metric) in enumerate(
        (("eth0", "192.168.0.107", 100), ("eth1", "192.168.0.112", 101)), start=2
    ):
        links.append(Link(name, index, mac=f"52:54:00:00:00:{index:02x}", kind="veth", up=True))
        addresses.append(Address(name, ipaddress.ip_interface(f"{ip}/24")))
        src = ipaddress.ip_address(ip)
        routes += [
            Route(TABLE_MAIN, net, ifname=name, proto=PROTO_KERNEL, scope=SCOPE_LINK,
                  prefsrc=src, metric=metric),
            Route(TABLE_MAIN, ipaddress.ip_network("0.0.0.0/0"), ifname=name,
                  gateway=IP("192.168.0.1"), proto=PROTO_DHCP, prefsrc=src, metric=metric),
            Route(TABLE_MAIN, ipaddress.ip_network("169.254.169.254/32"), ifname=name,
                  gateway=IP("192.168.0.100"), proto=PROTO_DHCP, prefsrc=src, metric=metric),
        ]  # fmt: skip
    rules = [Rule(family=4, priority=0, table=255, proto=2),
             Rule(family=4, priority=32766, table=254, proto=2),
             Rule(family=4, priority=32767, table=253, proto=2)]  # fmt: skip
    return HostState.build(links, addresses, routes, rules, {})


def test_after_a_flap_the_table_keeps_its_copies_while_main_lacks_the_port_routes(
    tmp_path: Path,
) -> None:
    """A link flap flushes eth1's DHCP routes from main (the client re-adds them only at its
    next renewal); with eth1's table restored (as the agent does) the policy keeps it all:
    the metadata host route and its rule stay beside the default (found by the lab's flap
    test: they used to be deleted while the default was kept)."""
    config = Config()
    backend = FakeBackend(_howto())
    apply_plan(backend, assess(backend, config).plan, root=tmp_path)
    applied = backend.read()
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
    plan = assess(FakeBackend(flapped), config).plan
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
