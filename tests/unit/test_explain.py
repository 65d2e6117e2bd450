"""``explain`` on hand-built states: the how-to's wrong port, multihome's fix, and the rule
actions a foreign tool adds (goto, suppress, unreachable, fwmark); the CLI's verdict."""

from __future__ import annotations

import errno
import ipaddress
from dataclasses import replace

import pytest
from hosts import howto_host

from multihome.backend import Lookup
from multihome.backend.fake import DEFAULT_RULES
from multihome.config import Config
from multihome.explain import Flow, explain
from multihome.explain_cli import build_flow, compare, owner_of, render
from multihome.model import (
    FR_ACT_GOTO,
    FR_ACT_UNREACHABLE,
    PROTO_MULTIHOME,
    HostState,
    Route,
    Rule,
)

IP = ipaddress.IPv4Address
NET = ipaddress.IPv4Network
ETH1 = IP("192.168.0.112")
INTERNET = IP("198.51.100.10")


def _host(*rules: Rule, routes: tuple[Route, ...] = ()) -> HostState:
    base = howto_host()
    return HostState.build(
        base.links, base.addresses, (*base.routes, *routes), (*DEFAULT_RULES, *rules), base.sysctls
    )


FIX_ROUTE = Route(
    table=1001,
    dst=NET("0.0.0.0/0"),
    ifname="eth1",
    gateway=IP("192.168.0.1"),
    proto=PROTO_MULTIHOME,
)
FIX_RULE = Rule(
    family=4, priority=10002, table=1001, src=NET("192.168.0.112/32"), proto=PROTO_MULTIHOME
)


def test_the_howto_reply_leaves_through_eth0() -> None:
    """Before the fix, replies from eth1's address take main's metric-100 default via eth0:
    the decisive rule is main's, eth1's default lost on its metric."""
    result = explain(_host(), Flow(dst=INTERNET, src=ETH1))
    assert (result.ifname, str(result.gateway), result.src) == ("eth0", "192.168.0.1", ETH1)
    assert result.rule is not None and result.rule.priority == 32766
    main = next(s for s in result.steps if s.outcome == "route").lookup
    assert main is not None and next(why for _, why in main.losers).startswith("higher metric")


def test_the_fix_sends_replies_through_eth1() -> None:
    """multihome's source rule and table send the reply through eth1, decided by rule
    10002, and the owner shown beside it is multihome."""
    result = explain(_host(FIX_RULE, routes=(FIX_ROUTE,)), Flow(dst=INTERNET, src=ETH1))
    assert (result.ifname, result.src) == ("eth1", ETH1)
    assert result.rule == FIX_RULE
    assert owner_of(FIX_RULE, Config()) == "multihome"
    outside = replace(FIX_RULE, priority=500)
    assert owner_of(outside, Config()) == "another tool (multihome's protocol outside its band)"
    assert owner_of(replace(outside, proto=16), Config()).startswith("dhcp")


def test_goto_suppress_unreachable_and_marks() -> None:
    """A goto skips rules; suppress_prefixlength 0 rejects main's default; an unreachable
    rule ends the walk with ENETUNREACH; a marked flow skips a rule for another mark."""
    state = _host(
        Rule(family=4, priority=100, table=0, action=FR_ACT_GOTO, goto=300),
        Rule(family=4, priority=200, table=0, action=FR_ACT_UNREACHABLE),
        Rule(family=4, priority=300, table=254, suppress_prefixlength=0),
        Rule(family=4, priority=400, table=0, fwmark=0x10, action=FR_ACT_UNREACHABLE),
    )
    result = explain(state, Flow(dst=INTERNET, src=ETH1))
    assert result.ifname == "eth0" and result.rule is not None
    assert result.rule.priority == 32766
    outcomes = {s.rule.priority: s.outcome for s in result.steps}
    assert 200 not in outcomes and outcomes[100] == "goto" and outcomes[300] == "continue"
    marked = explain(state, Flow(dst=INTERNET, src=ETH1, mark=0x10))
    assert marked.error == errno.ENETUNREACH and marked.rule is not None
    assert marked.rule.priority == 400


def test_a_disagreement_is_printed_as_a_bug() -> None:
    """When the kernel answers otherwise, the verdict disagrees and the text calls it a bug
    in multihome instead of hiding it."""
    state = _host()
    result = explain(state, Flow(dst=INTERNET, src=ETH1))
    same = compare(result, Lookup("eth0", IP("192.168.0.1"), None, 254))
    other = compare(result, Lookup("eth1", IP("192.168.0.1"), None, 254))
    assert same.agrees and not other.agrees
    text = "\n".join(render(result, other, state, Config()))
    assert "DISAGREEMENT" in text and "bug in multihome" in text


def test_address_alone_means_replies_to_the_internet() -> None:
    """``explain ADDRESS`` is --from ADDRESS --to 198.51.100.10, as UDP (ip route get's)."""
    flow = build_flow("192.168.0.112", None, None, None, None, None, None, None, None, 0)
    assert (flow.src, flow.dst, flow.ipproto) == (ETH1, INTERNET, 17)


def test_the_picture_renders_with_graphviz_and_marks_the_path() -> None:
    """The routing picture of the fixed how-to VM is valid dot (Debian's graphviz renders
    it), multihome's rule is drawn as its own, and the explained path is red."""
    import shutil
    import subprocess

    from multihome.picture import routing_dot

    dot = shutil.which("dot")
    if dot is None:
        pytest.skip("graphviz is not installed (.ci/apt.d/explain.txt)")
    state = _host(FIX_RULE, routes=(FIX_ROUTE,))
    text = routing_dot(state, Config(), explain(state, Flow(dst=INTERNET, src=ETH1)))
    assert routing_dot(state, Config()) == routing_dot(state, Config())
    rule_line = next(
        line
        for line in text.splitlines()
        if line.strip().startswith('"rule 10002 from 192.168.0.112')
    )
    assert 'color="red"' in rule_line
    assert '"table 1001" -> "gateway 192.168.0.1" [label="default", color="red"' in text
    svg = subprocess.run([dot, "-Tsvg"], input=text, capture_output=True, text=True, check=False)
    assert svg.returncode == 0, svg.stderr
    assert "<svg" in svg.stdout and "10002" in svg.stdout


def test_rules_sharing_a_priority_with_and_without_iif_build_a_state() -> None:
    """Foreign rules at one priority, one with ``iif`` and one without (the property test
    met them), make a state instead of a TypeError in sorting; the kernel's order is kept."""
    first = Rule(
        family=4, priority=22, table=0, iifname="v1", action=FR_ACT_UNREACHABLE, position=2
    )
    second = Rule(
        family=4, priority=22, table=0, uid=(1, 10), action=FR_ACT_UNREACHABLE, position=1
    )
    state = _host(first, second)
    assert {first, second} <= set(state.rules)
    result = explain(state, Flow(dst=INTERNET, src=ETH1, uid=5))
    assert result.rule == second


def test_one_explainer_for_many_flows_keeps_the_kernels_order() -> None:
    """An ``Explainer`` indexes a table's routes by prefix once and answers every flow as
    the kernel would: the longest prefix, then the lowest metric, the others listed as
    losers in that order (the same answers as a fresh ``explain``, however many flows it
    answered before); ``losers=False`` gives the same path without the losers."""
    from multihome.explain import Explainer

    def route(dst: str, metric: int, ifname: str = "eth0") -> Route:
        return Route(table=2000, dst=NET(dst), ifname=ifname, metric=metric, scope=253)

    routes = (
        route("10.9.8.0/24", 200),
        route("10.9.8.0/24", 100, "eth1"),
        route("10.9.0.0/16", 7),
        route("0.0.0.0/0", 5),
        route("0.0.0.0/0", 1, "eth1"),
        route("10.9.7.0/24", 1),
    )
    state = _host(Rule(family=4, priority=100, table=2000), routes=routes)
    full, brief = Explainer(state), Explainer(state, losers=False)
    for _ in range(2):  # a second round: the index is shared, nothing of a flow stays
        found = full(Flow(dst=IP("10.9.8.1")))
        assert found.route == routes[1] and found.ifname == "eth1"
        lookup = next(s.lookup for s in found.steps if s.outcome == "route")
        assert lookup is not None
        assert [(r, why) for r, why in lookup.losers] == [
            (routes[0], "higher metric (200 > 100)"),
            (routes[2], "shorter prefix (/16 < /24)"),
            (routes[4], "shorter prefix (/0 < /24)"),
            (routes[3], "shorter prefix (/0 < /24)"),
        ]
        assert full(Flow(dst=IP("10.9.200.1"))).route == routes[2]
        assert full(Flow(dst=INTERNET)).route == routes[4]
        bound = full(Flow(dst=IP("10.9.8.1"), oif="eth0"))
        assert bound.route == routes[0]
        for flow in (Flow(dst=IP("10.9.8.1")), Flow(dst=IP("10.9.7.3")), Flow(dst=INTERNET)):
            again, short = explain(state, flow), brief(flow)
            assert full(flow) == again
            assert (short.route, short.rule, short.ifname) == (
                again.route,
                again.rule,
                again.ifname,
            )
            assert all(s.lookup is None or not s.lookup.losers for s in short.steps)
