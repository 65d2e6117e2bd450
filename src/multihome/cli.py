"""The ``multihome`` command: verbs only. It parses arguments, calls the library and maps
errors to exit codes (0 ok, 1 failure, 2 bad input, 3 rolled back)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from multihome._version import __version__
from multihome.apply_cli import CliOptions, print_plan, styled
from multihome.apply_cli import apply as run_apply
from multihome.apply_cli import backend_of as _backend
from multihome.errorpath import (
    echo,
    error_json,
    exit_code,
    fail,
    handled,
    json_requested,
    report_error,
)
from multihome.errors import ExitCode
from multihome.options import format_option, lock_timeout_option, output_format

__all__ = ["CliOptions", "cli", "error_json", "main", "report_error"]

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
    from multihome.files import check_root

    check_root(root)
    ctx.obj = CliOptions(config_path=config_path, root=root, color=sys.stdout.isatty())


def _echo_json(data: Mapping[str, object]) -> None:
    from multihome.files import json_output

    click.echo(json_output(data), nl=False)


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
            lines.append(styled(f"- {problem.message}; fix: {problem.fix}", obj.color))
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
    print_plan(obj, assessment)


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
    code = run_apply(
        obj,
        dry_run=dry_run,
        detailed_exit_codes=detailed_exit_codes,
        quiet=quiet,
        interface=interface,
        confirm_timeout=confirm_timeout,
        management_peer=management_peer,
        checks=checks,
        no_sysctls=no_sysctls,
        lock_timeout=lock_timeout,
    )
    if code:
        raise click.exceptions.Exit(code)


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


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and map errors to exit codes; with ``--json``, a failure
    also prints one ``{"error": ...}`` document on stdout (:mod:`multihome.errorpath`)."""
    args = argv if argv is not None else sys.argv[1:]
    handled(
        lambda: _clicked(
            lambda: cli.main(args=argv, prog_name="multihome", standalone_mode=False), args
        ),
        args,
    )


def _clicked(run: Callable[[], Any], args: list[str]) -> Any:
    """``run()`` (the click CLI with ``args``), click's own outcomes mapped to exit codes:
    a usage error (2), ``Exit``, ``Abort`` ("aborted"); the rest is :func:`handled`'s."""
    try:
        return run()
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        exc.show()
        code = exit_code(args, ExitCode.BAD_INPUT)
        if json_requested(args):
            from multihome.files import json_output

            echo(json_output(error_json(exc, code, exc.format_message())), nl=False)
        sys.exit(code)
    except click.Abort as exc:
        fail("aborted", exit_code(args, ExitCode.FAILURE), exc, json_requested(args))
