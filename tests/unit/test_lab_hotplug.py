"""lab/hotplug.py: the port a live lab's ``port add`` plans (name, address, floating IP,
MAC), its refusals, and the port list's JSON form (no root, no namespaces)."""

from __future__ import annotations

import ipaddress
import itertools
import json
from dataclasses import replace

import pytest

from multihome.errors import InputError
from multihome.lab.hotplug import PortRequest, plan_port
from multihome.lab.scenario import GuestPort, load_scenario

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
