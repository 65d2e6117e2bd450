"""render/networkmanager.py: a private keyfile per port with a stable uuid, the port's
routing rules, its table for the DHCP routes of a secondary, and static routes without a
preferred source (NetworkManager would add them before the address exists)."""

from __future__ import annotations

import configparser
from dataclasses import replace
from pathlib import PurePosixPath

from multihome.render import RenderInput
from multihome.render.base import rule_selector_text
from multihome.render.networkmanager import connection_path, connection_uuid, render


def keyfile(inp: RenderInput, ifname: str) -> configparser.ConfigParser:
    """The rendered keyfile of ``ifname``, parsed like NetworkManager's keyfile plugin."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(render(inp)[connection_path(ifname)].content)
    return parser


def test_keyfiles_are_private_and_named_after_the_port(howto_input: RenderInput) -> None:
    """NetworkManager refuses keyfiles readable by others: one per port, mode 0600, at
    ``multihome-<port>.nmconnection``."""
    files = render(howto_input)
    keyfiles = {p: s for p, s in files.items() if p.suffix == ".nmconnection"}
    assert set(keyfiles) == {
        PurePosixPath("/etc/NetworkManager/system-connections/multihome-eth0.nmconnection"),
        PurePosixPath("/etc/NetworkManager/system-connections/multihome-eth1.nmconnection"),
    }
    assert {s.mode for s in keyfiles.values()} == {0o600}


def test_the_profile_is_multihomes_own_and_stable(howto_input: RenderInput) -> None:
    """Its own id and a uuid that is the same on every run, different per port; bound to the
    port by name and MAC; it outranks the installer's profile."""
    eth1 = keyfile(howto_input, "eth1")
    assert eth1["connection"]["id"] == "multihome-eth1"
    assert eth1["connection"]["uuid"] == connection_uuid("eth1") != connection_uuid("eth0")
    assert eth1["connection"]["interface-name"] == "eth1"
    assert int(eth1["connection"]["autoconnect-priority"]) > 0
    assert eth1["ethernet"]["mac-address"] == "52:54:00:00:00:03"


def test_rules_and_the_dhcp_table(howto_input: RenderInput) -> None:
    """Each keyfile carries its port's rules, numbered; only the secondary's DHCP routes go
    to its table; both ports keep DHCP and their metric."""
    for port in howto_input.ports:
        ipv4 = keyfile(howto_input, port.name)["ipv4"]
        rules = [v for k, v in ipv4.items() if k.startswith("routing-rule")]
        assert rules == [rule_selector_text(r) for r in port.rules] and len(rules) == 4
        assert ipv4["method"] == "auto" and ipv4["route-metric"] == str(port.metric)
    assert "route-table" not in keyfile(howto_input, "eth0")["ipv4"]
    table = howto_input.ports[1].table.id
    assert keyfile(howto_input, "eth1")["ipv4"]["route-table"] == str(table)


def test_static_routes_name_their_table_and_no_source(howto_input: RenderInput) -> None:
    """The primary's table copies are routeN lines with ``table=`` options and no ``src=``."""
    ipv4 = keyfile(howto_input, "eth0")["ipv4"]
    table = howto_input.ports[0].table.id
    routes = {k: v for k, v in ipv4.items() if k.startswith("route") and k[5:6].isdigit()}
    assert routes["route1"] == "0.0.0.0/0,192.168.0.1,100"
    assert {v for k, v in routes.items() if k.endswith("_options")} >= {f"table={table}"}
    assert all("src=" not in v for v in routes.values())
    assert len([k for k in routes if not k.endswith("_options")]) == 3


def test_a_static_secondary_never_takes_the_default(howto_input: RenderInput) -> None:
    """A port configured without DHCP gets its addresses; a secondary never becomes the
    default route (``never-default``), the primary gets its gateway."""
    static = replace(howto_input, ports=tuple(replace(p, dhcp=False) for p in howto_input.ports))
    eth0, eth1 = keyfile(static, "eth0")["ipv4"], keyfile(static, "eth1")["ipv4"]
    assert (eth0["method"], eth0["address1"], eth0["gateway"]) == (
        "manual",
        "192.168.0.107/24",
        "192.168.0.1",
    )
    assert (eth1["method"], eth1["address1"], eth1["never-default"]) == (
        "manual",
        "192.168.0.112/24",
        "true",
    )
    assert "route-table" not in eth1
