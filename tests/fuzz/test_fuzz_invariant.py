"""The fuzzer's invariant is not vacuous: with nobody repairing, each kind of damage the
events do is caught by ``EventLab.problems()`` (kernel lookups, duplicates, foreign state)."""

from __future__ import annotations

from fuzz_lab import EventLab


def test_the_invariant_catches_damage_nobody_repairs(lab: EventLab) -> None:
    """The lab settled with the agent: the invariant holds. The agent stopped, each damage
    breaks it, with a message that names it: eth1's table flushed (eth1's traffic leaves
    eth0), a rule duplicated, a foreign rule gone, a detached port's rule left behind."""
    assert lab.problems() == []
    lab.live.stop_agent()

    lab.flush_table("eth1")
    found = lab.problems()
    assert "the agent is not running" in found
    assert any("ip route get 198.51.100.10 from 192.168.0.112: leaves eth0" in p for p in found)
    assert any("ip route get 198.51.100.10 oif eth1" in p for p in found), found

    # The how-to's rule typed again by hand, in another priority: a duplicate.
    lab.ip("-4", "rule", "add", "priority", "20003", "oif", "eth0", "lookup", lab.table_of("eth0"))
    assert any("'oif', 'eth0'" in p and "is there 2 times" in p for p in lab.problems())

    lab.foreign(9999, 1)
    assert not [p for p in lab.problems() if "foreign" in p]
    lab.ip("-4", "rule", "del", "priority", "9999")
    assert any("foreign rule" in p for p in lab.problems())

    lab.detached["eth9"] = "192.168.0.99"
    lab.ip("-4", "rule", "add", "priority", "10002", "from", "192.168.0.99", "lookup", "10007",
           "protocol", "222")  # fmt: skip
    assert any("detached port" in p for p in lab.problems())
