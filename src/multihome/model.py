"""Frozen, canonical value objects for the network state multihome reads and writes.

Every object has an identity ``key``: two objects with the same key describe the same kernel
entry, so that a plan is set arithmetic (desired minus current, owned-current minus desired).
Addresses are :mod:`ipaddress` objects; the model is family-agnostic (IPv4 and IPv6).
"""

from __future__ import annotations

# The C module: socket.py builds enums of every constant at import (start-up of every command).
import _socket
import ipaddress
import operator
from collections.abc import Callable, Iterable, Mapping
from operator import attrgetter
from types import MappingProxyType

from multihome.values import field, fields, frozen, replace

TYPE_CHECKING = False  # typing is for the type checker only (start-up time)
if TYPE_CHECKING:
    from typing import Any, Generic, TypeVar, overload
else:  # at run time: overloads are replaced by the last definition; no Generic base

    def overload(func: object) -> object:
        return func

    class Generic:
        def __class_getitem__(cls, _item: object) -> type:
            return object


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
PROTO_RA = 9
PROTO_DHCP = 16
#: The protocol number multihome marks its routes and rules with (rt_protos.d/multihome.conf).
PROTO_MULTIHOME = 222
PROTO_NAMES = {
    0: "unspec",
    1: "redirect",
    PROTO_KERNEL: "kernel",
    PROTO_BOOT: "boot",
    PROTO_STATIC: "static",
    PROTO_RA: "ra",
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
RTN_MULTICAST = 5
RTN_THROW = 9
RTN_TYPE_NAMES = {
    1: "unicast",
    2: "local",
    3: "broadcast",
    4: "anycast",
    5: "multicast",
    6: "blackhole",
    7: "unreachable",
    8: "prohibit",
    9: "throw",
    10: "nat",
}

#: Rule actions (fib_rules.h).
FR_ACT_TO_TBL = 1
FR_ACT_GOTO = 2
FR_ACT_NOP = 3
FR_ACT_BLACKHOLE = 6
FR_ACT_UNREACHABLE = 7
FR_ACT_PROHIBIT = 8
RULE_ACTION_NAMES = {
    FR_ACT_TO_TBL: "lookup",
    FR_ACT_GOTO: "goto",
    FR_ACT_NOP: "nop",
    FR_ACT_BLACKHOLE: "blackhole",
    FR_ACT_UNREACHABLE: "unreachable",
    FR_ACT_PROHIBIT: "prohibit",
}
#: IP protocols a rule can name with ``ipproto``.
IPPROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp", 132: "sctp"}


#: Address flags (``IFA_F_*``, linux/if_addr.h) the model keeps: those that decide whether an
#: address can be a source (DAD) and how it came to be. ``IFA_F_SECONDARY`` has the same bit as
#: ``IFA_F_TEMPORARY``: it is IPv4's, kept in :attr:`Address.secondary` instead.
IFA_F_TEMPORARY = 0x01
IFA_F_DADFAILED = 0x08
IFA_F_DEPRECATED = 0x20
IFA_F_TENTATIVE = 0x40
#: No lifetime: configured statically (an admin, a network manager's static address, the
#: agent's from the metadata), never by SLAAC or DHCPv6, which give addresses lifetimes.
IFA_F_PERMANENT = 0x80
IFA_F_NOPREFIXROUTE = 0x200
ADDRESS_FLAGS = {
    IFA_F_TEMPORARY: "temporary",
    IFA_F_DADFAILED: "dadfailed",
    IFA_F_DEPRECATED: "deprecated",
    IFA_F_TENTATIVE: "tentative",
    IFA_F_PERMANENT: "permanent",
    IFA_F_NOPREFIXROUTE: "noprefixroute",
}
ADDRESS_FLAG_MASK = sum(ADDRESS_FLAGS)


_NETWORKS = (ipaddress.IPv4Network, ipaddress.IPv6Network)
_INTERFACES = (ipaddress.IPv4Interface, ipaddress.IPv6Interface)


def ip_text(value: IPAddress | IPNetwork | IPInterface | None) -> str:
    """``str(value)`` (``"None"`` for None), formatted in C: :mod:`ipaddress` formats in
    Python (1 us an IPv4 address, 5 us an IPv6 one), and the identity keys, the JSON and the
    text of every route and rule format thousands at 256 ports. ``inet_ntop`` writes IPv6 as
    RFC 5952 says, as ``str`` does, except the IPv4-mapped and -compatible forms (dotted),
    which go to ``str``; so do scoped addresses."""
    if value is None:
        return "None"
    if type(value) is ipaddress.IPv4Address:  # the most frequent, first
        return _socket.inet_ntoa(value.packed)
    if type(value) is ipaddress.IPv4Network:
        return f"{_socket.inet_ntoa(value.network_address.packed)}/{value.prefixlen}"
    if isinstance(value, _NETWORKS):
        host, suffix = value.network_address, f"/{value.prefixlen}"
    elif isinstance(value, _INTERFACES):
        host, suffix = value.ip, f"/{value.network.prefixlen}"  # (an address's subclass)
    else:
        host, suffix = value, ""
    if isinstance(host, ipaddress.IPv4Address):
        return _socket.inet_ntoa(host.packed) + suffix
    if host.scope_id is None:
        text = _socket.inet_ntop(_socket.AF_INET6, host.packed)
        if "." not in text:
            return text + suffix
    return str(value)


def is_link_local_net(net: IPNetwork) -> bool:
    """``net.is_link_local``: every address of ``net`` is link-local. For IPv6 without
    :mod:`ipaddress`'s way (the network's broadcast address made and both ends tested, a dozen
    Python calls: the policy asks it of every IPv6 route of main): ``fe80::/10`` holds the
    network exactly when its prefix is at least as long and its first ten bits are those
    (tests/unit/test_model.py compares the two)."""
    if net.version == 4:
        return net.is_link_local
    return net.prefixlen >= 10 and int(net.network_address) >> 118 == 0x3FA


def is_multicast_net(net: IPNetwork) -> bool:
    """``net.is_multicast`` (every address of ``net`` is multicast), as
    :func:`is_link_local_net` computes it for IPv6: inside ``ff00::/8``."""
    if net.version == 4:
        return net.is_multicast
    return net.prefixlen >= 8 and int(net.network_address) >> 120 == 0xFF


def need_strict(address: IPAddress) -> bool:
    """The kernel's ``rt6_need_strict``: an IPv6 destination that means something on one
    link only (multicast ``ff00::/8``, link-local ``fe80::/10``, loopback ``::1``). Its
    lookup takes only routes through the output device, and the source of its answer is
    chosen among that device's addresses alone. False for IPv4. On the address's number, as
    :func:`is_link_local_net` (ipaddress's ``is_link_local`` and ``is_multicast`` build a
    network for each test; tests/unit/test_model.py compares the two)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return False
    number = int(address)
    return number >> 120 == 0xFF or number >> 118 == 0x3FA or number == 1


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


if TYPE_CHECKING:
    _T = TypeVar("_T")
else:
    _T = None  # Generic[_T] is object at run time


class cached(Generic[_T]):
    """``functools.cached_property`` without its lock: the value is computed on first use and
    kept in the instance's ``__dict__`` (also of a frozen dataclass), where every later lookup
    finds it without calling the descriptor. Python 3.11's ``cached_property`` takes an
    ``RLock`` on every first use: ~8,000 of them per apply at 256 ports (keys and texts of
    every route and rule). Values are computed from immutable fields; a race between two
    threads computes the same value twice."""

    #: Values live in the instance's ``__dict__``: :func:`multihome.values.frozen` stores
    #: the fields there directly when a class has such a property.
    stores_in_instance_dict = True

    def __init__(self, func: Callable[[Any], _T]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> cached[_T]: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> _T: ...  # noqa: F811
    def __get__(  # noqa: F811 (overload is not typing's at run time: the last one stays)
        self, instance: object, owner: type | None = None
    ) -> _T | cached[_T]:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.func(instance)
        return value


if TYPE_CHECKING:
    _V = TypeVar("_V")


def with_cached(value: _V, **known: object) -> _V:
    """``value`` with some of its :class:`cached` properties given instead of computed: what a
    value made from another one shares with it (the policy's copy of a route into a port's
    table has the route's destination, gateway and source objects, so its texts and family;
    a ``from`` rule's source is an address whose text is known). Formatting them again was a
    third of the policy's ``ip_text`` calls at 256 ports. Only for a new value, whose
    properties nobody has read yet; the caller vouches that each given value is the one the
    property computes (tests/unit/test_policy.py checks the policy's against fresh values)."""
    value.__dict__.update(known)
    return value


class Ordered:
    """The four comparisons of ``dataclass(order=True)``, written once instead of generated per
    class: ``order=True`` compiles four methods from source for every class at import (~17 M
    instructions of every command's start-up for the model's seven). Same meaning: instances of
    the same class compare as the tuples of their ``compare`` fields, in field order; anything
    else is ``NotImplemented``. A subclass is a dataclass decorated with :func:`ordered`."""

    __slots__ = ()

    @staticmethod
    def _order_key(value: Any) -> tuple[Any, ...]:
        """The tuple this class is ordered by (set by :func:`ordered`)."""
        raise TypeError(f"{type(value).__name__} is not decorated with @ordered")

    def __lt__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._order_key(self) < self._order_key(other)
        return NotImplemented

    def __le__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._order_key(self) <= self._order_key(other)
        return NotImplemented

    def __gt__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._order_key(self) > self._order_key(other)
        return NotImplemented

    def __ge__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._order_key(self) >= self._order_key(other)
        return NotImplemented


if TYPE_CHECKING:
    _O = TypeVar("_O", bound=Ordered)


def ordered(cls: type[_O]) -> type[_O]:
    """Give the dataclass ``cls`` (an :class:`Ordered`) its comparison key: the tuple of its
    ``compare`` fields (``attrgetter``, in C; a one-field class gets a one-tuple)."""
    names = [f.name for f in fields(cls) if f.compare]
    key: Callable[[Any], tuple[Any, ...]]
    if len(names) == 1:
        only = names[0]
        key = lambda value: (getattr(value, only),)  # noqa: E731 (one short key function)
    else:
        key = attrgetter(*names)
    # setattr: mypy rejects assigning to a method, even a static one.
    setattr(cls, "_order_key", staticmethod(key))  # noqa: B010 (see above)
    return cls


def order_key(cls: type[Ordered]) -> Callable[[Any], tuple[Any, ...]]:
    """The ``key`` that sorts values of the :func:`ordered` class ``cls`` as their comparisons
    do, in C (``sorted(values)`` calls ``__lt__`` in Python: 2,000 calls for 256 tables)."""
    return cls._order_key


def _hash_by_key(value: Any) -> int:
    """The hash of ``Address``, ``Route`` and ``Rule``: their cached identity key's. The
    generated hash hashed every field again on every set and dict operation (``ipaddress``
    hashes in Python; 16% of the agent's repair). Equal values have equal keys (a key is made
    of the fields). The key is kept in the instance's dict (:class:`cached`), where a lookup
    after the first finds it directly; nothing process-specific is cached, so pickled values
    hash right in another process."""
    return hash(value.key)


def _equal_by_key(value: Any, other: object) -> bool:
    """``==`` of ``Route`` and ``Rule``, whose key holds every compared field (as text where
    it is an address): the cached keys compared, not the fields again (the generated
    ``__eq__`` compared each ``ipaddress`` field in Python, some 230 times per repair at 16
    dual-stack ports: every desired route and rule that is also in the kernel)."""
    if other.__class__ is not value.__class__:
        return NotImplemented  # type: ignore[no-any-return]
    return value is other or value.key == other.key  # type: ignore[attr-defined]


@ordered
@frozen
class Link(Ordered):
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
    group: int = 0
    """The interface group (``ip link set dev X group N``), for ``suppress_ifgroup``."""
    admin_up: bool | None = None
    """Administratively up (``IFF_UP``) whatever the carrier; None when not read."""

    @property
    def key(self) -> str:
        return self.name


#: An address lifetime that never ends (the kernel's ``INFINITY_LIFE_TIME``, ``forever``).
FOREVER = 0xFFFFFFFF


@frozen
class Lifetime:
    """An address's preferred and valid lifetimes, in seconds from now (``ip addr replace ...
    preferred_lft P valid_lft V``; :data:`FOREVER`: never ends). The kernel marks the address
    ``deprecated`` when the preferred one ends and removes it when the valid one does."""

    preferred: int
    valid: int


@ordered
@frozen
class Address(Ordered):
    """An address configured on an interface, with its prefix."""

    ifname: str
    interface: IPInterface
    """Address and prefix (``192.168.0.112/24``)."""
    scope: int = SCOPE_UNIVERSE
    secondary: bool = False
    """A second address in a subnet the interface already has (never a source by choice)."""
    position: int = field(default=0, compare=False)
    """Place in the kernel's list of the interface's addresses (source selection prefers the
    first); 0 when unknown. Not part of the identity."""
    flags: int = field(default=0, compare=False)
    """The ``IFA_F_*`` bits of :data:`ADDRESS_FLAGS` (IPv6: ``temporary``, ``tentative``,
    ``dadfailed``, ``deprecated``; both families: ``permanent``, ``noprefixroute``). Not part of the
    identity: DAD finishing or a lifetime running out changes the flags of the same address."""

    @property
    def tentative(self) -> bool:
        """Duplicate address detection has not passed (pending or failed): the kernel does not
        use it as a source and nobody can reach it yet."""
        return bool(self.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED))

    @property
    def deprecated(self) -> bool:
        """Its preferred lifetime is over (a lease or prefix the server or router no longer
        prefers): still valid, no longer chosen as the source of new connections."""
        return bool(self.flags & IFA_F_DEPRECATED)

    @property
    def usable(self) -> bool:
        """A global (scope universe) address past DAD: a source for traffic to other
        networks (link-local addresses are scope link)."""
        return self.scope == SCOPE_UNIVERSE and not self.tentative

    @property
    def flag_names(self) -> list[str]:
        """The flags as ``ip addr`` names them."""
        return [name for bit, name in ADDRESS_FLAGS.items() if self.flags & bit]

    @cached
    def key(self) -> tuple[str, str]:
        """Identity and sort order (computed once: sorting thousands formats addresses)."""
        return (self.ifname, ip_text(self.interface))

    __hash__ = _hash_by_key

    @cached
    def ip(self) -> IPAddress:
        """The address without its prefix (kept: ``ip_interface.ip`` makes a new one)."""
        return self.interface.ip

    @property
    def network(self) -> IPNetwork:
        return self.interface.network

    @cached
    def family(self) -> int:
        return self.interface.version


@ordered
@frozen
class NextHop(Ordered):
    """One next hop of a multipath route (``nexthop via fe80::1 dev eth0 weight 1``)."""

    gateway: IPAddress | None
    ifname: str | None
    weight: int = 1
    """The kernel hashes flows among the next hops in proportion to their weights."""

    def describe(self) -> str:
        parts = ["nexthop"]
        if self.gateway is not None:
            parts += ["via", str(self.gateway)]
        if self.ifname:
            parts += ["dev", self.ifname]
        return " ".join([*parts, "weight", str(self.weight)])

    def to_json(self) -> dict[str, Any]:
        return {
            "gateway": None if self.gateway is None else str(self.gateway),
            "dev": self.ifname,
            "weight": self.weight,
        }


@ordered
@frozen
class Route(Ordered):
    """A route in some table. Canonical: ``dst`` is a network, gateway None when on-link.

    A multipath route (``RTA_MULTIPATH``) has no ``ifname`` nor ``gateway`` of its own: its
    ``nexthops`` (two or more) say where it goes; a single-path route has none."""

    table: int
    dst: IPNetwork
    ifname: str | None = None
    gateway: IPAddress | None = None
    metric: int = 0
    proto: int = PROTO_BOOT
    scope: int = SCOPE_UNIVERSE
    prefsrc: IPAddress | None = None
    type: int = RTN_UNICAST
    expires: int | None = field(default=None, compare=False)
    """Seconds until the kernel removes the route (an IPv6 route learnt from a router
    advertisement: ``expires 1795sec``); None when it never does. Not part of the identity:
    every advertisement restarts it."""
    nexthops: tuple[NextHop, ...] = ()
    """A multipath route's next hops, in the kernel's order; empty for a single path."""

    @cached
    def family(self) -> int:
        return self.dst.version

    @property
    def multipath(self) -> bool:
        return bool(self.nexthops)

    @property
    def paths(self) -> tuple[NextHop, ...]:
        """The next hops: a multipath route's, or the single path's own (weight 1)."""
        return self.nexthops or (NextHop(self.gateway, self.ifname),)

    @property
    def devices(self) -> tuple[str, ...]:
        """The devices the route goes through (one, or a multipath route's several)."""
        return tuple(hop.ifname for hop in self.paths if hop.ifname)

    def through(self, hop: NextHop) -> Route:
        """The single-path route of ``hop``: the same destination, table, metric and
        protocol through that next hop alone (what a multipath route is for one port)."""
        return replace(self, ifname=hop.ifname, gateway=hop.gateway, nexthops=())

    @cached
    def texts(self) -> tuple[str, str, str]:
        """The destination, gateway and preferred source as text (``"None"`` when absent),
        formatted once for the key, the JSON and the ``ip``-style text."""
        return (ip_text(self.dst), ip_text(self.gateway), ip_text(self.prefsrc))

    @cached
    def key(self) -> tuple[Any, ...]:
        """Identity: every attribute (two routes differing in any attribute are different);
        computed once."""
        dst, gateway, prefsrc = self.texts
        key = (
            self.family,
            self.table,
            dst,
            self.metric,
            self.ifname,
            gateway,
            self.proto,
            self.scope,
            prefsrc,
            self.type,
        ) + (
            # a multipath route's next hops join the key only when it has them, so that the
            # keys of single-path routes stay as cheap as they were
            (tuple((str(h.gateway), h.ifname, h.weight) for h in self.nexthops),)
            if self.nexthops
            else ()
        )
        # The order with it, right after it (see order): every route's __dict__ then gets
        # its cached names in one order (texts, family, key, order, then is_default); with
        # two orders (the plan asks is_default before order, the policy's sets the other
        # way) CPython's cached attribute lookups missed on every other route: the plan's
        # text took a third longer.
        self.__dict__.update(key=key, order=_route_order(key))
        return key

    @cached
    def order(self) -> tuple[Any, ...]:
        """Sort order: the key, sortable where one route has no device and another one.

        :func:`sortable`'s order, made without wrapping every item: of the key's items only
        the device can be None (the addresses are texts), so only it is wrapped, ``(0,)`` or
        ``(1, name)``; comparing ``(1, a)`` with ``(1, b)`` is comparing ``a`` with ``b``
        (tests/unit/test_sort_keys.py compares the two orders). Thousands of routes per
        apply are sorted: one tuple each instead of eleven and a comprehension. Stored by
        :attr:`key` as it is made; computed here only for a key given (``with_cached``)."""
        return _route_order(self.key)

    __hash__ = _hash_by_key
    __eq__ = _equal_by_key

    @property
    def slot(self) -> tuple[Any, ...]:
        """What the kernel (IPv4) allows only once: table, destination and metric."""
        return (self.family, self.table, self.texts[0], self.metric)

    @cached
    def is_default(self) -> bool:
        return self.dst.prefixlen == 0

    def describe(self, table_names: Mapping[int, str] | None = None) -> str:
        """``ip route`` style text."""
        dst, gateway, prefsrc = self.texts
        dst = "default" if self.is_default else dst
        parts = [dst] if self.type == RTN_UNICAST else [RTN_TYPE_NAMES.get(self.type, "?"), dst]
        if self.gateway is not None:
            parts += ["via", gateway]
        if self.ifname:
            parts += ["dev", self.ifname]
        parts += ["table", table_label(self.table, table_names)]
        parts += ["proto", PROTO_NAMES.get(self.proto, str(self.proto))]
        if self.scope != SCOPE_UNIVERSE:
            parts += ["scope", SCOPE_NAMES.get(self.scope, str(self.scope))]
        if self.prefsrc is not None:
            parts += ["src", prefsrc]
        if self.metric:
            parts += ["metric", str(self.metric)]
        if self.expires is not None:
            parts += ["expires", f"{self.expires}sec"]
        if self.nexthops:
            parts += [hop.describe() for hop in self.nexthops]
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        dst, gateway, prefsrc = self.texts
        return {
            "table": self.table,
            "dst": dst,
            "dev": self.ifname,
            "gateway": None if self.gateway is None else gateway,
            "metric": self.metric,
            "proto": self.proto,
            "scope": self.scope,
            "prefsrc": None if self.prefsrc is None else prefsrc,
            "type": self.type,
            **({"nexthops": [hop.to_json() for hop in self.nexthops]} if self.nexthops else {}),
        }


@ordered
@frozen
class Rule(Ordered):
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
    ipproto: int | None = None
    """Only packets of this IP protocol (``ipproto tcp``)."""
    sport: tuple[int, int] | None = None
    """Only source ports in this inclusive range (``sport 1000-2000``)."""
    dport: tuple[int, int] | None = None
    """Only destination ports in this inclusive range."""
    uid: tuple[int, int] | None = None
    """Only sockets of users in this inclusive range (``uidrange 1000-1999``)."""
    goto: int | None = None
    """The priority a ``goto`` rule jumps to."""
    l3mdev: bool = False
    """Look up the table of the flow's VRF (``l3mdev``)."""
    suppress_ifgroup: int | None = None
    """Reject a route whose device is in this interface group."""
    invert: bool = False
    """``not``: the rule applies when its selector does *not* match."""
    tos: int = 0
    """Only packets with this TOS (``tos``/``dsfield``); 0 is any."""
    position: int = field(default=0, compare=False)
    """Place in the kernel's list of rules (it keeps rules of one priority in the order they
    were added); 0 when unknown. Not part of the identity."""

    @cached
    def texts(self) -> tuple[str, str]:
        """The source and destination as text (``"None"`` when absent), formatted once for
        the key, the JSON and the ``ip``-style text."""
        return (ip_text(self.src), ip_text(self.dst))

    @cached
    def key(self) -> tuple[Any, ...]:
        """Identity (computed once). The selectors multihome never writes join it only when
        set, so that the keys of multihome's own rules stay as they were."""
        src, dst = self.texts
        base = (
            self.family,
            self.priority,
            self.table,
            src,
            dst,
            self.iifname,
            self.oifname,
            self.suppress_prefixlength,
            self.fwmark,
            self.fwmask,
            self.action,
            self.proto,
        )
        extra = (
            self.ipproto,
            self.sport,
            self.dport,
            self.uid,
            self.goto,
            self.l3mdev,
            self.suppress_ifgroup,
            self.invert,
            self.tos,
        )
        if extra == (None, None, None, None, None, False, None, False, 0):
            return base
        return (*base, tuple(str(item) for item in extra))

    @cached
    def order(self) -> tuple[Any, ...]:
        """Sort order: the key, sortable where one rule has None and another a value.

        :func:`sortable`'s order with only the items that can be None wrapped (the
        interfaces, ``suppress_prefixlength``, the mark and its mask: the addresses are
        texts), as :attr:`Route.order` does (tests/unit/test_sort_keys.py compares them)."""
        key = self.key
        iif, oif, suppress, mark, mask = key[5:10]
        return (
            *key[:5],
            _NONE_FIRST if iif is None else (1, iif),
            _NONE_FIRST if oif is None else (1, oif),
            _NONE_FIRST if suppress is None else (1, suppress),
            _NONE_FIRST if mark is None else (1, mark),
            _NONE_FIRST if mask is None else (1, mask),
            *key[10:],
        )

    __hash__ = _hash_by_key
    __eq__ = _equal_by_key

    @property
    def mark_mask(self) -> int:
        """The mask the kernel applies to the fwmark (all bits when a mark alone is given)."""
        if self.fwmask is not None:
            return self.fwmask
        return 0xFFFFFFFF if self.fwmark else 0

    def describe(self, table_names: Mapping[int, str] | None = None) -> str:
        """``ip rule`` style text."""
        parts = [str(self.priority)]
        if self.invert:
            parts.append("not")
        src, dst = self.texts
        parts += ["from", "all" if self.src is None else _host_text(self.src, src)]
        if self.dst is not None:
            parts += ["to", _host_text(self.dst, dst)]
        if self.tos:
            parts += ["tos", hex(self.tos)]
        if self.fwmark is not None:
            mask = self.fwmask
            parts += [
                "fwmark",
                hex(self.fwmark) + ("" if mask in (None, 0xFFFFFFFF) else f"/{mask:#x}"),
            ]
        if self.iifname:
            parts += ["iif", self.iifname]
        if self.oifname:
            parts += ["oif", self.oifname]
        if self.uid is not None:
            parts += ["uidrange", f"{self.uid[0]}-{self.uid[1]}"]
        if self.ipproto is not None:
            parts += ["ipproto", IPPROTO_NAMES.get(self.ipproto, str(self.ipproto))]
        for name, ports in (("sport", self.sport), ("dport", self.dport)):
            if ports is not None:
                parts += [name, str(ports[0]) if ports[0] == ports[1] else f"{ports[0]}-{ports[1]}"]
        if self.l3mdev:
            parts += ["lookup", "[l3mdev-table]"]
        elif self.action == FR_ACT_TO_TBL:
            parts += ["lookup", table_label(self.table, table_names)]
        elif self.action == FR_ACT_GOTO:
            parts += ["goto", str(self.goto)]
        else:
            parts += [RULE_ACTION_NAMES.get(self.action, f"action {self.action}")]
        if self.suppress_prefixlength is not None:
            parts += ["suppress_prefixlength", str(self.suppress_prefixlength)]
        if self.suppress_ifgroup is not None:
            parts += ["suppress_ifgroup", str(self.suppress_ifgroup)]
        if self.family == 6:
            parts.insert(0, "-6")
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "family": self.family,
            "priority": self.priority,
            "table": self.table,
            "src": None if self.src is None else self.texts[0],
            "dst": None if self.dst is None else self.texts[1],
            "iif": self.iifname,
            "oif": self.oifname,
            "suppress_prefixlength": self.suppress_prefixlength,
            "fwmark": self.fwmark,
            "rule_action": self.action,
            "proto": self.proto,
        }
        extra: dict[str, Any] = {
            "fwmask": self.fwmask,
            "ipproto": self.ipproto,
            "sport": None if self.sport is None else list(self.sport),
            "dport": None if self.dport is None else list(self.dport),
            "uid": None if self.uid is None else list(self.uid),
            "goto": self.goto,
            "l3mdev": self.l3mdev or None,
            "suppress_ifgroup": self.suppress_ifgroup,
            "invert": self.invert or None,
            "tos": self.tos or None,
        }
        data.update({name: value for name, value in extra.items() if value is not None})
        return data


def _route_order(key: tuple[Any, ...]) -> tuple[Any, ...]:
    """:attr:`Route.order` of a route's ``key``: only the device can be None."""
    ifname = key[4]
    return (*key[:4], _NONE_FIRST if ifname is None else (1, ifname), *key[5:])


def _host_text(net: IPNetwork, text: str) -> str:
    """:func:`net_text` of ``net`` from its ``text`` (:func:`ip_text`)."""
    return text.rsplit("/", 1)[0] if net.prefixlen == net.max_prefixlen else text


def net_text(net: IPNetwork) -> str:
    """A network as iproute2 prints it: a host route without its ``/32``."""
    return ip_text(net.network_address if net.prefixlen == net.max_prefixlen else net)


@ordered
@frozen
class Sysctl(Ordered):
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
        A name without a '/' (nearly all) is one ``str.replace`` of its dots, not a split,
        a replace per component and a join (an apply writes 1,024 sysctls at 256 ports).
        """
        name = self.name
        if "/" not in name:
            return name.replace(".", "/")
        return "/".join(part.replace("/", ".") for part in name.split("."))


def conf_sysctl(ifname: str, knob: str, value: object, family: int = 4) -> Sysctl:
    """The per-interface sysctl ``net.ipv{family}.conf.{ifname}.{knob}``."""
    return Sysctl(f"net.ipv{family}.conf.{ifname.replace('.', '/')}.{knob}", str(value))


@ordered
@frozen
class Table(Ordered):
    """A routing table multihome owns: id, name and the interface it serves."""

    id: int
    name: str
    ifname: str


def sortable(key: tuple[Any, ...]) -> tuple[Any, ...]:
    """An identity key that sorts even where one entry has None and another a value (a rule
    with ``iif`` beside one without, at one priority): None first, values as they are."""
    return tuple([_NONE_FIRST if item is None else (1, item) for item in key])


_NONE_FIRST = (0,)
#: The sort key of routes and rules: their cached ``order``, fetched in C (no lambda).
ORDER = operator.attrgetter("order")
#: The sort key of addresses: their cached ``key``.
KEY = operator.attrgetter("key")
if TYPE_CHECKING:
    _Keyed = TypeVar("_Keyed", "Route", "Rule")


def _canonical(values: Iterable[_Keyed]) -> tuple[_Keyed, ...]:
    """Routes or rules one per key, the first met (equal values may differ in what is not
    compared: a route's expiry, a rule's position), sorted by their order: the cached keys
    hashed and compared in C (a set called ``__hash__`` in Python for each, a sort key
    lambda too: some 1,400 calls per read at 16 dual-stack ports)."""
    first = {value.key: value for value in reversed(list(values))}
    return tuple(sorted(first.values(), key=ORDER))


@frozen
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
            # the links' order is theirs (Ordered), its tuples compared in C
            links=tuple(sorted(set(links), key=Link._order_key)),
            addresses=tuple(sorted(set(addresses), key=KEY)),
            routes=_canonical(routes),
            rules=_canonical(rules),
            sysctls=MappingProxyType(dict(sorted((sysctls or {}).items()))),
        )

    def link(self, name: str) -> Link | None:
        for link in self.links:
            if link.name == name:
                return link
        return None

    @cached
    def route_set(self) -> frozenset[Route]:
        """The routes as a set, made once (a repair's plan and its apply both ask)."""
        return frozenset(self.routes)

    @cached
    def rule_set(self) -> frozenset[Rule]:
        """The rules as a set, made once."""
        return frozenset(self.rules)

    @cached
    def _addresses_by_ifname(self) -> dict[tuple[str, int | None], tuple[Address, ...]]:
        """Addresses grouped by interface, and by interface and family, in state order, built
        on first use: the policy asks for each port's addresses of each family several times
        (hosts with 100s of ports)."""
        grouped: dict[tuple[str, int | None], list[Address]] = {}
        for address in self.addresses:
            grouped.setdefault((address.ifname, None), []).append(address)
            grouped.setdefault((address.ifname, address.family), []).append(address)
        return {key: tuple(found) for key, found in grouped.items()}

    def addresses_of(self, ifname: str, family: int | None = None) -> tuple[Address, ...]:
        """The addresses of ``ifname`` (of ``family``, 4 or 6, if given), in state order."""
        return self._addresses_by_ifname.get((ifname, family), ())

    def routes_in(self, table: int) -> tuple[Route, ...]:
        return tuple(r for r in self.routes if r.table == table)
