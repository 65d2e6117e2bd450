"""`bench/apply_callgrind.py` runs whole applies as `make bench`'s (c) does, in throwaway
namespaces (here its cProfile mode, without valgrind: seconds, not minutes)."""

from __future__ import annotations

import os
import pstats
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bench_util import BENCH


def test_each_run_is_one_whole_apply_in_a_lab_deleted_afterwards(tmp_path: Path) -> None:
    """Two runs at 2 ports with ``--no-op``: each profile is one whole apply that made changes
    (the kernel was undone before it, so the no-op decision fell through to the full apply),
    each one after it a no-op answered before the CLI, and the lab's namespaces are gone
    afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    proc = subprocess.run(
        [sys.executable, str(BENCH / "apply_callgrind.py"), "--ports", "2", "--runs", "2",
         "--mode", "cprofile", "--no-op", "--out", str(tmp_path / "apply")],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for run in (0, 1):
        stats = pstats.Stats(str(tmp_path / f"apply.{run}.prof")).stats  # type: ignore[attr-defined]
        calls = {(Path(f[0]).name, f[2]): s[1] for f, s in stats.items()}
        assert calls[("apply_cli.py", "apply")] == 1
        assert calls[("engine.py", "apply_plan")] == 1
        assert calls.get(("netlink.py", "apply"), 0) == 1  # changes were made
        stats = pstats.Stats(str(tmp_path / f"apply.{run}.noop.prof")).stats  # type: ignore[attr-defined]
        calls = {(Path(f[0]).name, f[2]): s[1] for f, s in stats.items()}
        assert calls[("noop.py", "answer")] == 1
        assert ("apply_cli.py", "main") not in calls  # answered: nothing to do
    (name,) = re.findall(r"^lab (\S+) ", proc.stderr, re.M)
    after = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    assert not {n for n in after.stdout.split() if n.startswith(name)}, after.stdout
