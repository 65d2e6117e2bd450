"""render/networkd.py: a ``.network`` file per port (or a drop-in for the port's existing
one) whose ``[RoutingPolicyRule]`` and ``[Route]`` sections are exactly the policy's, a
secondary's DHCP routes sent to its table, a DHCP default that follows the lease."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from pathlib import PurePosixPath

from inifiles import sections

from multihome.model import PROTO_BOOT, TABLE_MAIN, Rule
from multihome.render import RenderInput
from multihome.render.networkd import dropin_path, render

NETWORK = PurePosixPath("/etc/systemd/network")


def rule_of(keys: dict[str, str]) -> Rule:
    """A ``[RoutingPolicyRule]`` section read back as the rule it makes (IPv4)."""

    def net(key: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        return ipaddress.ip_network(keys[key]) if key in keys else None

    table = keys["Table"]
    suppress = keys.get("SuppressPrefixLength")
    return Rule(
        4,
        int(keys["Priority"]),
        TABLE_MAIN if table == "main" else int(table),
        src=net("From"),
        dst=net("To"),
        iifname=keys.get("IncomingInterface"),
        oifname=keys.get("OutgoingInterface"),
        suppress_prefixlength=None if suppress is None else int(suppress),
    )


def test_each_port_gets_a_file_matching_its_mac(howto_input: RenderInput) -> None:
    """Without a .network file of its own a port gets ``50-multihome-<port>.network`` that
    matches its MAC and runs DHCP; only the secondary's DHCP routes go to its table, both
    keep their metric."""
    files = render(howto_input)
    eth0 = dict(sections(files[NETWORK / "50-multihome-eth0.network"].content))
    eth1 = dict(sections(files[NETWORK / "50-multihome-eth1.network"].content))
    assert eth0["Match"] == {"MACAddress": "52:54:00:00:00:02"}
    assert eth0["Network"] == {"DHCP": "ipv4"}
    assert eth0["DHCPv4"] == {"RouteMetric": "100"}
    table = howto_input.ports[1].table.id
    assert eth1["DHCPv4"] == {"RouteTable": str(table), "RouteMetric": "101"}


def test_the_rule_sections_are_the_policys_rules(howto_input: RenderInput) -> None:
    """Read back, each file's rules are the rules of its port's table plus the shared
    main-suppress rule, nothing more (the protocol is networkd's own)."""
    files = render(howto_input)
    for port in howto_input.ports:
        text = files[NETWORK / f"50-multihome-{port.name}.network"].content
        rules = {rule_of(k) for s, k in sections(text) if s == "RoutingPolicyRule"}
        assert rules == {replace(r, proto=PROTO_BOOT) for r in port.rules}
        assert any(r.suppress_prefixlength == 0 and r.table == TABLE_MAIN for r in rules)


def test_routes_go_to_the_table_with_multihomes_protocol(howto_input: RenderInput) -> None:
    """The primary's table copies are ``[Route]`` sections (table, protocol 222, source);
    its default follows the DHCP lease; the secondary has none (DHCP fills its table)."""
    files = render(howto_input)
    eth0 = howto_input.ports[0]
    routes = [
        k for s, k in sections(files[NETWORK / "50-multihome-eth0.network"].content) if s == "Route"
    ]
    assert len(routes) == len(eth0.static_routes) == 3
    assert {(k["Table"], k["Protocol"], k["PreferredSource"]) for k in routes} == {
        (str(eth0.table.id), "222", "192.168.0.107")
    }
    default = next(k for k in routes if "Destination" not in k)
    assert default["Gateway"] == "_dhcp4"
    eth1 = files[NETWORK / "50-multihome-eth1.network"].content
    assert "[Route]" not in eth1


def test_a_port_with_its_own_network_file_gets_a_drop_in(howto_input: RenderInput) -> None:
    """When networkd already configures a port, multihome adds a drop-in to that file (no
    [Match], no [Network]) instead of a competing file."""
    facts = replace(howto_input.facts, networkd_files={"eth1": "10-eth1.network"})
    files = render(replace(howto_input, facts=facts))
    dropin = dropin_path("10-eth1.network")
    assert dropin == NETWORK / "10-eth1.network.d/50-multihome.conf"
    kinds = {s for s, _ in sections(files[dropin].content)}
    assert kinds == {"DHCPv4", "RoutingPolicyRule"}
    assert NETWORK / "50-multihome-eth1.network" not in files
    assert NETWORK / "50-multihome-eth0.network" in files
