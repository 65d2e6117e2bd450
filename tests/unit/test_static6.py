"""Static IPv6 from OpenStack metadata (``network_data.json`` type ``ipv6``), pure parts: the
static configuration of a DHCP-disabled IPv6 network, the refusals (another port's address,
the subnet-router anycast address, an address outside any global prefix), each port's IPv6
mode, and the policy using the metadata's IPv6 declarations for the port's table. The fixture
is Nova's own output (tests/agent/network_data/nova-dual-stack.json)."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from hosts import host, link, port, with_ipv6

from multihome.config import Config
from multihome.facts import PortFacts
from multihome.model import PROTO_RA, PROTO_STATIC, TABLE_MAIN, HostState, Link
from multihome.policy import compute_policy
from multihome.source import parse_network_data
from multihome.source.portfacts import gather
from multihome.source.ports import (
    STATIC_METRIC_BASE6,
    augment,
    intents,
    pending_static,
    static_config,
    taken_addresses,
)

FIXTURE = Path(__file__).parents[1] / "agent" / "network_data" / "nova-dual-stack.json"
MACS = [f"fa:16:3e:00:70:0{i}" for i in range(4)]
CONFIG = Config()


def _links() -> list[Link]:
    return [Link(f"eth{i}", i + 2, mac, up=True) for i, mac in enumerate(MACS)]


def _bare() -> HostState:
    return HostState.build(_links(), [], [], [], [])


def _fixture(edit: Any = None) -> Any:
    data = json.loads(FIXTURE.read_text())
    if edit is not None:
        edit(data)
    return parse_network_data(json.dumps(data).encode(), "network_data.json")


def _static6(data: dict[str, Any]) -> dict[str, Any]:
    return next(n for n in data["networks"] if n["type"] == "ipv6")


def test_each_ports_ipv6_mode_follows_novas_network_type() -> None:
    """``ipv6_slaac`` and ``ipv6_dhcpv6-stateless`` are SLAAC, ``ipv6_dhcpv6-stateful`` a
    DHCPv6 client's, ``ipv6`` static from the metadata; the JSON shows it as ``mode6``."""
    found = {i.ifname: i for i in intents(_bare(), _fixture())}
    assert {n: i.mode6 for n, i in found.items()} == {
        "eth0": "slaac",
        "eth1": "slaac",
        "eth2": "dhcpv6",
        "eth3": "static",
    }
    assert found["eth3"].to_json()["mode6"] == "static"


def test_a_dhcp_disabled_ipv6_network_gives_address_prefix_and_default() -> None:
    """eth3 (``ipv6``) gets its address (``noprefixroute``: the prefix route is multihome's,
    with the port's IPv6 metric above the kernel's RA routes' 1024) and the default via the
    subnet's gateway; no IPv6 route names a source address (DAD still runs when they are
    added, and the kernel refuses a tentative source)."""
    eth3 = _bare().link("eth3")
    assert eth3 is not None
    intent = next(i for i in intents(_bare(), _fixture()) if i.ifname == "eth3")
    config = static_config(eth3, intent, {}, 6)
    assert config.refused is None
    assert [str(a.interface) for a in config.addresses] == ["2001:db8:70:4::30/64"]
    metric = STATIC_METRIC_BASE6 + eth3.index
    assert metric > 1024
    assert sorted(r.describe() for r in config.routes) == sorted(
        [
            f"2001:db8:70:4::/64 dev eth3 table main proto static metric {metric}",
            f"default via 2001:db8:70:4::1 dev eth3 table main proto static metric {metric}",
        ]
    )
    assert all(r.prefsrc is None for r in config.routes)
    assert (
        config.describe() == "eth3: static 2001:db8:70:4::30/64 via 2001:db8:70:4::1 from metadata"
    )


def test_refused_ipv6_addresses_name_the_reason() -> None:
    """Another port's address, the subnet-router anycast address (the prefix itself) and an
    address outside any global prefix (link-local) are refused, each with its reason; the
    port stays unaddressed (no address, no route)."""
    eth3 = _bare().link("eth3")
    assert eth3 is not None

    def config_for(address: str, taken: dict[Any, str] | None = None) -> str | None:
        data = _fixture(lambda d: _static6(d).update(ip_address=address))
        intent = next(i for i in intents(_bare(), data) if i.ifname == "eth3")
        config = static_config(eth3, intent, taken or {}, 6)
        assert config.refused is None or (config.addresses, config.routes) == ((), ())
        return config.refused

    mine = ipaddress.ip_address("2001:db8:70:4::30")
    assert config_for("2001:db8:70:4::30", {mine: "eth1"}) == (
        "2001:db8:70:4::30 is eth1's address (a duplicate would break both ports)"
    )
    assert config_for("2001:db8:70:4::30", {mine: "eth3"}) is None  # its own: fine
    assert config_for("2001:db8:70:4::") == (
        "2001:db8:70:4::/64 is the subnet-router anycast address of 2001:db8:70:4::/64, "
        "not a host's"
    )
    assert config_for("fe80::30") == (
        "fe80::30/64 is a link-local address, outside any global prefix a router routes here"
    )


def test_pending_static_configures_each_family_the_port_lacks() -> None:
    """``plan --source openstack``: eth2's IPv4 (``ipv4``) and eth3's IPv6 (``ipv6``) are
    pending on a bare host; once eth3 has a global IPv6 address (also a tentative one) only
    eth2's IPv4 is; another port holding eth3's address refuses it."""
    data = _fixture()
    pending = pending_static(_bare(), data)
    assert [(c.ifname, [str(a.interface) for a in c.addresses]) for c in pending] == [
        ("eth2", ["192.168.71.20/24"]),
        ("eth3", ["2001:db8:70:4::30/64"]),
    ]
    addressed = augment(_bare(), pending)
    assert [c.ifname for c in pending_static(addressed, data)] == []
    duplicate = HostState.build(
        _links(),
        [replace(addressed.addresses_of("eth3", 6)[0], ifname="eth0")],
        [],
        [],
        [],
    )
    refused = [c for c in pending_static(duplicate, data) if c.ifname == "eth3"]
    assert refused[0].refused is not None and "eth0's address" in refused[0].refused
    assert taken_addresses(addressed)[ipaddress.ip_address("2001:db8:70:4::30")] == "eth3"


def _with_static_eth3(
    extra_routes: list[dict[str, str]] | None = None,
) -> tuple[HostState, PortFacts]:
    """eth0 dual-stack from DHCP and an RA; eth3 (MAC of the fixture's ``ipv6`` port) as the
    agent configures it from the metadata, without any router advertisement; its facts."""

    data = _fixture(lambda d: _static6(d)["routes"].extend(extra_routes or []))
    state = host(
        with_ipv6(
            port("eth0", 2, "192.168.0.107/24", "192.168.0.1", 100, mac=MACS[0]),
            "2001:db8:70:1:f816:3eff:fe00:7000/64",
        ),
        (link("eth3", 5, mac=MACS[3]), [], []),
    )
    state = augment(state, pending_static(state, data))
    return state, gather(state, None, data, "metadata service")


def test_the_static_ports_table_gets_the_declared_default_and_routes() -> None:
    """eth3's table holds its prefix and the metadata's default via the subnet's gateway
    (main's static route first), and a declared host route of the subnet (no advertisement
    carries those); main lost eth3's default (an admin deleted it; no flap: fe80::/64 would
    be gone too): the declaration keeps it in the table, with its origin."""
    state, facts = _with_static_eth3(
        [
            {
                "network": "2001:db8:99::",
                "netmask": "ffff:ffff:ffff::",
                "gateway": "2001:db8:70:4::fe",
            }
        ]
    )
    assert facts.declared6["eth3"].static and not facts.declared6["eth0"].static
    desired = compute_policy(state, CONFIG, facts)
    iface = desired.interface("eth3")
    assert iface is not None and iface.table is not None
    table = iface.table.id
    mine = sorted(
        r.describe()
        for r in desired.routes
        if r.table == table and r.family == 6 and not r.describe().startswith("throw")
    )  # the table-first band's throw of fe80::/64 aside
    metric = STATIC_METRIC_BASE6 + 5
    assert mine == sorted(
        [
            f"2001:db8:70:4::/64 dev eth3 table {table} proto multihome metric {metric}",
            f"2001:db8:99::/48 via 2001:db8:70:4::fe dev eth3 table {table} proto multihome "
            f"metric {metric}",
            f"default via 2001:db8:70:4::1 dev eth3 table {table} proto multihome metric {metric}",
        ]
    )
    assert str(iface.gateway6) == "2001:db8:70:4::1"
    assert any(str(r.src) == "2001:db8:70:4::30/128" and r.table == table for r in desired.rules)
    # main's static default is deleted: the metadata still says where eth3's router is.
    lost = HostState.build(
        state.links,
        state.addresses,
        [r for r in state.routes if not (r.ifname == "eth3" and r.is_default)],
        state.rules,
        state.sysctls,
    )
    again = compute_policy(lost, CONFIG, facts)
    default = next(r for r in again.routes if r.table == table and r.is_default)
    assert str(default.gateway) == "2001:db8:70:4::1" and default.metric == metric
    assert again.origins[default] == "network_data.json (metadata service, IPv6)"


def test_an_advertised_ports_declared_gateway_never_outlives_its_router() -> None:
    """eth0 is SLAAC (``ipv6_slaac`` in the metadata, with a default via the subnet's
    gateway): when its router leaves (the kernel removed the RA default, fe80::/64 stays),
    the declaration does not bring a default back; the advertisement speaks for the port."""
    state, facts = _with_static_eth3()
    desired = compute_policy(state, CONFIG, facts)
    iface = desired.interface("eth0")
    assert iface is not None and iface.table is not None
    table = iface.table.id
    copies = [r for r in desired.routes if r.table == table and r.family == 6 and r.is_default]
    assert [str(r.gateway) for r in copies] == ["fe80::1"]
    owned = [*state.routes, *(r for r in desired.routes if r.table == table)]
    left = HostState.build(
        state.links,
        state.addresses,
        [r for r in owned if not (r.table == TABLE_MAIN and r.proto == PROTO_RA)],
        [*state.rules, *desired.rules],
        state.sysctls,
    )
    after = compute_policy(left, CONFIG, facts)
    assert not [r for r in after.routes if r.table == table and r.family == 6 and r.is_default]
    assert PROTO_STATIC not in {r.proto for r in after.routes if r.ifname == "eth0"}
