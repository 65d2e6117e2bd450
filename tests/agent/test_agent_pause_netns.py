"""The agent next to `reset` and `rollback`, and metadata it must refuse, in namespaces.

`reset` and `rollback` pause a running agent (and say so) instead of being undone by it a
few milliseconds later; `agent status` shows the pause; `apply` or `agent resume` ends it.
Metadata that gives a hot-plugged port another port's address is refused: the port stays
unaddressed and the other port keeps working."""

from __future__ import annotations

import json
import time

from agent_util import ADDRESS, GATEWAY, Lab, network_data, wait_until, write_drive
from test_agent_netns import BOUND, converged


def owned(lab: Lab) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    return lab.owned_rules(), lab.owned_routes()


def readd_default(lab: Lab) -> None:
    """What a DHCP client does on a renew: eth1's default back into main."""
    lab.ip(
        "route", "add", "default", "via", GATEWAY, "dev", "eth1", "proto", "dhcp", "metric", "101"
    )


def test_reset_pauses_the_agent_until_apply(lab: Lab) -> None:
    """reset with the agent running: it reports that it paused the agent, nothing comes back
    (not even after an event), `agent status` says PAUSED; `apply` ends the pause and the
    agent repairs again."""
    lab.start_agent("--source", "kernel", "--no-dhcp")
    wait_until(lambda: converged(lab), BOUND, "policy applied")
    done = lab.multihome("reset", "--json")
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["agent"] == "paused", outcome
    assert any("paused by reset" in note for note in outcome["notes"]), outcome
    assert owned(lab) == ([], [])
    lab.ip("route", "del", "default", "dev", "eth1")  # events the agent would have answered
    readd_default(lab)
    time.sleep(1.0)
    assert owned(lab) == ([], []), lab.agent_log()
    assert sorted(r["dev"] for r in lab.main_defaults()) == ["eth0", "eth1"]
    status = lab.multihome("agent", "status")
    assert status.returncode == 0 and "PAUSED" in status.stdout, status.stdout
    assert json.loads(lab.multihome("agent", "status", "--json").stdout)["paused"]["by"] == "reset"
    assert "paused by reset" in lab.agent_log()
    assert "PAUSED" in lab.multihome("status").stdout
    applied = lab.multihome("apply")
    assert applied.returncode == 0, applied.stderr
    assert "resumed the agent (paused by reset" in applied.stderr
    assert converged(lab)
    assert json.loads(lab.multihome("agent", "status", "--json").stdout)["paused"] is None
    readd_default(lab)
    wait_until(lambda: converged(lab), BOUND, "the agent repairs again")


def test_a_rolled_back_apply_leaves_the_pause_on(lab: Lab) -> None:
    """After a reset paused the agent, an apply whose confirmation window runs out is rolled
    back and does not end the pause: the agent does not re-apply what the rollback undid."""
    lab.start_agent("--source", "kernel", "--no-dhcp")
    wait_until(lambda: converged(lab), BOUND, "policy applied")
    assert lab.multihome("reset").returncode == 0
    done = lab.multihome("apply", "--confirm-timeout", "1")
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert "resumed the agent" not in done.stderr
    time.sleep(1.0)
    assert owned(lab) == ([], []), lab.agent_log()
    assert json.loads(lab.multihome("agent", "status", "--json").stdout)["paused"]["by"] == "reset"


def test_rollback_pauses_the_agent_until_resume(lab: Lab) -> None:
    """rollback with the agent running pauses it and says so; the rolled-back state stays;
    `agent resume` ends the pause and wakes the agent, which applies the policy again."""
    lab.start_agent("--source", "kernel", "--no-dhcp")
    wait_until(lambda: converged(lab), BOUND, "policy applied")
    done = lab.multihome("rollback")
    assert done.returncode == 0, done.stderr
    assert "paused by rollback" in done.stdout, done.stdout
    rolled_back = owned(lab)
    assert not converged(lab)
    time.sleep(1.0)
    assert owned(lab) == rolled_back, lab.agent_log()
    assert "PAUSED" in lab.multihome("agent", "status").stdout
    resumed = lab.multihome("agent", "resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed" in resumed.stdout and "repairs the namespace now" in resumed.stdout
    wait_until(lambda: converged(lab), BOUND, "the agent repairs after resume")
    assert "not paused" in lab.multihome("agent", "resume").stdout


def test_metadata_giving_another_ports_address_is_refused(lab: Lab) -> None:
    """A hot-plugged DHCP-disabled port whose network_data.json gives it eth1's address
    stays unaddressed, the agent log says why, and eth1's replies still leave through eth1."""
    drive = write_drive(lab.tmp / "md", network_data())
    lab.serve_metadata(drive)
    lab.start_agent("--source", "openstack", "--metadata", "http://169.254.169.254")
    wait_until(lambda: converged(lab), BOUND, "policy applied")
    data = network_data(static=("eth2",))
    for network in data["networks"]:
        if network["link"] == "tapeth2":
            network["ip_address"] = ADDRESS["eth1"]
    write_drive(drive, data)
    lab.add_port("eth2", None, up=False)
    try:
        wait_until(lambda: "metadata refused" in lab.agent_log(), BOUND, "refusal logged")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{lab.agent_log()}") from None
    assert f"{ADDRESS['eth1']} is eth1's address" in lab.agent_log()
    time.sleep(0.5)
    assert lab.addresses("eth2") == []
    assert lab.agent_state()["configured"]["eth2"].startswith("refused: ")
    assert converged(lab)
    got = lab.ip("route", "get", "198.51.100.10", "from", ADDRESS["eth1"]).stdout
    assert "dev eth1" in got, got
