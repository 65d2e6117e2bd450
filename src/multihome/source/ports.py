"""From metadata to the policy's input: match links by MAC, decide how each port is addressed.

Pure functions only. The metadata never removes anything from the kernel's view: it can only
add what a DHCP-disabled port should have (its fixed address, its subnet route, its gateway),
so missing or partial metadata at worst leaves the kernel's view as it is (docs/design.md, rule 7).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from multihome.facts import Declaration, DeclaredRoute
from multihome.model import (
    PROTO_STATIC,
    SCOPE_LINK,
    SCOPE_UNIVERSE,
    TABLE_MAIN,
    Address,
    HostState,
    IPAddress,
    Link,
    Route,
)
from multihome.policy import is_left_alone
from multihome.source.network_data import MetaNetwork, NetworkData

#: Routes multihome configures from metadata get this metric plus the link's ifindex: higher
#: than DHCP clients' (100, 101, ...), so that a hot-plugged port never becomes the primary.
STATIC_METRIC_BASE = 1000
#: The same for IPv6: above the kernel's router-advertisement routes (1024), since the policy
#: leaves IPv6 defaults in main (design.md section 5, "IPv6"): a static port's default there
#: must never win over the other ports' advertised ones.
STATIC_METRIC_BASE6 = 2048

Mode = Literal["static", "dhcp", "unknown"]
Mode6 = Literal["static", "dhcpv6", "slaac", "unknown"]
#: How a port gets its IPv6 address, by its first IPv6 network's type: ``ipv6`` (DHCP
#: disabled) from the metadata; ``ipv6_dhcp`` (no address mode: Neutron's dnsmasq serves it
#: statefully) and ``ipv6_dhcpv6-stateful`` from a DHCPv6 client; SLAAC otherwise (the
#: address from the router's advertisement, DHCPv6-stateless only for other options).
MODES6: dict[str, Mode6] = {
    "ipv6": "static",
    "ipv6_dhcp": "dhcpv6",
    "ipv6_dhcpv6-stateful": "dhcpv6",
    "ipv6_dhcpv6-stateless": "slaac",
    "ipv6_slaac": "slaac",
}


@dataclass(frozen=True)
class PortIntent:
    """How one kernel link is meant to be addressed, according to the metadata."""

    ifname: str
    mac: str | None
    mode: Mode
    """``static`` (DHCP disabled: configure from metadata), ``dhcp``, or ``unknown`` (the
    metadata does not list this MAC, or lists no IPv4 network for it)."""
    link_id: str | None = None
    port_id: str | None = None
    networks: tuple[MetaNetwork, ...] = ()

    @property
    def static_networks(self) -> tuple[MetaNetwork, ...]:
        return self.static_of(4)

    def static_of(self, family: int) -> tuple[MetaNetwork, ...]:
        """The port's DHCP-disabled networks of ``family`` (types ``ipv4``, ``ipv6``)."""
        return tuple(n for n in self.networks if n.static and n.family == family)

    @property
    def mode6(self) -> Mode6:
        """How the port gets its IPv6 address (:data:`MODES6`; ``unknown``: no IPv6)."""
        first = next((n for n in self.networks if n.family == 6), None)
        return "unknown" if first is None else MODES6.get(first.type, "unknown")

    def to_json(self) -> dict[str, Any]:
        return {
            "interface": self.ifname,
            "mac": self.mac,
            "mode": self.mode,
            "link": self.link_id,
            "port": self.port_id,
            "addresses": [str(n.address) for n in self.static_networks],
            "mode6": self.mode6,
            "ipv6": [
                {
                    "type": n.type,
                    "address": None if n.address is None else str(n.address),
                    "gateway": None if n.gateway is None else str(n.gateway),
                }
                for n in self.networks
                if n.family == 6
            ],
        }


@dataclass(frozen=True)
class StaticConfig:
    """What a DHCP-disabled port needs: addresses and main-table routes (proto static)."""

    ifname: str
    addresses: tuple[Address, ...]
    routes: tuple[Route, ...]
    notes: tuple[str, ...] = ()
    refused: str | None = None
    """Why the metadata's addresses are refused (then there are none): the port stays
    unaddressed."""

    def describe(self) -> str:
        if self.refused is not None:
            return f"{self.ifname}: metadata refused: {self.refused}; the port stays unaddressed"
        addrs = ", ".join(str(a.interface) for a in self.addresses)
        gateways = sorted({str(r.gateway) for r in self.routes if r.gateway is not None})
        via = f" via {', '.join(gateways)}" if gateways else ""
        return f"{self.ifname}: static {addrs}{via} from metadata"


def intents(state: HostState, data: NetworkData) -> tuple[PortIntent, ...]:
    """One intent per VM port of ``state``, matched to the metadata by MAC."""
    found: list[PortIntent] = []
    for link in state.links:
        if is_left_alone(link) or not link.mac:
            continue
        meta = data.link_by_mac(link.mac)
        if meta is None:
            found.append(PortIntent(link.name, link.mac, "unknown"))
            continue
        networks = data.networks_of(meta.id)
        v4 = [n for n in networks if n.family == 4]
        mode: Mode = "unknown"
        if any(n.static for n in v4):
            mode = "static"
        elif any(n.dhcp for n in v4):
            mode = "dhcp"
        found.append(PortIntent(link.name, link.mac, mode, meta.id, meta.vif_id, networks))
    return tuple(found)


def has_ipv4(state: HostState, ifname: str) -> bool:
    return any(a.scope == SCOPE_UNIVERSE for a in state.addresses_of(ifname, 4))


def has_ipv6(state: HostState, ifname: str) -> bool:
    """The port has a global IPv6 address (also one whose DAD still runs)."""
    return any(a.scope == SCOPE_UNIVERSE for a in state.addresses_of(ifname, 6))


def taken_addresses(state: HostState) -> dict[IPAddress, str]:
    """Every address the namespace holds -> the interface holding it."""
    return {a.ip: a.ifname for a in state.addresses}


def refusal(ifname: str, address: Address, taken: Mapping[IPAddress, str]) -> str | None:
    """Why ``address`` must not be given to ``ifname`` (None: it may): another port holds
    it, or it is its subnet's network or broadcast address (not a host's)."""
    iface = address.interface
    owner = taken.get(iface.ip)
    if owner is not None and owner != ifname:
        return f"{iface.ip} is {owner}'s address (a duplicate would break both ports)"
    network = iface.network
    if isinstance(iface, ipaddress.IPv6Interface):
        return _refusal6(iface)
    if network.prefixlen < network.max_prefixlen - 1:  # /31 and /32 have no such addresses
        if iface.ip == network.network_address:
            return f"{iface} is the network address of {network}, not a host's"
        if iface.ip == network.broadcast_address:
            return f"{iface} is the broadcast address of {network}, not a host's"
    return None


def _refusal6(iface: ipaddress.IPv6Interface) -> str | None:
    """Why an IPv6 address is no port's fixed IP: the subnet-router anycast address (RFC
    4291 2.6.1: every router of the prefix answers it), or an address outside any global
    unicast prefix (link-local, multicast, loopback, unspecified, IPv4-mapped, site-local:
    no prefix a router routes to the port)."""
    ip, network = iface.ip, iface.network
    if network.prefixlen < network.max_prefixlen and ip == network.network_address:
        return f"{iface} is the subnet-router anycast address of {network}, not a host's"
    kinds = (
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("loopback", ip.is_loopback),
        ("unspecified", ip.is_unspecified),
        ("IPv4-mapped", ip.ipv4_mapped is not None),
        ("site-local", ip.is_site_local),
    )
    kind = next((name for name, found in kinds if found), None)
    if kind is not None:
        return f"{iface} is a {kind} address, outside any global prefix a router routes here"
    return None


def static_config(
    link: Link,
    intent: PortIntent,
    taken: Mapping[IPAddress, str] | None = None,
    family: int = 4,
) -> StaticConfig:
    """The addresses and routes ``link`` should get from its static networks of ``family``,
    or none at all (``refused`` says why) when one of the addresses is another port's
    (``taken``: address -> interface, :func:`taken_addresses`) or no host's (:func:`refusal`).

    IPv4 routes carry the address as their source; IPv6 ones cannot (the kernel refuses a
    source address whose DAD still runs) and get :data:`STATIC_METRIC_BASE6`."""
    networks = intent.static_of(family)
    for network in networks:
        assert network.address is not None  # static networks always carry one
        why = refusal(link.name, Address(link.name, network.address), taken or {})
        if why is not None:
            return StaticConfig(link.name, (), (), (), refused=why)
    metric = (STATIC_METRIC_BASE if family == 4 else STATIC_METRIC_BASE6) + link.index
    addresses: list[Address] = []
    routes: list[Route] = []
    notes: list[str] = []
    for network in networks:
        assert network.address is not None  # static networks always carry one
        iface = network.address
        source = iface.ip if family == 4 else None
        addresses.append(Address(link.name, iface))
        routes.append(
            Route(
                table=TABLE_MAIN,
                dst=iface.network,
                ifname=link.name,
                metric=metric,
                proto=PROTO_STATIC,
                scope=SCOPE_LINK if family == 4 else SCOPE_UNIVERSE,
                prefsrc=source,
            )
        )
        for meta_route in network.routes:
            if not on_link(meta_route.gateway, iface):
                notes.append(
                    f"{link.name}: route {meta_route.network} via "
                    f"{meta_route.gateway} skipped: the gateway is not on "
                    f"{iface.network}"
                )
                continue
            routes.append(
                Route(
                    table=TABLE_MAIN,
                    dst=meta_route.network,
                    ifname=link.name,
                    gateway=meta_route.gateway,
                    metric=metric,
                    proto=PROTO_STATIC,
                    prefsrc=source,
                )
            )
    return StaticConfig(link.name, tuple(addresses), tuple(sorted(set(routes))), tuple(notes))


def on_link(gateway: IPAddress, iface: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> bool:
    """A gateway the port reaches directly: on the address's network (IPv6: or link-local,
    as a router's own address on every link is)."""
    return gateway in iface.network or (iface.version == 6 and gateway.is_link_local)


def declarations(state: HostState, data: NetworkData, origin: str) -> dict[str, Declaration]:
    """What the metadata declares for each DHCP-disabled port: the routes of its static
    networks whose gateway is on the network (the port's own facts, like a lease's)."""
    found: dict[str, Declaration] = {}
    for intent in intents(state, data):
        networks = intent.static_networks
        if intent.mode != "static" or not networks:
            continue
        routes = sorted(
            {
                DeclaredRoute(r.network, r.gateway)
                for n in networks
                for r in n.routes
                if n.address is not None and r.gateway in n.address.network
            }
        )
        address = networks[0].address
        found[intent.ifname] = Declaration(
            intent.ifname,
            None if address is None else address.ip,
            tuple(routes),
            f"network_data.json ({origin})",
        )
    return found


def declarations6(state: HostState, data: NetworkData, origin: str) -> dict[str, Declaration]:
    """What the metadata declares for each port's IPv6, whatever its IPv4 mode: the first
    IPv6 network that carries an address (static, SLAAC or DHCPv6: Nova writes it for all
    three) and the routes of the port's IPv6 networks whose gateway is on-link (inside the
    network, or link-local). A DHCP-disabled network (``ipv6``) is ``static``: no router
    advertisement configures it, the metadata's gateway is the port's default."""
    found: dict[str, Declaration] = {}
    for intent in intents(state, data):
        networks = [n for n in intent.networks if n.family == 6 and n.address is not None]
        if not networks:
            continue
        routes = sorted(
            {
                DeclaredRoute(r.network, r.gateway)
                for n in networks
                for r in n.routes
                if n.address is not None and on_link(r.gateway, n.address)
            }
        )
        address = networks[0].address
        assert address is not None
        found[intent.ifname] = Declaration(
            intent.ifname,
            address.ip,
            tuple(routes),
            f"network_data.json ({origin}, IPv6)",
            static=networks[0].static,
        )
    return found


def pending_static(state: HostState, data: NetworkData) -> tuple[StaticConfig, ...]:
    """Static configuration for the ports that the metadata says are DHCP-disabled and that
    have no address of that family yet (a port that has one is left exactly as it is): per
    port its IPv4 configuration, then its IPv6 one."""
    configs: list[StaticConfig] = []
    taken = taken_addresses(state)
    for intent in intents(state, data):
        link = state.link(intent.ifname)
        if link is None:
            continue
        for family in needs_static(state, intent):
            config = static_config(link, intent, taken, family)
            taken.update((a.ip, a.ifname) for a in config.addresses)
            configs.append(config)
    return tuple(configs)


def needs_static(state: HostState, intent: PortIntent) -> tuple[int, ...]:
    """The families in which the metadata says ``intent``'s port is DHCP-disabled and the
    port has no address yet."""
    families = []
    if intent.mode == "static" and not has_ipv4(state, intent.ifname):
        families.append(4)
    if intent.mode6 == "static" and not has_ipv6(state, intent.ifname):
        families.append(6)
    return tuple(families)


def augment(state: HostState, configs: Iterable[StaticConfig]) -> HostState:
    """``state`` as it will be once ``configs`` are configured (links up, addresses, routes):
    the policy's input for ``plan --source openstack``. Only adds; never removes; a refused
    configuration adds nothing."""
    configs = tuple(c for c in configs if c.refused is None)
    if not configs:
        return state
    names = {c.ifname for c in configs}
    links = [replace(link, up=True) if link.name in names else link for link in state.links]
    addresses = list(state.addresses)
    routes = list(state.routes)
    taken = {r.slot for r in routes}
    for config in configs:
        addresses.extend(config.addresses)
        routes.extend(r for r in config.routes if r.slot not in taken)
    return HostState.build(links, addresses, routes, state.rules, state.sysctls)
