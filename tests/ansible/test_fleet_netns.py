"""The collection's module against a fleet: a real ``ansible-playbook`` (ansible-core from
PyPI) whose three hosts are network namespaces holding the how-to's VM (two of them with two
ports, one with three), reached through the collection's ``multihome.guest.netns`` connection.

``site.yml`` runs the module twice per host (the second time must change nothing). One
module-scoped fixture runs it four times (check mode, the apply, then absent / a refusal / a
rollback, then absent in check mode) and keeps, after each run, the recap, every task's result
per host and each host's kernel (``ip -j rule``, ``ip -j route``) and files; the tests assert
on those.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ansible_support import HERE, Ansible, ansible_venv, howto_host, inventory, recap, results
from netns_util import routes, rules

pytestmark = pytest.mark.xdist_group("ansible")

MULTIHOME = str(Path(sys.executable).parent / "multihome")
BAND = range(10000, 10100)
#: The hosts: name -> (ports, state, configuration or None).
HOSTS: dict[str, tuple[int, str, dict[str, Any] | None]] = {
    "vm1": (2, "persisted", None),
    "vm2": (2, "persisted", None),
    "vm3": (3, "applied", {"tables": {"range": [20000, 20999]}}),
}
#: Hosts whose apply runs a post-apply check (``checks``: ``apply --check gateways``).
CHECKED = ("vm3",)
BAD_CONFIG = {"tables": {"range": [0, 10]}}
#: vm3's last run: tables moved to another range (changes pending), and a post-apply check
#: that fails (nothing listens on the gateway's port 9), so apply rolls back.
MOVED_CONFIG = {"tables": {"range": [30000, 30999]}}
FAILING_CHECK = "tcp:192.168.0.1:9"
ADDRESSES = ["192.168.0.107", "192.168.0.112", "192.168.0.115"]


@dataclass(frozen=True)
class Snapshot:
    """What a run may change on a host: its kernel's rules and routes, its files."""

    rules: list[dict[str, object]]
    routes: list[dict[str, object]]
    files: dict[str, str]


@dataclass
class Run:
    """One ``ansible-playbook`` run: its output, recap, results and the hosts after it."""

    output: str
    recap: dict[str, dict[str, int]]
    first: dict[str, dict[str, Any]]
    second: dict[str, dict[str, Any]]
    after: dict[str, Snapshot]
    seconds: float


@dataclass
class Fleet:
    namespaces: dict[str, str]
    roots: dict[str, Path]
    initial: dict[str, Snapshot]
    runs: dict[str, Run] = field(default_factory=dict)


def snapshot(ns: str, root: Path) -> Snapshot:
    files = {
        str(p.relative_to(root)): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] != "run"  # state dir: bookkeeping
    }
    return Snapshot(rules(ns), routes(ns), files)


def playbook(
    ansible: Ansible,
    fleet: Fleet,
    name: str,
    states: dict[str, tuple[str, dict[str, Any] | None]],
    *options: str,
) -> Run:
    """Run ``site.yml`` on ``states``' hosts (name -> state, configuration); keep the run."""
    hosts: dict[str, dict[str, Any]] = {}
    for host, (state, config) in states.items():
        hosts[host] = {"ansible_host": fleet.namespaces[host], "mh_state": state}
        hosts[host]["mh_root"] = str(fleet.roots[host])
        if config is not None:
            hosts[host]["mh_config"] = config
        if host in CHECKED:
            hosts[host]["mh_checks"] = ["gateways"]
        if name == "mixed" and host == "vm3":
            hosts[host]["mh_checks"] = [FAILING_CHECK]
    path = inventory(ansible.work / f"inventory-{name}.json", hosts, mh_executable=MULTIHOME)
    start = time.monotonic()
    proc = ansible.run("ansible-playbook", "-i", path, "-v", HERE / "site.yml", *options)
    seconds = time.monotonic() - start
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output  # failures are ignored (and counted) in site.yml
    tasks = results(proc.stdout)
    assert len(tasks) == 2 and all(set(task) == set(states) for task in tasks), output
    run = Run(
        output=output,
        recap=recap(proc.stdout),
        first=tasks[0],
        second=tasks[1],
        after={h: snapshot(fleet.namespaces[h], fleet.roots[h]) for h in fleet.namespaces},
        seconds=seconds,
    )
    fleet.runs[name] = run
    return run


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Three namespace hosts and four playbook runs: check, apply, mixed (vm1 absent, vm2
    refused, vm3's apply rolled back by a failed check), absent in check mode (vm2)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    work = tmp_path_factory.mktemp("ansible")
    ansible = Ansible(ansible_venv(), work)
    ansible.install_collection(work / "dist")
    with ExitStack() as stack:
        spaces: dict[str, str] = {}
        roots: dict[str, Path] = {}
        for host, (ports, _, _) in HOSTS.items():
            roots[host] = work / f"root-{host}"
            spaces[host] = howto_host(stack, host, ports, roots[host])
        fleet = Fleet(spaces, roots, {h: snapshot(spaces[h], roots[h]) for h in HOSTS})
        wanted = {host: (state, config) for host, (_, state, config) in HOSTS.items()}
        playbook(ansible, fleet, "check", wanted, "--check", "--diff")
        playbook(ansible, fleet, "apply", wanted)
        mixed = dict(
            wanted, vm1=("absent", None), vm2=("applied", BAD_CONFIG), vm3=("applied", MOVED_CONFIG)
        )
        playbook(ansible, fleet, "mixed", mixed)
        vm2 = {"vm2": ("absent", None)}
        playbook(ansible, fleet, "absent-check", vm2, "--check", "--diff", "--limit", "vm2")
        print("playbook runs (s):", {k: round(r.seconds, 1) for k, r in fleet.runs.items()})
        yield fleet


def from_rules(snap: Snapshot) -> dict[str, int]:
    """Source address -> table of the ``from ADDR lookup T`` rules in multihome's band."""
    return {
        str(r["src"]): int(str(r["table"]))
        for r in snap.rules
        if int(str(r["priority"])) in BAND and r.get("src", "all") != "all" and "dst" not in r
    }


def main_defaults(snap: Snapshot) -> set[str]:
    """The devices of the default routes in the main table."""
    return {str(r["dev"]) for r in snap.routes if r["dst"] == "default" and "table" not in r}


def changed(run: Run) -> dict[str, int]:
    return {host: counts["changed"] for host, counts in run.recap.items()}


def test_check_mode_returns_the_plan_and_changes_nothing(fleet: Fleet) -> None:
    """--check --diff: every host reports changed with the plan (shown as a diff, with the
    configuration file for the host given one), and no rule, route or file changed."""
    run = fleet.runs["check"]
    assert changed(run) == {"vm1": 2, "vm2": 2, "vm3": 2}  # both tasks: nothing was done
    assert run.after == fleet.initial
    lines = run.output.splitlines()
    for host, result in run.first.items():
        texts = [change["text"] for change in result["plan"]["changes"]]
        assert any(t.startswith("+ rule") for t in texts), (host, texts)
        assert all(text in lines for text in texts)  # --diff shows the plan
        assert result["changed"] is True and result["status"] == "changed"
    assert f"+++ after: {fleet.roots['vm3']}/etc/multihome/config.yaml" in lines
    assert all(run.first[h]["persist"]["dry_run"] for h in ("vm1", "vm2"))


def test_apply_puts_the_policy_in_every_hosts_kernel(fleet: Fleet) -> None:
    """The real run: each port's address has its ``from`` rule to its own table (in the
    configured range on vm3), main keeps only the primary's default, the returned facts
    (status --json) say nothing is pending, and the host given ``checks`` ran them."""
    run = fleet.runs["apply"]
    for host, (ports, _, config) in HOSTS.items():
        snap = run.after[host]
        tables = from_rules(snap)
        assert set(tables) == set(ADDRESSES[:ports]), (host, snap.rules)
        low, high = (config or {}).get("tables", {}).get("range", [10000, 10999])
        assert all(low <= t <= high for t in tables.values()) and len(set(tables.values())) == ports
        assert main_defaults(snap) == {"eth0"}
        facts = run.first[host]["ansible_facts"]["multihome"]
        assert facts["pending_changes"] == 0 and facts["primary"] == "eth0"
        assert {rule["table"] for rule in facts["rules"]} >= set(tables.values())
    for host in HOSTS:  # the checks given ran (and passed: a failed one rolls back)
        checked = [m for m in run.first[host]["apply_messages"] if m.startswith("check ok:")]
        assert bool(checked) == (host in CHECKED), run.first[host]["apply_messages"]


def test_the_second_task_reports_no_change(fleet: Fleet) -> None:
    """Idempotence: the first task changed every host, the same task again reports
    changed=0 everywhere (changed=1 in the recap) and the kernel's rules stayed as they were."""
    run = fleet.runs["apply"]
    assert changed(run) == {"vm1": 1, "vm2": 1, "vm3": 1}
    for host in HOSTS:
        first, second = run.first[host], run.second[host]
        assert first["changed"] is True and second["changed"] is False, host
        assert first["ansible_facts"] == second["ansible_facts"]


def test_persisted_files_under_the_root_of_persisted_hosts_only(fleet: Fleet) -> None:
    """state=persisted wrote networkd files and the manifest under the host's --root; the
    applied host got only its configuration file, with the data given, under our header."""
    files = {host: snap.files for host, snap in fleet.runs["apply"].after.items()}
    for host in ("vm1", "vm2"):
        assert "var/lib/multihome/persist.json" in files[host]
        assert "etc/systemd/network/50-multihome-eth1.network" in files[host]
        assert "etc/multihome/config.yaml" not in files[host]
        assert [f["action"] for f in fleet.runs["apply"].second[host]["persist"]["files"]] == [
            "keep"
        ] * len(fleet.runs["apply"].second[host]["persist"]["files"])
    assert not any("systemd/network" in path for path in files["vm3"])
    text = files["vm3"]["etc/multihome/config.yaml"]
    assert text.startswith("# Managed by Ansible") and "20999" in text


def test_a_refusal_carries_multihomes_message_and_changes_nothing(fleet: Fleet) -> None:
    """A bad configuration fails that host's task with multihome's message and its JSON error
    document, before anything changes; the other hosts go on."""
    run = fleet.runs["mixed"]
    assert run.recap["vm2"]["ignored"] == 2 and run.recap["vm2"]["changed"] == 0
    result = run.first["vm2"]
    assert result["status"] == "fatal"
    assert "tables.range" in result["msg"] and "multihome apply" in result["msg"]
    assert result["error"]["kind"] == "InputError" and result["error"]["code"] == 2
    assert result["error"]["path"] == "tables.range"
    assert result["error"]["message"] in result["msg"]
    assert run.after["vm2"] == fleet.runs["apply"].after["vm2"]
    assert run.recap["vm1"]["failed"] == 0 and run.recap["vm1"]["ignored"] == 0


def test_an_apply_its_check_rolls_back_fails_with_multihomes_message(fleet: Fleet) -> None:
    """A failure only apply meets (a post-apply check that fails): the task fails with
    apply's message (rolled back, which check), no error document (plan accepts the
    configuration), and the host is as before: rules, routes and the configuration file."""
    run = fleet.runs["mixed"]
    assert run.recap["vm3"]["ignored"] == 2 and run.recap["vm3"]["changed"] == 0
    result = run.first["vm3"]
    assert result["status"] == "fatal" and result["error"] is None
    assert "multihome apply" in result["msg"] and "rolled back" in result["msg"], result["msg"]
    assert "check FAILED: tcp 192.168.0.1:9: Connection refused" in result["stderr"]
    assert run.after["vm3"] == fleet.runs["apply"].after["vm3"]


def test_absent_resets_and_unpersists_then_reports_no_change(fleet: Fleet) -> None:
    """state=absent removes multihome's rules, gives eth1 its default in main back and
    removes the persisted files; the second absent task reports changed=0."""
    run = fleet.runs["mixed"]
    assert run.recap["vm1"]["changed"] == 1
    assert run.first["vm1"]["changed"] is True and run.second["vm1"]["changed"] is False
    snap = run.after["vm1"]
    assert not [r for r in snap.rules if int(str(r["priority"])) in BAND]
    assert main_defaults(snap) == {"eth0", "eth1"}
    assert snap.files == fleet.initial["vm1"].files
    assert "/etc/systemd/network/50-multihome-eth1.network" in run.first["vm1"]["unpersisted"]
    assert run.second["vm1"]["unpersisted"] == []


def test_absent_in_check_mode_predicts_and_changes_nothing(fleet: Fleet) -> None:
    """state=absent with --check --diff on a persisted host: changed, the diff lists the rules
    and files that would go, and nothing went."""
    run = fleet.runs["absent-check"]
    assert changed(run) == {"vm2": 2}
    result = run.first["vm2"]
    assert "/etc/systemd/network/50-multihome-eth1.network" in result["unpersisted"]
    lines = run.output.splitlines()
    assert "- file /etc/systemd/network/50-multihome-eth1.network" in lines
    assert any(line.startswith("- rule 10000 from 192.168.0.112 lookup") for line in lines)
    assert run.after["vm2"] == fleet.runs["mixed"].after["vm2"]
