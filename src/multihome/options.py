"""Command-line options shared by commands in several modules (one definition each); in the
transaction layer because they carry its defaults (the lock timeout)."""

from __future__ import annotations

import click

from multihome.transaction import DEFAULT_LOCK_TIMEOUT

#: ``--lock-timeout`` of every command that changes the namespace (apply, rollback, reset).
lock_timeout_option = click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    default=DEFAULT_LOCK_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for another multihome to finish.",
)
