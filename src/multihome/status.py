"""``multihome status``: what is there, and what is wrong (a read-only report)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from multihome.backend import Backend
from multihome.config import Config
from multihome.model import (
    PROTO_NAMES,
    TABLE_DEFAULT,
    TABLE_LOCAL,
    TABLE_MAIN,
    Address,
    HostState,
    Route,
    Rule,
    Table,
    ip_text,
)
from multihome.plan import Assessment
from multihome.policy import (
    DesiredState,
    is_left_alone,
    owned_routes,
    owned_rules,
    persisted_rules,
)


@dataclass(frozen=True)
class Problem:
    """Something wrong, with a stable code and the fix."""

    code: str
    interface: str | None
    message: str
    fix: str

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "interface": self.interface,
            "message": self.message,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class Reference:
    """Another tool's rule or route that uses one of multihome's tables (left untouched)."""

    table: Table
    obj: Rule | Route

    def describe(self) -> str:
        kind = "rule" if isinstance(self.obj, Rule) else "route"
        return f"{kind} '{self.obj.describe({self.table.id: self.table.name})}'"

    def to_json(self) -> dict[str, Any]:
        rule = self.obj if isinstance(self.obj, Rule) else None
        return {
            "table": self.table.id,
            "table_name": self.table.name,
            "interface": self.table.ifname,
            "kind": "rule" if rule is not None else "route",
            "priority": None if rule is None else rule.priority,
            "protocol": PROTO_NAMES.get(self.obj.proto, str(self.obj.proto)),
            "text": self.obj.describe({self.table.id: self.table.name}),
        }


def foreign_references(state: HostState, desired: DesiredState, config: Config) -> list[Reference]:
    """Rules and routes of other tools (not multihome's, not its persisted configuration's,
    not the network manager's routes that the policy wants) in multihome's tables."""
    tables = {t.id: t for t in desired.tables}
    ours_rules = owned_rules(state, config) | persisted_rules(state, config)
    ours_routes = owned_routes(state, config) | desired.routes
    found: list[Reference] = [
        Reference(tables[r.table], r)
        for r in state.rules
        if r.table in tables and r not in ours_rules
    ]
    found += [
        Reference(tables[r.table], r)
        for r in state.routes
        if r.table in tables and r not in ours_routes
    ]
    return found


def check_shared_tables(references: list[Reference]) -> list[Problem]:
    """``shared-table``: another tool's rule or route uses a multihome table."""
    problems: list[Problem] = []
    for table in sorted({ref.table for ref in references}):
        refs = [ref for ref in references if ref.table == table]
        problems.append(
            Problem(
                "shared-table",
                table.ifname,
                f"table {table.id} ({table.name}, {table.ifname}'s) is also used by another tool: "
                f"{'; '.join(ref.describe() for ref in refs)}. multihome keeps the table's id and "
                "never touches these, but its routes are "
                f"{table.ifname}'s: `multihome reset` or {table.ifname} going away empties it",
                "nothing, if that is intended; otherwise point the other tool at its own table "
                "(for a rule: `ip rule del priority N`)",
            )
        )
    return problems


@dataclass(frozen=True)
class Report:
    assessment: Assessment
    problems: tuple[Problem, ...]
    config: Config
    references: tuple[Reference, ...] = ()
    """Other tools' rules and routes in multihome's tables."""

    def to_json(self) -> dict[str, Any]:
        assessment = self.assessment
        names = assessment.desired.table_names
        return {
            "primary": assessment.desired.primary,
            "interfaces": [i.to_json() for i in assessment.desired.interfaces],
            "skipped": [{"name": s.ifname, "reason": s.reason} for s in assessment.desired.skipped],
            "ignored": [{"name": s.ifname, "reason": s.reason} for s in assessment.desired.ignored],
            "rules": [
                dict(r.to_json(), text=r.describe(names))
                for r in sorted(owned_rules(assessment.state, self.config), key=lambda r: r.order)
            ],
            "references": [ref.to_json() for ref in self.references],
            "table_route_origins": assessment.desired.route_origins(),
            "pending_changes": len(assessment.plan.changes),
            "problems": [p.to_json() for p in self.problems],
        }


def build_report(
    backend: Backend,
    assessment: Assessment,
    config: Config,
    problems: tuple[Problem, ...] | None = None,
) -> Report:
    """Inspect ``assessment`` and the kernel's own route lookups for problems; ``problems``:
    found elsewhere already (``status`` shows doctor's), so none are looked for here."""
    references = foreign_references(assessment.state, assessment.desired, config)
    if problems is None:
        problems = (
            *check_reply_paths(backend, assessment.state, config),
            *check_defaults(assessment.state, config),
            *check_pending(assessment),
            *check_shared_tables(references),
        )
    return Report(assessment, problems, config, tuple(references))


def check_reply_paths(backend: Backend, state: HostState, config: Config) -> list[Problem]:
    """``reply-wrong-interface``: an address (IPv4, or IPv6 past DAD) whose replies leave
    through another port. The kernel's lookups go as one batch (one round trip each cost
    ~0.1 ms: 512 at 256 dual-stack ports)."""
    checked: list[tuple[str, Address]] = [
        (link.name, addr)
        for link in state.links
        if not is_left_alone(link) and link.up and link.name not in config.exclude
        for addr in state.addresses_of(link.name)
        if addr.usable
    ]
    answers = backend.lookups(
        [(config.probe if a.family == 4 else config.probe6, a.ip, None) for _name, a in checked],
        sources=False,  # only the device is read
    )
    problems: list[Problem] = []
    for (name, addr), found in zip(checked, answers, strict=True):
        if found is not None and found.ifname and found.ifname != name:
            ip = ip_text(addr.ip)
            problems.append(
                Problem(
                    "reply-wrong-interface",
                    name,
                    f"{name}: replies from {ip} leave through {found.ifname} "
                    f"(port security drops them: {ip} is not {found.ifname}'s address)",
                    "run `multihome apply`",
                )
            )
    return problems


def check_defaults(state: HostState, config: Config) -> list[Problem]:
    """``several-defaults-no-policy``: main has defaults of one family via several interfaces
    and no rule of that family sends the other interfaces' traffic anywhere else (the how-to's
    failure; in IPv6, every port's router advertisement gives one)."""
    problems = []
    for family in (4, 6):
        defaults = sorted(
            (
                r
                for r in state.routes
                if r.table == TABLE_MAIN and r.is_default and r.family == family
            ),
            key=lambda r: (r.metric, r.order),
        )
        ports = {ifname for r in defaults for ifname in r.devices}
        if len(ports) < 2:
            continue
        used = defaults[0].devices
        # a multipath default: every port of it may carry another port's replies
        others = ports if len(used) > 1 else ports - set(used)
        if any(r.family == family for r in owned_rules(state, config)) or any(
            _steers(rule, state, set(others), family) for rule in state.rules
        ):
            continue
        which = "" if family == 4 else "IPv6 "
        names = ", ".join(sorted(others))
        if len(used) > 1:
            message = (
                f"main's {which}default is multipath across {', '.join(used)} and there are "
                "no policy rules: the kernel hashes each flow to one of them, so some replies "
                f"from each of {names} leave through another port"
            )
        else:
            message = (
                f"main holds {len(defaults)} {which}default routes "
                f"({', '.join(sorted(str(r.ifname) for r in defaults))}) and no policy rules: "
                f"only the lowest metric ({used[0]}) is used, replies from {names} leave "
                f"through {used[0]}"
            )
        problems.append(
            Problem("several-defaults-no-policy", None, message, "run `multihome apply`")
        )
    return problems


def _steers(rule: Rule, state: HostState, ifnames: set[str | None], family: int = 4) -> bool:
    """True when ``rule`` selects traffic of one of ``ifnames`` (by source, iif or oif)."""
    if rule.family != family or rule.table in (TABLE_MAIN, TABLE_LOCAL, TABLE_DEFAULT):
        return False
    if rule.iifname in ifnames or rule.oifname in ifnames:
        return True
    return rule.src is not None and any(
        a.ip in rule.src for a in state.addresses if a.ifname in ifnames and a.family == family
    )


def check_pending(assessment: Assessment) -> list[Problem]:
    """``pending-changes``: the kernel differs from the policy."""
    if assessment.plan.empty:
        return []
    return [
        Problem(
            "pending-changes",
            None,
            f"{len(assessment.plan.changes)} change(s) pending: the kernel differs from the policy",
            "run `multihome plan` to see them, `multihome apply` to make them",
        )
    ]
