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
