"""IPv6 in ``network_data.json``: the four IPv6 network types as Nova writes them (the
fixture is Nova's own output, see tests/cloud/test_cloud_ipv6_metadata.py) parsed into typed
networks and into the ports' IPv6 facts (``PortFacts.declared6``)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from multihome.errors import InputError
from multihome.model import HostState, Link
from multihome.source import intents, parse_network_data
from multihome.source.portfacts import gather

FIXTURE = Path(__file__).parent / "network_data" / "nova-dual-stack.json"
MACS = [f"fa:16:3e:00:70:0{i}" for i in range(4)]


def _state() -> HostState:
    return HostState.build(
        [Link(f"eth{i}", i + 2, mac, up=True) for i, mac in enumerate(MACS)], [], [], [], []
    )


def test_nova_ipv6_types_parse_with_addresses_and_routes() -> None:
    """``ipv6_slaac``, ``ipv6_dhcpv6-stateless``, ``ipv6_dhcpv6-stateful`` and ``ipv6`` carry
    their address (prefix from the IPv6 netmask) and default route; ``ipv4_dhcp`` none."""
    data = parse_network_data(FIXTURE.read_bytes(), "network_data.json")
    found = {n.type: n for n in data.networks}
    assert sorted(found) == [
        "ipv4",
        "ipv4_dhcp",
        "ipv6",
        "ipv6_dhcpv6-stateful",
        "ipv6_dhcpv6-stateless",
        "ipv6_slaac",
    ]
    assert found["ipv4_dhcp"].address is None and found["ipv4_dhcp"].routes == ()
    slaac = found["ipv6_slaac"]
    assert slaac.address == ipaddress.ip_interface("2001:db8:70:1:f816:3eff:fe00:7000/64")
    assert slaac.gateway == ipaddress.ip_address("2001:db8:70:1::1")
    assert slaac.family == 6 and slaac.dhcp and not slaac.static
    assert found["ipv6_dhcpv6-stateless"].dns == (ipaddress.ip_address("2001:db8:70:2::53"),)
    assert str(found["ipv6_dhcpv6-stateful"].address) == "2001:db8:70:3::20/64"
    assert found["ipv6"].static and str(found["ipv6"].address) == "2001:db8:70:4::30/64"
    assert data.dns == (ipaddress.ip_address("2001:db8:70:2::53"),)


def test_ipv6_facts_per_port_beside_ipv4() -> None:
    """Every port with an addressed IPv6 network declares its IPv6 address and default (the
    subnet's gateway) in ``declared6``, whatever its IPv4 mode; ``declared`` keeps only the
    DHCP-disabled IPv4 port; the intents show the IPv6 networks in JSON; the IPv6-only port
    stays ``unknown`` for IPv4 (nothing to configure)."""
    data = parse_network_data(FIXTURE.read_bytes(), "network_data.json")
    facts = gather(_state(), None, data, "config drive")
    six = {name: (str(d.address), str(d.gateway)) for name, d in facts.declared6.items()}
    assert six == {
        "eth0": ("2001:db8:70:1:f816:3eff:fe00:7000", "2001:db8:70:1::1"),
        "eth1": ("2001:db8:70:2:f816:3eff:fe00:7001", "2001:db8:70:2::1"),
        "eth2": ("2001:db8:70:3::20", "2001:db8:70:3::1"),
        "eth3": ("2001:db8:70:4::30", "2001:db8:70:4::1"),
    }
    assert all(
        d.origin == "network_data.json (config drive, IPv6)" for d in facts.declared6.values()
    )
    assert list(facts.declared) == ["eth2"] and str(facts.declared["eth2"].address) == (
        "192.168.71.20"
    )
    by_name = {i.ifname: i for i in intents(_state(), data)}
    assert [i.mode for i in by_name.values()] == ["dhcp", "unknown", "static", "unknown"]
    assert by_name["eth0"].to_json()["ipv6"] == [
        {
            "type": "ipv6_slaac",
            "address": "2001:db8:70:1:f816:3eff:fe00:7000/64",
            "gateway": "2001:db8:70:1::1",
        }
    ]


def _doc(network: dict[str, Any]) -> bytes:
    link = {"id": "a", "type": "ovs", "ethernet_mac_address": MACS[0]}
    return json.dumps({"links": [link], "networks": [{"id": "n", "link": "a", **network}]}).encode()


def test_ipv6_variants_and_mistakes() -> None:
    """An ``ipv6_slaac`` network without an address (another writer) is accepted as
    address-less; a link-local gateway counts as on-link; an IPv4 gateway on an IPv6
    network and a non-contiguous IPv6 netmask are refused naming the JSON path."""
    bare = parse_network_data(_doc({"type": "ipv6_slaac"}), "nd")
    assert bare.networks[0].address is None
    assert gather(_state(), None, bare, "x").declared6 == {}
    local = {
        "type": "ipv6_dhcpv6-stateful",
        "ip_address": "2001:db8::5",
        "netmask": "ffff:ffff:ffff:ffff::",
        "routes": [{"network": "::", "netmask": "::", "gateway": "fe80::1"}],
    }
    facts = gather(_state(), None, parse_network_data(_doc(local), "nd"), "x")
    assert str(facts.declared6["eth0"].gateway) == "fe80::1"
    wrong_gateway = dict(local, routes=[{"network": "::", "netmask": "::", "gateway": "10.0.0.1"}])
    with pytest.raises(InputError, match=r"networks\[0\]\.routes\[0\]\.gateway"):
        parse_network_data(_doc(wrong_gateway), "nd")
    with pytest.raises(InputError, match=r"networks\[0\]\.netmask.*contiguous"):
        parse_network_data(_doc(dict(local, netmask="ffff:0:ffff::")), "nd")
