"""OpenStack ``network_data.json`` and ``meta_data.json``, parsed at the boundary.

The raw JSON never leaves this module: :func:`parse_network_data` turns the bytes into frozen,
canonical objects through the boundary reader (:mod:`multihome.reader`) or raises
:class:`~multihome.errors.InputError` naming the source, the JSON path and the fix. Hostile
input (oversized, deeply nested, duplicate keys, wrong types, absurd counts, a network type
Nova does not write) is rejected the same way; nothing here has side effects.

The format (what Nova writes, ``nova/virt/netutils.py``)::

    {"links":    [{"id": "tapX", "type": "ovs", "ethernet_mac_address": "fa:16:3e:..",
                   "mtu": 1450, "vif_id": "<port uuid>"}],
     "networks": [{"id": "network0", "type": "ipv4_dhcp", "link": "tapX",
                   "network_id": "<uuid>"},
                  {"id": "network1", "type": "ipv4", "link": "tapY",
                   "ip_address": "192.168.0.120", "netmask": "255.255.255.0",
                   "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0",
                               "gateway": "192.168.0.1"}],
                   "network_id": "<uuid>", "services": [{"type": "dns", "address": ".."}]}],
     "services": [{"type": "dns", "address": "8.8.8.8"}]}

A network of type ``ipv4``/``ipv6`` is a subnet with DHCP disabled: the guest must configure
the address itself. ``ipv4_dhcp`` and ``ipv6_dhcp`` (an IPv6 subnet with DHCP and no address
mode) are configured by DHCP and carry no address. An IPv6 subnet with an address mode is
``ipv6_slaac``, ``ipv6_dhcpv6-stateful`` or ``ipv6_dhcpv6-stateless``: configured by router
advertisements (and DHCPv6), yet Nova writes its address (the EUI-64 one for SLAAC), its
netmask (``ffff:ffff:ffff:ffff::``), its routes (the default ``::``/``::`` via the subnet's
gateway) and its DNS servers, as for a static network; they are parsed the same way::

    {"id": "network1", "type": "ipv6_slaac", "link": "tapX",
     "ip_address": "2001:db8:0:1:f816:3eff:fe12:3456", "netmask": "ffff:ffff:ffff:ffff::",
     "routes": [{"network": "::", "netmask": "::", "gateway": "2001:db8:0:1::1"}],
     "network_id": "<uuid>", "services": []}
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from multihome.model import IPAddress, IPInterface, IPNetwork, Ordered, ordered
from multihome.reader import Node, json_document, shown

#: Counts beyond these are refused (a VM has at most a few dozen ports).
MAX_LINKS = 512
MAX_NETWORKS = 2048
MAX_ROUTES = 1024
MAX_SERVICES = 256
MAX_ID = 255

STATIC_TYPES = frozenset({"ipv4", "ipv6"})
DHCP_TYPES = frozenset(
    {"ipv4_dhcp", "ipv6_dhcp", "ipv6_slaac", "ipv6_dhcpv6-stateful", "ipv6_dhcpv6-stateless"}
)
NETWORK_TYPES = STATIC_TYPES | DHCP_TYPES
#: DHCP-configured types for which Nova writes the address and routes too.
ADDRESSED_TYPES = frozenset({"ipv6_slaac", "ipv6_dhcpv6-stateful", "ipv6_dhcpv6-stateless"})
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_FIX = "the metadata is malformed; check the port in Neutron, or use --source kernel"


@ordered
@dataclass(frozen=True)
class MetaRoute(Ordered):
    """A route of a static network: ``network`` via ``gateway``."""

    network: IPNetwork
    gateway: IPAddress

    @property
    def is_default(self) -> bool:
        return self.network.prefixlen == 0


@dataclass(frozen=True)
class MetaLink:
    """A guest NIC (or VLAN/bond) as the metadata describes it."""

    id: str
    type: str
    mac: str | None
    """Lower-case MAC (``ethernet_mac_address``, or ``vlan_mac_address`` for VLANs)."""
    mtu: int | None = None
    vif_id: str | None = None
    """The Neutron port id."""
    vlan_link: str | None = None
    vlan_id: int | None = None


@dataclass(frozen=True)
class MetaNetwork:
    """One subnet on one link: DHCP-configured, or static with its address and routes."""

    id: str
    type: str
    link: str
    address: IPInterface | None = None
    """The port's fixed IP with the subnet's prefix (static networks, and the IPv6 networks
    with an address mode, :data:`ADDRESSED_TYPES`)."""
    routes: tuple[MetaRoute, ...] = ()
    network_id: str | None = None
    dns: tuple[IPAddress, ...] = ()

    @property
    def static(self) -> bool:
        return self.type in STATIC_TYPES

    @property
    def dhcp(self) -> bool:
        return self.type in DHCP_TYPES

    @property
    def family(self) -> int:
        return 6 if self.type.startswith("ipv6") else 4

    @property
    def gateway(self) -> IPAddress | None:
        for route in self.routes:
            if route.is_default:
                return route.gateway
        return None


@dataclass(frozen=True)
class NetworkData:
    """The parsed ``network_data.json``."""

    links: tuple[MetaLink, ...] = ()
    networks: tuple[MetaNetwork, ...] = ()
    dns: tuple[IPAddress, ...] = ()

    def link_by_mac(self, mac: str | None) -> MetaLink | None:
        if not mac:
            return None
        mac = mac.lower()
        for link in self.links:
            if link.mac == mac:
                return link
        return None

    def networks_of(self, link_id: str) -> tuple[MetaNetwork, ...]:
        return tuple(n for n in self.networks if n.link == link_id)

    @property
    def macs(self) -> frozenset[str]:
        return frozenset(link.mac for link in self.links if link.mac)


@dataclass(frozen=True)
class MetaData:
    """The few fields of ``meta_data.json`` multihome uses (for messages and status)."""

    uuid: str | None = None
    name: str | None = None
    hostname: str | None = None


def parse_network_data(raw: bytes, source: str) -> NetworkData:
    """Parse ``network_data.json`` (named ``source`` in messages)."""
    return _network_data(json_document(raw, source, remedy=_FIX))


def parse_meta_data(raw: bytes, source: str) -> MetaData:
    """Parse ``meta_data.json``; only a few optional string fields are read."""
    top = json_document(raw, source, remedy=_FIX).mapping()
    return MetaData(
        uuid=_opt_str(top["uuid"]), name=_opt_str(top["name"]), hostname=_opt_str(top["hostname"])
    )


def _string(node: Node) -> str:
    value = node.value
    if not isinstance(value, str) or not value or len(value) > MAX_ID:
        raise node.fail(
            f"expected a non-empty string of at most {MAX_ID} characters, got {node.shown}"
        )
    return value


def _opt_str(node: Node) -> str | None:
    return None if node.absent else _string(node)


def _opt_int(node: Node, low: int, high: int) -> int | None:
    return None if node.absent else node.integer(low, high)


def _mac(node: Node) -> str:
    if not isinstance(node.value, str) or not _MAC.match(node.value.lower()):
        raise node.fail(f"{node.shown} is not a MAC address")
    return node.value.lower()


def _prefix(node: Node, family: int, mask: object = None) -> int:
    """The prefix length a netmask (``255.255.255.0``) or a length (``24``, ``"24"``) gives."""
    mask = node.value if mask is None else mask
    if isinstance(mask, int) and not isinstance(mask, bool):
        if 0 <= mask <= (32 if family == 4 else 128):
            return mask
        raise node.fail(f"prefix length {mask} is out of range")
    if isinstance(mask, str) and mask.isdigit() and len(mask) <= 3:
        return _prefix(node, family, int(mask))
    address = Node(node.origin, mask, node.path, node.mark).address(family)
    bits = int(address)
    width = address.max_prefixlen
    length = bin(bits).count("1")
    if bits != ((1 << width) - 1) ^ ((1 << (width - length)) - 1):
        raise node.fail(f"{mask} is not a contiguous netmask")
    return length


def _network_data(document: Node) -> NetworkData:
    top = document.mapping()
    links: list[MetaLink] = []
    seen_ids: set[str] = set()
    seen_macs: dict[str, str] = {}
    for node in top["links"].seq(limit=MAX_LINKS):
        link = _link(node)
        entry = node.mapping()
        if link.id in seen_ids:
            raise entry["id"].fail(f"{link.id!r} is used twice")
        seen_ids.add(link.id)
        if link.mac and link.type != "vlan":
            if link.mac in seen_macs:
                raise entry["ethernet_mac_address"].fail(
                    f"{link.mac} is also link {seen_macs[link.mac]!r}'s MAC"
                )
            seen_macs[link.mac] = link.id
        links.append(link)
    networks: list[MetaNetwork] = []
    for node in top["networks"].seq(limit=MAX_NETWORKS):
        network = _network(node)
        if network.link not in seen_ids:
            raise node.mapping()["link"].fail(f"{network.link!r} is not the id of any link")
        networks.append(network)
    return NetworkData(links=tuple(links), networks=tuple(networks), dns=_services(top["services"]))


def _link(node: Node) -> MetaLink:
    entry = node.mapping()
    kind = _string(entry["type"])
    mac_node = entry["vlan_mac_address" if kind == "vlan" else "ethernet_mac_address"]
    return MetaLink(
        id=_string(entry["id"]),
        type=kind,
        mac=None if mac_node.absent else _mac(mac_node),
        mtu=_opt_int(entry["mtu"], 68, 65535),
        vif_id=_opt_str(entry["vif_id"]),
        vlan_link=_opt_str(entry["vlan_link"]),
        vlan_id=_opt_int(entry["vlan_id"], 0, 4095),
    )


def _network(node: Node) -> MetaNetwork:
    entry = node.mapping()
    net_id = _string(entry["id"])
    kind = _string(entry["type"])
    link = _string(entry["link"])
    network_id = _opt_str(entry["network_id"])
    if kind not in NETWORK_TYPES:
        raise entry["type"].fail(
            f"network {net_id!r} has type {shown(kind)}, which is none of "
            f"{', '.join(sorted(NETWORK_TYPES))}"
        )
    ip_node = entry["ip_address"]
    if kind not in STATIC_TYPES and (kind not in ADDRESSED_TYPES or ip_node.absent):
        # configured by DHCP or SLAAC, and no address given
        return MetaNetwork(id=net_id, type=kind, link=link, network_id=network_id)
    family = 6 if kind.startswith("ipv6") else 4
    if isinstance(ip_node.value, str) and "/" in ip_node.value:
        text, _, length = ip_node.value.partition("/")
        address = Node(ip_node.origin, text, ip_node.path).address(family)
        prefix = _prefix(ip_node, family, length)
    else:
        address = ip_node.address(family)
        if entry["netmask"].absent:
            raise entry["netmask"].fail("a static network needs a netmask")
        prefix = _prefix(entry["netmask"], family)
    routes = [_route(item, family) for item in entry["routes"].seq(limit=MAX_ROUTES)]
    return MetaNetwork(
        id=net_id,
        type=kind,
        link=link,
        address=ipaddress.ip_interface(f"{address}/{prefix}"),
        routes=tuple(sorted(set(routes))),
        network_id=network_id,
        dns=_services(entry["services"]),
    )


def _route(node: Node, family: int) -> MetaRoute:
    entry = node.mapping()
    destination = entry["network"].address(family)
    prefix = _prefix(entry["netmask"], family)
    gateway = entry["gateway"].address(family)
    network = ipaddress.ip_network(f"{destination}/{prefix}", strict=False)
    return MetaRoute(network=network, gateway=gateway)


def _services(node: Node) -> tuple[IPAddress, ...]:
    found: list[IPAddress] = []
    for item in node.seq(limit=MAX_SERVICES):
        entry = item.mapping()
        if entry["type"].value == "dns":
            found.append(entry["address"].address())
    return tuple(found)
