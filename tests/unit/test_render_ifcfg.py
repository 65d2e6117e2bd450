"""render/ifcfg.py: multihome's own ifcfg profile per port with its rules as
``ROUTING_RULE_N`` lines (never a ``rule-`` file, which makes ifcfg-rh ignore the route
files), ip-style route lines in its ``route-`` file, a secondary's DHCP routes in its table."""

from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import PurePosixPath

from hosts import host, port

from multihome.config import Config
from multihome.policy import compute_policy
from multihome.render import RenderInput, build_input
from multihome.render.base import rule_selector_text
from multihome.render.ifcfg import SCRIPTS_DIR, render
from multihome.render.networkmanager import connection_uuid


def variables(text: str) -> dict[str, str]:
    """An ifcfg file's shell variables, unquoted (comments skipped)."""
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {key: shlex.split(value)[0] for key, value in pairs}


def test_no_rule_file_is_ever_written() -> None:
    """ifcfg-rh ignores route- AND rule- files when a rule- file exists: for two and three
    ports there is none, and the rules are ROUTING_RULE lines instead."""
    for count in (2, 3):
        state = host(
            *(
                port(f"eth{i}", i + 2, f"192.168.0.{107 + i}/24", "192.168.0.1", 100 + i)
                for i in range(count)
            )
        )
        files = render(build_input(state, compute_policy(state, Config())))
        assert not [p for p in files if p.name.startswith("rule")]
        assert sum("ROUTING_RULE_1=" in s.content for s in files.values()) == count


def test_the_profile_carries_the_ports_rules_and_dhcp_table(howto_input: RenderInput) -> None:
    """Each port's profile is multihome's (own NAME, the same uuid as the NetworkManager
    backend) with its rules in order; only the secondary's DHCP routes go to its table."""
    files = render(howto_input)
    for managed in howto_input.ports:
        found = variables(files[SCRIPTS_DIR / f"ifcfg-multihome-{managed.name}"].content)
        assert found["NAME"] == f"multihome-{managed.name}" and found["DEVICE"] == managed.name
        assert found["UUID"] == connection_uuid(managed.name)
        assert found["BOOTPROTO"] == "dhcp"
        assert found["IPV4_ROUTE_METRIC"] == str(managed.metric)
        rules = [v for k, v in sorted(found.items()) if k.startswith("ROUTING_RULE_")]
        assert rules == [rule_selector_text(r) for r in managed.rules]
    eth0 = variables(files[SCRIPTS_DIR / "ifcfg-multihome-eth0"].content)
    eth1 = variables(files[SCRIPTS_DIR / "ifcfg-multihome-eth1"].content)
    assert "IPV4_ROUTE_TABLE" not in eth0
    assert eth1["IPV4_ROUTE_TABLE"] == str(howto_input.ports[1].table.id)


def test_route_lines_are_what_ip_route_add_takes(howto_input: RenderInput) -> None:
    """The primary's table copies are ip-style lines in its route- file; the secondary, whose
    table DHCP fills, has no route file."""
    files = render(howto_input)
    table = howto_input.ports[0].table.id
    lines = files[SCRIPTS_DIR / "route-multihome-eth0"].content.splitlines()[1:]
    assert lines == [
        f"default via 192.168.0.1 dev eth0 src 192.168.0.107 metric 100 table {table}",
        f"169.254.169.254/32 via 192.168.0.100 dev eth0 src 192.168.0.107 metric 100 table {table}",
        f"192.168.0.0/24 dev eth0 scope link src 192.168.0.107 metric 100 table {table}",
    ]
    assert SCRIPTS_DIR / "route-multihome-eth1" not in files
    assert PurePosixPath("/etc/sysconfig/network-scripts/ifcfg-eth0") not in files  # not ours


def test_a_static_secondary_never_takes_the_default(howto_input: RenderInput) -> None:
    """Without DHCP the addresses are IPADDRn/PREFIXn; the primary gets the gateway, a
    secondary ``DEFROUTE=no``."""
    static = replace(howto_input, ports=tuple(replace(p, dhcp=False) for p in howto_input.ports))
    files = render(static)
    eth0 = variables(files[SCRIPTS_DIR / "ifcfg-multihome-eth0"].content)
    eth1 = variables(files[SCRIPTS_DIR / "ifcfg-multihome-eth1"].content)
    assert (eth0["BOOTPROTO"], eth0["IPADDR0"], eth0["PREFIX0"], eth0["GATEWAY"]) == (
        "none",
        "192.168.0.107",
        "24",
        "192.168.0.1",
    )
    assert eth1["DEFROUTE"] == "no" and "GATEWAY" not in eth1
