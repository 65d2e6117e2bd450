"""End to end in the lab, with the real `multihome agent` running in the guest: a port
hot-plugged with a floating IP, a link flap, a lease renewal (also with another router), a
lost lease, a DHCP-disabled port addressed from the metadata service, and a detach.

Every outcome is checked from outside the guest's routing code: `lab probe --json` (curl and
ping from the internet host, curl bound to each source address), `ip -j rule/route`. Bounds
are generous (the machine is shared); the benchmark measures the real latency.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from labhot_util import LiveLab, wait_until
from netnsid import state_dir_of

BOUND = 10.0  # seconds: "within a generous bound"


def reachable(lab: LiveLab, public: str) -> bool:
    """The internet host reaches ``public`` over HTTP (the guest's echo answers)."""
    return lab.http("inet", f"http://{public}/") == "198.51.100.10"


def egress(lab: LiveLab, source: str) -> str | None:
    """The public address the internet host sees for traffic from ``source``."""
    return lab.http("vm", "http://198.51.100.10/", "--interface", source)


def table_of(lab: LiveLab, ifname: str) -> int:
    """The table multihome gave ``ifname`` (from its `oif` rule, read with ip)."""
    for rule in lab.rules():
        if rule.get("oif") == ifname and str(rule.get("protocol")) in ("222", "multihome"):
            return int(rule["table"]) if str(rule["table"]).isdigit() else -1
    raise AssertionError(f"no oif rule for {ifname}: {lab.rules()}")


def table_routes(lab: LiveLab, table: int) -> list[str]:
    return sorted(
        f"{r['dst']} via {r.get('gateway', '-')} dev {r['dev']}" for r in lab.routes(str(table))
    )


def test_hotplug_flap_renew_detach_with_the_agent(scenario4: LiveLab) -> None:
    """Scenario 4 fixed; the agent runs. A third port with a floating IP is hot-plugged: its
    floating IP answers and it egresses as itself. eth1 flaps: its table comes back whole
    and its floating IP still answers. eth1's lease is renewed: main keeps only eth0's
    default. The third port is detached: none of its rules or routes is left."""
    lab = scenario4
    lab.start_agent()

    attached = json.loads(lab.ok("attach-port", "--floating-ip", "auto", "--json"))["port"]
    name, ip = attached["name"], attached["ips"][0]
    fip = attached["floating_ips"][ip]
    assert name == "eth2"
    took = wait_until(
        lambda: reachable(lab, fip) and egress(lab, ip) == fip,
        BOUND,
        f"hot-plugged {name}'s floating IP {fip} answers and {ip} egresses as {fip}\n"
        + lab.agent_log(),
    )
    probe = lab.probe()
    assert {i["public"]: i["ok"] for i in probe["inbound"]} == {
        "203.0.113.107": True,
        "203.0.113.112": True,
        fip: True,
    }
    assert {e["source"]: e["seen"] for e in probe["egress"]} == {
        "192.168.0.107": "203.0.113.107",
        "192.168.0.112": "203.0.113.112",
        ip: fip,
    }
    assert took < BOUND
    # The agent's DHCP client keeps its files in the guest namespace's own folder.
    assert (lab.run_dir() / f"dhclient.{name}.leases").exists()
    assert not (lab.tmp / "root" / "run" / "multihome" / "agent.json").exists()

    # A link flap flushes eth1's routes (its table's too); the rules stay.
    table = table_of(lab, "eth1")
    before = table_routes(lab, table)
    assert len(before) == 3, before  # default, metadata host route, subnet
    lab.ok("flap", "eth1", "--down-for", "0.3")
    wait_until(
        lambda: table_routes(lab, table) == before,
        BOUND,
        f"eth1's table {table} is whole again after the flap\n{lab.agent_log()}",
    )
    assert reachable(lab, "203.0.113.112")
    assert egress(lab, "192.168.0.112") == "203.0.113.112"

    # A renewal puts eth1's default back into main (the lab's dhclient script does);
    # the agent takes it out again.
    repairs = lab.agent_log().count("table main proto dhcp src 192.168.0.112")
    lab.ok("renew", "eth1")
    wait_until(
        lambda: lab.agent_log().count("table main proto dhcp src 192.168.0.112") > repairs,
        BOUND,
        "the agent removed eth1's renewed default from main\n" + lab.agent_log(),
    )
    wait_until(lambda: lab.main_defaults() == ["eth0"], BOUND, "main has only eth0's default")
    assert table_routes(lab, table) == before
    assert reachable(lab, "203.0.113.112")

    # Detach: nothing of eth2 is left (its rules, its table's routes, its client).
    eth2_table = table_of(lab, name)
    lab.ok("detach-port", name)

    def gone() -> bool:
        rules, routes = lab.owned()
        return not [
            r
            for r in rules
            if r.get("src") == ip
            or name in (r.get("oif"), r.get("iif"))
            or str(r.get("table")) == str(eth2_table)
        ] and not [r for r in routes if r.get("dev") == name or r.get("prefsrc") == ip]

    wait_until(gone, BOUND, f"no owned rule or route of {name} is left\n{lab.agent_log()}")
    assert not lab.routes(str(eth2_table))
    assert not [a for a in lab.guest_processes("dhclient") if name in a]
    # The ports that stay are untouched.
    probe = lab.probe()
    assert probe["outcome"]["reachable"] == {"203.0.113.107": True, "203.0.113.112": True}


def test_static_port_from_metadata_router_change_and_lost_lease(scenario4: LiveLab) -> None:
    """A port on which DHCP is disabled gets its address from the metadata service (the
    agent reads network_data.json) and its floating IP answers. A renewal that hands eth1
    another router moves eth1's table default to it. A lost lease keeps eth1's rules
    (missing data is no reason to delete), and the agent gets a new lease for it."""
    lab = scenario4
    lab.start_agent("--dhcp-grace", "2")  # the lost lease stays lost for 2 s

    attached = json.loads(
        lab.ok(
            "attach-port",
            "--no-dhcp",
            "--ip",
            "192.168.0.130",
            "--floating-ip",
            "203.0.113.130",
            "--json",
        )
    )["port"]
    assert attached["dhcp"] is False
    wait_until(
        lambda: reachable(lab, "203.0.113.130") and egress(lab, "192.168.0.130") == "203.0.113.130",
        BOUND,
        "the DHCP-disabled port is addressed from metadata and works\n" + lab.agent_log(),
    )
    assert lab.addresses("eth2") == ["192.168.0.130"]
    assert "static 192.168.0.130/24 via 192.168.0.1 from metadata" in lab.agent_log()
    wait_until(lambda: lab.main_defaults() == ["eth0"], BOUND, "main has only eth0's default")

    # Another router on renewal: the tenant router answers on .254 too.
    table = table_of(lab, "eth1")
    lab.ok("renew", "eth1", "--router", "192.168.0.254")
    wait_until(
        lambda: (
            "default via 192.168.0.254 dev eth1" in table_routes(lab, table)
            and lab.main_defaults() == ["eth0"]
        ),
        BOUND,
        "eth1's table default follows the new router\n" + lab.agent_log(),
    )
    assert "default via 192.168.0.1 dev eth1" not in table_routes(lab, table)
    assert egress(lab, "192.168.0.112") == "203.0.113.112"

    # Lost lease: the address goes; the rules stay; the agent (nothing else manages eth1
    # now) starts a DHCP client after its grace period, and eth1 works again.
    lab.ok("expire", "eth1")
    assert lab.addresses("eth1") == []
    rules, _ = lab.owned()
    assert any(r.get("src") == "192.168.0.112" for r in rules), rules
    wait_until(
        lambda: lab.addresses("eth1") == ["192.168.0.112"] and reachable(lab, "203.0.113.112"),
        BOUND,
        "eth1 has its lease again, from the agent's DHCP client\n" + lab.agent_log(),
    )
    assert "dhcp client for eth1" in lab.agent_log()
    # The lab's renew refuses a port whose client is the guest's own now.
    refused = lab.cli("renew", "eth1")
    assert refused.returncode == 2
    assert "not the lab's" in refused.stderr


def test_agents_in_two_namespaces_have_their_own_state_folders(tmp_path: Path) -> None:
    """`ip netns exec A multihome agent` and `... B ...` on one host write their state file
    and their DHCP clients' files in two folders (found by the lab: both used
    /run/multihome/agent.json, so `agent status` in one namespace showed the other's)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    names = [f"mhhot-{secrets.token_hex(3)}-ns{i}" for i in (1, 2)]
    code = "from pathlib import Path; from multihome.agent.state import state_path; " \
        "print(state_path(Path('/')))"  # fmt: skip
    try:
        paths = []
        for name in names:
            subprocess.run(["ip", "netns", "add", name], check=True)
            done = subprocess.run(
                ["ip", "netns", "exec", name, sys.executable, "-c", code],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            paths.append(done.stdout.strip())
            assert done.stdout.strip() == f"{state_dir_of(Path('/'), name)}/agent.json"
        assert paths[0] != paths[1]
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
