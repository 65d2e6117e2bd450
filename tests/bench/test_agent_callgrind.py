"""`bench/agent_callgrind.py` drives the agent's reconcile in throwaway namespaces (here its
cProfile mode, without valgrind: seconds, not minutes)."""

from __future__ import annotations

import os
import pstats
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bench_util import BENCH


def test_a_flap_round_is_three_reconciles_in_a_namespace_deleted_afterwards(
    tmp_path: Path,
) -> None:
    """One flap round at 2 ports: the agent's reconcile runs three times (down, up, the
    address and the advertisement back), two of them repairs (the table's routes, then its
    IPv6 copies); the profile is written and the tool's namespaces are gone afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    profile = tmp_path / "flap.prof"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "agent_callgrind.py"), "flap", "--ports", "2",
         "--rounds", "1", "--cprofile", str(profile)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reconciles 4 repairs 2" in proc.stderr, proc.stderr
    stats = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    calls = {f[2]: s[1] for f, s in stats.items() if f[0].endswith("agent/service.py")}
    assert calls["reconcile"] == 3
    # Its own lab's names only: other runs (a helper's benchmark) may hold their own labs.
    (lab,) = re.findall(r"^lab (\S+ \S+)$", proc.stderr, re.M)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    assert not set(lab.split()) & set(listed.stdout.split()), listed.stdout
