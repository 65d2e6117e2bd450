"""`bench/policy_callgrind.py` counts the policy and the plan of a BenchLab's state (here its
cProfile mode, without valgrind: seconds, not minutes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from bench_util import BENCH


def test_the_state_is_read_once_and_the_policy_and_plan_computed_from_it(tmp_path: Path) -> None:
    """At 2 ports: the lab's state is kept in the pickle, and the profile is of the policy
    and the plan computed from it (twice, as ``--repeat 2`` asks)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    state = tmp_path / "state.pickle"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "policy_callgrind.py"), "--ports", "2", "--state",
         str(state), "--mode", "cprofile", "--repeat", "2"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert state.stat().st_size > 0
    calls = {
        line.split()[-1]: line.split()[0]
        for line in proc.stdout.splitlines()
        if "(compute_policy)" in line or "(make_plan)" in line
    }
    assert len(calls) == 2 and set(calls.values()) == {"2"}, proc.stdout
