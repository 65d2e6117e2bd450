"""Gathering the ports' own facts for the policy: leases, metadata, what was seen earlier."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from multihome.facts import PortFacts
from multihome.leasefiles import agent_lease_files
from multihome.model import HostState, Route
from multihome.source.leases import LeaseReader

TYPE_CHECKING = False  # typing is for the type checker only (start-up time)
if TYPE_CHECKING:
    from multihome.source.network_data import NetworkData

FactSource = Callable[[HostState], PortFacts]


def gather(
    state: HostState,
    reader: LeaseReader | None,
    network: NetworkData | None = None,
    origin: str = "metadata",
    seen: Mapping[str, frozenset[Route]] | None = None,
) -> PortFacts:
    """The facts of ``state``'s ports: the newest valid lease of each, the metadata's
    declarations for DHCP-disabled ports (they win: such a port has no lease), and ``seen``."""
    leases = None if reader is None else reader.read(state.links)
    declared = {} if leases is None else leases.declarations()
    declared6 = {}
    if network is not None:
        # metadata only: not on apply's path
        from multihome.source.ports import declarations, declarations6

        declared.update(declarations(state, network, origin))
        declared6 = declarations6(state, network, origin)
    notes = () if leases is None else tuple(f"lease ignored: {w}" for w in leases.warnings)
    return PortFacts(declared, dict(seen or {}), notes, declared6)


def host_reader(root: Path) -> LeaseReader:
    """The lease reader of a host below ``root``: the standard places, the agent's clients'
    files, the files of the dhclients running in this network namespace, found once per
    reader: an apply reads the leases, then records their signature and next expiry with the
    same files (three scans of /proc before, ~2 M instructions each at 80 processes)."""
    return LeaseReader(root, extra=agent_lease_files(root), process_every=float("inf"))


def host_facts(root: Path, reader: LeaseReader | None = None) -> FactSource:
    """The facts source of a one-shot command (apply, status, verify) below ``root``."""
    reader = host_reader(root) if reader is None else reader
    return lambda state: gather(state, reader)
