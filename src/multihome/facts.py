"""The port's own facts: what a port's table must hold, from sources that outlive a link flap.

Main is where every DHCP client, network manager and admin writes, so it is the least durable
source of truth there is: a link flap flushes a port's routes from main (and from its table),
and a client may put back only some of them. The policy therefore derives each port's table
from facts that belong to the port itself (docs/design.md, "Port facts"):

* its addresses (in :class:`multihome.model.HostState`): the subnet route exists as long as
  the address does;
* what its DHCP lease or the OpenStack metadata *declares* (:class:`Declaration`): the gateway
  and the classless static routes;
* what was *seen* earlier while the port lived (routes the agent remembers, and multihome's
  own copies already in the port's table, which survive an agent restart).

These are plain values, gathered by the callers (:mod:`multihome.source.leases`,
:mod:`multihome.source.ports`, the agent) and passed to the pure policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from multihome.model import IPAddress, IPNetwork, Ordered, Route, ordered
from multihome.values import field, frozen


@ordered
@frozen
class DeclaredRoute(Ordered):
    """A route a lease or the metadata gives a port: ``dst`` via ``gateway``."""

    dst: IPNetwork
    gateway: IPAddress

    @property
    def is_default(self) -> bool:
        return self.dst.prefixlen == 0


@frozen
class Declaration:
    """What one DHCP lease (or the metadata) says a port's routes are."""

    ifname: str
    address: IPAddress | None
    """The address the lease was given for; it applies only while the port has it."""
    routes: tuple[DeclaredRoute, ...]
    """The lease's routes: its classless static routes (option 121), or else a default via
    its first router (RFC 3442: option 3 is ignored when option 121 is present)."""
    origin: str
    """Where it was read (``dhclient lease /var/lib/dhcp/dhclient.eth1.leases``)."""
    static: bool = False
    """The metadata of a DHCP-disabled network (``ipv6``): nothing else (no router
    advertisement) configures the port, so its gateway is the port's default whenever
    ``main`` has none (IPv6; an IPv4 declaration is always used that way)."""

    @property
    def gateway(self) -> IPAddress | None:
        """The default's gateway, None when the lease gives no default."""
        return next((r.gateway for r in self.routes if r.is_default), None)


def _empty() -> Mapping[str, object]:
    return MappingProxyType({})


@frozen
class PortFacts:
    """Everything beyond the kernel's current view that the policy uses, by interface name."""

    declared: Mapping[str, Declaration] = field(default_factory=_empty)
    """The newest valid lease (or the metadata) of each port."""
    seen: Mapping[str, frozenset[Route]] = field(default_factory=_empty)
    """Routes the port's table held earlier while the port lived (the agent's memory; empty
    after a restart, when multihome's copies in the kernel are the memory)."""
    notes: tuple[str, ...] = ()
    """What gathering the facts noticed (a malformed lease file, say)."""
    declared6: Mapping[str, Declaration] = field(default_factory=_empty)
    """What the metadata declares for each port's IPv6 (``network_data.json``'s ``ipv6*``
    networks): its global address and its routes, the default via the subnet's gateway (a
    global or link-local address; the kernel's RA default goes via the router's link-local
    address). ``declared`` stays IPv4."""


NO_FACTS = PortFacts()
