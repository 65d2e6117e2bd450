"""render/netplan.py: one private YAML file with what netplan 0.106 can express (routes,
``from``/``to`` rules), and networkd drop-ins for what it cannot (``iif``/``oif`` rules, the
main-suppress rule, the DHCP route table); a warning where netplan would drop the policy."""

from __future__ import annotations

from dataclasses import replace
from pathlib import PurePosixPath
from typing import Any

import yaml

from multihome.model import net_text
from multihome.render import RenderInput
from multihome.render.netplan import YAML_PATH, expressible, notes, render

DROPINS = PurePosixPath("/etc/systemd/network")


def document(inp: RenderInput) -> dict[str, Any]:
    """The rendered netplan file, parsed."""
    data = yaml.safe_load(render(inp)[YAML_PATH].content)
    assert isinstance(data, dict)
    return data


def test_the_yaml_defines_each_port_with_its_routes_and_from_rules(
    howto_input: RenderInput,
) -> None:
    """Each port is matched by MAC and runs DHCP; its routing-policy holds exactly its
    expressible rules; the primary's table copies are its routes; the file is private."""
    files = render(howto_input)
    assert files[YAML_PATH].mode == 0o600
    ethernets = document(howto_input)["network"]["ethernets"]
    assert sorted(ethernets) == ["eth0", "eth1"]
    for port in howto_input.ports:
        entry = ethernets[port.name]
        assert entry["match"] == {"macaddress": port.mac} and entry["dhcp4"] is True
        policy = {
            (r["from"], r.get("to"), r["table"], r["priority"]) for r in entry["routing-policy"]
        }
        wanted = {
            (net_text(r.src), r.dst and net_text(r.dst), r.table, r.priority)
            for r in port.rules
            if expressible(r) and r.src is not None
        }
        assert policy == wanted and len(wanted) == 1
    eth0 = howto_input.ports[0]
    assert [r["table"] for r in ethernets["eth0"]["routes"]] == [eth0.table.id] * 3
    assert "routes" not in ethernets["eth1"]


def test_what_netplan_cannot_say_goes_to_a_networkd_drop_in(howto_input: RenderInput) -> None:
    """The oif/iif rules, the main-suppress rule and the secondary's DHCP route table are in
    ``10-netplan-<id>.network.d/50-multihome.conf``, the file netplan generates for the port."""
    files = render(howto_input)
    dropin = files[DROPINS / "10-netplan-eth1.network.d/50-multihome.conf"].content
    table = howto_input.ports[1].table.id
    assert f"[DHCPv4]\nRouteTable={table}\nRouteMetric=101\n" in dropin
    assert "OutgoingInterface=eth1" in dropin and "IncomingInterface=eth1" in dropin
    assert "SuppressPrefixLength=0\nTable=main" in dropin
    assert "From=" not in dropin  # the from-rules are in the YAML, not twice


def test_an_existing_netplan_id_is_extended_not_redefined(howto_input: RenderInput) -> None:
    """When the system's netplan already defines the port (id ``ens3``), multihome's file
    adds routes and rules under that id without a second match or DHCP setting."""
    facts = replace(howto_input.facts, netplan_ids={"eth0": "ens3"})
    ethernets = document(replace(howto_input, facts=facts))["network"]["ethernets"]
    assert sorted(ethernets) == ["ens3", "eth1"]
    assert "match" not in ethernets["ens3"] and "dhcp4" not in ethernets["ens3"]
    assert ethernets["ens3"]["routing-policy"]
    assert DROPINS / "10-netplan-ens3.network.d/50-multihome.conf" in render(
        replace(howto_input, facts=facts)
    )


def test_netplan_rendering_to_networkmanager_is_warned_about(howto_input: RenderInput) -> None:
    """netplan 0.106 with the NetworkManager renderer drops routing-policy: say so, and
    nothing when it renders to networkd."""
    assert notes(howto_input) == []
    facts = replace(howto_input.facts, netplan_renderer="NetworkManager")
    (warning,) = notes(replace(howto_input, facts=facts))
    assert "silently drops routing-policy" in warning and "--backend networkmanager" in warning
