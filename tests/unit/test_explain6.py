"""``explain`` for IPv6 on hand-built states: the rules and tables as ``fib6`` walks them
(a ``from`` rule without a source, a bound socket's strict device, backtracking, the default
unreachable), link-local destinations, RFC 6724 source selection, and the CLI's IPv6 flows
and doctor's decisive rule. The kernel's agreement is proven in
tests/netns/test_explain_kernel.py."""

from __future__ import annotations

import errno
import ipaddress
from pathlib import Path

import pytest
from hosts import host, ipv6_port

from multihome.config import Config
from multihome.errors import InputError
from multihome.explain import Flow, explain
from multihome.explain_cli import DEFAULT_DESTINATION6, build_flow, decisive, render
from multihome.model import (
    FR_ACT_UNREACHABLE,
    IFA_F_DEPRECATED,
    PROTO_KERNEL,
    TABLE_LOCAL,
    TABLE_MAIN,
    HostState,
    Route,
    Rule,
)

IP6 = ipaddress.IPv6Address
NET6 = ipaddress.IPv6Network
ETH0 = IP6("2001:db8:1::10")
ETH1 = IP6("2001:db8:1::11")
PROBE = IP6("2001:db8:ffff::10")
RULES6 = (
    Rule(family=6, priority=0, table=TABLE_LOCAL, proto=PROTO_KERNEL),
    Rule(family=6, priority=32766, table=TABLE_MAIN, proto=PROTO_KERNEL),
)
RTN_UNREACHABLE = 7


def _vm(
    *rules: Rule, routes: tuple[Route, ...] = (), eth0_flags: int = 0, more: bool = False
) -> HostState:
    """An IPv6 VM: eth0 ::10 and eth1 ::11 on 2001:db8:1::/64, a default each via fe80::1
    (metric 1024 both: eth0's is listed first), the local routes, the kernel's two rules."""
    eth0 = ipv6_port("eth0", 2, "2001:db8:1::10/64", flags=eth0_flags)
    if more:  # a second, preferred address on eth0, after the deprecated one
        lnk, addrs, rts = eth0
        extra = ipv6_port("eth0", 2, "2001:db8:1::20/64")[1][0]
        eth0 = (lnk, [addrs[0], extra, *addrs[1:]], rts)
    eth1 = ipv6_port("eth1", 3, "2001:db8:1::11/64")
    local = tuple(
        Route(
            table=TABLE_LOCAL,
            dst=NET6(f"{address.ip}/128"),
            ifname=address.ifname,
            proto=PROTO_KERNEL,
            type=2,
        )
        for address in (*eth0[1], *eth1[1])
    )
    return host(eth0, eth1, extra_routes=(*local, *routes), extra_rules=(*RULES6, *rules))


def test_replies_from_eth1_leave_through_eth0_and_doctor_names_the_rule() -> None:
    """Two defaults of one metric: the kernel takes the first (eth0's), so eth1's replies
    leave through eth0; the decisive rule is main's, and doctor's sentence names it."""
    state = _vm()
    result = explain(state, Flow(dst=PROBE, src=ETH1))
    assert (result.ifname, str(result.gateway), result.src) == ("eth0", "fe80::1", ETH1)
    assert result.rule is not None and result.rule.priority == 32766
    main = next(s for s in result.steps if s.outcome == "route").lookup
    assert main is not None
    assert next(why for _, why in main.losers).startswith("listed after the chosen route")
    sentence = decisive(state, ETH1, PROBE, Config())
    assert sentence is not None and "32766 from all lookup main" in sentence
    assert f"multihome explain {ETH1}" in sentence
    assert decisive(state, ETH1, ipaddress.IPv4Address("198.51.100.10"), Config()) is None


def test_source_selection_prefers_the_outgoing_interface_and_avoids_deprecated() -> None:
    """No source: RFC 6724 among every device's addresses: link-locals lose on scope (rule
    2), eth1's on the outgoing interface (rule 5); a deprecated address loses on rule 3."""
    result = explain(_vm(), Flow(dst=PROBE))
    assert (result.ifname, result.src) == ("eth0", ETH0)
    assert any(
        "rule '5 prefer the outgoing interface' against 2001:db8:1::11" in note
        for note in result.notes
    )
    deprecated = explain(_vm(eth0_flags=IFA_F_DEPRECATED, more=True), Flow(dst=PROBE))
    assert deprecated.src == IP6("2001:db8:1::20")
    assert any(
        "rule '3 avoid deprecated' against 2001:db8:1::10" in note for note in deprecated.notes
    )


def test_a_from_rule_never_matches_a_flow_without_source() -> None:
    """``from ::/1`` holds ``::`` but the kernel's IPv6 rules do not look at an unchosen
    source; with the source given, the rule matches and its unreachable ends the walk."""
    rule = Rule(family=6, priority=100, table=0, src=NET6("::/1"), action=FR_ACT_UNREACHABLE)
    result = explain(_vm(rule), Flow(dst=PROBE))
    assert result.error is None and result.ifname == "eth0"
    step = next(s for s in result.steps if s.rule == rule)
    assert not step.matched and "not chosen yet" in step.reason
    sourced = explain(_vm(rule), Flow(dst=PROBE, src=ETH1))
    assert sourced.error == errno.ENETUNREACH and sourced.rule == rule


def test_link_local_destination_needs_the_device() -> None:
    """fe80::1 without a device: the first route holding it (eth0's fe80::/64) and a note
    that a socket must name the device; bound to eth1: eth1, with eth1's link-local source
    (only the outgoing device's addresses are candidates)."""
    anywhere = explain(_vm(), Flow(dst=IP6("fe80::1")))
    assert anywhere.ifname == "eth0"
    assert any("must name the output device" in note for note in anywhere.notes)
    bound = explain(_vm(), Flow(dst=IP6("fe80::1"), oif="eth1"))
    assert (bound.ifname, bound.src) == ("eth1", IP6("fe80::3"))


def test_bound_socket_backtracks_to_a_shorter_prefix() -> None:
    """Bound to eth1 without a source, only routes through eth1 count: a /48 through eth0
    is passed over and eth1's default (a shorter prefix) answers; with a source, eth0's /48
    is taken (the device is only preferred)."""
    wide = Route(table=TABLE_MAIN, dst=NET6("2001:db8:ffff::/48"), ifname="eth0", metric=100)
    state = _vm(routes=(wide,))
    bound = explain(state, Flow(dst=PROBE, oif="eth1"))
    assert (bound.ifname, bound.src) == ("eth1", ETH1)
    main = next(s for s in bound.steps if s.outcome == "route").lookup
    assert main is not None and any("only routes through eth1" in why for _, why in main.losers)
    sourced = explain(state, Flow(dst=PROBE, src=ETH1, oif="eth1"))
    assert sourced.ifname == "eth0"


def test_unreachable_route_and_the_default_unreachable() -> None:
    """An unreachable route answers EHOSTUNREACH; with no route in any table the kernel's
    IPv6 default is ENETUNREACH, said in a note; the text shows both."""
    blocked = Route(
        table=TABLE_MAIN, dst=NET6("2001:db8:ffff::/48"), ifname="lo", type=RTN_UNREACHABLE
    )
    result = explain(_vm(routes=(blocked,)), Flow(dst=PROBE, src=ETH0))
    assert result.error == errno.EHOSTUNREACH
    step = next(s for s in result.steps if s.outcome == "error")
    assert step.lookup is not None and step.lookup.route == blocked
    bare = HostState.build(_vm().links, _vm().addresses, (), RULES6, {})
    nothing = explain(bare, Flow(dst=PROBE, src=ETH0))
    assert nothing.error == errno.ENETUNREACH
    assert any("default for IPv6 is unreachable" in note for note in nothing.notes)


def test_received_packet_prefers_routes_through_its_port() -> None:
    """A packet received on eth1 for the internet: of main's two equal defaults the kernel
    takes the one through eth1 (the input device scores higher); local delivery goes to lo."""
    forwarded = explain(_vm(), Flow(dst=PROBE, src=IP6("2001:db8:9::1"), iif="eth1"))
    assert forwarded.ifname == "eth1" and forwarded.kind == "unicast"
    delivered = explain(_vm(), Flow(dst=ETH1, src=IP6("2001:db8:9::1"), iif="eth1"))
    assert (delivered.kind, delivered.ifname) == ("local", "lo")


def test_cli_flows_and_text_for_ipv6() -> None:
    """``explain ADDRESS`` with an IPv6 address means its replies to 2001:db8:ffff::10;
    mixed families are refused naming both; the text shows the walk."""
    flow = build_flow(str(ETH1), None, None, None, None, None, None, None, None, 0)
    assert (flow.src, flow.dst) == (ETH1, DEFAULT_DESTINATION6)
    with pytest.raises(InputError, match="different families"):
        build_flow(None, str(ETH1), "198.51.100.10", None, None, None, None, None, None, 0)
    from multihome.backend import Lookup
    from multihome.explain_cli import compare

    result = explain(_vm(), flow)
    verdict = compare(result, Lookup("eth0", IP6("fe80::1"), ETH0, TABLE_MAIN))
    assert verdict.agrees  # a given source is the packet's, whatever the kernel would pick
    text = "\n".join(render(result, verdict, _vm(), Config()))
    assert "Result: unicast dev eth0 via fe80::1 src 2001:db8:1::11" in text
    assert "-- agrees" in text


def test_doctor_names_the_decisive_rule_of_an_ipv6_finding(tmp_path: Path) -> None:
    """doctor's wrong-path finding for eth1's IPv6 address carries the rule and route that
    decide it (main's, the kernel's rule and the router advertisement's default)."""
    from multihome.backend.fake import FakeBackend
    from multihome.engine import assess
    from multihome.safety.doctor import Evidence, _status_checks

    backend = FakeBackend(_vm())
    evidence = Evidence(backend, assess(backend, Config()), Config(), tmp_path, ())
    found = [p for p in _status_checks(evidence) if p.code == "reply-wrong-interface"]
    assert [p.interface for p in found] == ["eth1"]
    message = found[0].message
    assert "decided by rule `-6 32766 from all lookup main` [kernel]" in message, message
    assert "[router advertisement]" in message
    assert "multihome explain 2001:db8:1::11" in message
