"""multihome's own program: the systemd unit persist renders names the program installed on
the target (the one running, else the first of :data:`multihome.files.PROGRAMS` there), the
agent's unit in ``agent --help`` and cloud user-data's link name
:data:`multihome.files.PROGRAM`, and the docs name no other path than these."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from multihome.cli import cli
from multihome.cloud import userdata
from multihome.files import PACKAGED_PROGRAM, PROGRAM, PROGRAMS, installed_program
from multihome.policy import DesiredState
from multihome.render.base import HostFacts, RenderInput
from multihome.render.systemd import notes, unit

REPO = Path(__file__).resolve().parents[2]
#: An absolute path naming the program itself (not /opt/multihome/bin, the venv it links to).
_PROGRAM_PATH = re.compile(r"(?<![\w/.-])(/(?:usr|opt|bin|sbin)[\w/.-]*/s?bin/multihome)\b")


def _program(root: Path, path: str, mode: int = 0o755) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("#!/bin/sh\n")
    target.chmod(mode)


def test_defaults_name_the_one_program() -> None:
    """The renderer's default, the unit text and user-data's link name PROGRAM; the package's
    path is the other place searched."""
    assert PROGRAMS == (PROGRAM, PACKAGED_PROGRAM)
    assert HostFacts().program == PROGRAM
    assert f"ExecStart={PROGRAM} apply" in unit(HostFacts().program)
    assert userdata.BIN == PROGRAM


def test_the_running_program_wins_when_the_target_has_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pipx or venv install runs as /opt/venv/bin/multihome: the unit names that path,
    not /usr/local/bin/multihome, even when both exist on the target."""
    _program(tmp_path, "/opt/venv/bin/multihome")
    _program(tmp_path, PROGRAM)
    monkeypatch.setattr("sys.argv", [str(tmp_path / "opt/venv/bin/multihome"), "persist"])
    monkeypatch.setenv("PATH", "/nonexistent")
    # The running program's path below tmp_path is what the target has below "/" ...
    assert installed_program(Path("/")) == str(tmp_path / "opt/venv/bin/multihome")
    # ... and under --root the same path must exist below the root.
    monkeypatch.setattr("sys.argv", ["/opt/venv/bin/multihome", "persist"])
    assert installed_program(tmp_path) == "/opt/venv/bin/multihome"


def test_python_m_finds_the_program_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run as ``python -m multihome`` (behind a wrapper script): the first ``multihome`` on
    PATH that the target has; a non-executable file does not count."""
    _program(tmp_path, "/srv/a/multihome", mode=0o644)
    _program(tmp_path, "/srv/b/multihome")
    monkeypatch.setattr("sys.argv", ["/x/multihome/__main__.py"])
    monkeypatch.setenv("PATH", os.pathsep.join(["relative", "/srv/a", "/srv/b"]))
    assert installed_program(tmp_path) == "/srv/b/multihome"


def test_the_package_path_and_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither the running program nor PROGRAM on the target: the package's /usr/bin; none
    at all: None, and the systemd backend's notes say that the unit would fail."""
    monkeypatch.setattr("sys.argv", ["/x/multihome/__main__.py"])
    monkeypatch.setenv("PATH", "/nonexistent")
    assert installed_program(tmp_path) is None
    missing = notes_for(HostFacts(program_found=False))
    assert len(missing) == 1 and PROGRAM in missing[0] and "unit-program-missing" in missing[0]
    assert notes_for(HostFacts()) == []
    _program(tmp_path, PACKAGED_PROGRAM)
    assert installed_program(tmp_path) == PACKAGED_PROGRAM


def notes_for(facts: HostFacts) -> list[str]:
    """The systemd backend's notes for a host without ports."""
    desired = DesiredState((), (), (), (), frozenset(), frozenset(), (), frozenset(), None)
    return notes(RenderInput(desired, (), facts))


def test_agent_help_names_the_program_and_the_package_unit() -> None:
    """`agent --help` shows the unit with PROGRAM and names the package's unit."""
    done = CliRunner().invoke(cli, ["agent", "--help"])
    assert done.exit_code == 0
    assert f"ExecStart={PROGRAM} agent" in done.output
    assert "multihome-agent.service" in done.output


def test_docs_name_only_the_program_paths() -> None:
    """README and docs/ name multihome's program only at PROGRAM, the package's /usr/bin or
    the venv PROGRAM links to, never /usr/local/sbin or another place."""
    wrong = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for path in _PROGRAM_PATH.findall(page.read_text()):
            if path not in (PROGRAM, PACKAGED_PROGRAM, "/opt/multihome/bin/multihome"):
                wrong.append(f"{page.name}: {path}")
    assert wrong == []
