"""Fixtures for the pure unit tests."""

from __future__ import annotations

import pytest
from hosts import howto_host

from multihome.model import HostState


@pytest.fixture
def howto() -> HostState:
    """The how-to's VM: eth0 .107 and eth1 .112 on 192.168.0.0/24, metrics 100/101."""
    return howto_host()
