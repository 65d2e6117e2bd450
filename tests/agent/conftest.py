"""Fixtures of the agent tests (defined in agent_util, which the tests import by name)."""

from __future__ import annotations

import pytest
from agent_util import lab, notify_socket
from tiers import mark_netns

__all__ = ["lab", "notify_socket"]


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that run in a lab (the ``lab`` or ``dhcpv6_lab`` fixture) need root: they
    are ``netns``."""
    mark_netns(items, __file__, fixtures=("lab", "dhcpv6_lab"))
