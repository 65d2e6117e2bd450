"""The policy's memo (the agent's: only the ports an event changed are computed again) gives
exactly the desired state a computation without it gives, through a sequence of events on
a dual-stack host with its repairs applied between them, and reuses the ports that did not
change."""

from __future__ import annotations

import dataclasses
import ipaddress

from hosts import host, port, with_ipv6

from multihome.config import Config
from multihome.facts import NO_FACTS, PortFacts
from multihome.model import IFA_F_TENTATIVE, HostState, Link
from multihome.policy import DesiredState, PolicyMemo, compute_policy

CONFIG = Config()


def _ports(count: int, *, tentative: int | None = None, down: int | None = None) -> HostState:
    """``count`` dual-stack ports on one segment; port ``tentative``'s global IPv6 address in
    DAD, port ``down`` down."""
    ports = []
    for i in range(count):
        state = with_ipv6(
            port(f"eth{i}", i + 2, f"192.168.0.{10 + i}/24", "192.168.0.1", 100 + i),
            f"2001:db8::{10 + i:x}/64",
            flags=IFA_F_TENTATIVE if i == tentative else 0,
            metric=1024 + i,
        )
        if i == down:
            state = (dataclasses.replace(state[0], up=False), state[1], [])
        ports.append(state)
    return host(*ports)


def _applied(state: HostState, desired: DesiredState) -> HostState:
    """``state`` after the plan: the desired routes and rules in, main's removals out."""
    routes = (set(state.routes) - desired.main_removals) | desired.routes
    return HostState.build(
        state.links, state.addresses, routes, set(state.rules) | desired.rules, state.sysctls
    )


def _without_default(state: HostState, ifname: str, family: int) -> HostState:
    routes = [
        r
        for r in state.routes
        if not (r.table == 254 and r.ifname == ifname and r.is_default and r.family == family)
    ]
    return HostState.build(state.links, state.addresses, routes, state.rules, state.sysctls)


def test_the_memo_changes_nothing_and_reuses_the_unchanged_ports() -> None:
    """Through a repair, a DHCP default back in main, an RA default withdrawn (router
    lifetime 0), a hot-plugged port, a port in DAD, a port down, and a port's memory
    (``seen``): with a memo the desired state equals the one computed afresh at every step,
    and after the first step most ports come from the memo."""
    memo = PolicyMemo()
    state = _ports(4)
    steps: list[tuple[str, HostState, PortFacts]] = []
    desired = compute_policy(state, CONFIG, NO_FACTS, memo)
    assert desired == compute_policy(state, CONFIG)
    applied = _applied(state, desired)
    seen = PortFacts(seen={"eth1": frozenset(r for r in desired.routes if r.ifname == "eth1")})
    back = HostState.build(
        applied.links,
        applied.addresses,
        {*applied.routes, *(r for r in desired.main_removals if r.ifname == "eth1")},
        applied.rules, applied.sysctls,
    )  # fmt: skip
    dad = _ports(4, tentative=2)
    steps += [
        ("repaired", applied, NO_FACTS),
        ("dhcp default back", back, NO_FACTS),
        ("RA default withdrawn", _without_default(applied, "eth1", 6), NO_FACTS),
        ("hot-plug", _applied(_ports(5), desired), NO_FACTS),
        ("DAD", dataclasses.replace(applied, addresses=dad.addresses), NO_FACTS),
        ("down", _applied(_ports(4, down=3), desired), NO_FACTS),
        ("memory", _without_default(applied, "eth1", 4), seen),
        ("config", applied, NO_FACTS),
    ]
    for name, step, facts in steps:
        config = (
            dataclasses.replace(CONFIG, table_range=(20000, 20999)) if name == "config" else CONFIG
        )
        hits = memo.hits
        remembered = compute_policy(step, config, facts, memo)
        assert remembered == compute_policy(step, config, facts), name
        if name in ("dhcp default back", "RA default withdrawn", "DAD"):
            assert memo.hits - hits >= 3, (name, memo.hits - hits)  # 3 of 4 ports unchanged
        if name == "config":
            assert memo.hits == hits, "another configuration reuses nothing"
    assert desired.main_removals, "eth1's DHCP default is taken out of main"
    assert len(memo.parts) <= 4  # only the last computation's ports are kept


def test_a_renamed_port_is_not_taken_from_the_memo() -> None:
    """Two hosts that differ only in a port's name: the renamed port's part is computed
    again (its name is in everything it is kept by)."""
    memo = PolicyMemo()
    state = _ports(2)
    compute_policy(state, CONFIG, NO_FACTS, memo)
    links = [
        Link("ethX", link.index, link.mac, link.kind, link.up) if link.name == "eth1" else link
        for link in state.links
    ]
    renamed = HostState.build(
        links,
        [
            dataclasses.replace(a, ifname="ethX") if a.ifname == "eth1" else a
            for a in state.addresses
        ],
        [dataclasses.replace(r, ifname="ethX") if r.ifname == "eth1" else r for r in state.routes],
        state.rules,
        state.sysctls,
    )
    assert compute_policy(renamed, CONFIG, NO_FACTS, memo) == compute_policy(renamed, CONFIG)
    assert ipaddress.ip_address("192.168.0.11") in {
        a.ip
        for i in compute_policy(renamed, CONFIG).interfaces
        if i.name == "ethX"
        for a in i.addresses
    }


def test_an_event_on_one_port_leaves_its_peers_in_the_memo() -> None:
    """At 16 dual-stack ports, a port's table flushed (a flap: the link went down) and
    repaired again: every other port's part comes from the memo, whatever the order in which
    a set of the owned routes (whose members changed) gives them (they are keyed in the
    state's order)."""
    memo = PolicyMemo()
    state = _ports(16)
    desired = compute_policy(state, CONFIG, NO_FACTS, memo)
    applied = _applied(state, desired)
    compute_policy(applied, CONFIG, NO_FACTS, memo)
    flushed = HostState.build(
        applied.links,
        applied.addresses,
        [r for r in applied.routes if not (r.ifname == "eth1" and r.table not in (254, 255))],
        applied.rules,
        applied.sysctls,
    )
    for name, step in (("flushed", flushed), ("repaired", applied), ("flushed again", flushed)):
        hits = memo.hits
        assert compute_policy(step, CONFIG, NO_FACTS, memo) == compute_policy(step, CONFIG), name
        assert memo.hits - hits == 15, (name, memo.hits - hits)
