"""The ``multihome`` command: verbs only. It parses arguments, calls the library and maps
errors to exit codes (0 ok, 1 failure, 2 bad input, 3 rolled back)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click

from multihome._version import __version__
from multihome.errors import DetailedExitCode, ExitCode, InputError, MultihomeError
from multihome.options import format_option, lock_timeout_option, output_format

#: Subcommands that live in their own module, imported only when used (start-up time).
#: name -> (module, attribute). A module that is not installed hides its command.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "agent": ("multihome.agent.cli", "agent"),
    "cloud": ("multihome.cloud.cli", "cloud"),
    "confirm": ("multihome.safety.cli", "confirm"),
    "doctor": ("multihome.safety.cli", "doctor"),
    "explain": ("multihome.explain_cli", "explain"),
    "lab": ("multihome.lab.cli", "lab"),
    "persist": ("multihome.persist.cli", "persist"),
    "reset": ("multihome.safety.cli", "reset"),
    "rollback": ("multihome.safety.cli", "rollback"),
    "unpersist": ("multihome.persist.cli", "unpersist"),
}

EPILOG = """\b
Examples:
  multihome status                      what is there, and what is wrong
  multihome plan                        the changes apply would make
  sudo multihome apply                  make them (idempotent, transactional)
  multihome verify --json               proof per address, machine-readable
  ip netns exec vm1 multihome apply     the same inside a network namespace
\b
Exit status: 0 success; 1 failure (a change failed and was undone, a check failed);
2 bad input or usage, nothing changed; 3 rolled back. With --json a failure also prints
{"error": {...}} on stdout (docs/multihome.8.md, JSON OUTPUT).
"""


class LazyGroup(click.Group):
    """A group whose heavy subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        present = [name for name, (module, _) in LAZY_COMMANDS.items() if _module_exists(module)]
        return sorted([*super().list_commands(ctx), *present])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            module_name, attr = LAZY_COMMANDS[cmd_name]
            if not _module_exists(module_name):
                return None
            module = importlib.import_module(module_name)
            command = getattr(module, attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


@dataclass
class CliOptions:
    """Options shared by every verb."""

    config_path: Path | None
    root: Path
    color: bool

    def config(self, source: tuple[Path, bytes | None] | None = None) -> Any:
        """The configuration; from ``source`` (:func:`~multihome.transaction.fingerprint.
        config_source`: the path and the bytes already read) when given."""
        from multihome.config import load_config
        from multihome.files import DEFAULT_CONFIG_PATH, under_root

        if source is not None:  # what was read is what is parsed (even if it changed since)
            path, raw = source
            if raw is None:  # the default file was absent
                return load_config(None)
            return load_config(path, explicit=self.config_path is not None, raw=raw)
        if self.config_path is not None:
            return load_config(self.config_path, explicit=True)
        return load_config(under_root(self.root, DEFAULT_CONFIG_PATH))

    def facts(self) -> Any:
        """The ports' facts under ``root`` (DHCP leases) that status, plan, apply and doctor
        all assess with: one truth."""
        from multihome.source.portfacts import host_facts

        return host_facts(self.root)


@click.group(cls=LazyGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="multihome")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Configuration file [default: /etc/multihome/config.yaml if present].",
)
@click.option(
    "--root",
    type=click.Path(path_type=Path),
    default=Path("/"),
    show_default=True,
    help="Prefix for every file multihome reads or writes (tests, images).",
)
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, root: Path) -> None:
    """Make every port of a multi-port Linux VM route correctly.

    Each managed interface gets its own routing table and `ip rule`s, so that replies
    leave through the port they arrived on and floating IPs on secondary ports work.
    """
    ctx.obj = CliOptions(config_path=config_path, root=root, color=sys.stdout.isatty())


@contextmanager
def _backend(*, local_table: bool = True) -> Iterator[Any]:
    from multihome.backend.netlink import NetlinkBackend

    backend = NetlinkBackend(local_table=local_table, announce_once=True)
    try:
        yield backend
    finally:
        backend.close()


def _echo_json(data: Mapping[str, object]) -> None:
    from multihome.files import json_output

    click.echo(json_output(data), nl=False)


def _styled(line: str, color: bool) -> str:
    if not color:
        return line
    colors = {"+": "green", "-": "red", "~": "yellow"}
    return click.style(line, fg=colors.get(line[:1]))


@cli.command(
    epilog="\b\nExamples:\n  multihome status\n  multihome status --json | jq .problems"
    "\n  multihome status --format dot | dot -Tsvg > routing.svg"
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (--format json).")
@format_option("a picture of the routing (Graphviz), each finding's wrong path in red.")
@click.pass_obj
def status(obj: CliOptions, as_json: bool, form: str) -> None:
    """Show interfaces, addresses, gateways, tables, rules and what is wrong.

    The problems are exactly those of `multihome doctor` (every check). Exit 0 also when
    there are problems (doctor exits 1); 2 on bad input, 1 on any other error. `--format
    dot` draws ports -> addresses -> rules -> tables -> gateways, multihome's own in blue,
    other tools' dashed grey, and the wrong path of each of doctor's findings in red.
    """
    form = output_format(as_json, form)
    as_json = form == "json"
    from multihome.plan import Assessment
    from multihome.status import build_report

    config = obj.config()
    from multihome.safety.doctor import diagnose
    from multihome.source.portfacts import host_facts

    with _backend() as backend:
        # engine.assess's read and policy without the engine (the apply's transaction, journal
        # and verify: a tenth of status's imports)
        state = backend.read()
        assessment = Assessment.of(state, config, host_facts(obj.root)(state))
        # One truth: the problems are doctor's, every check of it (status's own included).
        found = diagnose(backend, assessment, config, obj.root).problems
        report = build_report(backend, assessment, config, found)
    from multihome.agent.state import read_status

    if form == "dot":
        from multihome.picture import routing_dot, wrong_paths

        paths = wrong_paths(assessment.state, config, report.problems)
        click.echo(routing_dot(assessment.state, config, *paths), nl=False)
        return
    agent = read_status(obj.root)
    if as_json:
        _echo_json(dict(report.to_json(), agent=agent))
        return
    from multihome.model import ip_text
    from multihome.policy import owned_rules

    desired = assessment.desired
    lines = [f"primary: {desired.primary or '(none)'}"]  # written at once: 1,000 lines at N=256
    if agent is not None:
        running = "running" if agent.get("alive") else "not running"
        last = agent.get("last_repair") or {}
        when = f", last {last.get('at', '?')}" if last else ""
        paused = ", PAUSED (`multihome agent resume`)" if agent.get("paused") else ""
        lines.append(
            f"agent: {running}{paused} (pid {agent.get('pid')}, "
            f"{agent.get('repairs', 0)} repair(s){when})"
        )
    lines.append(f"{'INTERFACE':<12} {'ROLE':<10} {'ADDRESSES':<32} {'GATEWAY':<16} TABLE")
    for iface in desired.interfaces:
        table = f"{iface.table.id} {iface.table.name}" if iface.table else "-"
        addrs = ",".join(ip_text(a.interface) for a in iface.addresses)
        gateways = ",".join(ip_text(g) for g in (iface.gateway, iface.gateway6) if g) or "-"
        lines.append(f"{iface.name:<12} {iface.role:<10} {addrs:<32} {gateways:<16} {table}")
    for skipped in desired.skipped:
        lines.append(f"{skipped.ifname:<12} {'skipped':<10} {skipped.reason}")
    rules = sorted(owned_rules(assessment.state, config), key=lambda r: r.order)
    lines.append(f"rules ({len(rules)} owned by multihome):")
    names = desired.table_names  # a dict built per call: once, not once per rule
    for rule in rules:
        lines.append(f"  {rule.describe(names)}")
    if report.references:
        lines.append(f"used by other tools ({len(report.references)}, left untouched):")
        for ref in report.references:
            lines.append(f"  {ref.describe()}")
    if report.problems:
        lines.append("problems:")
        for problem in report.problems:
            lines.append(_styled(f"- {problem.message}; fix: {problem.fix}", obj.color))
    else:
        lines.append("problems: none")
    click.echo("\n".join(lines))


@cli.command(
    epilog="\b\nExamples:\n  multihome plan\n  multihome plan --json\n"
    "  multihome plan --source openstack    # config drive, then 169.254.169.254\n"
    "  multihome plan --source openstack --metadata /mnt/config\n"
    "  multihome plan --source kernel         # ignore any metadata"
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--source",
    type=click.Choice(["auto", "kernel", "openstack"]),
    default="auto",
    show_default=True,
    help="Where the interfaces' facts come from: the kernel alone, or OpenStack "
    "metadata too (network_data.json: DHCP-disabled ports' addresses). auto: "
    "metadata when a config drive is present or the host is an OpenStack "
    "guest, else the kernel. The output says which was used.",
)
@click.option(
    "--metadata",
    "metadata",
    metavar="URL|DIR|DEVICE",
    default=None,
    help="Where to read the metadata [default: the filesystem labelled config-2, "
    "then http://169.254.169.254].",
)
@click.pass_obj
def plan(obj: CliOptions, as_json: bool, source: str, metadata: str | None) -> None:
    """Show the exact changes `apply` would make (nothing is changed).

    Exit 0 (also when changes are pending: `multihome verify` exits 1 then); 2 on bad
    input; 1 on any other error.
    """
    from multihome.source.planning import sourced_assessment
    from multihome.source.portfacts import host_reader

    config = obj.config()
    with _backend() as backend:
        sourced = sourced_assessment(
            backend, config, source, metadata, leases=host_reader(obj.root)
        )
    assessment = sourced.assessment
    if as_json:
        _echo_json(
            dict(
                assessment.plan.to_json(),
                **sourced.to_json(),
                interfaces=[i.to_json() for i in assessment.desired.interfaces],
                table_route_origins=assessment.desired.route_origins(),
                skipped=[
                    {"name": s.ifname, "reason": s.reason} for s in assessment.desired.skipped
                ],
            )
        )
        return
    origin = f" ({sourced.resolved.origin})" if sourced.resolved.origin else ""
    click.echo(f"# source: {sourced.resolved.used}{origin}")
    for note in sourced.notes:
        click.echo(f"# {note}")
    _print_plan(obj, assessment)


def _print_plan(obj: CliOptions, assessment: Any) -> None:
    from multihome.model import Route

    for skipped in assessment.desired.skipped:
        click.echo(f"# {skipped.ifname}: skipped ({skipped.reason})")
    for note in assessment.plan.notes:
        click.echo(f"# {note}")
    if assessment.plan.empty:
        click.echo("no changes: the kernel already matches the policy")
        return
    origins = assessment.desired.origins
    names = assessment.plan.table_names
    for change in assessment.plan.changes:
        line = change.describe(names)
        if change.action == "add" and isinstance(change.obj, Route) and change.obj in origins:
            line += f"  # from {origins[change.obj]}"
        click.echo(_styled(line, obj.color))
    click.echo(f"{len(assessment.plan.changes)} change(s)")


APPLY_EPILOG = """\b
Examples:
  sudo multihome apply                       on a terminal: keep only after a keypress
  sudo multihome apply --confirm-timeout 60  wait 60 s for `multihome confirm`, else undo
  sudo multihome apply --check gateways --check http://198.51.100.10/
  sudo multihome apply --dry-run
  sudo multihome apply --detailed-exit-codes; echo $?   # 0 same, 2 changed
  sudo multihome apply --no-sysctls          a container with a read-only /proc/sys/net
\b
With a confirmation window (the default when stdin is a terminal) the changes are checked
(the path back to the SSH client must still work, plus every --check) and rolled back unless
confirmed in time, by a watchdog that survives a lost terminal. When an SSH client or a
--check is known the checks run on every apply, and a failed one rolls back. Exit 3: rolled
back.
"""
#: The confirmation window when stdin is a terminal and --confirm-timeout is not given.
DEFAULT_CONFIRM_TIMEOUT = 120.0


@cli.command(epilog=APPLY_EPILOG)
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option(
    "--detailed-exit-codes",
    is_flag=True,
    help="Exit 0 when nothing changed, 2 when something changed, 1 on any error.",
)
@click.option("--quiet", "-q", is_flag=True, help="Print nothing when nothing changes.")
@click.option(
    "--interface",
    "interface",
    metavar="IF",
    default=None,
    help="Only the changes that concern this interface (udev, systemd instances).",
)
@click.option(
    "--confirm-timeout",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="Roll back unless `multihome confirm` (or a key) comes within SECONDS; 0 "
    "keeps the changes when the checks pass. [default: 120 when stdin is a "
    "terminal, else off]",
)
@click.option(
    "--management-peer",
    metavar="ADDR",
    default=None,
    help="The host you manage this machine from; its path must survive the apply "
    "[default: the SSH client, from $SSH_CONNECTION].",
)
@click.option(
    "--check",
    "checks",
    metavar="PROBE",
    multiple=True,
    help="Extra post-apply check (repeatable): ping:ADDR, tcp:HOST:PORT, an "
    "http(s):// URL, or gateways.",
)
@click.option(
    "--no-sysctls",
    is_flag=True,
    help="Route without the ARP-flux and reverse-path sysctls (a container whose "
    "/proc/sys/net is read-only); the config key is `sysctls: false`.",
)
@lock_timeout_option
@click.pass_obj
def apply(
    obj: CliOptions,
    dry_run: bool,
    detailed_exit_codes: bool,
    quiet: bool,
    interface: str | None,
    confirm_timeout: float | None,
    management_peer: str | None,
    checks: tuple[str, ...],
    no_sysctls: bool,
    lock_timeout: float,
) -> None:
    """Apply the policy to the kernel, as one transaction, then announce and verify it."""

    from multihome.processes import require_root
    from multihome.source.portfacts import host_facts, host_reader
    from multihome.transaction.fingerprint import config_source, inputs
    from multihome.transaction.session import open_session

    click.get_current_context().meta["detailed"] = detailed_exit_codes
    source = config_source(obj.config_path, obj.root)  # the bytes parsed are those hashed
    config = obj.config(source)
    if no_sysctls:
        config = config.without_sysctls()
    probes = _probes(checks)
    if confirm_timeout is None:
        confirm_timeout = DEFAULT_CONFIRM_TIMEOUT if sys.stdin.isatty() else 0.0
    if not dry_run:
        require_root()
    with _backend(local_table=False) as backend:  # an apply never looks at the local table
        reader = host_reader(obj.root)
        facts = host_facts(obj.root, reader)
        if dry_run:
            _dry_run(obj, backend, config, facts, interface)
            return
        # Everything from the read to the verification happens under the lock: no reset,
        # rollback or other apply can change the namespace in between.
        with open_session(backend, obj.root, timeout=lock_timeout) as session:  # the lock
            if session.recovery is not None:
                click.echo(f"multihome: {session.recovery.message}", err=True)
            whole = interface is None and session.recovery is None
            options = "--no-sysctls" if no_sysctls else ""
            leases = reader.signature() if whole else ""  # before the leases are read
            digest = inputs(source, obj.root, leases, options) if whole else None
            if whole and _unchanged(backend, session, digest, quiet):
                _resume_agent(obj.root)
                return  # without importing the engine, the policy or the plan
            from multihome.engine import again_on_conflict

            # Another writer (a DHCP client's hook) may take a slot of the plan meanwhile:
            # the apply undoes itself and the lock stays held for the next read.
            assessment, settled, guarded = again_on_conflict(
                lambda: _apply_once(
                    obj,
                    backend,
                    session,
                    config,
                    facts,
                    interface,
                    management_peer,
                    confirm_timeout,
                    probes,
                    quiet,
                ),
                _again,
            )
            if interface is None:  # after the apply: a rolled-back one leaves the pause on
                _resume_agent(obj.root)
            _report_apply(settled, quiet)
            if whole and (not guarded or not settled.result.applied):
                from multihome.transaction.fingerprint import record

                record(
                    backend,
                    session.state,
                    inputs(source, obj.root, leases, options),  # the name files it wrote
                    assessment.state,
                    settled.result.plan.changes,
                    reader.next_expiry(),
                )
    if detailed_exit_codes and settled.changed:
        raise click.exceptions.Exit(DetailedExitCode.CHANGED)


def _apply_once(
    obj: CliOptions,
    backend: Any,
    session: Any,
    config: Any,
    facts: Any,
    interface: str | None,
    management_peer: str | None,
    confirm_timeout: float,
    probes: tuple[Any, ...],
    quiet: bool,
) -> tuple[Any, Any, bool]:
    """Under ``session``: read, plan, print the plan, apply, announce and verify; the
    assessment, the result and whether a confirmation window guarded it."""
    import os

    from multihome.engine import assess, converge
    from multihome.safety.checks import find_peer

    assessment = assess(backend, config, facts)
    if interface is not None:
        assessment = assessment.restrict(interface)
    addresses = [a.ip for a in assessment.state.addresses]
    peer = find_peer(management_peer, os.environ, addresses)
    guarded = confirm_timeout > 0 or bool(probes) or peer is not None
    progress = _progress(len(assessment.plan.changes))
    if not assessment.plan.empty and not quiet:  # one write: 2800 lines at 256 ports
        click.echo("\n".join(_styled(line, obj.color) for line in assessment.plan.lines()))
    if guarded:
        settled = _guarded_apply(
            obj, backend, session, assessment, config, confirm_timeout, peer, probes, progress
        )
    else:
        settled = converge(
            backend,
            config,
            root=obj.root,
            session=session,
            assessed=assessment,
            progress=progress,
        )
        assert settled is not None  # None only when a prepare step declines
    return assessment, settled, guarded


def _again(exc: Exception, failed: int) -> None:
    """Said when another writer took a slot of the plan: the apply reads and plans again."""
    from multihome.backend import ChangeFailed
    from multihome.engine import CONFLICT_ATTEMPTS

    cause = exc.__cause__
    what = f"{cause.change.describe()}: {cause.reason}" if isinstance(cause, ChangeFailed) else exc
    click.echo(
        f"multihome: another writer changed the namespace between the read and the apply "
        f"({what}; undone); reading and planning again (attempt {failed + 1} of "
        f"{CONFLICT_ATTEMPTS})",
        err=True,
    )


def _probes(specs: tuple[str, ...]) -> tuple[Any, ...]:
    """The parsed ``--check`` probes (the checks' module only when there are some: a no-op
    apply does not import it)."""
    if not specs:
        return ()
    from multihome.safety.checks import parse_probe

    return tuple(parse_probe(spec) for spec in specs)


def _progress(total: int) -> Callable[[int, int, Any], None] | None:
    """A progress line on a terminal for long plans."""
    if not sys.stderr.isatty() or total <= 50:
        return None

    def progress(done: int, count: int, _change: Any) -> None:
        if done % 50 == 0 or done == count:
            click.echo(f"\r{done}/{count} changes", err=True, nl=done == count)

    return progress


def _dry_run(obj: CliOptions, backend: Any, config: Any, facts: Any, interface: str | None) -> None:
    from multihome.engine import assess

    assessment = assess(backend, config, facts)
    if interface is not None:
        assessment = assessment.restrict(interface)
    _print_plan(obj, assessment)


def _unchanged(backend: Any, session: Any, inputs: str | None, quiet: bool) -> bool:
    """True (and said) when the namespace is as the last apply left it: nothing to do."""
    from multihome import noop
    from multihome.transaction.fingerprint import unchanged

    backend.watch()  # before the read: the notifications show what else changes the kernel
    if noop.found_changed or not unchanged(backend, session.state, inputs):
        return False
    if not quiet:
        click.echo(noop.NO_CHANGES)
    return True


def _resume_agent(root: Path) -> None:
    from multihome.noop import resume_agent

    resume_agent(root)


def _report_apply(settled: Any, quiet: bool) -> None:
    result = settled.result
    if not settled.kernel_changed:  # name files alone: still "changed" for the exit code
        if not quiet:
            click.echo("no changes: the kernel already matches the policy")
        return
    made = f"applied {result.applied} change(s)"
    if result.recovered_changes:
        made += f" (and {result.recovered_changes} finishing or undoing an interrupted apply)"
    checks, failed = settled.checks, settled.failed
    click.echo(
        f"{made}; verify: {len(checks) - len(failed)}/{len(checks)} checks pass; "
        f"{settled.announced} address(es) announced"
    )
    for check in failed:
        click.echo(
            f"  FAIL {check.interface} {check.address} {check.name} -> "
            f"{check.destination}: expected {check.expected}, got {check.got}",
            err=True,
        )
    if failed:
        raise MultihomeError(f"{len(failed)} verification check(s) failed after apply")


def _guarded_apply(
    obj: CliOptions,
    backend: Any,
    session: Any,
    assessment: Any,
    config: Any,
    timeout: float,
    peer: Any,
    probes: Any,
    progress: Any,
) -> Any:
    from multihome.errors import RolledBackError
    from multihome.safety.guard import Guard, guarded_apply

    interactive = sys.stdin.isatty()
    with _keypress(interactive) as poll:

        def announce(result: Any, checks: Any, deadline: float) -> None:
            for check in checks:
                click.echo(f"check ok: {check.name}: {check.detail}", err=True)
            if peer is None:
                click.echo(
                    "note: no management peer known (no $SSH_CONNECTION); give "
                    "--management-peer to check the path back to you",
                    err=True,
                )
            how = "press any key or run" if interactive else "run"
            click.echo(
                f"applied {result.applied} change(s); {how} `multihome confirm` within "
                f"{timeout:g} s to keep them, or they are rolled back "
                f"(state: {session.state.path})",
                err=True,
            )

        done = guarded_apply(
            backend,
            session,
            assessment,
            config,
            obj.root,
            Guard(timeout, peer, probes),
            progress=progress,
            announce=announce,
            poll=poll,
        )
    for check in done.checks:
        if not check.ok:
            click.echo(f"check FAILED: {check.name}: {check.detail}", err=True)
        elif timeout <= 0:
            click.echo(f"check ok: {check.name}: {check.detail}", err=True)
    if done.outcome == "rolled-back":
        message = (
            f"rolled back ({done.reason}): {done.restored} change(s) undone, the "
            "namespace is as before the apply"
        )
        if done.problems:
            message += f"; INCOMPLETE: {'; '.join(done.problems)}"
        raise RolledBackError(message)
    if done.outcome == "confirmed" and timeout > 0:
        click.echo("confirmed: the changes stay", err=True)
    return done.settled


@contextmanager
def _keypress(interactive: bool) -> Iterator[Callable[[float], bool] | None]:
    """A poll(seconds_left) that shows a countdown and returns True on a keypress."""
    if not interactive:
        yield None
        return
    import os
    import select
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    flushed: list[bool] = []

    def poll(left: float) -> bool:
        if not flushed:
            termios.tcflush(fd, termios.TCIFLUSH)  # keys typed during the apply do not count
            flushed.append(True)
        click.echo(f"\r{left:5.0f} s left ", err=True, nl=False)
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            os.read(fd, 64)
            click.echo("", err=True)
            return True
        return False

    tty.setcbreak(fd)
    try:
        yield poll
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@cli.command(epilog="\b\nExamples:\n  multihome verify\n  multihome verify --json")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def verify(obj: CliOptions, as_json: bool) -> None:
    """Prove per address that replies leave through their own interface and gateway.

    Exit 0 when every check passes and nothing is pending; 1 when a check fails or changes
    are pending (`multihome plan` shows them); 2 on bad input.
    """
    from multihome.engine import assess
    from multihome.source.portfacts import host_facts
    from multihome.verify import verify as run_verify

    config = obj.config()
    with _backend() as backend:
        assessment = assess(backend, config, host_facts(obj.root))
        checks = run_verify(backend, assessment.desired, config)
    in_sync = assessment.plan.empty
    ok = all(c.ok for c in checks) and in_sync
    if as_json:
        _echo_json({"ok": ok, "in_sync": in_sync, "checks": [c.to_json() for c in checks]})
    else:
        for check in checks:
            mark = "ok  " if check.ok else "FAIL"
            click.echo(
                f"{mark} {check.interface:<10} {check.address:<16} {check.name:<16} "
                f"-> {check.destination:<16} {check.got}"
                + ("" if check.ok else f" (expected {check.expected})")
            )
        if not checks:
            click.echo("nothing to verify: no interface needs its own table")
        pending = len(assessment.plan.changes)
        click.echo(
            "in sync with the policy"
            if in_sync
            else f"NOT in sync: {pending} change(s) pending (multihome plan)"
        )
    if not ok:
        raise click.exceptions.Exit(ExitCode.FAILURE)


def _json_requested(argv: list[str]) -> bool:
    """True when the command line asks for ``--json`` (before any ``--``: what follows it,
    such as `lab exec`'s command, is not ours)."""
    for arg in argv:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


def error_json(exc: BaseException, code: int, message: str) -> dict[str, object]:
    """The ``{"error": ...}`` document a ``--json`` command prints on stdout when it fails
    (docs/multihome.8.md, "JSON output"): the exit code, the error's class, its message and,
    for bad input, the file or option at fault with where in it and how to fix it."""
    where: dict[str, object] = {
        "input": None,
        "path": None,
        "line": None,
        "column": None,
        "fix": None,
    }
    if isinstance(exc, InputError):
        where.update(input=exc.source, path=exc.path, line=exc.line, column=exc.column, fix=exc.fix)
    elif isinstance(exc, click.BadParameter) and exc.param is not None:
        where["input"] = (exc.param.opts or [exc.param.name])[0]
    elif isinstance(exc, click.NoSuchOption):
        where["input"] = exc.option_name
    kind = type(exc).__name__
    if isinstance(exc, click.UsageError):
        kind = "UsageError"
    return {"error": dict(where, code=code, kind=kind, message=message)}


def _fail(
    message: str,
    code: int,
    exc: BaseException | None = None,
    as_json: bool = False,
    credentials: bool = False,
) -> NoReturn:
    """Print the error (and its JSON document); with ``credentials`` (a ``cloud`` command)
    every secret of the cloud credentials is cut out first (multihome.cloud.secrets)."""

    def scrub(text: str) -> str:
        return text

    if credentials:
        from multihome.cloud.secrets import known_secrets, redact

        secrets = known_secrets()

        def scrub(text: str) -> str:
            return redact(text, secrets)

    click.echo(scrub(f"multihome: error: {message}"), err=True)
    if as_json:
        from multihome.files import json_output

        document = json_output(error_json(exc or RuntimeError(message), code, message))
        click.echo(scrub(document), nl=False)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and map errors to exit codes; with ``--json``, a failure
    also prints one ``{"error": ...}`` document on stdout."""
    args = argv if argv is not None else sys.argv[1:]
    _handled(lambda: cli.main(args=argv, prog_name="multihome", standalone_mode=False), args)


def report_error(exc: BaseException, args: list[str]) -> NoReturn:
    """Say ``exc``, raised for the command line ``args`` before the CLI ran (the no-op
    decision's errors: a lock held too long, Ctrl-C), and exit, exactly as :func:`main`."""

    def fail() -> None:
        raise exc

    _handled(fail, args)
    raise AssertionError("unreachable")  # _handled exits


def _handled(run: Callable[[], Any], args: list[str]) -> None:
    """Run ``run`` (the CLI with ``args``) and exit, mapping its errors to exit codes."""
    detailed = "--detailed-exit-codes" in args
    as_json = _json_requested(args)
    credentials = "cloud" in args  # its messages may carry what the cloud echoed back
    code_for: Callable[[int], int] = (
        (lambda code: DetailedExitCode.ERROR if code else 0) if detailed else (lambda c: c)
    )
    try:
        code = run()
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        exc.show()
        if as_json:
            from multihome.files import json_output

            click.echo(
                json_output(error_json(exc, code_for(ExitCode.BAD_INPUT), exc.format_message())),
                nl=False,
            )
        sys.exit(code_for(ExitCode.BAD_INPUT))
    except click.Abort as exc:
        _fail("aborted", code_for(ExitCode.FAILURE), exc, as_json)
    except MultihomeError as exc:  # InputError included: its exit_code is 2
        _fail(str(exc), code_for(exc.exit_code), exc, as_json, credentials)
    except KeyboardInterrupt as exc:
        _fail("interrupted", code_for(ExitCode.FAILURE), exc, as_json)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # the last line of defence: never a traceback
        if os.environ.get("MULTIHOME_DEBUG"):
            raise
        _fail(
            f"internal error: {type(exc).__name__}: {exc} (set MULTIHOME_DEBUG=1 for the "
            "traceback and report it)",
            code_for(ExitCode.FAILURE),
            exc,
            as_json,
            credentials,
        )
    # click returns the code of a click.exceptions.Exit when not in standalone mode
    sys.exit(code if isinstance(code, int) else 0)
