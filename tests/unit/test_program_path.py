"""One path for multihome's own program: the systemd unit persist renders, the agent's unit in
``agent --help`` and its man page, cloud user-data's link and the README all name the same one
(:data:`multihome.files.PROGRAM`), and persist renders the one installed on the target."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from multihome.cli import cli
from multihome.cloud import userdata
from multihome.files import PROGRAM, PROGRAMS
from multihome.persist.core import PROGRAMS as PERSIST_PROGRAMS
from multihome.render.base import HostFacts
from multihome.render.systemd import unit

REPO = Path(__file__).resolve().parents[2]
#: An absolute path naming the program itself (not /opt/multihome/bin, the venv it links to).
_PROGRAM_PATH = re.compile(r"(?<![\w/.-])(/(?:usr|opt|bin|sbin)[\w/.-]*/s?bin/multihome)\b")


def test_every_place_names_the_same_program() -> None:
    """The renderer's default, the unit text, user-data's link and persist's search order
    start with the one PROGRAM."""
    assert PERSIST_PROGRAMS is PROGRAMS and PROGRAMS[0] == PROGRAM
    assert HostFacts().program == PROGRAM
    assert f"ExecStart={PROGRAM} apply" in unit(HostFacts().program)
    assert userdata.BIN == PROGRAM


def test_agent_help_names_the_program_and_does_not_promise_a_unit() -> None:
    """`agent --help` shows the unit with PROGRAM and says persist does not install it."""
    done = CliRunner().invoke(cli, ["agent", "--help"])
    assert done.exit_code == 0
    assert f"ExecStart={PROGRAM} agent" in done.output
    assert "persist` does not install it" in done.output


def test_docs_name_only_the_program_path() -> None:
    """README and docs/ name multihome's program only at PROGRAM (or the venv it links from),
    never /usr/bin or /usr/local/sbin."""
    wrong = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for path in _PROGRAM_PATH.findall(page.read_text()):
            if path not in (PROGRAM, "/opt/multihome/bin/multihome"):
                wrong.append(f"{page.name}: {path}")
    assert wrong == []
