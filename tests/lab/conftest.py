"""Fixtures of the lab's tests: a unique lab name per test, removed after it.

Every lab a test makes is named ``mhlab-<random>`` (so tests run in parallel) and is removed
by name after the test, also when it fails: first with ``multihome lab down``, then by
deleting whatever namespace or folder is still there.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from labtools import force_remove, new_name
from tiers import mark_netns


@pytest.fixture
def needs_root() -> None:
    """Skip unless root with the lab's programs (`make deps` installs them)."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    missing = [
        p
        for p in ("ip", "nft", "dnsmasq", "dhclient", "curl", "ping", "sysctl", "radvd")
        if shutil.which(p) is None
    ]
    if missing:
        pytest.skip(f"missing programs {missing}; run `make deps`")


@pytest.fixture
def lab_name(needs_root: None) -> Iterator[str]:
    """A unique lab name; the lab is removed after the test, also on failure."""
    name = new_name()
    try:
        yield name
    finally:
        force_remove(name)


@pytest.fixture
def lab_names(needs_root: None) -> Iterator[list[str]]:
    """Two unique lab names, both removed after the test."""
    names = [new_name(), new_name()]
    try:
        yield names
    finally:
        for name in names:
            force_remove(name)


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that bring a lab up (``needs_root``, ``lab_name``, ``lab_names``) are
    ``netns``."""
    mark_netns(items, __file__, fixtures=("needs_root",))
