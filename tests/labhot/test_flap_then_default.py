"""Issue 13's opening sequence, in the lab with the real `multihome agent` running: a link flap
of eth1, then a DHCP client that puts back only eth1's default in main.

Before the fix the agent's second repair took eth1's subnet route and metadata host route out
of eth1's table (main no longer had them), with the rules `to 192.168.0.0/24` and
`to 169.254.169.254`: eth1's floating IP died. Every outcome here is checked from outside
multihome: `lab probe --json`, curl bound to eth1's address, and `ip -j route get`.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from labhot_util import LiveLab, ns_run, wait_until

BOUND = 10.0  # seconds: generous, the machine is shared
ETH1 = "192.168.0.112"
METADATA_URL = "http://169.254.169.254/openstack/latest/network_data.json"


def route_get(lab: LiveLab, dst: str, src: str) -> dict[str, Any]:
    """The kernel's answer to `ip -j route get DST from SRC` in the guest."""
    found = lab.ip_json("-4", "route", "get", dst, "from", src)
    assert found, f"no route to {dst} from {src}"
    return found[0]


def guest(lab: LiveLab, *argv: str) -> None:
    done = ns_run(lab.guest, *argv)
    assert done.returncode == 0, f"{argv}: {done.stdout}{done.stderr}"


def metadata_through_eth1(lab: LiveLab) -> bool:
    """The metadata service answers a request sourced from eth1's address."""
    text = lab.http("vm", METADATA_URL, "--interface", ETH1)
    return text is not None and "links" in text


def healthy(lab: LiveLab) -> bool:
    """Every floating IP answers, eth1's traffic leaves eth1, metadata answers through it."""
    probe = lab.probe()
    return (
        all(i["ok"] for i in probe["inbound"])
        and all(g["ok"] for g in probe["gateway"])
        and route_get(lab, "192.168.0.1", ETH1).get("dev") == "eth1"
        and route_get(lab, "169.254.169.254", ETH1).get("dev") == "eth1"
        and metadata_through_eth1(lab)
    )


def test_flap_then_only_the_default_back_keeps_eth1_whole(scenario4: LiveLab) -> None:
    """Scenario 4 fixed, the agent runs. `ip link set eth1 down; sleep 0.3; ip link set eth1
    up`, 2 s, then `ip route add default via 192.168.0.1 dev eth1 proto dhcp src
    192.168.0.112 metric 101` (a client that restores only the default). Afterwards every
    floating IP answers, `ip route get 192.168.0.1 from 192.168.0.112` and the metadata
    address leave through eth1, metadata answers from eth1's address, and eth1's address
    still looks up its table first."""
    lab = scenario4
    lab.start_agent()
    wait_until(lambda: healthy(lab), BOUND, "scenario 4 works with the agent\n" + lab.agent_log())

    guest(lab, "ip", "link", "set", "eth1", "down")
    time.sleep(0.3)
    guest(lab, "ip", "link", "set", "eth1", "up")
    time.sleep(2)
    guest(lab, "ip", "route", "add", "default", "via", "192.168.0.1", "dev", "eth1",
          "proto", "dhcp", "src", ETH1, "metric", "101")  # fmt: skip
    # The agent takes the default out of main again: its second repair is done then.
    wait_until(
        lambda: "eth1" not in lab.main_defaults(),
        BOUND,
        "the agent moved eth1's default out of main\n" + lab.agent_log(),
    )
    time.sleep(1)  # any later repair has happened too
    assert lab.agent is not None and lab.agent.poll() is None, lab.agent_log()

    rules = lab.rules()
    first = [r for r in rules if r.get("src") == ETH1 and r["priority"] == 10000]
    assert len(first) == 1 and "dst" not in first[0], json.dumps(rules, indent=1)
    probe = lab.probe()
    assert {i["public"]: i["ok"] for i in probe["inbound"]} == {
        "203.0.113.107": True,
        "203.0.113.112": True,
    }, probe
    assert all(g["ok"] for g in probe["gateway"]), probe["gateway"]
    assert route_get(lab, "192.168.0.1", ETH1)["dev"] == "eth1"
    assert route_get(lab, "169.254.169.254", ETH1)["dev"] == "eth1"
    assert metadata_through_eth1(lab), lab.agent_log()
    # Checked by the kernel's own lookup, also for a peer on the subnet (eth1's address
    # looks up eth1's table first, which must hold the subnet route).
    peer = route_get(lab, "192.168.0.100", ETH1)
    assert peer["dev"] == "eth1" and "gateway" not in peer, peer
    ping = subprocess.run(
        ["ip", "netns", "exec", lab.guest, "ping", "-c1", "-W1", "-I", ETH1, "192.168.0.1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ping.returncode == 0, ping.stdout + ping.stderr


def test_flap_while_no_agent_runs_then_the_agent_rebuilds_from_the_lease(
    scenario4: LiveLab,
) -> None:
    """The agent's memory is empty (it was not running): eth1 flaps, which flushes its table;
    main gets back only the prefix route (the kernel's), not the default nor the metadata
    route. The agent started then rebuilds eth1's table from eth1's dhclient lease (the file
    named by the running dhclient's -lf) and its address: every floating IP answers and
    metadata answers through eth1 (before, eth1 was taken for an isolated port)."""
    lab = scenario4
    guest(lab, "ip", "link", "set", "eth1", "down")
    time.sleep(0.3)
    guest(lab, "ip", "link", "set", "eth1", "up")
    assert not [
        r for r in lab.routes("main") if r.get("dev") == "eth1" and r["dst"] != "192.168.0.0/24"
    ]
    lab.start_agent()
    wait_until(lambda: healthy(lab), BOUND, "eth1 works again\n" + lab.agent_log())
    assert route_get(lab, "198.51.100.10", ETH1).get("gateway") == "192.168.0.1"
