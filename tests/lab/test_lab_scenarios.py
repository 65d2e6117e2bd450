"""End to end, every scenario: the guest's routes from DHCP, the probe before and after
`multihome apply` inside the guest, compared with the expectations stored in the scenario."""

from __future__ import annotations

import json
import subprocess

import pytest
from labtools import ns_run, run_cli, run_json

from multihome.lab.scenario import builtin_scenarios, load_scenario

NUMBERS = [s.number for s in builtin_scenarios()]


def guest_routes(name: str) -> list[str]:
    """The guest's main table, read with `ip` (not with the code under test)."""
    done = ns_run(f"{name}-vm", "ip", "-4", "route", "show")
    return [" ".join(line.split()) for line in done.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("number", NUMBERS)
def test_scenario_matches_its_expectations_before_and_after_apply(
    number: int, lab_name: str
) -> None:
    """Up, probe (as the scenario expects before), apply in the guest, probe (as after)."""
    scenario = load_scenario(str(number))
    up = run_cli("lab", "up", "--scenario", str(number), "--name", lab_name)
    assert up.returncode == 0, up.stderr
    assert guest_routes(lab_name) == list(scenario.guest_routes)

    before = run_json("lab", "probe", "--name", lab_name, "--expect", "before")
    assert before["expect"]["mismatches"] == []
    assert before["outcome"] == scenario.expect["before"].to_json()

    applied = run_cli("lab", "exec", "--name", lab_name, "--", "multihome", "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr

    after = run_json("lab", "probe", "--name", lab_name, "--expect", "after")
    assert after["expect"]["mismatches"] == []
    assert after["outcome"] == scenario.expect["after"].to_json()


def test_scenario4_second_floating_ip_dead_before_and_alive_after(lab_name: str) -> None:
    """The how-to's failure and the fix, checked with curl, ping, nft and ip directly."""
    assert run_cli("lab", "up", "--scenario", "4", "--name", lab_name).returncode == 0
    inet, vm, sw = f"{lab_name}-inet", f"{lab_name}-vm", f"{lab_name}-sw"

    def http(namespace: str, url: str, *extra: str) -> str | None:
        done = ns_run(
            namespace, "curl", "-s", "--connect-timeout", "1.5", "--max-time", "2", *extra, url
        )
        return done.stdout.strip() if done.returncode == 0 else None

    def ip_drops() -> int:
        data = json.loads(ns_run(sw, "nft", "-j", "list", "counters").stdout)
        return sum(
            item["counter"]["packets"]
            for item in data["nftables"]
            if "counter" in item and item["counter"]["name"].endswith("_ip")
        )

    # Before: eth0's floating IP works, eth1's does not; replies are dropped as spoofed.
    assert http(inet, "http://203.0.113.107/") == "198.51.100.10"
    assert http(inet, "http://203.0.113.112/") is None
    assert ns_run(inet, "ping", "-c", "1", "-W", "1", "203.0.113.112").returncode != 0
    assert http(vm, "http://198.51.100.10/", "--interface", "192.168.0.107") == "203.0.113.107"
    assert http(vm, "http://198.51.100.10/", "--interface", "192.168.0.112") is None
    assert ip_drops() > 0

    applied = run_cli("lab", "exec", "--name", lab_name, "--", "multihome", "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    drops = ip_drops()

    # After: both floating IPs answer; each source address leaves with its own floating IP.
    assert http(inet, "http://203.0.113.112/") == "198.51.100.10"
    assert ns_run(inet, "ping", "-c", "1", "-W", "1", "203.0.113.112").returncode == 0
    assert http(vm, "http://198.51.100.10/", "--interface", "192.168.0.107") == "203.0.113.107"
    assert http(vm, "http://198.51.100.10/", "--interface", "192.168.0.112") == "203.0.113.112"
    assert ip_drops() == drops

    # The table names multihome registered stay inside the guest's own /etc/iproute2.
    rules = json.loads(ns_run(vm, "ip", "-j", "rule").stdout)
    from_112 = [r for r in rules if r.get("src") == "192.168.0.112" and "dst" not in r]
    assert len(from_112) == 1 and from_112[0]["table"].startswith("mh-")
    names = f"/etc/netns/{vm}/iproute2/rt_tables.d/multihome.conf"
    with open(names, encoding="utf-8") as handle:
        assert "mh-eth1" in handle.read()


def test_probe_format_dot_draws_each_probe_path(lab_name: str) -> None:
    """`lab probe --format dot` on scenario 4: before apply, the inbound probe of eth1's
    floating IP and the egress of eth1's address are red, with the drops of eth0's port
    (eth1's replies leave eth0) as a red edge, eth0's own probes green; graphviz renders it;
    after `multihome apply` nothing is red."""
    assert run_cli("lab", "up", "--scenario", "4", "--name", lab_name).returncode == 0

    def red_lines() -> list[str]:
        done = run_cli("lab", "probe", "--name", lab_name, "--format", "dot")
        assert done.returncode == 0, done.stderr
        svg = subprocess.run(
            ["dot", "-Tsvg"], input=done.stdout, capture_output=True, text=True, check=False
        )
        assert svg.returncode == 0 and "<svg" in svg.stdout, svg.stderr
        return [line.strip() for line in done.stdout.splitlines() if 'color="red"' in line]

    before = red_lines()
    assert any(
        line.startswith('"internet 198.51.100.10" -> "192.168.0.112" [label="to 203.0.113.112')
        for line in before
    ), before
    assert any(line.startswith('"192.168.0.112" -> "internet') for line in before), before
    # eth1's replies leave eth0 with eth1's address: eth0's port drops them.
    assert any(line.startswith('"eth0" -> "switch') and "dropped (ip)" in line for line in before)
    assert not any('"192.168.0.107"' in line for line in before), before
    applied = run_cli("lab", "exec", "--name", lab_name, "--", "multihome", "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert red_lines() == []
