"""Frozen, canonical value objects for the network state multihome reads and writes.

Every object has an identity ``key``: two objects with the same key describe the same kernel
entry, so that a plan is set arithmetic (desired minus current, owned-current minus desired).
Addresses are :mod:`ipaddress` objects; the model is family-agnostic (IPv4 and IPv6).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

#: Kernel routing table ids with a fixed meaning.
TABLE_UNSPEC = 0
TABLE_DEFAULT = 253
TABLE_MAIN = 254
TABLE_LOCAL = 255
RESERVED_TABLES = frozenset({TABLE_UNSPEC, TABLE_DEFAULT, TABLE_MAIN, TABLE_LOCAL})
TABLE_NAMES = {TABLE_DEFAULT: "default", TABLE_MAIN: "main", TABLE_LOCAL: "local"}

#: Route protocols (rtnetlink.h / rt_protos).
PROTO_KERNEL = 2
PROTO_BOOT = 3
PROTO_STATIC = 4
PROTO_DHCP = 16
#: The protocol number multihome marks its routes and rules with (rt_protos.d/multihome.conf).
PROTO_MULTIHOME = 222
PROTO_NAMES = {
    0: "unspec",
    1: "redirect",
    PROTO_KERNEL: "kernel",
    PROTO_BOOT: "boot",
    PROTO_STATIC: "static",
    PROTO_DHCP: "dhcp",
    PROTO_MULTIHOME: "multihome",
}

#: Route scopes.
SCOPE_UNIVERSE = 0
SCOPE_LINK = 253
SCOPE_HOST = 254
SCOPE_NAMES = {SCOPE_UNIVERSE: "global", SCOPE_LINK: "link", SCOPE_HOST: "host"}

#: Route types.
RTN_UNICAST = 1
RTN_LOCAL = 2
RTN_BROADCAST = 3
RTN_TYPE_NAMES = {1: "unicast", 2: "local", 3: "broadcast", 4: "anycast", 5: "multicast",
                  6: "blackhole", 7: "unreachable", 8: "prohibit", 9: "throw", 10: "nat"}

#: Rule actions.
FR_ACT_TO_TBL = 1


def family_of(value: IPAddress | IPNetwork | IPInterface) -> int:
    """Return 4 or 6."""
    return value.version


def default_network(family: int) -> IPNetwork:
    """The default route's destination for ``family`` (0.0.0.0/0 or ::/0)."""
    return ipaddress.ip_network("0.0.0.0/0" if family == 4 else "::/0")


def table_label(table: int, names: Mapping[int, str] | None = None) -> str:
    """A table's name when one is known, else its number."""
    if names and table in names:
        return names[table]
    return TABLE_NAMES.get(table, str(table))


@dataclass(frozen=True, order=True)
class Link:
    """A network interface."""

    name: str
    """Interface name (``eth1``)."""
    index: int
    """Kernel ifindex; changes across reboots, never used as an identity."""
    mac: str | None = None
    """Link-layer address, lower case, or None for links without one (tunnels)."""
    kind: str | None = None
    """rtnetlink kind (``veth``, ``bridge``, ``vxlan`` ...); None for physical NICs."""
    up: bool = False
    """Administratively up and with carrier (operstate UP or UNKNOWN)."""
    master: str | None = None
    """Name of the bridge/bond this link is enslaved to, if any."""
    loopback: bool = False

    @property
    def key(self) -> str:
        return self.name


@dataclass(frozen=True, order=True)
class Address:
    """An address configured on an interface, with its prefix."""

    ifname: str
    interface: IPInterface
    """Address and prefix (``192.168.0.112/24``)."""
    scope: int = SCOPE_UNIVERSE

    @cached_property
    def key(self) -> tuple[str, str]:
        """Identity and sort order (computed once: sorting thousands formats addresses)."""
        return (self.ifname, str(self.interface))

    @property
    def ip(self) -> IPAddress:
        return self.interface.ip

    @property
    def network(self) -> IPNetwork:
        return self.interface.network

    @property
    def family(self) -> int:
        return self.interface.version


@dataclass(frozen=True, order=True)
class Route:
    """A route in some table. Canonical: ``dst`` is a network, gateway None when on-link."""

    table: int
    dst: IPNetwork
    ifname: str | None = None
    gateway: IPAddress | None = None
    metric: int = 0
    proto: int = PROTO_BOOT
    scope: int = SCOPE_UNIVERSE
    prefsrc: IPAddress | None = None
    type: int = RTN_UNICAST

    @property
    def family(self) -> int:
        return self.dst.version

    @cached_property
    def key(self) -> tuple[Any, ...]:
        """Identity: every attribute (two routes differing in any attribute are different);
        computed once."""
        return (self.family, self.table, str(self.dst), self.metric, self.ifname,
                str(self.gateway), self.proto, self.scope, str(self.prefsrc), self.type)

    @property
    def slot(self) -> tuple[Any, ...]:
        """What the kernel (IPv4) allows only once: table, destination and metric."""
        return (self.family, self.table, str(self.dst), self.metric)

    @property
    def is_default(self) -> bool:
        return self.dst.prefixlen == 0

    def describe(self, table_names: Mapping[int, str] | None = None) -> str:
        """``ip route`` style text."""
        dst = "default" if self.is_default else str(self.dst)
        parts = [dst] if self.type == RTN_UNICAST else [RTN_TYPE_NAMES.get(self.type, "?"), dst]
        if self.gateway is not None:
            parts += ["via", str(self.gateway)]
        if self.ifname:
            parts += ["dev", self.ifname]
        parts += ["table", table_label(self.table, table_names)]
        parts += ["proto", PROTO_NAMES.get(self.proto, str(self.proto))]
        if self.scope != SCOPE_UNIVERSE:
            parts += ["scope", SCOPE_NAMES.get(self.scope, str(self.scope))]
        if self.prefsrc is not None:
            parts += ["src", str(self.prefsrc)]
        if self.metric:
            parts += ["metric", str(self.metric)]
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table, "dst": str(self.dst), "dev": self.ifname,
            "gateway": None if self.gateway is None else str(self.gateway),
            "metric": self.metric, "proto": self.proto, "scope": self.scope,
            "prefsrc": None if self.prefsrc is None else str(self.prefsrc), "type": self.type,
        }


@dataclass(frozen=True, order=True)
class Rule:
    """An ``ip rule``. Canonical: ``src``/``dst`` None mean "all"."""

    family: int
    priority: int
    table: int
    src: IPNetwork | None = None
    dst: IPNetwork | None = None
    iifname: str | None = None
    oifname: str | None = None
    suppress_prefixlength: int | None = None
    fwmark: int | None = None
    fwmask: int | None = None
    action: int = FR_ACT_TO_TBL
    proto: int = PROTO_BOOT

    @cached_property
    def key(self) -> tuple[Any, ...]:
        """Identity and sort order (computed once)."""
        return (self.family, self.priority, self.table, str(self.src), str(self.dst),
                self.iifname, self.oifname, self.suppress_prefixlength, self.fwmark,
                self.fwmask, self.action, self.proto)

    def describe(self, table_names: Mapping[int, str] | None = None) -> str:
        """``ip rule`` style text."""
        parts = [str(self.priority), "from", "all" if self.src is None else net_text(self.src)]
        if self.dst is not None:
            parts += ["to", net_text(self.dst)]
        if self.fwmark is not None:
            parts += ["fwmark", hex(self.fwmark)]
        if self.iifname:
            parts += ["iif", self.iifname]
        if self.oifname:
            parts += ["oif", self.oifname]
        if self.action == FR_ACT_TO_TBL:
            parts += ["lookup", table_label(self.table, table_names)]
        else:
            parts += ["action", str(self.action)]
        if self.suppress_prefixlength is not None:
            parts += ["suppress_prefixlength", str(self.suppress_prefixlength)]
        if self.family == 6:
            parts.insert(0, "-6")
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.family, "priority": self.priority, "table": self.table,
            "src": None if self.src is None else str(self.src),
            "dst": None if self.dst is None else str(self.dst),
            "iif": self.iifname, "oif": self.oifname,
            "suppress_prefixlength": self.suppress_prefixlength,
            "fwmark": self.fwmark, "rule_action": self.action, "proto": self.proto,
        }


def net_text(net: IPNetwork) -> str:
    """A network as iproute2 prints it: a host route without its ``/32``."""
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


@dataclass(frozen=True, order=True)
class Sysctl:
    """A sysctl by its dotted name (``net.ipv4.conf.eth1.arp_ignore``) and its value."""

    name: str
    value: str

    @property
    def key(self) -> str:
        return self.name

    @property
    def path(self) -> str:
        """Path below /proc/sys (``net/ipv4/conf/eth1/arp_ignore``).

        As with sysctl(8), a '/' inside a dotted component stands for a '.' (``eth0/100``).
        """
        return "/".join(part.replace("/", ".") for part in self.name.split("."))


def conf_sysctl(ifname: str, knob: str, value: object, family: int = 4) -> Sysctl:
    """The per-interface sysctl ``net.ipv{family}.conf.{ifname}.{knob}``."""
    return Sysctl(f"net.ipv{family}.conf.{ifname.replace('.', '/')}.{knob}", str(value))


@dataclass(frozen=True, order=True)
class Table:
    """A routing table multihome owns: id, name and the interface it serves."""

    id: int
    name: str
    ifname: str


@dataclass(frozen=True)
class HostState:
    """Everything multihome reads from one network namespace."""

    links: tuple[Link, ...] = ()
    addresses: tuple[Address, ...] = ()
    routes: tuple[Route, ...] = ()
    rules: tuple[Rule, ...] = ()
    sysctls: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def build(
        cls,
        links: Iterable[Link] = (),
        addresses: Iterable[Address] = (),
        routes: Iterable[Route] = (),
        rules: Iterable[Rule] = (),
        sysctls: Mapping[str, str] | None = None,
    ) -> HostState:
        """Canonical construction: sorted, de-duplicated, read-only."""
        return cls(
            links=tuple(sorted(set(links))),
            addresses=tuple(sorted(set(addresses), key=lambda a: a.key)),
            routes=tuple(sorted(set(routes), key=lambda r: r.key)),
            rules=tuple(sorted(set(rules), key=lambda r: r.key)),
            sysctls=MappingProxyType(dict(sorted((sysctls or {}).items()))),
        )

    def link(self, name: str) -> Link | None:
        for link in self.links:
            if link.name == name:
                return link
        return None

    @cached_property
    def _addresses_by_ifname(self) -> dict[str, list[Address]]:
        """Addresses grouped by interface, built on first use (hosts with 100s of ports)."""
        grouped: dict[str, list[Address]] = {}
        for address in self.addresses:
            grouped.setdefault(address.ifname, []).append(address)
        return grouped

    def addresses_of(self, ifname: str, family: int | None = None) -> tuple[Address, ...]:
        return tuple(a for a in self._addresses_by_ifname.get(ifname, ())
                     if family is None or a.family == family)

    def routes_in(self, table: int) -> tuple[Route, ...]:
        return tuple(r for r in self.routes if r.table == table)
