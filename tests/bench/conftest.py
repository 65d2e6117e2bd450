"""Fixtures of the bench tests (defined in bench_util, which the tests import by name)."""

from __future__ import annotations

import pytest
from bench_util import lab
from tiers import mark_netns

__all__ = ["lab"]


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here needs root and creates network namespaces."""
    mark_netns(items, __file__)
