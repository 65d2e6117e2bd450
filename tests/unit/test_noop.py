"""The command lines the no-op decision (multihome.noop) answers before the CLI, and those it
leaves to the CLI: anything it does not fully understand falls through."""

from __future__ import annotations

from pathlib import Path

import pytest

from multihome.noop import parse
from multihome.transaction import DEFAULT_LOCK_TIMEOUT


def test_the_plain_apply_and_its_harmless_options_are_understood() -> None:
    """``apply`` alone, with the global ``--root``/``--config`` (both spellings) and with
    ``-q``, ``--detailed-exit-codes``, ``--no-sysctls`` and ``--lock-timeout``."""
    plain = parse(["apply"])
    assert plain is not None
    assert (plain.root, plain.config, plain.quiet, plain.no_sysctls) == (
        Path("/"),
        None,
        False,
        False,
    )
    assert plain.lock_timeout == DEFAULT_LOCK_TIMEOUT
    options = ["-q", "--detailed-exit-codes", "--no-sysctls", "--lock-timeout", "2.5"]
    full = parse(["--root", "/tmp/r", "--config=/etc/c.yaml", "apply", *options])
    assert full is not None
    assert (full.root, full.config, full.quiet, full.no_sysctls, full.lock_timeout) == (
        Path("/tmp/r"),
        Path("/etc/c.yaml"),
        True,
        True,
        2.5,
    )
    assert parse(["--root=apply", "apply", "--quiet", "--lock-timeout=0"]) is not None
    named = parse(["--root", "apply", "apply"])
    assert named is not None and named.root == Path("apply")


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["plan"],
        ["status", "apply"],
        ["--json", "apply"],
        ["apply", "--json"],
        ["apply", "--dry-run"],
        ["apply", "--interface", "eth1"],
        ["apply", "--check", "gateways"],
        ["apply", "--confirm-timeout", "0"],
        ["apply", "--management-peer", "192.0.2.1"],
        ["apply", "-qq"],
        ["apply", "--help"],
        ["apply", "-h"],
        ["apply", "extra"],
        ["apply", "--"],
        ["apply", "--lock-timeout"],
        ["apply", "--lock-timeout", "-1"],
        ["apply", "--lock-timeout", "1e3"],
        ["apply", "--lock-timeout", "inf"],
        ["apply", "--lock-timeout", "\u00b2"],
        ["apply", "--lock-timeout", "."],
        ["--root"],
        ["--root", "", "apply"],
        ["--root", "/a", "--root", "/b", "apply"],
        ["--config", "c.yaml"],
        ["--version", "apply"],
        ["--help", "apply"],
        ["--rooted", "/x", "apply"],
        ["-r", "/x", "apply"],
        ["apply", "apply"],
    ],
)
def test_anything_else_falls_through_to_the_cli(args: list[str]) -> None:
    """Other commands, options that change what apply does or says, spellings and values
    the CLI would check (or refuse): None, the CLI decides."""
    assert parse(args) is None
