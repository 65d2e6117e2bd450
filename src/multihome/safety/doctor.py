"""``multihome doctor``: find what will break multi-port routing, say why and the exact fix.

Every check returns :class:`~multihome.status.Problem` s with a stable ``code`` (the list is
:data:`CODES`; the three from ``status`` are reused, not repeated). Read-only: nothing is
changed, no lock is taken.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from multihome.backend import Backend
from multihome.config import Config
from multihome.errors import InputError
from multihome.files import is_dir, read_text, under_root
from multihome.kerneldigest import SYSCTL_KNOBS
from multihome.manifest import Manifest, manifest_path, read_manifest
from multihome.model import SCOPE_UNIVERSE, TABLE_MAIN, HostState, Link, Rule, ip_text
from multihome.names import RT_TABLES_FILE, registered_tables
from multihome.plan import Assessment
from multihome.policy import (
    is_left_alone,
    owned_routes,
    owned_rules,
    owned_tables_elsewhere,
    stray_routes,
)
from multihome.processes import DHCP_CLIENTS, pid_alive
from multihome.status import (
    Problem,
    check_defaults,
    check_pending,
    check_reply_paths,
    check_shared_tables,
    foreign_references,
)
from multihome.transaction.lock import is_locked
from multihome.transaction.statedir import JOURNAL, PENDING, WATCHDOG_PID, StateDir

if TYPE_CHECKING:
    from multihome.explain import Explainer

#: Every code doctor can report, in the order of the checks.
CODES = (
    "several-defaults-no-policy",
    "reply-wrong-interface",
    "rp-filter-strict",
    "arp-flux",
    "sysctls-off",
    "onlink-off",
    "duplicate-rules",
    "orphan-table",
    "shared-table",
    "leftover-routes",
    "pending-changes",
    "not-persisted",
    "persisted-unused",
    "unit-program-missing",
    "dhcp-will-undo",
    "persist-not-loaded",
    "netplan-nm-drops-policy",
    "interrupted-apply",
    "confirmation-pending",
)

#: netplan's NetworkManager renderer emits routing-policy since 1.2 (LP: #2086544).
NETPLAN_NM_POLICY_FIXED = (1, 2)
#: Where systemd looks for unit files, in its order: the first one found is in force.
UNIT_DIRS = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
)
#: multihome's units: persist's template (systemd backend) and the agent's (the package ships
#: both).
UNITS = ("multihome@.service", "multihome-agent.service")
_EXEC = re.compile(r"^\s*(ExecStart)\s*=\s*[-@:+!]*(\S+)", re.M)
NETWORKD = "systemd-network"  # /proc/PID/comm is cut at 15 characters
NETWORK_MANAGER = "NetworkManager"
#: The persist backends whose files make each daemon keep multihome's rules and tables itself.
KEPT_BY = {
    NETWORKD: ("networkd", "netplan"),
    NETWORK_MANAGER: ("networkmanager", "ifcfg", "netplan"),
}


@dataclass(frozen=True)
class Process:
    """A process running in this network namespace."""

    pid: int
    comm: str
    argv: tuple[str, ...]


@dataclass(frozen=True)
class Evidence:
    """What the checks look at."""

    backend: Backend
    assessment: Assessment
    config: Config
    root: Path
    processes: tuple[Process, ...]
    proc: Path = Path("/proc")

    @property
    def state(self) -> HostState:
        return self.assessment.state

    @cached_property
    def persisted(self) -> tuple[Manifest, str | None]:
        """What ``multihome persist`` wrote (its manifest), and why it cannot be read."""
        try:
            return read_manifest(self.root), None
        except InputError as exc:
            return Manifest(), str(exc)

    @cached_property
    def explainer(self) -> Explainer:
        """The state's route decisions, explained (one index for every finding)."""
        from multihome.explain import Explainer

        return Explainer(self.state, losers=False)

    def persisted_by(self, backends: tuple[str, ...]) -> bool:
        """persist wrote files for one of ``backends`` and they are still there."""
        manifest, _ = self.persisted
        return manifest.backend in backends and bool(manifest.present(self.root))


@dataclass(frozen=True)
class Diagnosis:
    """The problems found, and the checks that ran."""

    problems: tuple[Problem, ...]
    checked: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": [p.to_json() for p in self.problems],
            "checked": list(self.checked),
        }


def diagnose(
    backend: Backend, assessment: Assessment, config: Config, root: Path, proc: Path = Path("/proc")
) -> Diagnosis:
    """Run every check (read-only)."""
    ctx = Evidence(backend, assessment, config, root, tuple(processes_here(proc)), proc)
    problems: list[Problem] = []
    for check in CHECKS:
        problems.extend(check(ctx))
    return Diagnosis(tuple(problems), CODES)


# -- helpers ------------------------------------------------------------------------------------
def processes_here(proc: Path = Path("/proc")) -> Iterator[Process]:
    """Processes in the network namespace of this one (other namespaces are not ours)."""
    try:
        mine = os.stat(proc / "self/ns/net").st_ino
    except OSError:
        return
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.stat(entry / "ns/net").st_ino != mine:
                continue
            comm = (entry / "comm").read_text().strip()
            argv = tuple(
                a.decode(errors="replace")
                for a in (entry / "cmdline").read_bytes().split(b"\0")
                if a
            )
        except OSError:
            continue
        yield Process(int(entry.name), comm, argv)


def _ports(state: HostState, config: Config) -> list[Link]:
    """Up links that are VM ports with an IPv4 address."""
    return [
        link
        for link in state.links
        if not is_left_alone(link)
        and link.up
        and link.name not in config.exclude
        and any(a.scope == SCOPE_UNIVERSE for a in state.addresses_of(link.name, 4))
    ]


def _knob(state: HostState, ifname: str, knob: str) -> tuple[int, int] | None:
    """(all, interface) values of an IPv4 conf knob, or None when unknown."""
    try:
        return (
            int(state.sysctls[f"net.ipv4.conf.all.{knob}"]),
            int(state.sysctls[f"net.ipv4.conf.{ifname.replace('.', '/')}.{knob}"]),
        )
    except (KeyError, ValueError):
        return None


def _gateway(state: HostState, ifname: str) -> Any:
    for route in sorted(state.routes, key=lambda r: (r.table != TABLE_MAIN, r.metric)):
        if route.is_default and route.ifname == ifname and route.gateway is not None:
            return route.gateway
    return None


def _rule_text(rule: Rule, names: dict[int, str]) -> str:
    return rule.describe(names).split(" ", 1)[1]


def _table_names(root: Path) -> dict[int, str]:
    names: dict[int, str] = {}
    paths = [
        under_root(root, "etc/iproute2/rt_tables"),
        *sorted(under_root(root, "etc/iproute2/rt_tables.d").glob("*.conf")),
    ]
    for path in paths:
        for line in (read_text(path) or "").splitlines():
            parts = line.split("#", 1)[0].split()
            if len(parts) >= 2 and parts[0].isdigit():
                names[int(parts[0])] = parts[1]
    return names


# -- the checks ---------------------------------------------------------------------------------
def _status_checks(ctx: Evidence) -> list[Problem]:
    return [
        *check_defaults(ctx.state, ctx.config),
        *(
            _with_decisive_rule(ctx, problem)
            for problem in check_reply_paths(ctx.backend, ctx.state, ctx.config)
        ),
    ]


def _with_decisive_rule(ctx: Evidence, problem: Problem) -> Problem:
    """A wrong-path finding with the rule (and route) that decides the wrong path."""
    from multihome.explain_cli import decisive

    if problem.interface is None:
        return problem
    reasons = []
    for addr in ctx.state.addresses_of(problem.interface):
        if addr.usable and ip_text(addr.ip) in problem.message:
            probe = ctx.config.probe if addr.family == 4 else ctx.config.probe6
            reason = decisive(ctx.state, addr.ip, probe, ctx.config, ctx.explainer)
            if reason is not None:
                reasons.append(reason)
    if not reasons:
        return problem
    return replace(problem, message=f"{problem.message}; {'; '.join(reasons)}")


def check_rp_filter(ctx: Evidence) -> list[Problem]:
    """``rp-filter-strict``: strict reverse-path filtering where the reverse path leaves
    through another port: the kernel drops what arrives (even ARP from the gateway)."""
    state = ctx.state
    ports = _ports(state, ctx.config)
    if len(ports) < 2:
        return []
    problems = []
    for link in ports:
        values = _knob(state, link.name, "rp_filter")
        if values is None or max(values) != 1:
            continue
        targets = [ctx.config.probe]
        gateway = _gateway(state, link.name)
        if gateway is not None:
            targets.append(gateway)
        for addr in state.addresses_of(link.name, 4):
            if addr.scope != SCOPE_UNIVERSE:
                continue
            wrong = []
            for target in targets:
                found = ctx.backend.lookup(target, src=addr.ip)
                if found is not None and found.ifname and found.ifname != link.name:
                    wrong.append(f"{target} (via {found.ifname})")
            if wrong:
                which = "all" if values[0] == 1 else link.name
                problems.append(
                    Problem(
                        "rp-filter-strict",
                        link.name,
                        f"{link.name}: strict rp_filter (net.ipv4.conf.{which}.rp_filter=1) and "
                        f"the way back from {addr.ip} to {', '.join(wrong)} is not {link.name}: "
                        f"the kernel drops packets (and ARP) that arrive on {link.name} from them",
                        f"`multihome apply` (its rules make the reverse path {link.name} and set "
                        f"loose mode), or `sysctl -w net.ipv4.conf.{link.name}.rp_filter=2`"
                        + (" net.ipv4.conf.all.rp_filter=2" if values[0] == 1 else ""),
                    )
                )
                break
    return problems


def check_arp_flux(ctx: Evidence) -> list[Problem]:
    """``arp-flux``: ports on one subnet that answer ARP for each other's addresses."""
    state = ctx.state
    by_net: dict[Any, set[str]] = defaultdict(set)
    for link in _ports(state, ctx.config):
        for addr in state.addresses_of(link.name, 4):
            if addr.scope == SCOPE_UNIVERSE and addr.network.prefixlen < 32:
                by_net[addr.network].add(link.name)
    problems = []
    reported: set[str] = set()
    for network, ifnames in sorted(by_net.items(), key=lambda item: str(item[0])):
        if len(ifnames) < 2:
            continue
        for ifname in sorted(ifnames - reported):
            ignore = _knob(state, ifname, "arp_ignore")
            announce = _knob(state, ifname, "arp_announce")
            arp_filter = _knob(state, ifname, "arp_filter")
            if ignore is None or announce is None or arp_filter is None:
                continue
            answers = max(ignore) == 0 and not any(arp_filter)
            announces = max(announce) < 2
            if not answers and not announces:
                continue
            reported.add(ifname)
            others = ", ".join(sorted(ifnames - {ifname}))
            what = []
            if answers:
                what.append(
                    f"answers ARP for {others}'s addresses (arp_ignore={max(ignore)}, arp_filter=0)"
                )
            if announces:
                what.append(f"may announce their addresses (arp_announce={max(announce)})")
            problems.append(
                Problem(
                    "arp-flux",
                    ifname,
                    f"{ifname} shares {network} with {others} and {' and '.join(what)}: traffic "
                    f"for one port's address arrives on another (ARP flux)",
                    f"`multihome apply`, or `sysctl -w net.ipv4.conf.{ifname}.arp_ignore=1 "
                    f"net.ipv4.conf.{ifname}.arp_announce=2 net.ipv4.conf.{ifname}.arp_filter=1`",
                )
            )
    return problems


def check_sysctls_off(ctx: Evidence) -> list[Problem]:
    """``sysctls-off``: a multi-homed host whose ARP-flux and reverse-path sysctls multihome
    does not set (``sysctls: false`` or ``null`` knobs, or a read-only /proc/sys/net), with
    what is then not protected."""
    ports = _ports(ctx.state, ctx.config)
    read_only = _read_only(ctx.proc / "sys/net")
    off = SYSCTL_KNOBS if read_only else ctx.config.sysctls_off
    if len(ports) < 2 or not off:
        return []
    why = (
        f"{ctx.proc}/sys/net is read-only (a container)"
        if read_only
        else f"the configuration ({ctx.config.source}) leaves {', '.join(off)} alone"
    )
    exposed = []
    if {"arp_ignore", "arp_announce", "arp_filter"} & set(off):
        exposed.append(
            "ARP flux: a port may answer ARP for another port's address and announce it, so "
            "traffic for eth1's address can arrive on eth0, where the cloud's port security "
            "drops the replies (see arp-flux)"
        )
    if "rp_filter" in off:
        exposed.append(
            "reverse-path filtering: with strict rp_filter=1 the kernel drops what arrives on "
            "a port whose way back leaves through another (see rp-filter-strict)"
        )
    fix = (
        "run where /proc/sys/net is writable (a VM; systemd-nspawn with a private network or "
        "SYSTEMD_NSPAWN_API_VFS_WRITABLE=network; docker --sysctl "
        "net.ipv4.conf.<if>.arp_ignore=1 ...), or set them from the host"
        if read_only
        else "remove `sysctls: false` (or the null knobs) from the configuration and "
        "`multihome apply` without --no-sysctls"
    )
    return [
        Problem(
            "sysctls-off",
            None,
            f"multihome routes without the sysctls here ({why}); not protected: "
            + "; ".join(exposed),
            fix,
        )
    ]


def check_onlink_off(ctx: Evidence) -> list[Problem]:
    """``onlink-off``: the configuration leaves ``onlink`` out of ``rules`` on a multi-homed
    host: a port's ``from`` rule then comes after main's specifics, so a reply from one
    port's address to a host main reaches through another port's link route (that port's
    subnet, or a subnet the ports share) leaves through that other port, where port
    security drops it (design.md section 5)."""
    ports = _ports(ctx.state, ctx.config)
    if "onlink" in ctx.config.rule_kinds or len(ports) < 2:
        return []
    return [
        Problem(
            "onlink-off",
            None,
            f"the configuration ({ctx.config.source}) leaves `onlink` out of `rules`: main's "
            "link routes come before the ports' tables, so a reply from one port's address "
            f"to a host on a subnet main reaches through another port (e.g. from {ports[1].name}'s "
            f"address through {ports[0].name}) leaves through that port, and port security "
            "drops it",
            "add `onlink` to `rules` (the default: [onlink, from, oif, iif]) and `multihome apply`",
        )
    ]


def _read_only(path: Path) -> bool:
    """Whether ``path``'s file system is mounted read-only (False when it cannot be read)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_duplicate_rules(ctx: Evidence) -> list[Problem]:
    """``duplicate-rules``: the same rule several times at different priorities (what
    ``ip rule add`` without a priority leaves after a script's second run)."""
    groups: dict[tuple[Any, ...], list[Rule]] = defaultdict(list)
    for rule in ctx.state.rules:
        groups[rule.key[:1] + rule.key[2:11]].append(rule)
    names = _table_names(ctx.root)
    problems = []
    for rules in groups.values():
        if len(rules) < 2:
            continue
        rules.sort(key=lambda r: r.priority)
        extra = rules[1:]
        problems.append(
            Problem(
                "duplicate-rules",
                rules[0].iifname or rules[0].oifname,
                f"the rule '{_rule_text(rules[0], names)}' exists {len(rules)} times (priorities "
                f"{', '.join(str(r.priority) for r in rules)}): a script added it again without "
                "a fixed priority",
                "; ".join(
                    f"ip {'-6 ' if r.family == 6 else ''}rule del priority {r.priority}"
                    for r in extra
                )
                + " (keeps the first); give `ip rule add` a priority so it stays idempotent",
            )
        )
    return problems


def check_orphan_tables(ctx: Evidence) -> list[Problem]:
    """``orphan-table``: multihome tables still used by rules for interfaces that are gone."""
    state = ctx.state
    links = {link.name for link in state.links}
    rules = owned_rules(state, ctx.config)
    routes = owned_routes(state, ctx.config)
    owner: dict[int, str] = {}
    text = read_text(under_root(ctx.root, RT_TABLES_FILE)) or ""
    for line in text.splitlines():
        match = re.match(r"^(\d+)\s+(\S+)\s+#\s*(\S+)", line)
        if match:
            owner[int(match[1])] = match[3]
    for rule in sorted(rules, key=lambda r: r.order):
        for ifname in (rule.iifname, rule.oifname):
            if ifname:
                owner.setdefault(rule.table, ifname)
    for route in sorted(routes, key=lambda r: r.order):
        if route.ifname:
            owner.setdefault(route.table, route.ifname)
    problems = []
    for table, ifname in sorted(owner.items()):
        if ifname in links:
            continue
        using = [r for r in rules if r.table == table]
        left = [r for r in routes if r.table == table]
        if not using and not left:
            continue
        problems.append(
            Problem(
                "orphan-table",
                ifname,
                f"table {table} was made for {ifname}, which no longer exists; "
                f"{len(using)} rule(s) still point into it and it holds {len(left)} route(s)",
                "`multihome apply` removes them (or `multihome reset` removes everything "
                "multihome made)",
            )
        )
    return problems


def check_leftover_routes(ctx: Evidence) -> list[Problem]:
    """``leftover-routes``: tables outside ``tables.range`` that multihome's rules still use
    (the range changed), and routes with multihome's protocol outside it that no rule of
    multihome's uses (left by an earlier ``tables.range``, or another tool's)."""
    low, high = ctx.config.table_range
    registered = registered_tables(ctx.root)
    by_table: dict[int, int] = defaultdict(int)
    for route in stray_routes(ctx.state, ctx.config):
        by_table[route.table] += 1
    problems = [
        Problem(
            "leftover-routes",
            None,
            f"table {table}"
            + (f" ({registered[table]})" if table in registered else "")
            + f" is outside tables.range [{low}, {high}] and multihome's rules still use it: "
            "tables.range changed since it was given out",
            "`multihome apply` moves the ports into the new range and empties it "
            "(`multihome reset` removes it)",
        )
        for table in sorted(owned_tables_elsewhere(ctx.state, ctx.config))
    ]
    for table, count in sorted(by_table.items()):
        name = registered.get(table)
        where = f"table {table}" + (f" ({name})" if name else "")
        if name:
            message = (
                f"{count} route(s) of multihome (protocol 222) remain in {where}, which "
                f"multihome registered, outside tables.range [{low}, {high}]: left by an "
                "earlier tables.range; no rule of multihome's uses them"
            )
            fix = (
                f"`multihome reset` removes them (then `multihome apply`), or "
                f"`ip route flush table {table} proto 222`"
            )
        else:
            message = (
                f"{count} route(s) with multihome's protocol number (222) in {where}, outside "
                f"tables.range [{low}, {high}] and not registered by multihome: an earlier "
                "tables.range's leftovers, or another tool's that uses protocol 222; "
                "multihome leaves them alone"
            )
            fix = (
                f"if multihome made them: `ip route flush table {table} proto 222`; "
                "otherwise nothing"
            )
        problems.append(Problem("leftover-routes", None, message, fix))
    return problems


def check_persisted(ctx: Evidence) -> list[Problem]:
    """``not-persisted``: multihome's rules are in the kernel but in no configuration."""
    manifest, unreadable = ctx.persisted
    if not owned_rules(ctx.state, ctx.config) or manifest.present(ctx.root):
        return []
    why = unreadable or (
        f"{manifest_path(ctx.root)} names no file that is still there"
        if manifest.files
        else f"no {manifest_path(ctx.root)}"
    )
    return [
        Problem(
            "not-persisted",
            None,
            "multihome's rules and tables are only in the kernel: `multihome persist` has "
            f"written no configuration ({why}); a reboot loses them",
            "run `multihome persist`",
        )
    ]


def check_persisted_ports(ctx: Evidence) -> list[Problem]:
    """``persisted-unused``: persist wrote files for a backend that does not configure a port
    (:func:`multihome.portconfig.gaps`, the check persist itself makes before writing)."""
    manifest, _ = ctx.persisted
    if manifest.backend is None or not manifest.present(ctx.root):
        return []
    from multihome.portconfig import gaps, read_port_config  # with configparser: persisted only

    managed = sorted(i.name for i in ctx.assessment.desired.interfaces if i.table is not None)
    try:
        found = read_port_config(ctx.root, ((link.name, link.mac) for link in ctx.state.links))
    except InputError as exc:
        return [
            Problem(
                "persisted-unused",
                None,
                f"cannot tell what configures the ports: {exc}",
                "fix that file",
            )
        ]
    return [
        Problem(
            "persisted-unused",
            gap.port,
            f"the files `multihome persist` wrote for {manifest.backend} do nothing for "
            f"{gap.port} after a reboot: {gap.problem}",
            f"{gap.fix}: `multihome unpersist`, then `multihome persist` with it",
        )
        for gap in gaps(manifest.backend, managed, found)
    ]


def check_unit_programs(ctx: Evidence) -> list[Problem]:
    """``unit-program-missing``: a multihome unit in force runs a program that is not there
    (a unit naming ``/usr/local/bin/multihome`` on a host whose multihome lives elsewhere
    fails at every boot)."""
    problems = []
    for name in UNITS:
        found = (under_root(ctx.root, d) / name for d in UNIT_DIRS)
        path = next((f for f in found if f.exists() or f.is_symlink()), None)
        if path is None or not path.is_file():
            continue  # none, or masked (a link to /dev/null)
        shown = "/" + str(path.relative_to(ctx.root))
        for key, program in _EXEC.findall(read_text(path) or ""):
            target = under_root(ctx.root, program)
            if program.startswith("/") and target.is_file() and os.access(target, os.X_OK):
                continue
            problems.append(
                Problem(
                    "unit-program-missing",
                    None,
                    f"{shown}: {key} runs {program}, which is not an executable file here; "
                    "the unit fails whenever it starts (at every boot when enabled)",
                    "run `multihome persist` again (it writes the path of the installed "
                    f"program), or install multihome so that {program} exists",
                )
            )
    return problems


def _agent_running(ctx: Evidence) -> bool:
    return any("multihome" in " ".join(p.argv[:3]) and "agent" in p.argv for p in ctx.processes)


def _networkd_keeps_foreign(root: Path) -> bool:
    for path in [
        under_root(root, "etc/systemd/networkd.conf"),
        *sorted(under_root(root, "etc/systemd/networkd.conf.d").glob("*.conf")),
    ]:
        text = read_text(path) or ""
        if re.search(r"^\s*ManageForeignRoutingPolicyRules\s*=\s*(no|false|0)\b", text, re.M):
            return True
    return False


def check_dhcp_clients(ctx: Evidence) -> list[Problem]:
    """``dhcp-will-undo``: a DHCP client or network manager that puts the defaults back into
    main (or removes the rules) on the next renew, with no agent to correct it."""
    state = ctx.state
    if not owned_rules(state, ctx.config) or _agent_running(ctx):
        return []
    in_main = {  # the ports of main's defaults (each next hop's of a multipath one)
        device
        for r in state.routes
        if r.table == TABLE_MAIN and r.is_default
        for device in r.devices
    }
    moved = sorted(
        {
            str(r.ifname)
            for r in owned_routes(state, ctx.config)
            if r.is_default and r.ifname not in in_main
        }
    )
    links = {link.name for link in state.links}
    root = ctx.root
    problems = []
    for process in sorted(ctx.processes, key=lambda p: p.pid):
        name = Path(process.argv[0]).name if process.argv else process.comm
        if process.comm in DHCP_CLIENTS or name in DHCP_CLIENTS:
            served = [a for a in process.argv[1:] if a in links] or moved
            hit = [i for i in served if i in moved]
            if hit:
                problems.append(
                    Problem(
                        "dhcp-will-undo",
                        hit[0],
                        f"{name} (pid {process.pid}) serves {', '.join(hit)}: on the next renew "
                        f"its script puts {', '.join(hit)}'s default route back into main, and "
                        "replies leave through the wrong port again",
                        "run `multihome agent` (it corrects this within milliseconds), or "
                        "`multihome persist` for a backend whose DHCP client writes into the "
                        "interface's table (networkd, NetworkManager)",
                    )
                )
        elif process.comm == NETWORKD:
            if ctx.persisted_by(KEPT_BY[NETWORKD]) or _networkd_keeps_foreign(root):
                continue
            problems.append(
                Problem(
                    "dhcp-will-undo",
                    None,
                    f"systemd-networkd (pid {process.pid}) manages this namespace and removes "
                    "routing-policy rules and routes it did not configure whenever it "
                    "reconfigures a link (a renew, a link flap)",
                    "`multihome persist --backend networkd` (the rules become networkd's own), or "
                    "a networkd.conf.d drop-in with ManageForeignRoutingPolicyRules=no and "
                    "ManageForeignRoutes=no",
                )
            )
        elif process.comm == NETWORK_MANAGER:
            if ctx.persisted_by(KEPT_BY[NETWORK_MANAGER]):
                continue
            problems.append(
                Problem(
                    "dhcp-will-undo",
                    None,
                    f"NetworkManager (pid {process.pid}) puts each connection's DHCP default "
                    "route back into main on renew and reconnect",
                    "`multihome persist --backend networkmanager` (ipv4.route-table and "
                    "ipv4.routing-rules in the connections)",
                )
            )
    return problems


def check_persist_loaded(ctx: Evidence) -> list[Problem]:
    """``persist-not-loaded``: the running systemd-networkd reads the files persist wrote but
    still runs with what it loaded before (no route of its own in a port's table): the next
    DHCP renew or link change puts the port's default back into main, until a reload or boot."""
    if not ctx.persisted_by(("networkd", "netplan")):
        return []
    from multihome.managers import find_networkd, networkd_not_loaded

    manager = find_networkd(ctx.root)
    if manager is None:
        return []
    tables = {i.name: i.table.id for i in ctx.assessment.desired.interfaces if i.table}
    return [
        Problem(
            "persist-not-loaded",
            port,
            f"systemd-networkd (pid {manager.pid}) has not loaded the files `multihome "
            f"persist` wrote: it has no route of its own in {port}'s table {tables[port]}, so "
            f"the next DHCP renew puts {port}'s default back into main (until a reload or boot)",
            "`networkctl reload` (it reconfigures the ports whose files changed), or "
            "`multihome persist` again, which does it",
        )
        for port in networkd_not_loaded(manager, tables)
    ]


def _netplan_version(root: Path) -> tuple[int, ...] | None:
    text = read_text(under_root(root, "var/lib/dpkg/status")) or ""
    for stanza in text.split("\n\n"):
        if re.search(r"^Package: netplan\.io$", stanza, re.M):
            match = re.search(r"^Version: (?:\d+:)?(\d+(?:\.\d+)*)", stanza, re.M)
            if match:
                return tuple(int(p) for p in match[1].split("."))
    return None


def check_netplan_nm(ctx: Evidence) -> list[Problem]:
    """``netplan-nm-drops-policy``: routing-policy under netplan's NetworkManager renderer,
    which netplan before 1.2 silently drops."""
    files = sorted(under_root(ctx.root, "etc/netplan").glob("*.yaml"))
    if not files:
        return []  # no netplan here: no need to import yaml (a sixth of status's imports)
    version = _netplan_version(ctx.root)
    if version is not None and version >= NETPLAN_NM_POLICY_FIXED:
        return []
    import yaml

    docs = []
    for path in files:
        try:
            data = yaml.safe_load(read_text(path) or "")
        except yaml.YAMLError:
            continue
        if isinstance(data, dict) and isinstance(data.get("network"), dict):
            docs.append((path, data["network"]))
    global_renderer = None
    for _, network in docs:  # later files override earlier ones, as netplan merges them
        global_renderer = network.get("renderer", global_renderer)
    problems = []
    for path, network in docs:
        for kind in ("ethernets", "bonds", "bridges", "vlans", "wifis"):
            devices = network.get(kind)
            if not isinstance(devices, dict):
                continue
            for name, device in sorted(devices.items()):
                if not isinstance(device, dict) or not device.get("routing-policy"):
                    continue
                renderer = device.get("renderer", network.get("renderer", global_renderer))
                if renderer != "NetworkManager":
                    continue
                shown = ".".join(str(p) for p in version) if version else "unknown"
                problems.append(
                    Problem(
                        "netplan-nm-drops-policy",
                        str(name),
                        f"{path}: {name} has routing-policy under the NetworkManager renderer; "
                        f"netplan before 1.2 (here: {shown}) silently drops it, so the rules "
                        "never reach the kernel",
                        "`multihome persist --backend networkmanager` (keyfiles with "
                        "ipv4.routing-rules), or renderer: networkd for this device",
                    )
                )
    return problems


def check_safety_state(ctx: Evidence) -> list[Problem]:
    """``interrupted-apply`` and ``confirmation-pending`` from the state directory."""
    state = StateDir.current(ctx.root)
    if not is_dir(state.path):
        return []
    busy = is_locked(state)
    problems = []
    journal = state.read_json(JOURNAL)
    if journal is not None and not busy:
        problems.append(
            Problem(
                "interrupted-apply",
                None,
                f"an apply (pid {journal.get('pid')}) was interrupted half-way: "
                f"{state.file(JOURNAL)} is left",
                "`multihome apply` finishes it, `multihome rollback` undoes it",
            )
        )
    pending = state.read_json(PENDING)
    if pending is not None:
        watchdog = state.read_json(WATCHDOG_PID) or {}
        alive = watchdog.get("id") == pending.get("id") and pid_alive(int(watchdog.get("pid", 0)))
        problems.append(
            Problem(
                "confirmation-pending",
                None,
                f"apply {pending.get('id')} waits for a confirmation"
                + ("" if alive else " and its watchdog is gone (the next run rolls it back)"),
                "`multihome confirm` keeps it, `multihome rollback` undoes it",
            )
        )
    return problems


CHECKS: tuple[Callable[[Evidence], list[Problem]], ...] = (
    _status_checks,
    check_rp_filter,
    check_arp_flux,
    check_sysctls_off,
    check_onlink_off,
    check_duplicate_rules,
    check_orphan_tables,
    lambda ctx: check_shared_tables(
        foreign_references(ctx.state, ctx.assessment.desired, ctx.config)
    ),
    check_leftover_routes,
    lambda ctx: check_pending(ctx.assessment),
    check_persisted,
    check_persisted_ports,
    check_unit_programs,
    check_dhcp_clients,
    check_persist_loaded,
    check_netplan_nm,
    check_safety_state,
)
