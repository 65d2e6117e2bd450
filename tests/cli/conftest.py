"""Fixtures of the command-line tests (the real ``multihome`` run as a separate process).

Most of them need no root: they refuse bad input before anything is read or changed. Those
that need a network namespace of their own request :func:`private_netns` and are ``netns``.
"""

from __future__ import annotations

import os
import shutil

import pytest
from tiers import mark_netns


@pytest.fixture
def private_netns() -> tuple[str, ...]:
    """The command prefix that runs a program in a new, empty network namespace (so that no
    host state is read); skips unless root."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("unshare --net needs root")
    return ("unshare", "--net")


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that run in a namespace of their own (``private_netns``) are ``netns``."""
    mark_netns(items, __file__, fixtures=("private_netns",))
