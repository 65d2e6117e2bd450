"""Table identity and ownership against the real kernel (issue 17): another tool's rule or
route in a multihome table moves nothing, and a changed ``tables.range`` is handled by
re-apply, reset and doctor. Checked with ``ip -j``, never with the code under test."""

from __future__ import annotations

import json
from pathlib import Path

from netns_util import HowtoVM, multihome, routes, rules, sh

NEW_RANGE = "tables:\n  range: [20000, 20999]\n"


def _table_of(vm: HowtoVM, ifname: str) -> int:
    for rule in rules(vm.ns):
        if rule.get("oif") == ifname and rule.get("protocol") == "222":
            return int(str(rule["table"]))
    raise AssertionError(f"no oif rule for {ifname}: {rules(vm.ns)}")


def _ip(vm: HowtoVM, command: str) -> None:
    """``ip -n VM <command>`` (words split on blanks)."""
    sh("ip", "-n", vm.ns, *command.split())


def _ours(vm: HowtoVM) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """multihome's rules and routes (protocol 222) as ``ip -j`` shows them."""
    return (
        [r for r in rules(vm.ns) if r.get("protocol") == "222"],
        [r for r in routes(vm.ns) if r.get("protocol") == "222"],
    )


def _apply(vm: HowtoVM, *args: str) -> str:
    result = multihome(vm.ns, *args, "apply", root=vm.root)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _config(tmp_path: Path) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(NEW_RANGE)
    return str(path)


def test_another_tools_rule_and_route_in_eth1s_table_move_nothing(vm: HowtoVM) -> None:
    """Issue 17's sequence: apply; a fwmark rule (priority 10500) and a route through eth0
    into eth1's table; apply again: 0 changes, every rule and route where it was, the
    foreign rule and route intact; status and doctor name them; a second apply makes 0."""
    _apply(vm)
    t1, t0 = _table_of(vm, "eth1"), _table_of(vm, "eth0")
    _ip(vm, f"rule add priority 10500 fwmark 0x1 lookup {t1}")
    _ip(vm, f"route add 10.9.0.0/24 via 192.168.0.1 dev eth0 table {t1}")
    foreign_rule = [r for r in rules(vm.ns) if r["priority"] == 10500]
    foreign_route = [r for r in routes(vm.ns) if r["dst"] == "10.9.0.0/24"]
    assert len(foreign_rule) == len(foreign_route) == 1
    before = _ours(vm)

    again = multihome(vm.ns, "apply", "--detailed-exit-codes", root=vm.root)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "no changes" in again.stdout
    assert _ours(vm) == before
    assert (_table_of(vm, "eth1"), _table_of(vm, "eth0")) == (t1, t0)
    assert [r for r in rules(vm.ns) if r["priority"] == 10500] == foreign_rule
    assert [r for r in routes(vm.ns) if r["dst"] == "10.9.0.0/24"] == foreign_route
    assert {r["dst"] for r in routes(vm.ns) if r.get("table") == str(t1)} == {
        "default",
        "169.254.169.254",
        "192.168.0.0/24",
        "10.9.0.0/24",
    }

    status = multihome(vm.ns, "status", "--json", root=vm.root)
    refs = json.loads(status.stdout)["references"]
    assert {
        (r["kind"], r["table"], r["interface"], r["priority"], r["protocol"]) for r in refs
    } == {("rule", t1, "eth1", 10500, "boot"), ("route", t1, "eth1", None, "boot")}
    text = multihome(vm.ns, "status", root=vm.root).stdout
    assert "used by other tools (2, left untouched):" in text
    doctor = multihome(vm.ns, "doctor", "--json", root=vm.root)
    shared = [p for p in json.loads(doctor.stdout)["problems"] if p["code"] == "shared-table"]
    assert len(shared) == 1 and shared[0]["interface"] == "eth1", doctor.stdout
    assert "10500 from all fwmark 0x1 lookup mh-eth1" in shared[0]["message"]

    third = multihome(vm.ns, "apply", "--detailed-exit-codes", root=vm.root)
    assert third.returncode == 0 and "no changes" in third.stdout, third.stdout + third.stderr
    assert _ours(vm) == before


def test_a_changed_table_range_is_moved_to_cleanly(vm: HowtoVM, tmp_path: Path) -> None:
    """tables.range changes in the config file: doctor names the old tables (multihome's
    rules still use them) with `multihome apply` as the fix; re-apply moves both ports into
    the new range and leaves no route in the old tables; the next apply makes no change."""
    _apply(vm)
    old = {_table_of(vm, "eth0"), _table_of(vm, "eth1")}
    config = _config(tmp_path)
    doctor = multihome(vm.ns, "--config", config, "doctor", "--json", root=vm.root)
    outside = [p for p in json.loads(doctor.stdout)["problems"] if p["code"] == "leftover-routes"]
    assert {int(p["message"].split()[1]) for p in outside} == old, doctor.stdout
    assert all("`multihome apply` moves the ports" in p["fix"] for p in outside)
    _apply(vm, "--config", config)
    new = {_table_of(vm, "eth0"), _table_of(vm, "eth1")}
    assert all(20000 <= t <= 20999 for t in new), new
    assert not [r for r in routes(vm.ns) if r.get("table") in {str(t) for t in old}]
    ours_rules, ours_routes = _ours(vm)
    assert {r["table"] for r in ours_rules} == {str(t) for t in new} | {"main"}
    assert {r["table"] for r in ours_routes} == {str(t) for t in new}
    again = multihome(vm.ns, "--config", config, "apply", "--detailed-exit-codes", root=vm.root)
    assert again.returncode == 0 and "no changes" in again.stdout, again.stdout


def test_reset_after_a_range_change_removes_the_old_tables(vm: HowtoVM, tmp_path: Path) -> None:
    """reset under the new tables.range removes what the old range made; nothing with
    protocol 222 is left and main has its defaults back."""
    _apply(vm)
    reset = multihome(vm.ns, "--config", _config(tmp_path), "reset", root=vm.root)
    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert _ours(vm) == ([], [])
    assert {r["dev"] for r in routes(vm.ns) if r["dst"] == "default"} == {"eth0", "eth1"}


def test_doctor_finds_leftovers_and_reset_removes_registered_ones(
    vm: HowtoVM, tmp_path: Path
) -> None:
    """The state issue 17 found (the rules gone, the old tables' routes left): doctor
    reports them with the fix; reset removes them (their tables are in multihome's
    rt_tables.d) but leaves another tool's protocol-222 route in an unregistered table."""
    _apply(vm)
    old = {_table_of(vm, "eth0"), _table_of(vm, "eth1")}
    for rule in _ours(vm)[0]:
        _ip(vm, f"rule del priority {rule['priority']}")
    _ip(vm, "route add 10.5.0.0/16 dev eth0 table 500 proto 222")
    config = _config(tmp_path)
    doctor = multihome(vm.ns, "--config", config, "doctor", "--json", root=vm.root)
    leftovers = [p for p in json.loads(doctor.stdout)["problems"] if p["code"] == "leftover-routes"]
    assert len(leftovers) == 3, doctor.stdout
    registered = [p for p in leftovers if "which multihome registered" in p["message"]]
    assert len(registered) == 2 and all("multihome reset" in p["fix"] for p in registered)
    assert any("table 500" in p["message"] and "not registered" in p["message"] for p in leftovers)

    reset = multihome(vm.ns, "--config", config, "reset", root=vm.root)
    assert reset.returncode == 0, reset.stdout + reset.stderr
    left = _ours(vm)[1]
    assert [(r["dst"], r["table"]) for r in left] == [("10.5.0.0/16", "500")]
    assert not [r for r in routes(vm.ns) if r.get("table") in {str(t) for t in old}]
    assert "table(s) 500" in reset.stdout + reset.stderr
