"""Fixtures of the live-lab tests: a lab with a unique name per test, removed after it.

Every lab is named ``mhhot-<random>`` (tests run in parallel) and removed by name after the
test, also when it fails: the agent and anything else the test started first (by pid), then
``multihome lab down``, then whatever namespace or folder is still there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from labhot_util import LiveLab, force_remove, missing_programs, new_name
from tiers import mark_netns


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveLab]:
    """A unique lab name (not up yet); everything of it is removed after the test."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    missing = missing_programs()
    if missing:
        pytest.skip(f"missing programs {missing}; run `make deps`")
    lab = LiveLab(new_name(), tmp_path)
    try:
        yield lab
    finally:
        try:
            lab.stop_agent()
        finally:
            force_remove(lab.name)


@pytest.fixture
def scenario4(live: LiveLab) -> LiveLab:
    """Scenario 4 up, fixed by `multihome apply` in the guest (both floating IPs answer)."""
    live.ok("up", "--scenario", "4")
    applied = live.cli("exec", "--", "multihome", "--root", str(live.tmp / "root"), "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    return live


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here needs root and creates network namespaces."""
    mark_netns(items, __file__)
