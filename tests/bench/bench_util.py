"""Fixtures for the benchmark tests: a small bench lab (N veth ports configured like the
how-to) in namespaces with a unique name, deleted by name afterwards, also on failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
BENCH = HERE.parents[1] / "bench"
for path in (str(BENCH), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

from lab import BenchLab  # noqa: E402 - bench/ is found through sys.path


@pytest.fixture
def lab() -> Iterator[BenchLab]:
    """Eight ports p0..p7 like the how-to's, in namespaces mhbench-<hex>-8 (and -sw)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    with BenchLab(8) as made:
        yield made


def inside(lab: BenchLab, script: Path, *args: str) -> dict[str, Any]:
    """Run ``script`` (which checks --netns) in the lab's namespace; its JSON answer."""
    proc = subprocess.run(
        lab.exec_args(sys.executable, str(script), "--netns", lab.name, *args),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    answer: dict[str, Any] = json.loads(proc.stdout)
    return answer
