"""Fixtures of the Ansible tests (helpers in ansible_support.py, a uniquely named module; the
how-to's VM from tests/netns/netns_util.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tiers import mark_netns

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))  # ansible_support
sys.path.insert(0, str(HERE.parent / "netns"))  # netns_util: the how-to's VM


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The playbook tests need root and make namespaces (``fleet``); linting does not."""
    mark_netns(items, __file__, fixtures=("fleet",))
