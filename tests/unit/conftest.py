"""Fixtures for the pure unit tests."""

from __future__ import annotations

import pytest
from unit_states import host, port

from multihome.model import HostState


@pytest.fixture
def howto() -> HostState:
    """The how-to's VM: eth0 .107 and eth1 .112 on 192.168.0.0/24, metrics 100/101."""
    return host(port("eth0", 2, "192.168.0.107/24", "192.168.0.1", 100, "192.168.0.100"),
                port("eth1", 3, "192.168.0.112/24", "192.168.0.1", 101, "192.168.0.100"))
