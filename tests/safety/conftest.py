"""Fixtures of the safety tests (defined in safety_util, which the tests import by name)."""

from __future__ import annotations

import pytest
from safety_util import deadgw_lab, lab
from tiers import mark_netns

__all__ = ["deadgw_lab", "lab"]


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here needs root and creates network namespaces."""
    mark_netns(items, __file__)
