"""lab/topology.py: the nftables and dnsmasq texts for a port a live lab adds or removes,
and the metadata that follows the ports (pure text, no root, no namespaces)."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import replace

from multihome.lab import topology as topo
from multihome.lab.hotplug import PortRequest, plan_port
from multihome.lab.scenario import load_scenario

IP = ipaddress.IPv4Address


def test_port_security_add_and_remove_name_the_same_objects() -> None:
    """What render_portsec_add creates, render_portsec_remove deletes: chain, set, the
    counters of the port's families (an IPv4-only port: four) and the verdict-map element;
    the full ruleset renders a port the same way."""
    scenario = load_scenario("4")
    port = plan_port(scenario, PortRequest())
    added = topo.render_portsec_add(port)
    removed = topo.render_portsec_remove(port)
    assert 'add element bridge portsec ports { "tap2" : jump port_eth2 }' in added
    assert f"192.168.0.10 . {port.mac}" in added
    assert 'delete element bridge portsec ports { "tap2" }' in removed
    for name in ("chain bridge portsec port_eth2", "set bridge portsec eth2_allowed"):
        assert f"delete {name}" in removed
    assert topo.drop_reasons(port) == ("mac", "ip", "arp", "other")  # an IPv4-only port
    for reason in topo.DROP_REASONS:
        made = reason in topo.drop_reasons(port)
        assert (f"counter eth2_{reason} {{ }}" in added) == made
        assert (f"delete counter bridge portsec eth2_{reason}" in removed) == made
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


def test_hot_plugged_ipv6_ports_in_dnsmasq_and_network_data() -> None:
    """Scenario 8: a hot-plugged DHCPv6 port is a DHCPv6 host of dnsmasq and
    ``ipv6_dhcpv6-stateful`` in network_data.json (no lab client: the guest's agent runs
    one); a ``--no-dhcp`` port is neither DHCP host and ``ipv4`` + ``ipv6`` (DHCP disabled);
    an IPv6-only port has no IPv4 network at all."""
    scenario = load_scenario("8")
    dhcp = plan_port(scenario, PortRequest(ip="192.168.0.120", ip6="2001:db8:3::78"))
    static = plan_port(
        scenario.with_ports((*scenario.ports, dhcp)),
        PortRequest(ip="192.168.0.130", ip6="2001:db8:3::82", dhcp=False),
    )
    only = plan_port(
        scenario.with_ports((*scenario.ports, dhcp, static)), PortRequest(ip6="2001:db8:3::90")
    )
    live = scenario.with_ports((*scenario.ports, dhcp, static, only))
    hosts = topo.dhcp_hosts(live)
    assert f"{dhcp.mac},set:eth2,192.168.0.120,[2001:db8:3::78]\n" in hosts
    assert static.mac not in hosts
    assert f"{only.mac},set:eth4,[2001:db8:3::90]\n" in hosts
    networks = topo.network_data(live)["networks"]
    assert isinstance(networks, list)
    assert [(n["ip_address"], n["type"]) for n in networks[4:]] == [
        ("192.168.0.120", "ipv4_dhcp"),
        ("2001:db8:3::78", "ipv6_dhcpv6-stateful"),
        ("192.168.0.130", "ipv4"),
        ("2001:db8:3::82", "ipv6"),
        ("2001:db8:3::90", "ipv6_dhcpv6-stateful"),
    ]
    assert [p.name for p in topo.lab_clients6(live)] == ["eth0", "eth1"]
