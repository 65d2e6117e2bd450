"""Where the facts about the ports come from: the kernel alone, or OpenStack metadata too.

``kernel``: what the kernel has is all there is. ``openstack``: ``network_data.json`` (config
drive or metadata service) is matched to the kernel's links by MAC and adds what DHCP-disabled
ports should have. ``auto``: OpenStack metadata when a config drive is present or the host
looks like an OpenStack guest, else the kernel. Metadata only ever adds; missing, partial or
unreadable metadata means "use the kernel's view" (auto) or an error that changes nothing
(openstack), never a deletion.
"""

from __future__ import annotations

import importlib
import ipaddress
from pathlib import Path

from multihome.errors import MetadataUnavailable, MultihomeError
from multihome.values import frozen

TYPE_CHECKING = False  # typing is for the type checker only (start-up time)
if TYPE_CHECKING:
    from typing import Any, Literal

    from multihome.model import HostState
    from multihome.source.network_data import (
        MetaData,
        MetaLink,
        MetaNetwork,
        MetaRoute,
        NetworkData,
        parse_meta_data,
        parse_network_data,
    )
    from multihome.source.ports import (
        PortIntent,
        StaticConfig,
        augment,
        intents,
        pending_static,
    )
    from multihome.source.readers import (
        METADATA_URL,
        Metadata,
        Retry,
        find_config_drive,
        read_config_drive,
        read_metadata,
        read_service,
    )

#: Re-exported name -> its module, imported on first use (PEP 562): ``apply`` reads leases
#: (``multihome.source.leases``) on every run, and importing a submodule runs this file, so
#: it must not import the metadata readers, ``network_data`` and the policy (~30 ms).
_EXPORTS = {
    **dict.fromkeys(
        (
            "MetaData",
            "MetaLink",
            "MetaNetwork",
            "MetaRoute",
            "NetworkData",
            "parse_meta_data",
            "parse_network_data",
        ),
        "multihome.source.network_data",
    ),
    **dict.fromkeys(
        ("PortIntent", "StaticConfig", "augment", "intents", "pending_static"),
        "multihome.source.ports",
    ),
    **dict.fromkeys(
        (
            "METADATA_URL",
            "Metadata",
            "Retry",
            "find_config_drive",
            "read_config_drive",
            "read_metadata",
            "read_service",
        ),
        "multihome.source.readers",
    ),
}

if TYPE_CHECKING:
    SourceName = Literal["auto", "kernel", "openstack"]
SOURCES: tuple[str, ...] = ("auto", "kernel", "openstack")
METADATA_ADDRESS = ipaddress.ip_network("169.254.169.254/32")
DMI_FILES = ("sys_vendor", "product_name", "chassis_asset_tag", "chassis_vendor")

__all__ = [
    "METADATA_URL",
    "SOURCES",
    "MetaData",
    "MetaLink",
    "MetaNetwork",
    "MetaRoute",
    "Metadata",
    "NetworkData",
    "PortIntent",
    "Resolved",
    "Retry",
    "StaticConfig",
    "augment",
    "find_config_drive",
    "intents",
    "looks_like_openstack",
    "parse_meta_data",
    "parse_network_data",
    "pending_static",
    "read_config_drive",
    "read_metadata",
    "read_service",
    "resolve",
]


@frozen
class Resolved:
    """Which source was used, the metadata (if any) and why."""

    used: Literal["kernel", "openstack"]
    metadata: Metadata | None = None
    note: str | None = None

    @property
    def origin(self) -> str | None:
        return None if self.metadata is None else self.metadata.origin


def looks_like_openstack(state: HostState, dmi: Path = Path("/sys/class/dmi/id")) -> bool:
    """Whether the metadata service is worth asking: the DMI strings name OpenStack (as Nova
    sets them), or the kernel has a host route to 169.254.169.254 (Neutron's DHCP option 121)."""
    for name in DMI_FILES:
        try:
            if "openstack" in (dmi / name).read_text(errors="replace").lower():
                return True
        except OSError:
            continue
    return any(r.dst == METADATA_ADDRESS for r in state.routes)


def resolve(
    source: str, state: HostState, location: str | None = None, retry: Retry | None = None
) -> Resolved:
    """Read the metadata ``source`` asks for.

    ``openstack`` raises :class:`MetadataUnavailable` (exit 1, nothing changed) when there is
    none; ``auto`` falls back to the kernel's view and says why in ``note``.
    """
    from multihome.source.readers import (
        METADATA_URL,
        Retry,
        read_config_drive,
        read_metadata,
        read_service,
    )

    if source == "kernel":
        return Resolved("kernel")
    if source == "openstack":
        return Resolved("openstack", read_metadata(location, retry))
    if source != "auto":
        raise MultihomeError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    try:
        if location is not None:
            return Resolved("openstack", read_metadata(location, retry))
        try:
            return Resolved("openstack", read_config_drive())
        except MetadataUnavailable as drive:
            if not looks_like_openstack(state):
                return Resolved("kernel", note=f"not an OpenStack guest ({drive})")
            return Resolved("openstack", read_service(METADATA_URL, retry or Retry(2, 1.0)))
    except MetadataUnavailable as exc:
        return Resolved("kernel", note=f"OpenStack metadata unavailable: {exc}")


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'multihome.source' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
