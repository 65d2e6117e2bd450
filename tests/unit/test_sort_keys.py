"""Sorting rules and routes never compares None with a value. Two of multihome's rules at one
priority and table, one with ``iif eth7`` and one with ``oif eth7`` (left by a port that is
gone), made ``sorted(..., key=lambda r: r.key)`` raise TypeError in the policy, the plan,
status, doctor and the checkpoint: the sort keys are the total ``order`` now."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from pathlib import Path

from hosts import howto_host

from multihome.backend.fake import FakeBackend
from multihome.config import Config
from multihome.engine import assess
from multihome.model import PROTO_MULTIHOME, Route, Rule
from multihome.safety.doctor import diagnose
from multihome.status import build_report
from multihome.transaction import checkpoint

CONFIG = Config()
RTN_BLACKHOLE = 6  # rtnetlink.h
STALE_RULES = (
    Rule(4, 10003, 10500, oifname="eth7", proto=PROTO_MULTIHOME),
    Rule(4, 10003, 10500, iifname="eth7", proto=PROTO_MULTIHOME),
)
#: Two of ours in that table: one through a device, one without (a blackhole).
STALE_ROUTES = (
    Route(10500, ipaddress.ip_network("10.9.0.0/16"), "eth1", proto=PROTO_MULTIHOME),
    Route(
        10500, ipaddress.ip_network("10.9.0.0/16"), None, proto=PROTO_MULTIHOME, type=RTN_BLACKHOLE
    ),
)


def test_rules_and_routes_differing_by_a_none_sort_everywhere(tmp_path: Path) -> None:
    """Policy, plan, status, doctor and the checkpoint all handle the state; the plan
    removes both stale rules (in a stable order), doctor names the table, the checkpoint
    keeps both rules and both routes."""
    state = howto_host()
    state = replace(
        state, rules=(*state.rules, *STALE_RULES), routes=(*state.routes, *STALE_ROUTES)
    )
    backend = FakeBackend(state)
    assessment = assess(backend, CONFIG)
    removed = [c.obj for c in assessment.plan.changes if c.action == "remove"]
    assert set(STALE_RULES) <= set(removed)
    again = assess(FakeBackend(state), CONFIG)
    assert again.plan.changes == assessment.plan.changes  # deterministic
    report = build_report(backend, assessment, CONFIG).to_json()
    assert report["interfaces"]
    problems = diagnose(backend, assessment, CONFIG, tmp_path).problems
    assert any(p.code == "orphan-table" for p in problems), problems
    saved = checkpoint.capture(state, assessment.plan.changes, CONFIG, tmp_path)
    assert set(STALE_RULES) <= set(saved.rules) and set(STALE_ROUTES) <= set(saved.routes)
    assert checkpoint.restore_changes(backend.read(), saved) is not None
