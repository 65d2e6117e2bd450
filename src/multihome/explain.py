"""Explain a routing decision: the policy database walked exactly as the kernel walks it.

A pure function of a :class:`~multihome.model.HostState` and a :class:`Flow`. It follows
``fib_rules_lookup`` (net/core/fib_rules.c), ``fib4_rule_match``/``fib4_rule_action``/
``fib4_rule_suppress`` (net/ipv4/fib_rules.c), ``fib_table_lookup`` (net/ipv4/fib_trie.c) and
the output and input route paths of net/ipv4/route.c:

- rules in priority order; a rule matches when its ``iif`` (``lo`` for locally generated
  traffic), ``oif``, ``fwmark/mask``, ``uidrange``, ``from``/``to``, ``tos``, ``ipproto`` and
  port ranges all match, inverted by ``not``; ``goto`` jumps to the first rule of its target
  priority (an unresolved ``goto`` and ``nop`` continue); ``unreachable``, ``prohibit`` and
  ``blackhole`` end the walk with their error; a table that does not exist, or holds no
  route for the destination, or answers with a ``throw`` route, continues the walk; a route
  found but rejected by ``suppress_prefixlength``/``suppress_ifgroup`` continues it too;
- in a table: the longest prefix, then among its routes the lowest metric; an
  ``unreachable``/``prohibit``/``blackhole`` route is an error; with an output interface
  (``oif``), routes through other devices are skipped (the kernel then tries shorter prefixes);
- locally generated traffic (no ``iif``): a given source must be a local address; with an
  ``oif`` and no route the kernel assumes the destination is on-link; the source is the
  route's ``prefsrc``, else the first primary address of the out device whose scope fits the
  route and whose subnet holds the gateway (or the first such address), else any device's;
- received traffic (``iif``): martian sources and destinations, local delivery, forwarding
  switched off and the reverse-path check (``rp_filter``) as in ``ip_route_input_slow``.

IPv6 (``fib6_rule_match``/``fib6_rule_action``/``fib6_rule_suppress`` in
net/ipv6/fib6_rules.c, ``fib6_table_lookup``/``rt6_select``/``rt6_score_route`` and
``inet6_rtm_getroute`` in net/ipv6/route.c, ``ipv6_dev_get_saddr`` in net/ipv6/addrconf.c):

- the same selectors, but a rule with a ``from`` prefix never matches a flow whose source is
  not chosen yet (IPv4 compares 0.0.0.0 with the prefix);
- in a table: the longest prefix holding a selectable route; within a prefix the routes of the
  lowest metric first, then the others; the one with the best score wins (a route through the
  flow's ``oif``, or for received traffic through its ``iif``, scores higher; with ``oif`` and
  no source, and for link-local, multicast and loopback destinations, only routes through that
  device are selectable, also error routes, which go through ``lo``); when a prefix holds no
  selectable route the kernel backtracks to shorter ones;
- no route in any table: ``ENETUNREACH`` (the kernel's ``ip6_null_entry``); an ``unreachable``
  route: ``EHOSTUNREACH``; no on-link assumption for a bound socket, no martian or
  reverse-path checks in the route lookup (IPv6 has no ``rp_filter``);
- the source: the route's ``prefsrc``, else RFC 6724 as ``ipv6_dev_get_saddr`` applies it (see
  :func:`select_source6` for the rules implemented).

Multipath routes (both families): a flow bound to one of the next hops' devices takes that
next hop; any other flow gets the kernel's choice among them all (``fib_select_multipath``,
``fib6_select_path`` hash each flow to one next hop by weight), each with the source it would
take (:attr:`Explanation.choices`); a forwarded packet's reverse-path check is judged by the
first next hop's device, and ``suppress_ifgroup`` does not look at a multipath route's
devices.

Rules that share a priority are taken in the kernel's list order (``Rule.position``, from
the dump). Not modelled (the model does not carry them): route ``tos``, VRF
tables (an ``l3mdev`` rule is reported as not matching unless a device is in a VRF), tunnel
ids; for IPv6 the route preference (``pref``, all taken as medium), neighbour reachability
(with forwarding off the kernel prefers gateways whose neighbour entry has not failed),
source-specific routes (``from`` on a route) and ``ip addrlabel`` changes.
"""

from __future__ import annotations

import errno
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain
from typing import Any

from multihome.model import (
    FR_ACT_BLACKHOLE,
    FR_ACT_GOTO,
    FR_ACT_NOP,
    FR_ACT_PROHIBIT,
    FR_ACT_TO_TBL,
    FR_ACT_UNREACHABLE,
    IFA_F_DADFAILED,
    IFA_F_DEPRECATED,
    IFA_F_TEMPORARY,
    IFA_F_TENTATIVE,
    RTN_BROADCAST,
    RTN_LOCAL,
    RTN_THROW,
    RTN_UNICAST,
    SCOPE_LINK,
    Address,
    HostState,
    IPAddress,
    Link,
    Route,
    Rule,
    need_strict,
    table_label,
)

IPv4 = ipaddress.IPv4Address
IPv6 = ipaddress.IPv6Address
RTN_ANYCAST = 4
RTN_BLACKHOLE = 6
RTN_UNREACHABLE = 7
RTN_PROHIBIT = 8
#: Route types that answer with an error (fib_props[].error); ``throw`` means "next rule".
ROUTE_ERRORS = {
    RTN_BLACKHOLE: errno.EINVAL,
    RTN_UNREACHABLE: errno.EHOSTUNREACH,
    RTN_PROHIBIT: errno.EACCES,
}
RULE_ERRORS = {
    FR_ACT_BLACKHOLE: errno.EINVAL,
    FR_ACT_UNREACHABLE: errno.ENETUNREACH,
    FR_ACT_PROHIBIT: errno.EACCES,
}
#: What each errno means for a route lookup, in the words of ``ip route`` and the rule/route
#: types that cause it.
ERROR_NAMES = {
    errno.ENETUNREACH: "unreachable (network)",
    errno.EHOSTUNREACH: "unreachable (host)",
    errno.EACCES: "prohibit",
    errno.EINVAL: "blackhole or invalid",
    errno.EADDRNOTAVAIL: "source is not a local address",
    errno.EXDEV: "reverse-path filter",
    errno.ENODEV: "no such device",
}
LOOPBACK_NET = ipaddress.IPv4Network("127.0.0.0/8")
ZERO_NET = ipaddress.IPv4Network("0.0.0.0/8")
MULTICAST_NET = ipaddress.IPv4Network("224.0.0.0/4")
LIMITED_BROADCAST = IPv4("255.255.255.255")


@dataclass(frozen=True)
class Flow:
    """What the kernel routes: a packet's addresses, where it comes from, and its marks."""

    dst: IPAddress
    src: IPAddress | None = None
    """None: the kernel chooses (it must be of the destination's family)."""
    iif: str | None = None
    """The interface a received packet arrived on; None for locally generated traffic."""
    oif: str | None = None
    """The interface a local socket is bound to (``SO_BINDTODEVICE``, ``ping -I``)."""
    mark: int = 0
    ipproto: int = 17
    """The IP protocol; UDP unless told, as ``ip route get`` (RTM_GETROUTE) asks."""
    sport: int = 0
    dport: int = 0
    uid: int = 0
    tos: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.dst.version,
            "dst": str(self.dst),
            "src": None if self.src is None else str(self.src),
            "iif": self.iif,
            "oif": self.oif,
            "mark": self.mark,
            "ipproto": self.ipproto,
            "sport": self.sport,
            "dport": self.dport,
            "uid": self.uid,
            "tos": self.tos,
        }


@dataclass(frozen=True)
class TableLookup:
    """One table looked up for the flow's destination."""

    table: int
    exists: bool
    route: Route | None
    """The route the table answered with (also an error route); None: nothing matched."""
    losers: tuple[tuple[Route, str], ...] = ()
    """Routes that also hold the destination, each with why it lost."""
    error: int | None = None
    """The errno of an error route (unreachable, prohibit, blackhole)."""
    throw: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "exists": self.exists,
            "route": None if self.route is None else self.route.to_json(),
            "losers": [dict(route.to_json(), why=why) for route, why in self.losers],
            "error": self.error,
            "throw": self.throw,
        }


@dataclass(frozen=True)
class RuleStep:
    """One rule examined: whether it matched (and why not), and what it did."""

    rule: Rule
    matched: bool
    reason: str
    outcome: str
    """``skip`` (did not match), ``continue`` (matched, walk goes on), ``goto``, ``error``,
    ``route`` (the decision)."""
    lookup: TableLookup | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule.to_json(),
            "matched": self.matched,
            "reason": self.reason,
            "outcome": self.outcome,
            "lookup": None if self.lookup is None else self.lookup.to_json(),
        }


@dataclass(frozen=True)
class Walk:
    """The outcome of walking the rules once: the steps, and a route or an errno."""

    steps: tuple[RuleStep, ...]
    route: Route | None
    rule: Rule | None
    error: int | None


@dataclass(frozen=True)
class Explanation:
    """The whole answer: the walk, the chosen route, and device, gateway and source."""

    flow: Flow
    steps: tuple[RuleStep, ...]
    route: Route | None
    rule: Rule | None
    """The decisive rule (the one whose action or table gave the answer), if any."""
    ifname: str | None
    gateway: IPAddress | None
    src: IPAddress | None
    kind: str
    """``unicast``, ``local``, ``broadcast``, ``anycast`` (IPv6) or ``error``."""
    error: int | None = None
    """The errno the kernel answers with (``ENETUNREACH``, ``EACCES``, ...), None on success."""
    notes: tuple[str, ...] = field(default=())
    choices: tuple[PathChoice, ...] = ()
    """A multipath route the flow does not decide: the next hops the kernel hashes the flow
    to one of (``ifname``, ``gateway`` and ``src`` are then None); empty otherwise."""

    @property
    def error_name(self) -> str | None:
        if self.error is None:
            return None
        return ERROR_NAMES.get(self.error, errno.errorcode.get(self.error, str(self.error)))

    def to_json(self) -> dict[str, Any]:
        return {
            "flow": self.flow.to_json(),
            "steps": [step.to_json() for step in self.steps],
            "route": None if self.route is None else self.route.to_json(),
            "rule": None if self.rule is None else self.rule.to_json(),
            "dev": self.ifname,
            "gateway": None if self.gateway is None else str(self.gateway),
            "src": None if self.src is None else str(self.src),
            "kind": self.kind,
            "error": None if self.error is None else errno.errorcode.get(self.error),
            "error_text": self.error_name,
            "notes": list(self.notes),
            "choices": [choice.to_json() for choice in self.choices],
        }

    def allows(self, ifname: str | None, gateway: IPAddress | None, src: IPAddress | None) -> bool:
        """The kernel's answer (device, gateway, source) is this explanation's, or one of its
        choices among a multipath route's next hops."""
        if self.choices:
            return any((c.ifname, c.gateway, c.src) == (ifname, gateway, src) for c in self.choices)
        return (self.ifname, self.gateway, self.src) == (ifname, gateway, src)


@dataclass(frozen=True)
class PathChoice:
    """One next hop of a multipath route the kernel may hash a flow to, with the source it
    then takes."""

    ifname: str | None
    gateway: IPAddress | None
    src: IPAddress | None
    weight: int = 1

    def describe(self) -> str:
        via = f" via {self.gateway}" if self.gateway is not None else ""
        return f"{self.ifname}{via} (src {self.src}, weight {self.weight})"

    def to_json(self) -> dict[str, Any]:
        return {
            "dev": self.ifname,
            "gateway": None if self.gateway is None else str(self.gateway),
            "src": None if self.src is None else str(self.src),
            "weight": self.weight,
        }


class _Host:
    """Indexes over a state for one explanation (rules in order, routes per table)."""

    def __init__(
        self, state: HostState, sysctls: Mapping[str, str], family: int = 4, losers: bool = True
    ) -> None:
        self.state = state
        self.sysctls = sysctls
        self.family = family
        self.losers = losers
        """List the routes that lost each table lookup (:attr:`TableLookup.losers`)."""
        self.rules = sorted(
            (r for r in state.rules if r.family == family), key=lambda r: (r.priority, r.position)
        )
        self.tables: dict[int, list[Route]] = {}
        for route in state.routes:
            if route.family == family:
                self.tables.setdefault(route.table, []).append(route)
        self._prefixes: dict[int, list[tuple[int, dict[int, list[Route]]]]] = {}
        self.links = {link.name: link for link in state.links}
        self.local = {a.ip for a in state.addresses if a.family == family}
        self.loopback = next((link.name for link in state.links if link.loopback), "lo")

    def holding(self, table: int, dst: IPAddress) -> list[tuple[int, list[Route]]]:
        """The routes of ``table`` whose prefix holds ``dst``: (prefix length, its routes by
        metric, in the table's order among equal metrics), longest prefix first. One dict
        lookup per prefix length in the table (its index is built on the first lookup), not a
        test of every route: status explains a finding per port, each in a table of a few
        routes per port."""
        index = self._prefixes.get(table)
        if index is None:
            by_length: dict[int, dict[int, list[Route]]] = {}
            for route in self.tables.get(table, ()):
                net = route.dst
                key = int(net.network_address) >> (net.max_prefixlen - net.prefixlen)
                by_length.setdefault(net.prefixlen, {}).setdefault(key, []).append(route)
            for bucket in (b for nets in by_length.values() for b in nets.values()):
                bucket.sort(key=lambda r: r.metric)  # stable: the kernel's order
            index = self._prefixes[table] = sorted(by_length.items(), reverse=True)
        value, bits = int(dst), dst.max_prefixlen
        found = []
        for length, nets in index:
            held = nets.get(value >> (bits - length))
            if held:
                found.append((length, held))
        return found

    def conf(self, ifname: str, knob: str, *, with_all: bool = True) -> int:
        """A per-interface IPv4 setting; combined with ``all`` as the kernel does (the larger
        of the two: ``rp_filter``, and for flags an OR) unless ``with_all`` is False
        (``forwarding`` is the device's own)."""
        names = ("all", ifname) if with_all else (ifname,)
        values = [self.sysctls.get(f"net.ipv4.conf.{name}.{knob}") for name in names]
        found = [int(v) for v in values if v not in (None, "")]
        return max(found) if found else 0

    def conf6(self, ifname: str, knob: str) -> int:
        """A per-interface IPv6 setting (the device's own value)."""
        return _int(self.sysctls.get(f"net.ipv6.conf.{ifname}.{knob}"))


def explain(state: HostState, flow: Flow, sysctls: Mapping[str, str] | None = None) -> Explanation:
    """How the kernel routes ``flow`` in ``state`` (IPv4 or IPv6: the destination's family),
    step by step.

    ``sysctls`` adds settings that :class:`HostState` may not carry (``forwarding``,
    ``accept_local``, ``rp_filter``, ``use_tempaddr`` by their dotted names).
    """
    return Explainer(state, sysctls)(flow)


class Explainer:
    """:func:`explain` for many flows in one state: its indexes (rules in order, routes per
    table and prefix, local addresses) are built once per family, not once per flow (status
    explains a finding per port: 512 at 256 dual-stack ports).

    ``losers=False`` leaves :attr:`TableLookup.losers` empty (the routes that lost, each
    with its reason: in main with a default per port, every other port's default), for
    callers that want only the path, its rules and route (findings, the picture)."""

    def __init__(
        self, state: HostState, sysctls: Mapping[str, str] | None = None, *, losers: bool = True
    ) -> None:
        self.state = state
        self.sysctls = dict(state.sysctls)
        self.sysctls.update(sysctls or {})
        self.losers = losers
        self._hosts: dict[int, _Host] = {}

    def __call__(self, flow: Flow) -> Explanation:
        family = flow.dst.version
        host = self._hosts.get(family)
        if host is None:
            host = self._hosts[family] = _Host(self.state, self.sysctls, family, self.losers)
        return _explain(host, flow)


def _explain(host: _Host, flow: Flow) -> Explanation:
    if flow.dst.version == 6:
        if flow.iif is not None:
            return _input6(host, flow)
        return _output6(host, flow)
    if flow.iif is not None:
        return _input(host, flow)
    return _output(host, flow)


# -- the output path (ip_route_output_key_hash_rcu) -------------------------------------------
def _output(host: _Host, flow: Flow) -> Explanation:
    notes: list[str] = []

    def fail(code: int, walk: Walk | None = None, note: str | None = None) -> Explanation:
        if note:
            notes.append(note)
        return _failed(flow, code, walk, notes)

    if flow.src is not None:
        if flow.src.is_multicast or flow.src == LIMITED_BROADCAST or flow.src in ZERO_NET:
            return fail(errno.EINVAL, note=f"{flow.src} cannot be a source address")
        if flow.src not in host.local:
            return fail(
                errno.ENETUNREACH,
                note=f"{flow.src} is not an address of this host: "
                "the kernel refuses it as a source (network unreachable)",
            )
    out_link: Link | None = None
    if flow.oif is not None:
        out_link = host.links.get(flow.oif)
        if out_link is None:
            return fail(errno.ENODEV, note=f"there is no interface {flow.oif}")
        admin_up = out_link.up if out_link.admin_up is None else out_link.admin_up
        if not admin_up:
            return fail(errno.ENETUNREACH, note=f"{flow.oif} is down")
    walk = _walk(host, flow, iif=host.loopback)
    if walk.error is not None or walk.route is None:
        code = errno.ENETUNREACH if walk.error is None else walk.error
        if flow.oif is not None:
            notes.append(
                f"no usable route ({ERROR_NAMES.get(code, code)}), but the socket is bound to "
                f"{flow.oif}: the kernel assumes the destination is on-link there"
            )
            src = flow.src or _select_address(host, flow.oif, None, SCOPE_LINK)
            return _found(flow, walk, None, flow.oif, None, src, "unicast", notes)
        return fail(code, walk)
    route = walk.route
    if route.type == RTN_LOCAL:
        src = flow.src or _v4(route.prefsrc) or flow.dst
        notes.append("the destination is an address of this host: delivered locally")
        return _found(flow, walk, route, host.loopback, None, src, "local", notes)

    def source(path: Route) -> tuple[IPAddress | None, str | None]:
        if flow.src is not None:
            return flow.src, None
        src = _v4(path.prefsrc) or _select_address(host, path.ifname, path.gateway, path.scope)
        return src, _source_note(path, src)

    kind = "broadcast" if route.type == RTN_BROADCAST else "unicast"
    return _through_paths(flow, walk, route, kind, notes, source, flow.oif)


def _found(
    flow: Flow,
    walk: Walk,
    route: Route | None,
    ifname: str | None,
    gateway: IPAddress | None,
    src: IPAddress | None,
    kind: str,
    notes: Sequence[str],
) -> Explanation:
    """A walk's answer (``route`` None: the kernel's on-link assumption for a bound
    socket), IPv4 or IPv6, output or input."""
    return Explanation(
        flow, walk.steps, route, walk.rule, ifname, gateway, src, kind, None, tuple(notes)
    )


#: The source a path (a single-path route, or one next hop of a multipath route) gives a
#: flow, and the note that says why (None: nothing to say).
SourceOf = Callable[[Route], tuple["IPAddress | None", "str | None"]]


def _through_paths(
    flow: Flow,
    walk: Walk,
    route: Route,
    kind: str,
    notes: list[str],
    source: SourceOf,
    device: str | None,
) -> Explanation:
    """The answer of a unicast (or broadcast) route: a single path's device and gateway; of a
    multipath route the next hop through ``device`` when the lookup is bound to it (IPv4: the
    flow's ``oif``, ``fib_table_lookup`` takes its next hop; IPv6: only a strict lookup,
    where ``fib6_select_path`` skips the siblings through other devices), else the kernel's
    choice among them all (``fib_select_multipath``, ``fib6_select_path``: it hashes the
    flow to one next hop, in proportion to their weights)."""
    hops = route.paths
    bound = [hop for hop in hops if device is not None and hop.ifname == device]
    if len(hops) > 1 and not bound:
        choices = tuple(
            PathChoice(hop.ifname, hop.gateway, source(route.through(hop))[0], hop.weight)
            for hop in hops
        )
        notes.append(
            "kernel's choice among "
            + ", ".join(choice.describe() for choice in choices)
            + ": a multipath route; the kernel hashes each flow (its addresses; for IPv6 "
            "its flow label too) to one next hop, so where an unbound flow leaves is known "
            "only per flow (the kernel's answer below is one); a from rule to a port's "
            "table decides it for replies from that port's addresses"
        )
        return Explanation(
            flow, walk.steps, route, walk.rule, None, None, None, kind, None, tuple(notes),
            choices,
        )  # fmt: skip
    path = route.through(bound[0]) if route.nexthops else route
    if route.nexthops:
        notes.append(f"a multipath route: its next hop through {device}, the flow's device")
    src, note = source(path)
    if note is not None:
        notes.append(note)
    gateway = path.gateway if kind == "unicast" else None
    return _found(flow, walk, route, path.ifname, gateway, src, kind, notes)


def _source_note(route: Route, src: IPv4 | None) -> str:
    if route.prefsrc is not None:
        return f"source {route.prefsrc}: the route's prefsrc"
    if src is None:
        return "no source address: no device has a usable IPv4 address"
    near = " in the gateway's subnet" if route.gateway is not None else ""
    return (
        f"source {src}: no prefsrc on the route, so the first primary address{near} "
        f"of {route.ifname} with a scope the route allows"
    )


def _failed(flow: Flow, code: int, walk: Walk | None, notes: Sequence[str]) -> Explanation:
    return Explanation(
        flow,
        () if walk is None else walk.steps,
        None,
        None if walk is None else walk.rule,
        None,
        None,
        None,
        "error",
        code,
        tuple(notes),
    )


# -- the input path (ip_route_input_slow) ----------------------------------------------------
def _input(host: _Host, flow: Flow) -> Explanation:
    notes: list[str] = []
    iif = flow.iif
    assert iif is not None
    flow = replace(flow, uid=0)  # received packets have no socket: the namespace's root
    link = host.links.get(iif)
    src = flow.src or IPv4(0)
    if link is None:
        return _failed(flow, errno.ENODEV, None, [f"there is no interface {flow.iif}"])
    if src.is_multicast or src == LIMITED_BROADCAST:
        return _failed(flow, errno.EINVAL, None, [f"martian source {src}"])
    if flow.dst == LIMITED_BROADCAST or (int(src) == 0 and int(flow.dst) == 0):
        return _broadcast_input(host, flow, link, Walk((), None, None, None), notes)
    if src in ZERO_NET:
        return _failed(flow, errno.EINVAL, None, [f"martian source {src}"])
    if flow.dst in ZERO_NET or flow.dst in LOOPBACK_NET:
        return _failed(flow, errno.EINVAL, None, [f"martian destination {flow.dst}"])
    if src in LOOPBACK_NET:
        return _failed(flow, errno.EINVAL, None, [f"martian source {src}"])
    walk = _walk(host, flow, iif=iif)
    forwarding = host.conf(iif, "forwarding", with_all=False) > 0
    if walk.error is not None or walk.route is None:
        code = errno.ENETUNREACH if walk.error is None else walk.error
        if not forwarding:
            code = errno.EHOSTUNREACH
            notes.append(f"forwarding is off on {flow.iif}")
        return _failed(flow, code, walk, notes)
    route = walk.route
    if route.type == RTN_BROADCAST:
        if host.conf(iif, "bc_forwarding", with_all=False) > 0:
            return _failed(flow, errno.EINVAL, walk, ["broadcast forwarding: not modelled"])
        return _broadcast_input(host, flow, link, walk, notes)
    if route.type == RTN_LOCAL:
        if not _source_ok(host, flow, link, None):
            return _failed(
                flow, errno.EINVAL, walk, [f"martian source {src}: it fails the reverse-path check"]
            )
        notes.append("the destination is an address of this host: delivered locally")
        return _found(flow, walk, route, host.loopback, None, flow.src, "local", notes)
    if not forwarding:
        return _failed(flow, errno.EHOSTUNREACH, walk, [f"forwarding is off on {flow.iif}"])
    if route.type != RTN_UNICAST:
        return _failed(flow, errno.EINVAL, walk, ["martian destination"])
    # (a multipath route: judged by its first next hop's device)
    if not _source_ok(host, flow, link, route.paths[0].ifname):
        return _failed(
            flow, errno.EINVAL, walk, [f"martian source {src}: it fails the reverse-path check"]
        )
    return _through_paths(flow, walk, route, "unicast", notes, lambda _path: (flow.src, None), None)


def _broadcast_input(
    host: _Host, flow: Flow, link: Link, walk: Walk, notes: list[str]
) -> Explanation:
    """A received broadcast is delivered locally (after the reverse-path check)."""
    # the kernel checks a broadcast's source with no destination (0.0.0.0)
    unaddressed = replace(flow, dst=IPv4(0))
    if (
        flow.src is not None
        and int(flow.src) != 0
        and not _source_ok(host, unaddressed, link, None)
    ):
        return _failed(
            flow,
            errno.EINVAL,
            walk,
            [f"martian source {flow.src}: it fails the reverse-path check"],
        )
    notes.append("a broadcast: delivered locally")
    return _found(flow, walk, walk.route, host.loopback, None, flow.src, "broadcast", notes)


def _source_ok(host: _Host, flow: Flow, link: Link, out: str | None) -> bool:
    """``fib_validate_source``: the reverse lookup from the destination back to the source,
    entering through ``out`` (the forward route's device; ``lo`` for local delivery), judged
    by the in-device's ``rp_filter`` (0 off, 1 strict, 2 loose) and ``accept_local``."""
    rpf = host.conf(link.name, "rp_filter")
    accept_local = host.conf(link.name, "accept_local") > 0
    src_valid_mark = host.conf(link.name, "src_valid_mark") > 0
    assert flow.src is not None
    back = Flow(
        dst=flow.src,
        src=flow.dst,
        mark=flow.mark if src_valid_mark else 0,
        ipproto=flow.ipproto,
        sport=flow.dport,
        dport=flow.sport,
        tos=flow.tos,
    )
    walk = _walk(host, back, iif=out or host.loopback)
    if walk.error is not None or walk.route is None:
        return not rpf
    route = walk.route
    if route.type != RTN_UNICAST and not (route.type == RTN_LOCAL and accept_local):
        return False
    if link.name in route.devices or not host.state.addresses_of(link.name, 4):
        return link.name in route.devices or not rpf
    return rpf != 1


# -- IPv6: the output and input paths (ip6_route_output_flags, inet6_rtm_getroute) -------------
def _output6(host: _Host, flow: Flow) -> Explanation:
    notes: list[str] = []
    if flow.src is not None and flow.src.version != 6:
        return _failed(flow, errno.EINVAL, None, [f"{flow.src} is not an IPv6 address"])
    if flow.oif is not None and flow.oif not in host.links:
        return _failed(flow, errno.ENODEV, None, [f"there is no interface {flow.oif}"])
    if need_strict(flow.dst):
        notes.append(
            f"{flow.dst} is link-local, multicast or loopback: it means something only on one "
            "link, so a socket must name the output device (a scope id, SO_BINDTODEVICE, "
            "ping -I); without one the kernel takes the first route that holds it"
            if flow.oif is None
            else f"{flow.dst} is link-local, multicast or loopback: only routes through "
            f"{flow.oif} are taken"
        )
    elif flow.oif is not None and flow.src is None:
        notes.append(f"bound to {flow.oif} with no source: only routes through it are taken")
    elif flow.oif is not None:
        notes.append(
            f"bound to {flow.oif} with a source: routes through {flow.oif} are preferred "
            "among those of one prefix, others still count (the kernel's RT6_LOOKUP_F_IFACE "
            "is not set)"
        )
    walk = _walk(host, flow, iif=host.loopback)
    if walk.error is not None or walk.route is None:
        code = errno.ENETUNREACH if walk.error is None else walk.error
        if walk.rule is None:
            notes.append(
                "no table answered: the kernel's default for IPv6 is unreachable "
                "(ip6_null_entry, network unreachable)"
            )
        return _failed(flow, code, walk, notes)
    route = walk.route

    def source(path: Route) -> tuple[IPAddress | None, str | None]:
        if flow.src is not None:
            return flow.src, None
        if path.prefsrc is not None:
            return path.prefsrc, f"source {path.prefsrc}: the route's prefsrc"
        choice = select_source6(host.state, path.ifname, flow.dst, host.sysctls)
        return choice.address, choice.note

    if route.type in (RTN_LOCAL, RTN_ANYCAST):
        src, note = source(route)
        notes += [] if note is None else [note]
        notes.append("the destination is an address of this host: delivered locally")
        kind = "local" if route.type == RTN_LOCAL else "anycast"
        return _found(flow, walk, route, host.loopback, None, src, kind, notes)
    strict = need_strict(flow.dst) or flow.src is None
    return _through_paths(flow, walk, route, "unicast", notes, source, flow.oif if strict else None)


def _input6(host: _Host, flow: Flow) -> Explanation:
    """A received packet (``ip6_route_input_lookup``): the rules with ``iif``, routes through
    the ``iif`` preferred; forwarding and the source are judged later (``ip6_forward``, no
    reverse-path filter in the lookup), so the route is the answer."""
    flow = replace(flow, uid=0)
    if flow.iif not in host.links:
        return _failed(flow, errno.ENODEV, None, [f"there is no interface {flow.iif}"])
    assert flow.iif is not None
    walk = _walk(host, flow, iif=flow.iif)
    notes: list[str] = []
    if walk.error is not None or walk.route is None:
        code = errno.ENETUNREACH if walk.error is None else walk.error
        return _failed(flow, code, walk, notes)
    route = walk.route
    if route.type in (RTN_LOCAL, RTN_ANYCAST):
        notes.append("the destination is an address of this host: delivered locally")
        kind = "local" if route.type == RTN_LOCAL else "anycast"
        return _found(flow, walk, route, host.loopback, None, flow.src, kind, notes)
    if host.conf6(flow.iif, "forwarding") == 0:
        notes.append(
            f"forwarding is off on {flow.iif}: the route is found, ip6_forward then drops the "
            "packet"
        )
    device = flow.iif if need_strict(flow.dst) else None  # RT6_LOOKUP_F_IFACE
    return _through_paths(
        flow, walk, route, "unicast", notes, lambda _path: (flow.src, None), device
    )


def _lookup6(host: _Host, table: int, flow: Flow) -> TableLookup:
    """``fib6_table_lookup``: the longest prefix with a selectable route (``rt6_select``, else
    ``fib6_backtrack`` to shorter prefixes); in a prefix the lowest metric's routes first, the
    best score (``rt6_score_route``) wins, the first of equals."""
    if not host.tables.get(table):
        return TableLookup(table, False, None)
    oif = flow.iif if flow.iif is not None else flow.oif
    strict = need_strict(flow.dst) or (
        flow.iif is None and flow.oif is not None and flow.src is None
    )
    prefixes = dict(host.holding(table, flow.dst))
    losers: list[tuple[Route, str]] = []
    for length in sorted(prefixes, reverse=True):
        held = prefixes[length]  # by metric, stable: the kernel's order
        lowest = held[0].metric
        first = [r for r in held if r.metric == lowest]
        rest = [r for r in held if r.metric != lowest]
        chosen = _rr_leaf(host, first, oif, strict) or _rr_leaf(host, rest, oif, strict)
        if chosen is None:
            losers += [
                (r, f"goes through {_dev6(host, r)}, only routes through {oif} are taken")
                for r in held
            ]
            continue
        for route in held if host.losers else ():
            if route is not chosen:
                losers.append((route, _lost6(host, route, chosen, oif, strict)))
        for shorter in sorted(prefixes, reverse=True) if host.losers else ():
            if shorter < length:
                losers += [
                    (r, f"shorter prefix (/{shorter} < /{length})") for r in prefixes[shorter]
                ]
        if chosen.type in ROUTE_ERRORS:
            return TableLookup(table, True, chosen, tuple(losers), ROUTE_ERRORS[chosen.type])
        if chosen.type == RTN_THROW:
            return TableLookup(table, True, chosen, tuple(losers), throw=True)
        return TableLookup(table, True, chosen, tuple(losers))
    return TableLookup(table, True, None, tuple(losers))


def _devices(route: Route) -> str:
    """The device of a route, or a multipath route's devices."""
    return "/".join(route.devices) or "no device"


def _dev6(host: _Host, route: Route) -> str:
    """The device the kernel scores a route by: error routes go through ``lo``; a multipath
    route's next hops (siblings in the kernel, each scored alone) by theirs."""
    return _devices(route) if route.nexthops else route.ifname or host.loopback


def _via6(host: _Host, route: Route, oif: str | None) -> bool:
    """The route goes through ``oif`` (one of a multipath route's next hops does)."""
    return oif in route.devices if route.nexthops else _dev6(host, route) == oif


def _score6(host: _Host, route: Route, oif: str | None, strict: bool) -> int | None:
    """``rt6_score_route`` without router preference (all medium) and neighbour state: 2 for
    a route through ``oif`` (or any without one), 0 for others; None: not selectable."""
    if oif is None or _via6(host, route, oif):
        return 2
    return None if strict else 0


def _rr_leaf(host: _Host, routes: Sequence[Route], oif: str | None, strict: bool) -> Route | None:
    best: Route | None = None
    best_score = -1
    for route in routes:
        score = _score6(host, route, oif, strict)
        if score is not None and score > best_score:
            best, best_score = route, score
    return best


def _lost6(host: _Host, route: Route, chosen: Route, oif: str | None, strict: bool) -> str:
    if _score6(host, route, oif, strict) is None:
        return f"goes through {_dev6(host, route)}, only routes through {oif} are taken"
    if route.metric < chosen.metric:
        return f"lower metric, but {chosen.ifname} is the flow's device {oif}"
    if route.metric > chosen.metric:
        return f"higher metric ({route.metric} > {chosen.metric})"
    if oif is not None and _via6(host, chosen, oif) and not _via6(host, route, oif):
        return f"same metric, but the chosen route goes through the flow's device {oif}"
    return "listed after the chosen route with the same prefix and metric"


# -- IPv6 source address selection (ipv6_dev_get_saddr, RFC 6724) -------------------------------
#: The kernel's default policy table (net/ipv6/addrlabel.c): prefix -> label.
ADDRESS_LABELS = [
    (ipaddress.IPv6Network("::1/128"), 0),
    (ipaddress.IPv6Network("::/96"), 3),
    (ipaddress.IPv6Network("::ffff:0:0/96"), 4),
    (ipaddress.IPv6Network("2001::/32"), 6),
    (ipaddress.IPv6Network("2001:10::/28"), 7),
    (ipaddress.IPv6Network("2002::/16"), 2),
    (ipaddress.IPv6Network("3ffe::/16"), 12),
    (ipaddress.IPv6Network("fec0::/10"), 11),
    (ipaddress.IPv6Network("fc00::/7"), 5),
    (ipaddress.IPv6Network("::/0"), 1),
]
ORCHID = ipaddress.IPv6Network("2001:10::/28")
#: RFC 6724 section 5 rules as the kernel numbers them, in its order; the ones this module
#: implements. Rule 4 (home addresses, Mobile IPv6) and optimistic DAD it reports as the
#: kernel's choice when a candidate carries those flags.
SOURCE_RULES = (
    "1 same address",
    "2 appropriate scope",
    "3 avoid deprecated",
    "5 prefer the outgoing interface",
    "6 matching label (default policy table)",
    "7 temporary addresses (use_tempaddr >= 2)",
    "ORCHID",
    "8 longest matching prefix",
)
IFA_F_OPTIMISTIC = 0x04
IFA_F_HOMEADDRESS = 0x10


@dataclass(frozen=True)
class SourceChoice:
    """The source the kernel picks for an IPv6 destination, and why."""

    address: IPAddress | None
    note: str


def _label(address: IPv6) -> int:
    best = max((net for net, _ in ADDRESS_LABELS if address in net), key=lambda n: n.prefixlen)
    return dict(ADDRESS_LABELS)[best]


def _scope6(address: IPv6) -> int:
    """``__ipv6_addr_src_scope``: node 1, link 2, site 5, global 14 (multicast: its own)."""
    if address.is_multicast:
        return address.packed[1] & 0x0F
    if address.is_loopback:
        return 1
    if address.is_link_local:
        return 2
    if address.is_site_local:
        return 5
    return 14


def _common_bits(a: IPv6, b: IPv6) -> int:
    return 128 - (int(a) ^ int(b)).bit_length()


def select_source6(
    state: HostState, ifname: str | None, dst: IPAddress, sysctls: Mapping[str, str]
) -> SourceChoice:
    """``ipv6_dev_get_saddr`` for a route through ``ifname``: the candidates are every
    device's addresses (only ``ifname``'s for link-local and multicast destinations), less
    tentative ones; each compared rule by rule (:data:`SOURCE_RULES`), the first rule that
    differs decides, the earlier candidate wins a tie (devices by index, each device's
    addresses in the kernel's list order)."""
    assert isinstance(dst, IPv6)
    dst_scope = _scope6(dst)
    only_oif = ifname is not None and (dst.is_multicast or dst_scope <= 2)
    links = sorted(state.links, key=lambda link: link.index)
    candidates: list[Address] = []
    for link in links:
        if only_oif and link.name != ifname:
            continue
        for address in _ordered(state.addresses_of(link.name, 6)):
            if address.flags & IFA_F_TENTATIVE and not address.flags & IFA_F_OPTIMISTIC:
                continue
            if address.flags & IFA_F_DADFAILED or address.ip.is_multicast:
                continue
            if address.ip.is_unspecified:
                continue
            candidates.append(address)
    if not candidates:
        return SourceChoice(None, "no source address: no IPv6 address past DAD to choose")
    label = _label(dst)
    orchid = dst in ORCHID

    def score(address: Address) -> tuple[int, ...]:
        ip = address.ip
        assert isinstance(ip, IPv6)
        scope = _scope6(ip)
        tempaddr = _int(sysctls.get(f"net.ipv6.conf.{address.ifname}.use_tempaddr"))
        prefer_temporary = tempaddr >= 2
        return (
            int(ip == dst),
            -scope if scope >= dst_scope else scope - 128,
            int(ip.is_loopback or not address.flags & (IFA_F_DEPRECATED | IFA_F_OPTIMISTIC)),
            int(ifname is None or address.ifname == ifname),
            int(_label(ip) == label),
            int((not address.flags & IFA_F_TEMPORARY) ^ prefer_temporary),
            int((ip in ORCHID) == orchid),
            min(_common_bits(ip, dst), address.interface.network.prefixlen),
        )

    scored = [(score(address), address) for address in candidates]
    best_score, best = scored[0]
    for mine, address in scored[1:]:
        if mine > best_score:  # strictly better: the earlier candidate wins a tie
            best_score, best = mine, address
    beaten: dict[str, list[str]] = {}
    for mine, address in scored:
        if address is not best:
            beaten.setdefault(_deciding(best_score, mine), []).append(str(address.ip))
    reasons = "; ".join(
        f"{rule} against {', '.join(addresses)}"
        for rule, addresses in sorted(beaten.items(), key=lambda item: item[0])
    )
    unusual = [a for a in candidates if a.flags & (IFA_F_OPTIMISTIC | IFA_F_HOMEADDRESS)]
    note = (
        f"source {best.ip}: no prefsrc on the route, so RFC 6724 source selection "
        f"(ipv6_dev_get_saddr) among {len(candidates)} candidate(s)"
        + (f": {reasons}" if reasons else ": the only candidate")
    )
    if unusual:
        note += (
            "; optimistic or home addresses are candidates: the kernel's choice may differ "
            "(rules not modelled)"
        )
    return SourceChoice(best.ip, note)


def _deciding(winner: tuple[int, ...], loser: tuple[int, ...]) -> str:
    for name, (a, b) in zip(SOURCE_RULES, zip(winner, loser, strict=True), strict=True):
        if a != b:
            return f"rule '{name}'"
    return "a tie, the first listed"


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


# -- the rules (fib_rules_lookup) -------------------------------------------------------------
def _walk(host: _Host, flow: Flow, iif: str) -> Walk:
    steps: list[RuleStep] = []
    rules = host.rules
    index = 0
    while index < len(rules):
        rule = rules[index]
        index += 1
        why_not = _mismatch(host, rule, flow, iif)
        if why_not is not None:
            steps.append(RuleStep(rule, False, why_not, "skip"))
            continue
        matched = "matches" if not rule.invert else "matches (its selector does not: 'not')"
        if rule.action == FR_ACT_GOTO:
            target = next((i for i, r in enumerate(rules) if r.priority == rule.goto), None)
            if target is None:
                steps.append(
                    RuleStep(rule, True, f"{matched}; no rule {rule.goto} to go to", "continue")
                )
                continue
            steps.append(RuleStep(rule, True, f"{matched}; jumps to {rule.goto}", "goto"))
            index = target
            continue
        if rule.action == FR_ACT_NOP:
            steps.append(RuleStep(rule, True, f"{matched}; nop", "continue"))
            continue
        if rule.action in RULE_ERRORS:
            code = RULE_ERRORS[rule.action]
            steps.append(RuleStep(rule, True, f"{matched}; {ERROR_NAMES[code]}", "error"))
            return Walk(tuple(steps), None, rule, code)
        if rule.action != FR_ACT_TO_TBL:
            code = errno.EINVAL
            steps.append(RuleStep(rule, True, f"{matched}; unknown action {rule.action}", "error"))
            return Walk(tuple(steps), None, rule, code)
        if rule.l3mdev:
            steps.append(
                RuleStep(rule, True, f"{matched}; VRF tables are not modelled", "continue")
            )
            continue
        lookup = (
            _lookup6(host, rule.table, flow)
            if host.family == 6
            else _lookup(host, rule.table, flow)
        )
        if lookup.error is not None:
            label = table_label(rule.table)
            steps.append(
                RuleStep(
                    rule,
                    True,
                    f"{matched}; table {label} answers with an error route",
                    "error",
                    lookup,
                )
            )
            return Walk(tuple(steps), lookup.route, rule, lookup.error)
        if lookup.route is None or lookup.throw:
            why = (
                "does not exist"
                if not lookup.exists
                else "throws"
                if lookup.throw
                else "has no route for the destination"
            )
            label = table_label(rule.table)
            steps.append(
                RuleStep(rule, True, f"{matched}; table {label} {why}", "continue", lookup)
            )
            continue
        suppressed = _suppressed(host, rule, lookup.route)
        if suppressed is not None:
            steps.append(RuleStep(rule, True, f"{matched}; {suppressed}", "continue", lookup))
            continue
        steps.append(RuleStep(rule, True, matched, "route", lookup))
        return Walk(tuple(steps), lookup.route, rule, None)
    return Walk(tuple(steps), None, None, errno.ENETUNREACH)


def _mismatch(host: _Host, rule: Rule, flow: Flow, iif: str) -> str | None:
    """Why ``rule`` does not apply to ``flow`` (None: it does), as fib_rule_match decides."""
    why = _selector_mismatch(host, rule, flow, iif)
    if rule.invert:
        return None if why is not None else "its selector matches, and it says 'not'"
    return why


def _selector_mismatch(host: _Host, rule: Rule, flow: Flow, iif: str) -> str | None:
    if rule.iifname is not None and rule.iifname != iif:
        return f"iif {rule.iifname}, the packet comes from {iif}"
    if rule.oifname is not None and rule.oifname != flow.oif:
        return f"oif {rule.oifname}, the flow is bound to {flow.oif or 'no interface'}"
    if ((rule.fwmark or 0) ^ flow.mark) & rule.mark_mask:
        return f"fwmark {rule.fwmark or 0:#x}/{rule.mark_mask:#x}, the mark is {flow.mark:#x}"
    if rule.l3mdev and not _in_vrf(host, flow, iif):
        return "l3mdev: neither interface of the flow is in a VRF"
    if rule.uid is not None and not rule.uid[0] <= flow.uid <= rule.uid[1]:
        return f"uidrange {rule.uid[0]}-{rule.uid[1]}, the uid is {flow.uid}"
    if host.family == 6 and rule.src is not None and rule.src.prefixlen and flow.src is None:
        return f"from {rule.src}, the source is not chosen yet (IPv6 rules then never match)"
    src = flow.src or IPv4(0)
    if rule.src is not None and src not in rule.src:
        return f"from {rule.src}, the source is {flow.src or 'not chosen yet (0.0.0.0)'}"
    if rule.dst is not None and flow.dst not in rule.dst:
        return f"to {rule.dst}, the destination is {flow.dst}"
    if rule.tos and rule.tos != flow.tos:
        return f"tos {rule.tos:#x}, the flow's is {flow.tos:#x}"
    if rule.ipproto is not None and rule.ipproto != flow.ipproto:
        return f"ipproto {rule.ipproto}, the flow's is {flow.ipproto}"
    for name, ports, port in (("sport", rule.sport, flow.sport), ("dport", rule.dport, flow.dport)):
        if ports is not None and not ports[0] <= port <= ports[1]:
            return f"{name} {ports[0]}-{ports[1]}, the flow's is {port}"
    return None


def _in_vrf(host: _Host, flow: Flow, iif: str) -> bool:
    for name in (flow.oif, iif):
        link = host.links.get(name or "")
        if link is None:
            continue
        master = host.links.get(link.master or "")
        if link.kind == "vrf" or (master is not None and master.kind == "vrf"):
            return True
    return False


def _suppressed(host: _Host, rule: Rule, route: Route) -> str | None:
    if rule.suppress_prefixlength is not None and (
        route.dst.prefixlen <= rule.suppress_prefixlength
    ):
        return (
            f"route {route.dst} suppressed: prefix length {route.dst.prefixlen} <= "
            f"suppress_prefixlength {rule.suppress_prefixlength}"
        )
    if rule.suppress_ifgroup is not None and route.ifname is not None:
        ifname = route.ifname
        if host.family == 6 and route.type in (RTN_LOCAL, RTN_ANYCAST):
            ifname = host.loopback  # the kernel's copy of a local route goes through lo
        link = host.links.get(ifname)
        if link is not None and link.group == rule.suppress_ifgroup:
            return (
                f"route via {ifname} suppressed: its group is "
                f"suppress_ifgroup {rule.suppress_ifgroup}"
            )
    return None


# -- a table (fib_table_lookup) ---------------------------------------------------------------
def _lookup(host: _Host, table: int, flow: Flow) -> TableLookup:
    if not host.tables.get(table):
        return TableLookup(table, False, None)
    # Longest prefix first; in one prefix the kernel keeps routes by metric.
    holding = chain.from_iterable(routes for _length, routes in host.holding(table, flow.dst))
    losers: list[tuple[Route, str]] = []
    chosen: Route | None = None
    for route in holding:
        if chosen is not None:
            if not host.losers:
                break
            losers.append((route, _lost(route, chosen)))
            continue
        if route.type in ROUTE_ERRORS:
            return TableLookup(table, True, route, tuple(losers), ROUTE_ERRORS[route.type])
        if route.type == RTN_THROW:
            return TableLookup(table, True, route, tuple(losers), throw=True)
        if flow.oif is not None and flow.oif not in route.devices:
            losers.append(
                (route, f"goes through {_devices(route)}, the flow is bound to {flow.oif}")
            )
            continue
        chosen = route
    return TableLookup(table, True, chosen, tuple(losers))


def _lost(route: Route, chosen: Route) -> str:
    if route.dst.prefixlen < chosen.dst.prefixlen:
        return f"shorter prefix (/{route.dst.prefixlen} < /{chosen.dst.prefixlen})"
    if route.metric > chosen.metric:
        return f"higher metric ({route.metric} > {chosen.metric})"
    return "listed after the chosen route with the same prefix and metric"


# -- source address selection (inet_select_addr) ---------------------------------------------
def _select_address(host: _Host, ifname: str | None, near: Any, scope: int) -> IPv4 | None:
    """The kernel's choice of a source on ``ifname`` for a route of ``scope``: the first
    primary address whose scope is not narrower than the route's, preferring one whose subnet
    holds ``near`` (the gateway); else such an address on any device (lo first)."""
    if ifname is not None:
        first: IPv4 | None = None
        for address in _ordered(host.state.addresses_of(ifname, 4)):
            if address.secondary or address.scope > scope:
                continue
            if near is None or near in address.network:
                return _v4(address.ip)
            if first is None:
                first = _v4(address.ip)
        if first is not None:
            return first
    for link in sorted(host.state.links, key=lambda item: item.index):
        for address in _ordered(host.state.addresses_of(link.name, 4)):
            if address.secondary or address.scope == SCOPE_LINK or address.scope > scope:
                continue
            return _v4(address.ip)
    return None


def _ordered(addresses: Sequence[Address]) -> list[Address]:
    return sorted(addresses, key=lambda address: address.position)


def _v4(address: Any) -> IPv4 | None:
    return address if isinstance(address, IPv4) else None


__all__ = [
    "ERROR_NAMES",
    "SOURCE_RULES",
    "Explainer",
    "Explanation",
    "Flow",
    "RuleStep",
    "SourceChoice",
    "TableLookup",
    "explain",
    "select_source6",
]
