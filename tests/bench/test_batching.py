"""Batched netlink apply: exactly the kernel state of one change at a time, and exact failure
reports. Checked with ``ip -j`` and ``sysctl`` (BenchLab.fingerprint), not with multihome."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from bench_util import BENCH, HERE, inside
from lab import BenchLab, split_changes

from multihome.model import Rule
from multihome.plan import Plan

WORKER = BENCH / "worker.py"


def plan_of(lab: BenchLab) -> tuple[Path, Plan]:
    path = lab.root / "plan.pickle"
    info = inside(lab, WORKER, "plan", str(path))
    with path.open("rb") as handle:
        plan = pickle.load(handle)
    assert isinstance(plan, Plan)
    assert info["changes"] == len(plan.changes)
    return path, plan


def test_batched_apply_equals_one_by_one(lab: BenchLab) -> None:
    """NetlinkBackend.apply of the whole plan (batched) leaves the same rules, routes and
    sysctls as applying it one change at a time, and as one `ip` process per change."""
    path, plan = plan_of(lab)
    sysctls, netlink = split_changes(plan.changes)
    # per port: 2 route copies, 3 rules (the table-first from, oif, iif); 1 shared rule; the
    # 7 secondaries' defaults leave main; 4 sysctls per port
    assert len(netlink) == 8 * 2 + 8 * 3 + 1 + 7
    assert len(sysctls) == 8 * 4
    initial = lab.fingerprint()
    inside(lab, WORKER, "time", "backend", str(path))
    batched = lab.fingerprint()
    assert batched != initial
    assert any('"protocol": "222"' in r for r in batched["rules"])
    for method in ("backend-each", "ip-each", "ip-batch"):
        lab.undo(plan.changes)
        assert lab.fingerprint() == initial, f"undo before {method}"
        inside(lab, WORKER, "time", method, str(path))
        assert lab.fingerprint() == batched, method


@pytest.mark.parametrize("where", ["first rule", "middle of the rules", "last"])
def test_failure_in_a_batch_names_the_change_and_keeps_only_the_ones_before(
    lab: BenchLab, where: str
) -> None:
    """A change that the kernel refuses in the middle of a batch: ChangeFailed names exactly
    that change and the number made before it, and the kernel holds exactly those (the ones
    the kernel made after it were taken back)."""
    path, plan = plan_of(lab)
    first_rule = next(i for i, c in enumerate(plan.changes) if isinstance(c.obj, Rule))
    k = {
        "first rule": first_rule,
        "middle of the rules": first_rule + 7,
        "last": len(plan.changes),
    }[where]
    initial = lab.fingerprint()
    answer = inside(lab, WORKER, "inject", str(path), str(k))
    assert answer["failed"] is True
    assert answer["is_injected"] is True
    assert answer["done"] == k
    assert "exists" in answer["reason"]
    lab.undo(plan.changes[:k])  # exactly the k changes made: undoing them restores the start
    assert lab.fingerprint() == initial


def test_reader_sees_what_pyroute2_sees(lab: BenchLab) -> None:
    """The struct-based reader decodes links, addresses, routes, rules and sysctls exactly as
    the pyroute2-based reference does, before and after an apply (owned tables and rules)."""
    for stage in ("before", "after"):
        answer = inside(lab, HERE / "inside.py", "parity")
        for name in ("links", "addresses", "routes", "rules"):
            assert answer[name]["only_mine"] == [], (stage, name)
            assert answer[name]["only_pyroute2"] == [], (stage, name)
        assert answer["links"]["count"] == 9  # lo + p0..p7
        assert answer["sysctls_equal"] is True
        if stage == "before":
            path, _plan = plan_of(lab)
            inside(lab, WORKER, "time", "backend", str(path))


def test_desired_state_is_the_same_after_apply(lab: BenchLab) -> None:
    """`apply` verifies against the desired state it computed before the changes (no second
    read): the policy's interfaces and primary computed afterwards are the same, and nothing
    is left to do."""
    answer = inside(lab, HERE / "inside.py", "desired")
    assert answer["applied"] > 0
    assert answer["managed"] == 8
    assert answer["interfaces_equal"] is True
    assert answer["primary_equal"] is True
    assert answer["left"] == 0
