"""OpenStack ``network_data.json`` and ``meta_data.json``, parsed at the boundary.

The raw JSON never leaves this module: :func:`parse_network_data` turns the bytes into frozen,
canonical objects or raises :class:`~multihome.errors.InputError` naming the source, the JSON
path and the fix. Hostile input (oversized, deeply nested, wrong types, absurd counts) is
rejected the same way; nothing here has side effects.

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
the address itself. ``ipv4_dhcp``, ``ipv6_dhcp``, ``ipv6_slaac`` and ``ipv6_dhcpv6-*`` are
configured by DHCP/SLAAC.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from multihome.errors import InputError
from multihome.model import IPAddress, IPInterface, IPNetwork

#: Larger documents are refused: Nova's are a few KiB even with many ports.
MAX_BYTES = 1 << 20
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
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_FIX = "the metadata is malformed; check the port in Neutron, or use --source kernel"


@dataclass(frozen=True, order=True)
class MetaRoute:
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
    """The port's fixed IP with the subnet's prefix (static networks only)."""
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


def load_json(raw: bytes, source: str) -> Any:
    """Decode ``raw`` as a JSON document, refusing oversized or hostile input cleanly."""
    if len(raw) > MAX_BYTES:
        raise InputError(
            f"{source}: {len(raw)} bytes is more than the {MAX_BYTES} bytes a "
            f"metadata document may have; {_FIX}"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{source}: not UTF-8 text (byte {exc.start}); {_FIX}") from exc
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{source}:{exc.lineno}:{exc.colno}: malformed JSON ({exc.msg}); {_FIX}"
        ) from exc
    except RecursionError as exc:
        raise InputError(f"{source}: JSON nested too deeply; {_FIX}") from exc
    except ValueError as exc:  # NaN/Infinity, huge integer literals
        raise InputError(f"{source}: {exc}; {_FIX}") from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_network_data(raw: bytes, source: str) -> NetworkData:
    """Parse ``network_data.json`` (named ``source`` in messages)."""
    return _Parser(source).network_data(load_json(raw, source))


def parse_meta_data(raw: bytes, source: str) -> MetaData:
    """Parse ``meta_data.json``; only a few optional string fields are read."""
    data = load_json(raw, source)
    parser = _Parser(source)
    top = parser.mapping(data, "(top level)")
    return MetaData(
        uuid=parser.opt_str(top, "uuid", "uuid"),
        name=parser.opt_str(top, "name", "name"),
        hostname=parser.opt_str(top, "hostname", "hostname"),
    )


class _Parser:
    """Typed accessors; every failure is an InputError naming the source and JSON path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> InputError:
        return InputError(f"{self.source}: {where}: {problem}; {_FIX}")

    def mapping(self, value: object, where: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected an object, got {_kind(value)}")
        return value

    def array(self, top: Mapping[str, Any], key: str, where: str, limit: int) -> list[Any]:
        value = top.get(key, [])
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list, got {_kind(value)}")
        if len(value) > limit:
            raise self.fail(where, f"{len(value)} entries is more than {limit}")
        return value

    def string(self, top: Mapping[str, Any], key: str, where: str) -> str:
        value = top.get(key)
        if not isinstance(value, str) or not value or len(value) > MAX_ID:
            raise self.fail(
                where,
                f"expected a non-empty string of at most {MAX_ID} characters, got {_short(value)}",
            )
        return value

    def opt_str(self, top: Mapping[str, Any], key: str, where: str) -> str | None:
        if top.get(key) is None:
            return None
        return self.string(top, key, where)

    def opt_int(
        self, top: Mapping[str, Any], key: str, where: str, low: int, high: int
    ) -> int | None:
        value = top.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(where, f"expected an integer from {low} to {high}, got {_short(value)}")
        return value

    def mac(self, value: object, where: str) -> str:
        if not isinstance(value, str) or not _MAC.match(value.lower()):
            raise self.fail(where, f"{_short(value)} is not a MAC address")
        return value.lower()

    def ip(self, value: object, where: str, family: int | None = None) -> IPAddress:
        try:
            if not isinstance(value, str) or len(value) > 64:
                raise ValueError
            address = ipaddress.ip_address(value)
        except ValueError:
            raise self.fail(where, f"{_short(value)} is not an IP address") from None
        if family is not None and address.version != family:
            raise self.fail(where, f"{value} is not an IPv{family} address")
        return address

    def prefix(self, mask: object, where: str, family: int) -> int:
        if isinstance(mask, int) and not isinstance(mask, bool):
            if 0 <= mask <= (32 if family == 4 else 128):
                return mask
            raise self.fail(where, f"prefix length {mask} is out of range")
        if isinstance(mask, str) and mask.isdigit() and len(mask) <= 3:
            return self.prefix(int(mask), where, family)
        address = self.ip(mask, where, family)
        bits = int(address)
        width = address.max_prefixlen
        length = bin(bits).count("1")
        if bits != ((1 << width) - 1) ^ ((1 << (width - length)) - 1):
            raise self.fail(where, f"{mask} is not a contiguous netmask")
        return length

    def network_data(self, data: object) -> NetworkData:
        top = self.mapping(data, "(top level)")
        links: list[MetaLink] = []
        seen_ids: set[str] = set()
        seen_macs: dict[str, str] = {}
        for index, raw in enumerate(self.array(top, "links", "links", MAX_LINKS)):
            link = self.link(raw, f"links[{index}]")
            if link.id in seen_ids:
                raise self.fail(f"links[{index}].id", f"{link.id!r} is used twice")
            seen_ids.add(link.id)
            if link.mac and link.type != "vlan":
                if link.mac in seen_macs:
                    raise self.fail(
                        f"links[{index}].ethernet_mac_address",
                        f"{link.mac} is also link {seen_macs[link.mac]!r}'s MAC",
                    )
                seen_macs[link.mac] = link.id
            links.append(link)
        networks: list[MetaNetwork] = []
        for index, raw in enumerate(self.array(top, "networks", "networks", MAX_NETWORKS)):
            network = self.network(raw, f"networks[{index}]")
            if network.link not in seen_ids:
                raise self.fail(
                    f"networks[{index}].link", f"{network.link!r} is not the id of any link"
                )
            networks.append(network)
        dns = self.services(top, "services")
        return NetworkData(links=tuple(links), networks=tuple(networks), dns=dns)

    def link(self, raw: object, where: str) -> MetaLink:
        entry = self.mapping(raw, where)
        link_id = self.string(entry, "id", f"{where}.id")
        kind = self.string(entry, "type", f"{where}.type")
        mac_key = "vlan_mac_address" if kind == "vlan" else "ethernet_mac_address"
        raw_mac = entry.get(mac_key)
        mac = None if raw_mac is None else self.mac(raw_mac, f"{where}.{mac_key}")
        vlan_link = self.opt_str(entry, "vlan_link", f"{where}.vlan_link")
        return MetaLink(
            id=link_id,
            type=kind,
            mac=mac,
            mtu=self.opt_int(entry, "mtu", f"{where}.mtu", 68, 65535),
            vif_id=self.opt_str(entry, "vif_id", f"{where}.vif_id"),
            vlan_link=vlan_link,
            vlan_id=self.opt_int(entry, "vlan_id", f"{where}.vlan_id", 0, 4095),
        )

    def network(self, raw: object, where: str) -> MetaNetwork:
        entry = self.mapping(raw, where)
        net_id = self.string(entry, "id", f"{where}.id")
        kind = self.string(entry, "type", f"{where}.type")
        link = self.string(entry, "link", f"{where}.link")
        network_id = self.opt_str(entry, "network_id", f"{where}.network_id")
        if kind not in STATIC_TYPES:
            # DHCP/SLAAC networks (and types this version does not know) carry no address.
            return MetaNetwork(id=net_id, type=kind, link=link, network_id=network_id)
        family = 6 if kind == "ipv6" else 4
        raw_ip = entry.get("ip_address")
        if isinstance(raw_ip, str) and "/" in raw_ip:
            text, _, length = raw_ip.partition("/")
            address = self.ip(text, f"{where}.ip_address", family)
            prefix = self.prefix(length, f"{where}.ip_address", family)
        else:
            address = self.ip(raw_ip, f"{where}.ip_address", family)
            if entry.get("netmask") is None:
                raise self.fail(f"{where}.netmask", "a static network needs a netmask")
            prefix = self.prefix(entry.get("netmask"), f"{where}.netmask", family)
        interface = ipaddress.ip_interface(f"{address}/{prefix}")
        routes: list[MetaRoute] = []
        for index, route in enumerate(self.array(entry, "routes", f"{where}.routes", MAX_ROUTES)):
            routes.append(self.route(route, f"{where}.routes[{index}]", family))
        return MetaNetwork(
            id=net_id,
            type=kind,
            link=link,
            address=interface,
            routes=tuple(sorted(set(routes))),
            network_id=network_id,
            dns=self.services(entry, f"{where}.services"),
        )

    def route(self, raw: object, where: str, family: int) -> MetaRoute:
        entry = self.mapping(raw, where)
        destination = self.ip(entry.get("network"), f"{where}.network", family)
        prefix = self.prefix(entry.get("netmask"), f"{where}.netmask", family)
        gateway = self.ip(entry.get("gateway"), f"{where}.gateway", family)
        network = ipaddress.ip_network(f"{destination}/{prefix}", strict=False)
        return MetaRoute(network=network, gateway=gateway)

    def services(self, top: Mapping[str, Any], where: str) -> tuple[IPAddress, ...]:
        found: list[IPAddress] = []
        for index, raw in enumerate(self.array(top, "services", where, MAX_SERVICES)):
            entry = self.mapping(raw, f"{where}[{index}]")
            if entry.get("type") == "dns":
                found.append(self.ip(entry.get("address"), f"{where}[{index}].address"))
        return tuple(found)


def _kind(value: object) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
