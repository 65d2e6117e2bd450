"""Fixtures for the pure unit tests (no root, no namespaces, no files outside ``tmp_path``)."""

from __future__ import annotations

import pytest
from hosts import howto_host

from multihome.config import Config
from multihome.model import HostState
from multihome.policy import compute_policy
from multihome.render import HostFacts, RenderInput, build_input


@pytest.fixture
def howto() -> HostState:
    """The how-to's VM: eth0 .107 and eth1 .112 on 192.168.0.0/24, metrics 100/101."""
    return howto_host()


@pytest.fixture
def howto_input(howto: HostState) -> RenderInput:
    """What every renderer gets for the how-to's VM on a host with no network configuration
    of its own (no facts): eth0 the primary, eth1 a secondary whose DHCP routes go to its
    table."""
    return build_input(howto, compute_policy(howto, Config()), HostFacts())
