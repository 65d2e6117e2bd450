"""explain with multipath routes (pure, on hand-made states; tests/netns/test_explain_kernel.py
holds it to the kernel with random multipath routes): an unbound flow gets the kernel's choice
among the next hops, each with its source; a bound one its device's next hop; after apply a
port's address is decided by its from rule."""

from __future__ import annotations

import ipaddress

from hosts import host, ipv6_port, port
from test_policy_multipath import GW, LL, merged, networkd_v6
from twin import converge

from multihome.backend import Lookup
from multihome.explain import Flow, explain
from multihome.explain_cli import compare
from multihome.model import PROTO_KERNEL, TABLE_MAIN, HostState, NextHop, Rule

INTERNET6 = ipaddress.ip_address("2001:db8:ff::10")
RULE6 = Rule(family=6, priority=32766, table=TABLE_MAIN, proto=PROTO_KERNEL)
INTERNET4 = ipaddress.ip_address("198.51.100.10")
A0, A1 = ipaddress.ip_address("2001:db8:1::10"), ipaddress.ip_address("2001:db8:1::11")


def v6host(state: HostState | None = None) -> HostState:
    """``state`` (networkd's multipath RA default) with the kernel's IPv6 main rule."""
    state = state or networkd_v6()
    return HostState.build(state.links, state.addresses, state.routes, (*state.rules, RULE6),
                           state.sysctls)  # fmt: skip


def test_an_unbound_ipv6_flow_gets_the_kernels_choice_among_the_next_hops() -> None:
    """networkd's multipath RA default: no device, gateway nor source of its own; a choice
    per next hop with the source the kernel would take through that port; the kernel's
    answer agrees when it is one of them, not otherwise."""
    found = explain(v6host(), Flow(INTERNET6))
    assert (found.error, found.ifname, found.gateway, found.src) == (None, None, None, None)
    assert [(c.ifname, c.gateway, c.src, c.weight) for c in found.choices] == [
        ("eth0", LL, A0, 1),
        ("eth1", LL, A1, 1),
    ]
    assert any(n.startswith("kernel's choice among eth0 via fe80::1") for n in found.notes)
    assert found.to_json()["choices"][1] == {
        "dev": "eth1",
        "gateway": "fe80::1",
        "src": "2001:db8:1::11",
        "weight": 1,
    }
    assert compare(found, Lookup("eth1", LL, A1, 254)).agrees
    assert not compare(found, Lookup("eth1", LL, A0, 254)).agrees


def test_a_flow_bound_to_a_port_takes_its_next_hop() -> None:
    """``ping -I eth1`` (oif, no source: a strict IPv6 lookup): eth1's next hop and source."""
    found = explain(v6host(), Flow(INTERNET6, oif="eth1"))
    assert (found.ifname, found.gateway, found.src, found.choices) == ("eth1", LL, A1, ())


def test_after_apply_a_ports_address_is_decided_by_its_from_rule() -> None:
    """A reply from eth1's address before apply: the kernel's choice (it may leave eth0);
    after apply: its from rule sends it to eth1's table, through eth1, whatever the hash."""
    state = v6host()
    assert len(explain(state, Flow(INTERNET6, src=A1)).choices) == 2
    after = explain(converge(state).read(), Flow(INTERNET6, src=A1))
    assert (after.ifname, after.gateway, after.src, after.choices) == ("eth1", LL, A1, ())
    assert after.rule is not None and str(after.rule.src) == f"{A1}/128"  # its from rule


def test_ipv4_multipath_choices_carry_each_ports_source_and_weight() -> None:
    """`default nexthop via .1 dev eth0 nexthop via .1 dev eth1 weight 2`: each choice with
    the first address of its device in the gateway's subnet."""
    base = host(
        port("eth0", 2, "192.168.0.107/24", "192.168.0.1", 100),
        port("eth1", 3, "192.168.0.112/24", "192.168.0.1", 100),
    )
    state = merged(base, 4, [NextHop(GW, "eth0"), NextHop(GW, "eth1", 2)], 100)
    found = explain(state, Flow(INTERNET4))
    assert [(c.ifname, str(c.src), c.weight) for c in found.choices] == [
        ("eth0", "192.168.0.107", 1),
        ("eth1", "192.168.0.112", 2),
    ]
    bound = explain(state, Flow(INTERNET4, oif="eth1"))
    assert (bound.ifname, bound.gateway, str(bound.src)) == ("eth1", GW, "192.168.0.112")


def test_a_single_path_explanation_has_no_choices() -> None:
    """The kernel's own RA defaults (two routes, not merged): one answer, as before."""
    state = v6host(
        host(ipv6_port("eth0", 2, "2001:db8:1::10/64"), ipv6_port("eth1", 3, "2001:db8:1::11/64"))
    )
    found = explain(state, Flow(INTERNET6))
    assert found.choices == () and found.ifname == "eth0" and found.to_json()["choices"] == []


def test_the_picture_draws_each_next_hop_and_the_wrong_paths_of_a_multipath_default() -> None:
    """``status --format dot`` before apply: main's multipath default is an edge per next hop
    (with its weight) to its router and on to its port (one router's link-local address on
    both ports: one node, dotted to each); the finding's wrong path (a reply from an address
    the kernel may hash to the other port) is explained and drawn in red."""
    from multihome.config import Config
    from multihome.picture import routing_dot, wrong_paths
    from multihome.status import Problem

    state = v6host()
    problems = [Problem("reply-wrong-interface", "eth1", "m", "f")]
    paths = wrong_paths(state, Config(), problems)
    assert [str(p.flow.src) for p in paths] == [str(A1)]
    dot = routing_dot(state, Config(), *paths)
    assert (
        '"table 254" -> "gateway fe80::1" [label="default metric 1024 weight 1", color="red"' in dot
    )
    assert '"gateway fe80::1" -> "eth0" [style=dotted];' in dot
    assert '"gateway fe80::1" -> "eth1" [style=dotted];' in dot


def test_the_text_result_lists_the_kernels_choices_and_agrees_with_one() -> None:
    """`multihome explain` text: the result lists each next hop with its source, and the
    kernel's answer (one of them) agrees."""
    from multihome.config import Config
    from multihome.explain_cli import render

    state = v6host()
    found = explain(state, Flow(INTERNET6))
    lines = render(found, compare(found, Lookup("eth1", LL, A1, 254)), state, Config())
    at = lines.index("Result: unicast, the kernel's choice among:")
    assert lines[at + 1 : at + 3] == [
        "  dev eth0 via fe80::1 src 2001:db8:1::10",
        "  dev eth1 via fe80::1 src 2001:db8:1::11",
    ]
    assert "Kernel (RTM_GETROUTE): dev eth1 via fe80::1 src 2001:db8:1::11 -- agrees" in lines
