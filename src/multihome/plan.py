"""The plan: a pure, ordered diff between the current and the desired state.

The order keeps connectivity at every step: sysctls first, then the per-interface tables
are filled (their throw routes too, so that a table-first ``from`` rule never hides a
container's or a VPN's route of main), then the rules that use them are added (in ascending
priority, so that nothing points into an empty table), then stale owned rules
and routes go, and only at the
end the secondary defaults leave main -- when replies already have their own path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from multihome.config import Config
from multihome.errors import InputError
from multihome.facts import NO_FACTS, PortFacts
from multihome.model import PROTO_MULTIHOME, HostState, Route, Rule, Sysctl, Table
from multihome.policy import (
    DesiredState,
    PolicyMemo,
    compute_policy,
    owned_routes,
    owned_rules,
    persisted_rules,
)
from multihome.values import field, frozen, replace

TYPE_CHECKING = False  # typing is for the type checker only (start-up time)
if TYPE_CHECKING:
    from typing import Any, Literal

if TYPE_CHECKING:
    Action = Literal["add", "remove", "set"]


#: :attr:`Change.kind` of the model's classes, named once (every change's text asks).
_KINDS = {Route: "route", Rule: "rule", Sysctl: "sysctl"}


@frozen
class Change:
    """One kernel change. ``old`` is the prior value of a sysctl (None if unknown)."""

    action: Action
    obj: Route | Rule | Sysctl
    old: str | None = None

    @property
    def kind(self) -> str:
        return _KINDS.get(type(self.obj)) or type(self.obj).__name__.lower()

    def inverse(self) -> Change:
        """The change that undoes this one."""
        if isinstance(self.obj, Sysctl):
            if self.old is None:
                raise ValueError(f"cannot undo {self.obj.name}: its prior value is unknown")
            return Change("set", Sysctl(self.obj.name, self.old), self.obj.value)
        return Change("remove" if self.action == "add" else "add", self.obj)

    def describe(self, table_names: Mapping[int, str] | None = None) -> str:
        """Diff-style text: ``+ rule 10000 from 192.168.0.112 lookup mh-eth1``."""
        if isinstance(self.obj, Sysctl):
            return (
                f"~ sysctl {self.obj.name} {self.old if self.old is not None else '?'} "
                f"-> {self.obj.value}"
            )
        sign = "+" if self.action == "add" else "-"
        obj = self.obj  # a Route or a Rule: its kind from the table, not the property again
        return f"{sign} {_KINDS.get(type(obj)) or self.kind} {obj.describe(table_names)}"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = (
            {"name": self.obj.name, "value": self.obj.value, "old": self.old}
            if isinstance(self.obj, Sysctl)
            else self.obj.to_json()
        )
        data.update(action=self.action, kind=self.kind, text=self.describe())
        return data


@frozen
class Plan:
    """The ordered changes, and the table names they use."""

    changes: tuple[Change, ...]
    tables: tuple[Table, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.changes

    @property
    def table_names(self) -> dict[int, str]:
        return {t.id: t.name for t in self.tables}

    def lines(self) -> list[str]:
        names = self.table_names
        return [c.describe(names) for c in self.changes]

    def restrict(self, ifname: str, tables: Iterable[int]) -> Plan:
        """Only the changes that concern ``ifname`` (whose tables are ``tables``), plus the
        shared main-specifics rule: what ``apply --interface`` makes."""
        own = set(tables)
        marker = f".conf.{ifname.replace('.', '/')}."

        def concerns(change: Change) -> bool:
            obj = change.obj
            if isinstance(obj, Sysctl):
                return marker in obj.name
            if isinstance(obj, Route):
                return obj.ifname == ifname or obj.table in own
            return (
                obj.table in own
                or ifname in (obj.iifname, obj.oifname)
                or obj.suppress_prefixlength is not None
            )

        return Plan(tuple(c for c in self.changes if concerns(c)), self.tables, self.notes)

    def to_json(self) -> dict[str, Any]:
        return {
            "changes": [c.to_json() for c in self.changes],
            "tables": [{"id": t.id, "name": t.name, "interface": t.ifname} for t in self.tables],
            "notes": list(self.notes),
        }


@frozen
class Assessment:
    """One read of the host, what the policy wants of it, and the plan that gets it there."""

    state: HostState
    desired: DesiredState
    plan: Plan

    @classmethod
    def of(
        cls,
        state: HostState,
        config: Config,
        facts: PortFacts = NO_FACTS,
        memo: PolicyMemo | None = None,
    ) -> Assessment:
        """Compute the desired state of ``state`` (and its ports' ``facts``; ``memo``: see
        :class:`~multihome.policy.PolicyMemo`) and the plan towards it."""
        desired = compute_policy(state, config, facts, memo)
        return cls(state, desired, make_plan(state, desired, config))

    def restrict(self, interface: str) -> Assessment:
        """Only ``interface``'s changes (and the shared main rule), and only its port to
        announce and verify: at boot, ``multihome@eth0`` runs before the other ports' units,
        whose checks would fail for now. :class:`InputError` for an unknown interface."""
        if self.state.link(interface) is None:
            have = ", ".join(link.name for link in self.state.links)
            raise InputError(
                f"--interface {interface}: no such interface (have {have}); check the name"
            )
        tables = [t.id for t in self.desired.tables if t.ifname == interface]
        tables += [r.table for r in self.state.rules if interface in (r.iifname, r.oifname)]
        ports = tuple(i for i in self.desired.interfaces if i.name == interface)
        return replace(
            self,
            plan=self.plan.restrict(interface, tables),
            desired=replace(self.desired, interfaces=ports),
        )


def make_plan(current: HostState, desired: DesiredState, config: Config) -> Plan:
    """Diff ``current`` against ``desired``; only owned objects are ever removed."""
    have_rules = owned_rules(current, config)
    have_routes = owned_routes(current, config)
    changes: list[Change] = []

    for sysctl in desired.sysctls:
        old = current.sysctls.get(sysctl.name)
        if old != sysctl.value:
            changes.append(Change("set", sysctl, old))

    stale_routes = have_routes - desired.routes
    present = current.route_set
    # A network manager's stale route in multihome's table (persisted configuration that
    # names an old gateway) gives way to the desired one in its slot; others are left alone.
    low, high = config.table_range
    blocking = {r for r in present - desired.routes - have_routes if low <= r.table <= high}
    new_routes = sorted(
        desired.routes - have_routes - present,
        key=lambda r: (r.table, r.is_default, r.gateway is not None, -r.dst.prefixlen, r.order),
    )
    # The kernel holds one IPv4 route per (table, dst, metric): replace in place. Grouped by
    # slot once (a sort of all stale routes per new route was quadratic).
    in_slot: dict[tuple[Any, ...], list[Route]] = {}
    for old_route in sorted(stale_routes | blocking, key=lambda r: r.order):
        in_slot.setdefault(old_route.slot, []).append(old_route)
    displaced: set[Route] = set()
    for route in new_routes:
        for old_route in in_slot.pop(route.slot, ()):
            changes.append(Change("remove", old_route))
            displaced.add(old_route)
        changes.append(Change("add", route))

    # Ascending priority; the tables (throws included) are complete before any rule.
    # A rule a network manager keeps from the persisted configuration (its own protocol
    # number) already does the job: adding ours too would be refused as a duplicate.
    kept = {replace(r, proto=PROTO_MULTIHOME) for r in persisted_rules(current, config)}
    for rule in sorted(desired.rules - have_rules - kept, key=lambda r: (r.priority, r.order)):
        changes.append(Change("add", rule))
    for rule in sorted(have_rules - desired.rules, key=lambda r: (-r.priority, r.order)):
        changes.append(Change("remove", rule))
    for route in sorted(
        stale_routes - displaced, key=lambda r: (r.table, r.is_default, r.order), reverse=True
    ):
        changes.append(Change("remove", route))

    for route in sorted(desired.main_removals & present, key=lambda r: r.order):
        changes.append(Change("remove", route))
    return Plan(changes=tuple(changes), tables=desired.tables, notes=desired.notes)
