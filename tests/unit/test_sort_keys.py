"""Sorting rules and routes never compares None with a value. Two of multihome's rules at one
priority and table, one with ``iif eth7`` and one with ``oif eth7`` (left by a port that is
gone), made ``sorted(..., key=lambda r: r.key)`` raise TypeError in the policy, the plan,
status, doctor and the checkpoint: the sort keys are the total ``order`` now."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from pathlib import Path

from hosts import howto_host
from hypothesis import given, settings
from hypothesis import strategies as st

from multihome.backend.fake import FakeBackend
from multihome.config import Config
from multihome.engine import assess
from multihome.model import PROTO_MULTIHOME, NextHop, Route, Rule, sortable
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


# -- the orders made without sortable() sort as sortable(key) does ----------------------------
def _net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


_NAME = st.none() | st.sampled_from(["eth0", "eth1"])
_SMALL = st.none() | st.sampled_from([0, 1, 0xFF])
_ROUTES = st.builds(
    Route,
    table=st.sampled_from([254, 10500]),
    dst=st.sampled_from(["10.0.0.0/8", "10.1.0.0/16", "0.0.0.0/0", "::/0", "fe80::/64"]).map(_net),
    ifname=_NAME,
    gateway=st.none() | st.sampled_from(["10.0.0.1", "fe80::1"]).map(ipaddress.ip_address),
    metric=st.sampled_from([0, 100]),
    proto=st.sampled_from([4, PROTO_MULTIHOME]),
    scope=st.sampled_from([0, 253]),
    prefsrc=st.none() | st.just(ipaddress.ip_address("10.0.0.5")),
    type=st.sampled_from([1, RTN_BLACKHOLE]),
    nexthops=st.just(())
    | st.lists(
        st.builds(
            NextHop, st.sampled_from(["10.0.0.1", "10.0.0.2"]).map(ipaddress.ip_address), _NAME
        ).filter(lambda hop: hop.ifname is not None),
        min_size=2,
        max_size=2,
    ).map(tuple),
)
_RULES = st.builds(
    Rule,
    family=st.sampled_from([4, 6]),
    priority=st.sampled_from([0, 10000]),
    table=st.sampled_from([254, 10500]),
    src=st.none() | st.sampled_from(["10.0.0.5/32", "10.0.0.0/24"]).map(_net),
    dst=st.none() | st.just(_net("192.0.2.0/24")),
    iifname=_NAME,
    oifname=_NAME,
    suppress_prefixlength=_SMALL,
    fwmark=_SMALL,
    fwmask=_SMALL,
    action=st.sampled_from([1, 2]),
    proto=st.sampled_from([3, PROTO_MULTIHOME]),
    ipproto=st.none() | st.just(6),
    invert=st.booleans(),
)


@settings(max_examples=300)
@given(st.lists(_ROUTES, max_size=12), st.lists(_RULES, max_size=12))
def test_orders_sort_as_sortable_keys_do(routes: list[Route], rules: list[Rule]) -> None:
    """Routes and rules that differ in few values (so that many compare equal far into their
    keys, and None meets a value at every place that can hold None): ``order`` compares every
    pair as :func:`sortable` of the key does, so every sort keeps its result."""
    for values in (routes, rules):
        for one in values:
            for other in values:
                want = sortable(one.key), sortable(other.key)
                got = one.order, other.order
                assert (got[0] < got[1], got[0] == got[1]) == (
                    want[0] < want[1],
                    want[0] == want[1],
                )
        by_order = sorted(values, key=lambda v: v.order)
        assert [v.key for v in by_order] == [
            v.key for v in sorted(values, key=lambda v: sortable(v.key))
        ]
