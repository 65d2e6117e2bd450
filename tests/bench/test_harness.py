"""The benchmark harness runs end to end at a tiny N and reports sane numbers (no timing
assertions: the machine is shared)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bench_util import BENCH


def test_harness_runs_at_tiny_n_and_reports_every_measurement(tmp_path: Path) -> None:
    """`bench/run.py --sizes 2 --runs 1` exits 0, times (a) (b) (c) (c0) (d), status and the
    cold-start commands, checks the four methods left the same kernel state (it fails
    otherwise), leaves no namespace behind, and writes a report with the targets."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run.py"),
            "--sizes",
            "2",
            "--runs",
            "1",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    after = set(
        subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    # Only this run's lab, by the name it printed: tests on other xdist workers build labs
    # of their own at the same time (apply_callgrind's is mhbench-<hex>-2 too).
    (name,) = re.findall(r"^lab (\S+) ", proc.stderr, re.M)
    assert not {name, f"{name}-sw"} & after, after
    results = json.loads((tmp_path / "results.json").read_text())
    (size,) = results["sizes"]
    assert size["n"] == 2
    assert size["changes"] == 2 * 4 + 2 * 2 + 2 * 3 + 1 + 1  # sysctls, routes, rules, main
    for method in ("a", "b", "c", "c0", "d"):
        (seconds,) = size["samples"][method]["seconds"]
        assert 0 < seconds < 60, method
    assert size["samples"]["c"]["rss_kb"][0] > 1024  # a Python process: megabytes
    assert set(results["cold_start"]) == {
        "python -c pass",
        "python -c 'import pyroute2'",
        "multihome --version",
    }
    assert len(results["targets"]) == 6
    report = (tmp_path / "report.md").read_text()
    assert "Targets:" in report
    assert "| 2 | 20 |" in report
