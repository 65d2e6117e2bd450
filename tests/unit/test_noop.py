"""The command lines the no-op decision (multihome.noop) answers before the CLI, and those it
leaves to the CLI: anything it does not fully understand falls through."""

from __future__ import annotations

from pathlib import Path

import pytest

from multihome.noop import parse
from multihome.transaction import DEFAULT_LOCK_TIMEOUT


def test_the_plain_apply_and_its_harmless_options_are_understood() -> None:
    """``apply`` alone, with the global ``--root``/``--config`` (both spellings: kept as
    given, text) and with ``-q``, ``--detailed-exit-codes``, ``--no-sysctls`` and
    ``--lock-timeout``."""
    plain = parse(["apply"])
    assert plain is not None
    assert (plain.root, plain.config, plain.quiet, plain.no_sysctls) == (
        "/",
        None,
        False,
        False,
    )
    assert plain.lock_timeout == DEFAULT_LOCK_TIMEOUT
    options = ["-q", "--detailed-exit-codes", "--no-sysctls", "--lock-timeout", "2.5"]
    full = parse(["--root", "/tmp/r", "--config=/etc/c.yaml", "apply", *options])
    assert full is not None
    assert (full.root, full.config, full.quiet, full.no_sysctls, full.lock_timeout) == (
        "/tmp/r",
        "/etc/c.yaml",
        True,
        True,
        2.5,
    )
    assert parse(["--root=apply", "apply", "--quiet", "--lock-timeout=0"]) is not None
    named = parse(["--root", "apply", "apply"])
    assert named is not None and named.root == "apply"


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


def test_resuming_with_the_state_given_is_resuming_without_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The no-op ends a pause with the state directory it holds the lock of
    (``resume_agent(root, state)``): the same marker removed, the same words on stderr as
    when the state directory is looked up again (``resume_agent(root)``, the full apply's)."""
    from multihome.noop import resume_agent
    from multihome.transaction.pause import PAUSED
    from multihome.transaction.statedir import StateDir

    marker = '{"at": "2026-12-06T17:00:00+00:00", "by": "reset", "pid": 1}\n'
    said = []
    for given in (True, False):
        state = StateDir.current(tmp_path)
        state.ensure()
        state.touch(PAUSED, marker)
        resume_agent(tmp_path, state if given else None)
        assert not state.exists(PAUSED)
        said.append(capsys.readouterr())
        resume_agent(tmp_path, state if given else None)  # not paused: nothing said
        assert capsys.readouterr() == ("", "")
    assert said[0] == said[1]
    assert said[0].err == (
        "multihome: resumed the agent (paused by reset at 2026-12-06T17:00:00+00:00)\n"
    )
