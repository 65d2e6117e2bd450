"""A picture of the routing (Graphviz ``dot``): ports -> addresses -> rules -> tables ->
gateways, multihome's own entries told apart from other tools', and explained paths in red.

Pure: a function of a :class:`~multihome.model.HostState`, the configuration (for ownership)
and any number of explained paths (:class:`~multihome.explain.Explanation`; ``explain --dot``:
the flow's; ``status --format dot``: the wrong path of each of doctor's findings,
:func:`wrong_paths`).
Render with ``dot -Tsvg``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from multihome.model import (
    FR_ACT_GOTO,
    FR_ACT_TO_TBL,
    RTN_UNICAST,
    SCOPE_UNIVERSE,
    Address,
    HostState,
    IPAddress,
    Route,
    Rule,
    table_label,
)

if TYPE_CHECKING:
    from multihome.config import Config
    from multihome.explain import Explanation
    from multihome.status import Problem

#: doctor's findings about a wrong path: the port whose addresses' replies leave elsewhere.
WRONG_PATH_CODES = frozenset({"reply-wrong-interface"})

RED = 'color="red", fontcolor="red", penwidth=2.5'
OURS = 'color="#1f5fbf"'
FOREIGN = 'color="#777777", style="dashed"'


def quote(text: str) -> str:
    """A dot identifier or label, quoted."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _rule_id(rule: Rule) -> str:
    return quote(f"rule {rule.describe()}")  # describe() says -6 for an IPv6 rule


def _table_id(table: int) -> str:
    return quote(f"table {table}")


def wrong_paths(state: HostState, config: Config, problems: Sequence[Problem]) -> list[Explanation]:
    """The path of each wrong-path finding (:data:`WRONG_PATH_CODES`): for every address of
    the finding's port, the replies to ``config.probe`` (``config.probe6`` for an IPv6
    address), explained, when they leave through another device."""
    from multihome.explain import Explainer, Flow

    explain = Explainer(state, losers=False)
    found = []
    probes: dict[int, IPAddress] = {p.version: p for p in (config.probe, config.probe6)}
    names = {p.interface for p in problems if p.code in WRONG_PATH_CODES}
    for ifname in sorted(name for name in names if name is not None):
        for address in _drawn_addresses(state, ifname):
            probe = probes.get(address.family)
            if probe is None:
                continue
            path = explain(Flow(dst=probe, src=address.ip))
            devices = [c.ifname for c in path.choices] or [path.ifname]  # multipath: each
            if any(device is not None and device != ifname for device in devices):
                found.append(path)
    return found


def routing_dot(state: HostState, config: Config, *paths: Explanation) -> str:
    """The picture as dot text (deterministic: same state, same text), ``paths`` in red."""
    from multihome.policy import is_owned_route, is_owned_rule

    # A family is drawn where the host has a global address of it (or a path is of it):
    # a VM without IPv6 keeps an IPv4 picture, without the kernel's default IPv6 rules.
    ports = [link for link in state.links if not link.loopback]
    families = {a.family for link in ports for a in _drawn_addresses(state, link.name)}
    families |= {path.flow.dst.version for path in paths}
    rules = sorted(
        (r for r in state.rules if r.family in (families or {4})),
        key=lambda r: (r.priority, r.family),
    )
    on_path_rules: set[Rule] = set()
    path_tables: set[int] = set()
    path_routes: set[Route] = set()
    path_devs: set[str] = set()
    path_srcs = {path.flow.src for path in paths} | {path.src for path in paths}
    for path in paths:
        on_path_rules |= {s.rule for s in path.steps if s.matched and s.outcome != "continue"}
        if path.rule is not None and path.route is not None:
            path_tables.add(path.rule.table)
            path_routes.add(path.route)
        path_devs |= {d for d in [path.ifname, *(c.ifname for c in path.choices)] if d}
    lines = [
        "digraph routing {",
        "  rankdir=LR;",
        '  node [shape=box, fontname="monospace"];',
        '  edge [fontname="monospace", fontsize=10];',
    ]
    lines.append('  subgraph cluster_ports { label="ports";')
    for link in ports:
        red = link.name in path_devs
        lines.append(f"    {quote(link.name)} [shape=component{', ' + RED if red else ''}];")
    lines.append("  }")
    for link in ports:
        for address in _drawn_addresses(state, link.name):
            red = address.ip in path_srcs
            lines.append(f"  {quote(str(address.ip))} [shape=ellipse{', ' + RED if red else ''}];")
            lines.append(f"  {quote(link.name)} -> {quote(str(address.ip))};")
    lines.append('  subgraph cluster_rules { label="rules (priority order)";')
    for rule in rules:
        owner = OURS if is_owned_rule(rule, config) else FOREIGN
        style = RED if rule in on_path_rules else owner
        lines.append(f"    {_rule_id(rule)} [{style}];")
    # One column in priority order (the lowest on top): the same rank, ordered by invisible
    # edges (drawn from the later rule to the earlier one: rankdir=LR turns them upwards).
    lines.append(f"    {{ rank=same; {' '.join(_rule_id(r) + ';' for r in rules)} }}")
    lines += [
        f"    {_rule_id(b)} -> {_rule_id(a)} [style=invis];" for a, b in itertools.pairwise(rules)
    ]
    lines.append("  }")
    lines += _rule_edges(state, rules, on_path_rules)
    tables = sorted({r.table for r in rules if r.action == FR_ACT_TO_TBL and not r.l3mdev})
    for table in tables:
        families = {r.family for r in rules if r.table == table}
        routes = [r for r in state.routes_in(table) if r.family in families]
        label = f"table {table_label(table)}" + ("" if routes else " (missing)")
        red = table in path_tables
        lines.append(
            f"  {_table_id(table)} [label={quote(label)}, shape=folder{', ' + RED if red else ''}];"
        )
        lines += _route_edges(
            table, routes, path_routes, lambda r: OURS if is_owned_route(r, config) else FOREIGN
        )
    lines.append("}")
    seen: set[str] = set()
    unique = []
    for line in lines:  # each node and edge once, in order (braces are not statements)
        if line.strip() != "}" and line in seen:
            continue
        seen.add(line)
        unique.append(line)
    return "\n".join(unique) + "\n"


def _rule_edges(state: HostState, rules: list[Rule], on_path: set[Rule]) -> list[str]:
    lines = []
    for rule in rules:
        red = rule in on_path
        for link in state.links:
            for address in _drawn_addresses(state, link.name):
                # ipaddress compares bare integers across families: check the family first.
                if (
                    rule.src is not None
                    and rule.family == address.family
                    and address.ip in rule.src
                ):
                    lines.append(
                        f"  {quote(str(address.ip))} -> {_rule_id(rule)} "
                        f"[label=from{', ' + RED if red else ''}];"
                    )
        for name, label in ((rule.iifname, "iif"), (rule.oifname, "oif")):
            if name is not None and state.link(name) is not None:
                lines.append(f"  {quote(name)} -> {_rule_id(rule)} [label={label}];")
        if rule.action == FR_ACT_TO_TBL and not rule.l3mdev:
            lines.append(
                f"  {_rule_id(rule)} -> {_table_id(rule.table)}{' [' + RED + ']' if red else ''};"
            )
        elif rule.action == FR_ACT_GOTO:
            target = next((r for r in rules if r.priority == rule.goto), None)
            if target is not None:
                lines.append(f"  {_rule_id(rule)} -> {_rule_id(target)} [label=goto];")
        elif not rule.l3mdev:
            end = quote(rule.describe().rsplit(" ", 1)[-1])
            lines.append(f"  {end} [shape=octagon];")
            lines.append(f"  {_rule_id(rule)} -> {end}{' [' + RED + ']' if red else ''};")
    return lines


def _drawn_addresses(state: HostState, ifname: str) -> list[Address]:
    """The port's addresses a picture shows: global ones of both families (a link-local
    address is the same on every picture and leads to no rule)."""
    return [a for a in state.addresses_of(ifname) if a.scope == SCOPE_UNIVERSE]


def _route_edges(
    table: int, routes: Iterable[Route], chosen: set[Route], style_of: Callable[[Route], str]
) -> list[str]:
    lines = []
    for route in sorted(routes, key=lambda r: r.order):
        dst = "default" if route.is_default else str(route.dst)
        label = f"{dst} metric {route.metric}" if route.metric else dst
        style = RED if route in chosen else style_of(route)
        if route.type != RTN_UNICAST:
            target = quote(f"{route.describe().split(' ', 1)[0]}")
            lines.append(f"  {target} [shape=octagon];")
            lines.append(f"  {_table_id(table)} -> {target} [label={quote(label)}, {style}];")
            continue
        for hop in route.paths:  # a multipath route: an edge per next hop, with its weight
            text = f"{label} weight {hop.weight}" if route.nexthops else label
            if hop.gateway is not None:
                target = quote(f"gateway {hop.gateway}")
                lines.append(f"  {target} [shape=ellipse];")
            else:
                target = quote(hop.ifname or "?")
            lines.append(f"  {_table_id(table)} -> {target} [label={quote(text)}, {style}];")
            if hop.gateway is not None and hop.ifname:
                lines.append(f"  {target} -> {quote(hop.ifname)} [style=dotted];")
    return lines


__all__ = ["WRONG_PATH_CODES", "quote", "routing_dot", "wrong_paths"]
