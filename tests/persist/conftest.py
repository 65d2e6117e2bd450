"""Fixtures of the persist tests (defined in persist_util, which the tests import by name)."""

from __future__ import annotations

import pytest
from persist_util import make_lab, namespaces
from tiers import mark_netns

__all__ = ["make_lab", "namespaces"]


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that make namespaces (``namespaces``, ``make_lab``) need root: ``netns``."""
    mark_netns(items, __file__, fixtures=("namespaces", "make_lab"))
