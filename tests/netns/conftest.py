"""Fixtures: the how-to's VM in a fresh namespace pair, removed by name afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns_util import HowtoVM, build_howto, namespaces, unique
from tiers import mark_netns


def _vm(tmp_path: Path, ports: int) -> Iterator[HowtoVM]:
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    ns = unique("mhcore")
    sw = f"{ns}-sw"
    with namespaces(ns, sw):
        build_howto(ns, sw, ports=ports)
        yield HowtoVM(ns, sw, tmp_path / "root")


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[HowtoVM]:
    """The how-to's two-port VM."""
    yield from _vm(tmp_path, 2)


@pytest.fixture
def vm3(tmp_path: Path) -> Iterator[HowtoVM]:
    """Three ports on the how-to's subnet."""
    yield from _vm(tmp_path, 3)


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here needs root and creates network namespaces."""
    mark_netns(items, __file__)
