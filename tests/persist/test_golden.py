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
