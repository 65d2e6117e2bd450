"""Golden files: every backend renders the how-to's 2-port VM and a 3-port VM exactly so.

Regenerate after an intended change with ``MH_UPDATE_GOLDEN=1 pytest tests/persist/test_golden.py``
and review the diff; the real-tool tests (test_real_tools.py) check that the files mean what
the policy computed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

import pytest
from persist_scenarios import SCENARIOS, input_of

from multihome.render import REGISTRY, FileSpec
from multihome.render.base import MARKER

GOLDEN = Path(__file__).parent / "golden"
CASES = [(s, b) for s in SCENARIOS for b in REGISTRY]


def as_tree(files: dict[PurePosixPath, FileSpec]) -> dict[str, str]:
    """Files as golden-tree text: symlinks as ``-> target``, the mode in a MODES file."""
    tree = {
        str(p).lstrip("/"): (f"-> {s.content}\n" if s.symlink else s.content)
        for p, s in files.items()
    }
    tree["MODES"] = "".join(
        f"{oct(s.mode)} {str(p).lstrip('/')}\n" for p, s in sorted(files.items()) if not s.symlink
    )
    return tree


def read_tree(base: Path) -> dict[str, str]:
    return {str(p.relative_to(base)): p.read_text() for p in sorted(base.rglob("*")) if p.is_file()}


def write_tree(base: Path, tree: dict[str, str]) -> None:
    shutil.rmtree(base, ignore_errors=True)
    for rel, text in tree.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_text(text)


@pytest.mark.parametrize(("scenario", "backend"), CASES)
def test_golden(scenario: str, backend: str) -> None:
    """The rendered files equal the reviewed golden files, byte for byte.

    With MH_UPDATE_GOLDEN set the golden files are rewritten and the test is skipped (saying
    whether they changed): comparing a file with what was just written proves nothing.
    """
    tree = as_tree(REGISTRY[backend].render(input_of(scenario, backend)))
    base = GOLDEN / scenario / backend
    if os.environ.get("MH_UPDATE_GOLDEN"):
        before = read_tree(base) if base.is_dir() else {}
        write_tree(base, tree)
        what = "unchanged" if before == tree else "CHANGED: review `git diff`"
        pytest.skip(f"MH_UPDATE_GOLDEN: rewrote {base.relative_to(GOLDEN)} ({what})")
    assert base.is_dir(), f"no golden files in {base}: run with MH_UPDATE_GOLDEN=1 and review"
    assert read_tree(base) == tree


@pytest.mark.parametrize(("scenario", "backend"), CASES)
def test_deterministic_and_marked(scenario: str, backend: str) -> None:
    """Two renders are identical, and every file carries the "managed by multihome" marker."""
    first = REGISTRY[backend].render(input_of(scenario, backend))
    assert first == REGISTRY[backend].render(input_of(scenario, backend))
    for path, spec in first.items():
        assert path.is_absolute()
        if not spec.symlink:
            assert spec.content.startswith(MARKER), path


def test_keyfiles_are_private() -> None:
    """NetworkManager refuses keyfiles readable by others: they are written with mode 0600."""
    files = REGISTRY["networkmanager"].render(input_of("howto", "networkmanager"))
    keyfiles = [s for p, s in files.items() if p.suffix == ".nmconnection"]
    assert len(keyfiles) == 2
    assert {s.mode for s in keyfiles} == {0o600}


def test_ifcfg_never_writes_rule_files() -> None:
    """ifcfg-rh ignores route- AND rule- files when a rule- file exists: there is none."""
    for scenario in SCENARIOS:
        files = REGISTRY["ifcfg"].render(input_of(scenario, "ifcfg"))
        assert not [p for p in files if p.name.startswith("rule")]
        assert any("ROUTING_RULE_1=" in s.content for s in files.values())


def test_rules_are_the_policys() -> None:
    """Each port carries exactly the policy's rules for its table plus the main-suppress rule."""
    inp = input_of("three", "networkd")
    rendered = {r for port in inp.ports for r in port.rules}
    assert rendered == set(inp.desired.rules)
    assert len(inp.ports) == 3
