"""What multihome found in the cloud, as frozen values (no openstacksdk objects past here).

:class:`CloudState` holds the resources carrying the topology's tag (ours), the undeclared
resources the topology names (an external network, the ``default`` security group), and the
untagged resources that share a name with a declared one (never touched; see ``plan``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


def marker(tag: str) -> str:
    """The text multihome puts in the description of what it creates.

    Neutron takes tags only after a resource exists; the marker lets the next
    ``apply`` recognise a resource whose tagging was interrupted and finish the job.
    """
    return f"[{tag}]"


@dataclass(frozen=True)
class FoundNetwork:
    id: str
    name: str
    tags: tuple[str, ...]
    description: str
    port_security: bool
    external: bool


@dataclass(frozen=True)
class FoundSubnet:
    id: str
    name: str
    tags: tuple[str, ...]
    description: str
    network_id: str
    cidr: str
    gateway_ip: str | None
    dhcp: bool
    dns_nameservers: tuple[str, ...]
    ipv6_ra_mode: str | None = None
    ipv6_address_mode: str | None = None


@dataclass(frozen=True)
class FoundRule:
    id: str
    direction: str
    ethertype: str
    protocol: str | None
    port_min: int | None
    port_max: int | None
    remote_ip_prefix: str | None
    remote_group_id: str | None


@dataclass(frozen=True)
class FoundSecurityGroup:
    id: str
    name: str
    tags: tuple[str, ...]
    description: str
    rules: tuple[FoundRule, ...]


@dataclass(frozen=True)
class FoundRouter:
    id: str
    name: str
    tags: tuple[str, ...]
    description: str
    external_network_id: str | None
    interface_subnet_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class FoundPort:
    id: str
    name: str
    tags: tuple[str, ...]
    network_id: str
    fixed_ips: tuple[tuple[str, str], ...]
    """(subnet id, address) pairs."""
    security_group_ids: tuple[str, ...]
    address_pairs: tuple[tuple[str, str], ...]
    """(ip or CIDR, MAC) pairs, as Neutron returns them."""
    port_security: bool
    mac: str
    device_id: str
    device_owner: str


@dataclass(frozen=True)
class FoundFloatingIp:
    id: str
    tags: tuple[str, ...]
    description: str
    floating_network_id: str
    address: str
    port_id: str | None
    fixed_ip: str | None


@dataclass(frozen=True)
class FoundServer:
    id: str
    name: str
    tags: tuple[str, ...]
    status: str
    image_id: str | None
    flavor_name: str | None
    key_name: str | None
    config_drive: bool


@dataclass(frozen=True)
class Untagged:
    """A resource with the name of a declared one but without the topology's tag."""

    kind: str
    name: str
    id: str
    description: str


def _empty() -> Mapping[str, object]:
    return MappingProxyType({})


@dataclass(frozen=True)
class CloudState:
    """A snapshot of the cloud as far as one topology is concerned."""

    tag: str
    networks: tuple[FoundNetwork, ...] = ()
    subnets: tuple[FoundSubnet, ...] = ()
    security_groups: tuple[FoundSecurityGroup, ...] = ()
    routers: tuple[FoundRouter, ...] = ()
    ports: tuple[FoundPort, ...] = ()
    floating_ips: tuple[FoundFloatingIp, ...] = ()
    servers: tuple[FoundServer, ...] = ()
    untagged: tuple[Untagged, ...] = ()
    ext_networks: Mapping[str, FoundNetwork] = field(default_factory=_empty)  # type: ignore[arg-type]
    """Undeclared networks the topology names, by name."""
    ext_subnets: Mapping[str, FoundSubnet] = field(default_factory=_empty)  # type: ignore[arg-type]
    ext_groups: Mapping[str, FoundSecurityGroup] = field(default_factory=_empty)  # type: ignore[arg-type]
    ext_router_subnet_ids: frozenset[str] = frozenset()
    """Undeclared subnets (by id) that have an interface on some router."""
    port_fips: tuple[FoundFloatingIp, ...] = ()
    """Floating IPs found on our ports that do not carry our tag (the user's own)."""
    compute: bool = True
    """Whether the cloud offers a compute endpoint (servers can be planned)."""

    def network_name(self, network_id: str) -> str | None:
        for net in (*self.networks, *self.ext_networks.values()):
            if net.id == network_id:
                return net.name
        return None

    def subnet_name(self, subnet_id: str) -> str | None:
        for sub in (*self.subnets, *self.ext_subnets.values()):
            if sub.id == subnet_id:
                return sub.name
        return None

    def group_name(self, group_id: str) -> str | None:
        for group in (*self.security_groups, *self.ext_groups.values()):
            if group.id == group_id:
                return group.name
        return None
