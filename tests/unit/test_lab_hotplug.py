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


def test_split_ips_takes_one_fixed_ip_per_family() -> None:
    """``--ip`` once per family, in any order; a value of neither family, or two of one
    family, is bad input naming the option and the fix."""
    from multihome.lab.hotplug import split_ips

    assert split_ips(["2001:db8:3::78", "192.168.0.120"]) == ("192.168.0.120", "2001:db8:3::78")
    assert split_ips(["2001:db8:3::78"]) == (None, "2001:db8:3::78")
    assert split_ips([]) == (None, None)
    with pytest.raises(InputError, match="--ip x: not an IPv4 or IPv6 address"):
        split_ips(["x"])
    with pytest.raises(InputError, match=r"two IPv4 addresses.*at most once for IPv4"):
        split_ips(["192.168.0.120", "192.168.0.121"])
    with pytest.raises(InputError, match="--fixed-ip 2001:db8::1 and --fixed-ip 2001:db8::2"):
        split_ips(["2001:db8::1", "2001:db8::2"], "--fixed-ip")


def test_plan_port_with_an_ipv6_fixed_ip_on_the_dhcpv6_scenario() -> None:
    """Scenario 8 (DHCPv6-stateful): an IPv4 and an IPv6 fixed IP give a dual-stack port;
    the IPv6 one alone an IPv6-only port (no IPv4, no floating IP); without one the lab
    picks ``::<last byte>``; ``--no-dhcp`` keeps the address, the port then static."""
    scenario = load_scenario("8")
    both = plan_port(scenario, PortRequest(ip="192.168.0.120", ip6="2001:db8:3::99"))
    assert both.ips == (IP("192.168.0.120"),)
    assert both.ips6 == (ipaddress.IPv6Address("2001:db8:3::99"),)
    only = plan_port(scenario, PortRequest(ip6="2001:db8:3::99"))
    assert only.ips == () and [str(i) for i in only.ips6] == ["2001:db8:3::99"]
    picked = plan_port(scenario, PortRequest(ip="192.168.0.120"))
    assert [str(i) for i in picked.ips6] == ["2001:db8:3::78"]
    static = plan_port(scenario, PortRequest(ip6="2001:db8:3::99", dhcp=False))
    assert not static.dhcp and [str(i) for i in static.ips6] == ["2001:db8:3::99"]


@pytest.mark.parametrize(
    ("number", "request_", "message"),
    [
        ("4", PortRequest(ip6="2001:db8:3::99"), "network private has no IPv6 subnet"),
        ("6", PortRequest(ip6="2001:db8:1::99"), "IPv6 subnet is SLAAC"),
        ("8", PortRequest(ip6="2001:db8:3::"), "subnet-router anycast address"),
        ("8", PortRequest(ip6="2001:db8:4::1"), "not a host address of network private"),
        ("8", PortRequest(ip6="2001:db8:3::1"), "already used by the router"),
        ("8", PortRequest(ip6="2001:db8:3::2"), "already used by the DHCP port"),
        ("8", PortRequest(ip6="2001:db8:3::6b"), "already used by eth0"),
        ("8", PortRequest(ip="192.168.0.107"), "already used by eth0"),
        ("8", PortRequest(ip6="2001:db8:3::99", floating_ip="auto"), "floating IPs are IPv4"),
    ],
)
def test_plan_port_refuses_bad_ipv6_requests(
    number: str, request_: PortRequest, message: str
) -> None:
    """Every bad IPv6 fixed IP is an InputError (exit 2) that names it and the fix."""
    with pytest.raises(InputError, match=message):
        plan_port(load_scenario(number), request_)


def test_a_chosen_ipv6_address_taken_by_an_earlier_port_is_refused() -> None:
    """The lab's own choice (``::<last byte of the IPv4 address>``) held by a port attached
    with that IPv6 --ip: refused, asking for an IPv6 --ip."""
    scenario = load_scenario("8")
    earlier = plan_port(scenario, PortRequest(ip6="2001:db8:3::78"))
    live = scenario.with_ports((*scenario.ports, earlier))
    with pytest.raises(InputError, match="2001:db8:3::78 is already used by eth2"):
        plan_port(live, PortRequest(ip="192.168.0.120"))
