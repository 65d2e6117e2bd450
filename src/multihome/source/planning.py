"""An assessment of the host whose facts come from the chosen source (kernel or OpenStack)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from multihome.backend import Backend
from multihome.config import Config
from multihome.plan import Assessment
from multihome.source import Resolved, Retry, resolve
from multihome.source.leases import LeaseReader
from multihome.source.portfacts import gather
from multihome.source.ports import PortIntent, StaticConfig, augment, intents, pending_static


@dataclass(frozen=True)
class SourcedAssessment:
    """The assessment, and what the metadata contributed to it."""

    assessment: Assessment
    resolved: Resolved
    intents: tuple[PortIntent, ...] = ()
    static: tuple[StaticConfig, ...] = ()

    @property
    def notes(self) -> tuple[str, ...]:
        notes = [] if self.resolved.note is None else [self.resolved.note]
        for config in self.static:
            notes.append(
                f"{config.describe()} (not configured yet: `multihome agent` "
                "configures it; the plan below assumes it)"
            )
            notes.extend(config.notes)
        return tuple(notes)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.resolved.used,
            "origin": self.resolved.origin,
            "ports": [i.to_json() for i in self.intents],
            "static": [
                {
                    "interface": c.ifname,
                    "addresses": [str(a.interface) for a in c.addresses],
                    "routes": [r.to_json() for r in c.routes],
                }
                for c in self.static
            ],
        }


def sourced_assessment(
    backend: Backend,
    config: Config,
    source: str,
    location: str | None = None,
    retry: Retry | None = None,
    leases: LeaseReader | None = None,
) -> SourcedAssessment:
    """Read the kernel, add what the metadata says DHCP-disabled ports should have, and plan
    with the ports' own facts (``leases``, and the metadata's declarations).

    Raises InputError for malformed metadata and MetadataUnavailable when ``source`` is
    ``openstack`` and there is none; reads only, changes nothing.
    """
    state = backend.read()
    resolved = resolve(source, state, location, retry)
    reader = leases
    if resolved.metadata is None:
        return SourcedAssessment(Assessment.of(state, config, gather(state, reader)), resolved)
    data = resolved.metadata.network
    static = pending_static(state, data)
    view = augment(state, static)
    facts = gather(view, reader, data, resolved.metadata.origin)
    return SourcedAssessment(
        Assessment.of(view, config, facts), resolved, intents(state, data), static
    )
