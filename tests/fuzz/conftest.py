"""Fixtures of the event fuzzer's tests: a running lab with the agent in its guest.

Every lab is named ``mhfz-<random>`` (tests run in parallel) and removed by name after the
test, also when it fails (the agent first, by pid, then ``multihome lab down``, then
whatever namespace or folder is left).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fuzz_lab import EventLab, skip_unless_able
from tiers import mark_netns


@pytest.fixture
def lab() -> Iterator[EventLab]:
    """Scenario 4, fixed by `multihome apply`, `multihome agent` running, settled."""
    skip_unless_able()
    running = EventLab.start()
    try:
        yield running
    finally:
        running.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here needs root and creates network namespaces."""
    mark_netns(items, __file__)
