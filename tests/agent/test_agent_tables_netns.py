"""The agent and another tool's rule into a multihome table (issue 17: on main the agent moved
eth1 to a new table 19 ms after the rule appeared), against the real kernel."""

from __future__ import annotations

from agent_util import GATEWAY, Lab, wait_until

BOUND = 15.0  # seconds: generous, the machine is shared


def _multihomes(lab: Lab) -> tuple[list[object], list[object]]:
    """multihome's rules and routes (protocol 222), as ``ip -j`` shows them."""
    return (
        [r for r in lab.rules() if r.get("protocol") == "222"],
        [r for r in lab.routes() if r.get("protocol") == "222"],
    )


def _eth1_table(lab: Lab) -> str:
    return next(str(r["table"]) for r in lab.owned_rules() if r.get("oif") == "eth1")


def test_a_foreign_rule_into_eth1s_table_is_no_reason_to_repair(lab: Lab) -> None:
    """The agent converges; a fwmark rule into eth1's table appears; a later event (DHCP's
    default back in main) is repaired, which proves the agent planned with the foreign rule
    present: every rule and route of multihome is where it was, the foreign rule intact."""
    lab.start_agent("--source", "kernel")
    wait_until(
        lambda: [r["dev"] for r in lab.main_defaults()] == ["eth0"] and lab.owned_rules(),
        BOUND,
        "policy applied",
    )
    table = _eth1_table(lab)
    lab.ip("rule", "add", "priority", "10500", "fwmark", "0x1", "lookup", table)
    before = _multihomes(lab)
    lab.ip(
        "route", "add", "default", "via", GATEWAY, "dev", "eth1", "proto", "dhcp", "metric", "101"
    )
    wait_until(
        lambda: [r["dev"] for r in lab.main_defaults()] == ["eth0"],
        BOUND,
        "eth1's default removed from main again",
    )
    assert _multihomes(lab) == before
    assert _eth1_table(lab) == table
    assert [str(r["table"]) for r in lab.rules() if r["priority"] == 10500] == [table]
