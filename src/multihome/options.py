"""Command-line options shared by commands in several modules (one definition each); in the
transaction layer because they carry its defaults (the lock timeout)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from multihome.transaction import DEFAULT_LOCK_TIMEOUT

F = TypeVar("F", bound=Callable[..., Any])

#: ``--lock-timeout`` of every command that changes the namespace (apply, rollback, reset).
lock_timeout_option = click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    default=DEFAULT_LOCK_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for another multihome to finish.",
)


def format_option(dot_help: str) -> Callable[[F], F]:
    """``--format text|json|dot`` of a read command that can draw (``status``, ``lab
    probe``); ``dot_help`` says what its picture shows. See :func:`output_format`."""
    return click.option(
        "--format",
        "form",
        type=click.Choice(["text", "json", "dot"]),
        default="text",
        show_default=True,
        help=f"dot: {dot_help}",
    )


def output_format(as_json: bool, form: str) -> str:
    """The format asked for: ``--json`` is ``--format json``; ``--json`` with ``--format
    dot`` is a usage error (exit 2)."""
    if as_json and form == "dot":
        raise click.UsageError("--json and --format dot exclude each other; give one of them")
    return "json" if as_json else form
