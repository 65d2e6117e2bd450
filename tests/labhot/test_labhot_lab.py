"""The live-lab verbs on their own (no agent): what attach-port builds and detach-port
removes, checked with nft, ip, curl and the files; bad input; rollback; `lab down`; and the
metadata the lab serves (config drive and metadata service give the same plan)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from labhot_util import LiveLab, leftovers, ns_run, run_cli

STATE_ROOT = Path("/run/multihome-lab")


def ruleset(lab: LiveLab, node: str) -> str:
    """A node's nftables ruleset without counter values (they change with traffic)."""
    text = ns_run(f"{lab.name}-{node}", "nft", "list", "ruleset").stdout
    return re.sub(r"packets \d+ bytes \d+", "", text)


def files(lab: LiveLab) -> dict[str, str]:
    """The lab's state files and their contents (the event lock aside)."""
    return {
        path.name: path.read_text(errors="replace")
        for path in sorted((STATE_ROOT / lab.name).iterdir())
        if path.is_file() and path.name != "events.lock" and not path.name.endswith(".log")
    }


def guest_links(lab: LiveLab) -> list[str]:
    return sorted(
        item["ifname"] for item in json.loads(ns_run(lab.guest, "ip", "-j", "link").stdout)
    )


def served(lab: LiveLab, document: str) -> dict[str, object]:
    """A document of the metadata service, fetched from inside the guest."""
    done = ns_run(
        lab.guest,
        "curl",
        "-sf",
        "--noproxy",
        "*",
        "--max-time",
        "3",
        f"http://169.254.169.254/openstack/latest/{document}",
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_attach_builds_the_cloud_side_and_detach_removes_it(live: LiveLab) -> None:
    """attach-port: switch port with its chain and counters, NAT both ways, DHCP host,
    network_data.json entry, and a NIC down and unaddressed in the guest. Nothing
    configures it (no agent here): its floating IP does not answer. detach-port restores
    every ruleset and file as it was; the scenario's ports work throughout."""
    live.ok("up", "--scenario", "4")
    before = {node: ruleset(live, node) for node in ("sw", "rtr")}
    hosts = (STATE_ROOT / live.name / "dhcp-hosts").read_text()
    network_data = served(live, "network_data.json")

    port = json.loads(
        live.ok("attach-port", "--ip", "192.168.0.120", "--floating-ip", "203.0.113.120", "--json")
    )["port"]
    assert (port["name"], port["ips"], port["metric"]) == ("eth2", ["192.168.0.120"], 102)
    mac = port["mac"]
    assert re.fullmatch(r"fa:16:3e(:[0-9a-f]{2}){3}", mac)

    link = json.loads(ns_run(live.guest, "ip", "-j", "link", "show", "eth2").stdout)[0]
    assert link["address"] == mac and "UP" not in link["flags"]
    assert not live.addresses("eth2")
    switch = ns_run(f"{live.name}-sw", "ip", "-j", "link", "show", "tap2").stdout
    assert json.loads(switch)[0]["master"] == "br0"
    sw = ruleset(live, "sw")
    assert '"tap2" : jump port_eth2' in sw and "counter eth2_ip" in sw
    assert f"192.168.0.120 . {mac}" in sw
    rtr = ruleset(live, "rtr")
    assert "203.0.113.120 : 192.168.0.120" in rtr and "192.168.0.120 : 203.0.113.120" in rtr
    assert f"{mac},set:eth2,192.168.0.120" in (STATE_ROOT / live.name / "dhcp-hosts").read_text()
    links = served(live, "network_data.json")["links"]
    assert isinstance(links, list) and mac in [item["ethernet_mac_address"] for item in links]
    # The config drive is what Nova wrote at boot: the new port is not on it.
    drive = STATE_ROOT / live.name / "config-drive/openstack/latest/network_data.json"
    assert json.loads(drive.read_text()) == network_data
    # Nothing in the guest configures the NIC: the floating IP is dead, the others work.
    probe = json.loads(live.ok("probe", "--json"))
    assert probe["outcome"]["reachable"] == {
        "203.0.113.107": True,
        "203.0.113.112": False,  # scenario 4 before `multihome apply`
        "203.0.113.120": False,
    }
    status = live.cli("status", "--json")
    assert status.returncode == 0, status.stdout  # no lab DHCP client expected for eth2

    live.ok("detach-port", "eth2")
    assert guest_links(live) == ["eth0", "eth1", "lo"]
    assert {node: ruleset(live, node) for node in ("sw", "rtr")} == before
    assert (STATE_ROOT / live.name / "dhcp-hosts").read_text() == hosts
    assert served(live, "network_data.json") == network_data
    assert json.loads(live.ok("probe", "--json"))["outcome"]["reachable"] == {
        "203.0.113.107": True,
        "203.0.113.112": False,
    }


def test_detach_a_scenario_port_and_down_leaves_nothing(live: LiveLab) -> None:
    """A port the lab started a DHCP client for can be detached too (its client stops);
    a lab with an attached port is removed by `lab down` without a trace."""
    live.ok("up", "--scenario", "4")
    live.ok("attach-port", "--floating-ip", "auto")
    live.ok("detach-port", "eth1")
    assert not [a for a in live.guest_processes("dhclient") if "eth1" in a]
    assert [a[-1] for a in live.guest_processes("dhclient")] == ["eth0"]
    status = json.loads(live.cli("status", "--json").stdout)
    assert [p["name"] for p in status["processes"] if p["name"].startswith("dhclient")] == [
        "dhclient.eth0"
    ]
    assert status["problems"] == []
    # The next port takes the free name eth1 again.
    again = json.loads(live.ok("attach-port", "--json"))["port"]
    assert again["name"] == "eth1"
    assert live.ok("down")
    assert leftovers(live.name) == []


def test_bad_input_exits_2_and_changes_nothing(live: LiveLab) -> None:
    """No lab, an unknown port, a taken or foreign address, an unknown network, a static
    port to renew: exit 2 with a message naming the input, and nothing changed."""
    for verb, args in (
        ("attach-port", ()),
        ("detach-port", ("eth1",)),
        ("flap", ("eth1",)),
        ("renew", ("eth1",)),
        ("expire", ("eth1",)),
    ):
        done = live.cli(verb, *args)
        assert done.returncode == 2, (verb, done.stdout, done.stderr)
        assert f"no lab named {live.name!r} is up" in done.stderr
        assert "Traceback" not in done.stderr
    assert leftovers(live.name) == []

    live.ok("up", "--scenario", "2")  # eth1: gateway-less network without DHCP
    state = files(live)
    rulesets = {node: ruleset(live, node) for node in ("sw", "rtr")}
    cases = [
        (("detach-port", "eth7"), "eth7: no such port"),
        (("flap", "eth7"), "(ports: eth0, eth1)"),
        (("attach-port", "--ip", "192.168.0.5"), "--ip 192.168.0.5: not a host address"),
        (("attach-port", "--ip", "nonsense"), "not an IPv4 or IPv6 address"),
        (("attach-port", "--network", "nope"), "use one of: external, isolated"),
        (("attach-port", "--network", "isolated", "--floating-ip", "auto"), "has no router"),
        (("attach-port", "--network", "external", "--floating-ip", "auto"), "external"),
        (("attach-port", "--network", "isolated", "--ip", "192.168.10.5"), "used by eth1"),
        (("attach-port", "--floating-ip", "auto"), "external: its addresses are public"),
        (("renew", "eth1"), "eth1: its address is static"),
        (("expire", "eth1"), "no lease to expire"),
        (("renew", "eth0", "--router", "10.1.1.1"), "--router 10.1.1.1: not a host address"),
    ]
    for args, message in cases:
        done = live.cli(*args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in done.stderr, (args, done.stderr)
    assert files(live) == state
    assert {node: ruleset(live, node) for node in ("sw", "rtr")} == rulesets
    assert guest_links(live) == ["eth0", "eth1", "lo"]


def test_a_failed_attach_is_undone(live: LiveLab) -> None:
    """A failure just before the NIC is plugged (an injected one) undoes every step taken:
    rulesets, DHCP hosts, metadata and the lab's port list are as before."""
    live.ok("up", "--scenario", "4")
    state = STATE_ROOT / live.name
    before = (
        {node: ruleset(live, node) for node in ("sw", "rtr")},
        (state / "dhcp-hosts").read_text(),
        (state / "network_data.json").read_text(),
    )
    done = run_cli(
        "lab",
        "attach-port",
        "--name",
        live.name,
        "--floating-ip",
        "auto",
        env={"MULTIHOME_LAB_FAILPOINT": "attach"},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "injected failure at step 'attach'" in done.stderr
    after = (
        {node: ruleset(live, node) for node in ("sw", "rtr")},
        (state / "dhcp-hosts").read_text(),
        (state / "network_data.json").read_text(),
    )
    assert after == before
    assert json.loads((state / "ports.json").read_text())["ports"][-1]["name"] == "eth1"
    assert "eth2" not in ns_run(f"{live.name}-sw", "ip", "link").stdout
    assert json.loads(live.ok("attach-port", "--json"))["port"]["name"] == "eth2"


def plan(live: LiveLab, *source: str) -> dict[str, object]:
    """`multihome plan --json` inside the guest, with ``source``."""
    done = live.cli(
        "exec", "--", "multihome", "--root", str(live.tmp / "root"), "plan", "--json", *source
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(json.loads(done.stdout))


@pytest.mark.parametrize("scenario", ["4", "2"])
def test_config_drive_and_metadata_service_give_the_same_plan(live: LiveLab, scenario: str) -> None:
    """Inside the guest, `plan --source openstack` from the metadata service and from the
    lab's config drive give the same plan; with every port configured, it is the kernel
    source's plan. In scenario 2, with the DHCP-disabled port's address removed, both
    metadata sources propose its static address from network_data.json (the kernel cannot)."""
    live.ok("up", "--scenario", scenario)
    drive = str(STATE_ROOT / live.name / "config-drive")
    kernel = plan(live, "--source", "kernel")
    service = plan(live, "--source", "openstack", "--metadata", "http://169.254.169.254")
    disk = plan(live, "--source", "openstack", "--metadata", drive)
    assert service["origin"] == "metadata service http://169.254.169.254"
    assert disk["origin"] == f"config drive {drive}"

    def essence(found: dict[str, object]) -> tuple[str, str, str]:
        return tuple(  # type: ignore[return-value]
            json.dumps(found[key], sort_keys=True) for key in ("changes", "interfaces", "static")
        )

    assert essence(service) == essence(disk)
    assert service["ports"] == disk["ports"]
    assert essence(service)[:2] == essence(kernel)[:2]
    if scenario != "2":
        return
    ns_run(live.guest, "ip", "-4", "addr", "flush", "dev", "eth1")
    service = plan(live, "--source", "openstack", "--metadata", "http://169.254.169.254")
    disk = plan(live, "--source", "openstack", "--metadata", drive)
    kernel = plan(live, "--source", "kernel")
    assert essence(service) == essence(disk)
    assert [s["interface"] for s in service["static"]] == ["eth1"]  # type: ignore[union-attr]
    assert service["static"][0]["addresses"] == ["192.168.10.5/24"]  # type: ignore[index]
    assert kernel["static"] == []
