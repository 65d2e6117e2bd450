"""Fixtures of the reboot tests: the cached Debian root file system and a guest to boot.

The helpers live in ``reboot_guest`` (a uniquely named module: ``conftest`` names clash
between package-less test directories).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tiers import mark_netns

sys.path.insert(0, str(Path(__file__).parent))

from reboot_guest import Guest, guest_environment, need, need_root, rootfs_tarball


@pytest.fixture(scope="session")
def rootfs() -> Path:
    """The debootstrapped guest as a tarball (built on first use, ~80 s; then cached)."""
    need_root()
    need("debootstrap", "tar")
    return rootfs_tarball()


@pytest.fixture
def guest(rootfs: Path, tmp_path: Path) -> Iterator[Guest]:
    """A fresh copy of the guest with multihome installed, and its cloud (bridge + dnsmasq);
    powered off, its namespaces, cgroups, processes and files removed afterwards."""
    with guest_environment(tmp_path, rootfs) as guest:
        yield guest


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here needs root and creates network namespaces."""
    mark_netns(items, __file__)
