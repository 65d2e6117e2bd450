"""The commands ``confirm``, ``rollback``, ``reset`` and ``doctor``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from multihome.errors import ExitCode
from multihome.options import lock_timeout_option


@contextmanager
def _backend() -> Iterator[Any]:
    from multihome.backend.netlink import NetlinkBackend

    backend = NetlinkBackend()
    try:
        yield backend
    finally:
        backend.close()


def _print(outcome: Any, as_json: bool) -> None:
    from multihome.files import json_output

    if as_json:
        click.echo(json_output(outcome.to_json()), nl=False)
    else:
        for line in outcome.changes:
            click.echo(line)
        for note in outcome.notes:
            click.echo(f"# {note}")
        for line in outcome.files:
            click.echo(f"# {line}")
        click.echo(outcome.message)
        for problem in outcome.problems:
            click.echo(f"FAILED: {problem}", err=True)
    if outcome.problems:
        raise click.exceptions.Exit(ExitCode.FAILURE)


@click.command(
    epilog="\b\nExamples:\n  sudo multihome apply --confirm-timeout 120   # then, "
    "from a new SSH session:\n  sudo multihome confirm"
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def confirm(obj: Any, as_json: bool) -> None:
    """Keep the changes of an apply that waits for a confirmation.

    Exit 1 when nothing waits (for example because the window ended and the changes were
    rolled back).
    """
    from multihome.safety import commands

    _print(commands.confirm(obj.root), as_json)


@click.command(epilog="\b\nExamples:\n  sudo multihome rollback\n  sudo multihome rollback --json")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@lock_timeout_option
@click.pass_obj
def rollback(obj: Any, as_json: bool, lock_timeout: float) -> None:
    """Go back to the state before the last apply that changed something.

    During a confirmation window it ends the window with a rollback; after an interrupted
    apply it undoes what was made. Idempotent: a second rollback changes nothing.
    """
    from multihome.processes import require_root
    from multihome.safety import commands

    require_root()
    with _backend() as backend:
        outcome = commands.rollback(backend, obj.root, lock_timeout=lock_timeout)
    _print(outcome, as_json)


@click.command(
    epilog="\b\nExamples:\n  sudo multihome reset\n  ip netns exec vm1 multihome reset --json"
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@lock_timeout_option
@click.pass_obj
def reset(obj: Any, as_json: bool, lock_timeout: float) -> None:
    """Remove everything multihome made in this network namespace.

    Its rules and routes go; the routes it moved out of main come back; the sysctls it
    changed get their prior values; the rt_tables.d/rt_protos.d files it wrote are removed.
    Idempotent. Persisted configuration is left alone (see `multihome unpersist`).
    """
    from multihome.processes import require_root
    from multihome.safety import commands

    require_root()
    config = obj.config()
    with _backend() as backend:
        outcome = commands.reset(backend, obj.root, config, lock_timeout=lock_timeout)
    _print(outcome, as_json)


@click.command(
    epilog="\b\nExamples:\n  multihome doctor\n  multihome doctor --json | jq -r "
    "'.problems[].code'\n  ip netns exec vm1 multihome doctor"
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def doctor(obj: Any, as_json: bool) -> None:
    """Diagnose what breaks multi-port routing, with the exact fix (exit 1 on problems).

    Codes: several-defaults-no-policy, reply-wrong-interface, rp-filter-strict, arp-flux,
    duplicate-rules, orphan-table, pending-changes, not-persisted, dhcp-will-undo,
    persist-not-loaded, netplan-nm-drops-policy, interrupted-apply, confirmation-pending.
    """
    from multihome.engine import assess
    from multihome.files import json_output
    from multihome.safety.doctor import diagnose

    config = obj.config()
    with _backend() as backend:  # the same facts as status, plan and apply: one truth
        found = diagnose(backend, assess(backend, config, obj.facts()), config, obj.root)
    if as_json:
        click.echo(json_output(found.to_json()), nl=False)
    elif not found.problems:
        click.echo(f"healthy: {len(found.checked)} checks found nothing")
    else:
        for problem in found.problems:
            click.echo(click.style(problem.code, bold=True) + f": {problem.message}")
            click.echo(f"  fix: {problem.fix}")
        click.echo(f"{len(found.problems)} problem(s)")
    if not found.ok:
        raise click.exceptions.Exit(ExitCode.FAILURE)
