"""Persisting a static IPv6 port (``network_data.json`` type ``ipv6``: no router advertisement,
the agent addressed it from the metadata) beside a dual-stack SLAAC port: what each of the
five renderers writes for it. A renderer whose own definition configures the port writes its
address, turns router advertisements off and keeps its gateway in main at the metric the
agent gave it (2048 + ifindex: never a better default than the other port's advertised one);
where the distribution's file (cloud-init's) configures the port, only the table and the
rules are added, as for a static IPv4 port. The real tools and daemons check the files in
tests/persist (test_real_tools.py, test_daemons_static6.py)."""

from __future__ import annotations

import ipaddress
from pathlib import PurePosixPath
from types import MappingProxyType

import pytest
from hosts import host, link, port, with_ipv6, with_static_ipv6
from inifiles import sections

from multihome.config import Config
from multihome.model import IFA_F_PERMANENT, Address, HostState
from multihome.policy import compute_policy
from multihome.render import (
    HostFacts,
    RenderInput,
    build_input,
    ifcfg,
    netplan,
    networkd,
    networkmanager,
    systemd,
)

ADDRESS = "2001:db8:2::5/64"
GATEWAY = "2001:db8:2::1"
#: eth1's index is 3: the agent's metric for its static IPv6 routes is 2048 + 3.
METRIC = "2051"


def _state(*, ipv4: bool = True) -> HostState:
    eth0 = with_ipv6(
        port("eth0", 2, "192.168.0.107/24", "192.168.0.1", 100, mac="fa:16:3e:00:00:01"),
        "2001:db8:1:0:f816:3eff:fe00:1/64",
    )
    eth1 = (
        port("eth1", 3, "192.168.0.112/24", "192.168.0.1", 101, mac="fa:16:3e:00:00:02")
        if ipv4
        else (link("eth1", 3, mac="fa:16:3e:00:00:02"), [], [])
    )
    return host(eth0, with_static_ipv6(eth1, ADDRESS, GATEWAY))


def _input(facts: HostFacts | None = None, *, ipv4: bool = True) -> RenderInput:
    state = _state(ipv4=ipv4)
    return build_input(state, compute_policy(state, Config()), facts)


def _eth1(inp: RenderInput) -> object:
    return next(p for p in inp.ports if p.name == "eth1")


def test_the_kernel_tells_a_static_ipv6_port_from_a_slaac_one() -> None:
    """A permanent global address (no lifetime) and no advertised route: static; eth0's SLAAC
    address has a lifetime and its default is the advertisement's. The static port's own
    routes in main (the agent's: gateway and prefix, metric 2048 + ifindex) are kept."""
    inp = _input()
    eth0, eth1 = inp.ports
    assert (eth0.static6, eth0.ra6, eth0.static_only6, eth0.main6) == ((), True, False, ())
    assert [str(a.interface) for a in eth1.static6] == [ADDRESS]
    assert (eth1.ra6, eth1.static_only6) == (False, True)
    assert [(str(r.dst), str(r.gateway), r.metric) for r in eth1.main6] == [
        ("2001:db8:2::/64", "None", int(METRIC)),  # connected first (the agent's order)
        ("::/0", GATEWAY, int(METRIC)),
    ]
    # The table gets the metadata's gateway as its default (the policy's copy of main's).
    assert any(r.is_default and str(r.gateway) == GATEWAY for r in eth1.static_routes)


def test_a_permanent_address_beside_slaac_keeps_router_advertisements_on() -> None:
    """An admin's permanent address on a SLAAC port is written, and the port still takes router
    advertisements (``ra6``): nothing turns them off, no route of main is kept."""
    state = _state()
    extra = Address("eth0", ipaddress.IPv6Interface("2001:db8:1::99/64"), flags=IFA_F_PERMANENT)
    state = HostState.build(
        state.links, (*state.addresses, extra), state.routes, state.rules, state.sysctls
    )
    eth0 = build_input(state, compute_policy(state, Config())).ports[0]
    assert [str(a.interface) for a in eth0.static6] == ["2001:db8:1::99/64"]
    assert (eth0.ra6, eth0.static_only6, eth0.main6) == (True, False, ())


def test_networkd_own_file_addresses_the_port_without_router_advertisements() -> None:
    """No .network file names eth1: multihome's has the agent's address (``[Address]
    AddPrefixRoute=no``), ``IPv6AcceptRA=no``, the gateway and the prefix in main
    (networkd's protocol, the agent's metric, no ``Table=``) and no ``[IPv6AcceptRA]``
    section; the table's default via the gateway and the family-6 rules as for any port."""
    files = networkd.render(_input())
    parsed = sections(files[networkd.NETWORK_DIR / "50-multihome-eth1.network"].content)
    network = next(k for s, k in parsed if s == "Network")
    assert "Address" not in network and network["IPv6AcceptRA"] == "no"
    address = next(k for s, k in parsed if s == "Address")  # as the agent: noprefixroute
    assert address == {"Address": ADDRESS, "AddPrefixRoute": "no"}
    assert not any(s == "IPv6AcceptRA" for s, _ in parsed)
    routes = [k for s, k in parsed if s == "Route" and k.get("Gateway") == GATEWAY]
    # GatewayOnLink: networkd may configure them before the prefix route (no prefix route
    # comes with a noprefixroute address)
    onlink = {"Gateway": GATEWAY, "GatewayOnLink": "yes", "Metric": METRIC}
    assert routes == [onlink, {**onlink, "Table": "10244", "Protocol": "222"}]
    main = [k for s, k in parsed if s == "Route" and "Table" not in k]
    assert main == [  # connected first, as the agent adds them
        {"Destination": "2001:db8:2::/64", "Metric": METRIC},
        {"Gateway": GATEWAY, "GatewayOnLink": "yes", "Metric": METRIC},
    ]
    rules = [k for s, k in parsed if s == "RoutingPolicyRule" and k.get("From") == "2001:db8:2::5"]
    assert rules == [
        {"Priority": "10000", "From": "2001:db8:2::5", "Family": "ipv6", "Table": "10244"}
    ]


def test_networkd_dropin_leaves_the_address_to_the_ports_own_file() -> None:
    """Cloud-init's ``10-eth1.network`` configures eth1 (its static address too): the drop-in
    adds the table's routes and the rules only, no address and no route of main."""
    facts = HostFacts(networkd_files=MappingProxyType({"eth1": "10-eth1.network"}))
    files = networkd.render(_input(facts))
    text = files[networkd.dropin_path("10-eth1.network")].content
    parsed = sections(text)
    assert "Address=" not in text and "IPv6AcceptRA=" not in text
    assert all("Table" in k for s, k in parsed if s == "Route")


def test_networkmanager_profile_is_manual_ipv6_without_a_gateway_key() -> None:
    """``ipv6.method=manual`` with the address; no ``gateway=`` (it would get the profile's
    route-metric 101 and beat eth0's advertised default), the gateway as a route of main at
    the agent's metric instead (the prefix in main comes with the address, at the
    profile's ``ipv6.route-metric``: the agent's metric too); the table's routes with
    ``table=``; EUI-64 kept."""
    files = networkmanager.render(_input())
    text = files[networkmanager.connection_path("eth1")].content
    ipv6 = dict(sections(text.replace("[", "\n[")))["ipv6"]
    assert ipv6["method"] == "manual" and ipv6["address1"] == ADDRESS
    assert "gateway" not in ipv6
    assert ipv6["route-metric"] == str(METRIC)  # the prefix route of the address in main
    assert ipv6["route1"] == f"::/0,{GATEWAY},{METRIC}" and "route1_options" not in ipv6
    assert ipv6["route2"] == f"::/0,{GATEWAY},{METRIC}"
    assert ipv6["route2_options"] == "table=10244"  # the prefix in main comes with the address
    eth0 = files[networkmanager.connection_path("eth0")].content
    assert "method=auto" in eth0.split("[ipv6]")[1] and "address1" not in eth0.split("[ipv6]")[1]


def test_networkmanager_ipv6_only_port_disables_ipv4() -> None:
    """An IPv6-only static port: ``ipv4.method=disabled`` (``manual`` without an address is
    refused by NetworkManager), and no IPv6 address among IPv4's."""
    files = networkmanager.render(_input(ipv4=False))
    ipv4 = files[networkmanager.connection_path("eth1")].content.split("[ipv4]")[1]
    ipv4 = ipv4.split("[ipv6]")[0]
    assert "method=disabled" in ipv4 and "address" not in ipv4


@pytest.mark.parametrize("defined", [False, True])
def test_netplan_definition_carries_the_address_only_when_it_is_multihomes(
    defined: bool,
) -> None:
    """Without a netplan definition of eth1, multihome's has ``addresses``, ``accept-ra:
    false`` and the gateway as a route without ``table`` (main); with cloud-init's
    definition (``netplan_ids``) only the table's routes and the rules are added."""
    facts = HostFacts(netplan_ids=MappingProxyType({"eth0": "eth0", "eth1": "eth1"}))
    text = netplan.render(_input(facts if defined else None))[netplan.YAML_PATH].content
    eth1 = text.split("    eth1:\n")[1]
    main_route = (
        f"        - to: ::/0\n          via: {GATEWAY}\n          metric: {METRIC}\n        -"
    )
    if defined:
        assert "addresses:" not in eth1 and "accept-ra" not in eth1
        assert main_route not in eth1
    else:
        assert f"      addresses:\n        - {ADDRESS}\n      accept-ra: false\n" in eth1
        assert main_route in eth1
    assert "table: 10244" in eth1.split(main_route)[-1]


def test_ifcfg_static_ipv6_as_network_scripts_and_ifcfg_rh_read_it() -> None:
    """``IPV6_AUTOCONF=no``, ``IPV6ADDR=``, no ``IPV6_DEFAULTGW`` (it would get
    ``IPV6_ROUTE_METRIC``); the gateway as a ``route6-`` line without a table (main) at the
    agent's metric, then the table's lines."""
    files = ifcfg.render(_input())
    text = files[ifcfg.SCRIPTS_DIR / "ifcfg-multihome-eth1"].content
    assert "IPV6_AUTOCONF=no\n" in text and f"IPV6ADDR={ADDRESS}\n" in text
    assert "IPV6_DEFAULTGW" not in text and "IPADDR0" not in text
    lines = files[ifcfg.SCRIPTS_DIR / "route6-multihome-eth1"].content.splitlines()[1:]
    assert lines[:2] == [
        f"::/0 via {GATEWAY} dev eth1 metric {METRIC}",
        f"::/0 via {GATEWAY} dev eth1 metric {METRIC} table 10244",
    ]


def test_systemd_dropin_puts_the_static_ipv6_back_before_the_wait() -> None:
    """The instance's drop-in resets ``ExecStartPre=``, brings the link up, adds the address
    (``noprefixroute``, as the agent did) and the routes of main (gateway, prefix; each
    allowed to fail: ``-``), then waits as the unit does; with a networkd file naming the
    port, that file configures it: the drop-in only waits."""
    text = systemd.render(_input())[systemd.dropin_path("eth1")].content
    pre = [k for s, k in sections_multi(text) if k[0] == "ExecStartPre"]
    assert [v for _, v in pre] == [
        "",
        "-/sbin/ip link set %I up",
        f"-/sbin/ip -6 address add {ADDRESS} dev %I noprefixroute",
        f"-/sbin/ip -6 route add 2001:db8:2::/64 dev %I proto static metric {METRIC}",
        f"-/sbin/ip -6 route add ::/0 via {GATEWAY} dev %I proto static metric {METRIC}",
        systemd.wait_command(),
    ]
    facts = HostFacts(networkd_files=MappingProxyType({"eth1": "10-eth1.network"}))
    configured = systemd.render(_input(facts))[systemd.dropin_path("eth1")].content
    assert "ExecStartPre" not in configured and "MULTIHOME_WAIT_FAMILIES=4 6" in configured


def sections_multi(text: str) -> list[tuple[str, tuple[str, str]]]:
    """Every ``key=value`` line of a unit file with its section (keys may repeat)."""
    found: list[tuple[str, tuple[str, str]]] = []
    section = ""
    for line in text.splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif line and not line.startswith("#"):
            key, value = line.split("=", 1)
            found.append((section, (key, value)))
    return found


def test_unchanged_for_a_port_without_static_ipv6() -> None:
    """The SLAAC port keeps what it had: RA on, EUI-64, its metric, no address written."""
    inp = _input()
    text = networkd.render(inp)[networkd.NETWORK_DIR / "50-multihome-eth0.network"].content
    assert "IPv6AcceptRA=yes" in text and "\nAddress=" not in text
    assert "[IPv6AcceptRA]\nRouteMetric=100\n" in text
    assert PurePosixPath("/etc/systemd/system/multihome@eth0.service.d/50-multihome.conf") in (
        systemd.render(inp)
    )
