"""The pieces of click that the plain apply (multihome.apply_cli, multihome.errorpath) writes
itself: the coloured plan lines, ``echo`` and the exit codes, each compared with click's own."""

from __future__ import annotations

import click
import pytest

from multihome.apply_cli import styled
from multihome.errorpath import echo, exit_code


@pytest.mark.parametrize("line", ["+ rule add", "- route del", "~ sysctl", "# note", ""])
def test_a_plan_line_is_coloured_as_click_colours_it(line: str) -> None:
    """On a terminal a plan line gets click.style's colour by its sign (green, red, yellow,
    none) and its reset; elsewhere it is left as it is."""
    colors = {"+": "green", "-": "red", "~": "yellow"}
    assert styled(line, True) == click.style(line, fg=colors.get(line[:1]))
    assert styled(line, False) == line


@pytest.mark.parametrize(
    ("text", "err", "nl"), [("a", False, True), ("b", True, False), ("", True, True)]
)
def test_echo_writes_what_click_echo_writes(
    capsys: pytest.CaptureFixture[str], text: str, err: bool, nl: bool
) -> None:
    """The same text on the same stream, the newline as asked."""
    click.echo(text, err=err, nl=nl)
    theirs = capsys.readouterr()
    echo(text, err=err, nl=nl)
    assert capsys.readouterr() == theirs


def test_detailed_exit_codes_make_every_failure_one() -> None:
    """With --detailed-exit-codes any failure exits 1, success 0; without, the code as it is."""
    assert [exit_code(["apply"], code) for code in (0, 1, 2, 3)] == [0, 1, 2, 3]
    detailed = ["apply", "--detailed-exit-codes"]
    assert [exit_code(detailed, code) for code in (0, 1, 2, 3)] == [0, 1, 1, 1]
