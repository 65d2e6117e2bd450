"""The optional configuration file, ``/etc/multihome/config.yaml``.

Parsed once at the boundary into a frozen :class:`Config`; every error names the file, the
key and the fix. An absent default file means "all defaults"; an absent file given with
``--config`` is an error.

Example::

    primary: eth0                 # default: the interface of the lowest-metric default route
    interfaces:
      include: [eth0, eth1]       # manage only these (also bridges/tunnels, if listed)
      exclude: [eth2]             # never touch these
    tables:
      range: [10000, 10999]       # table ids multihome may use
      names: {eth1: port2}        # table names (default: mh-<interface>)
    priorities:
      range: [10000, 10099]       # the rule-priority band multihome owns
    rules: [onlink, from, oif, iif]
    sysctls:                      # per managed interface; null disables a knob,
                                  # `sysctls: false` all of them (containers)
      rp_filter: 2
      arp_ignore: 1
      arp_announce: 2
      arp_filter: 1
    probe: 198.51.100.10          # off-subnet destination that `verify` resolves
    probe6: 2001:db8:ffff::10     # the same for IPv6 addresses
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from multihome.kerneldigest import SYSCTL_KNOBS
from multihome.model import RESERVED_TABLES, IPAddress
from multihome.values import field, frozen, replace

TYPE_CHECKING = False  # typing is for the type checker only (start-up time)
if TYPE_CHECKING:
    from multihome.reader import Node

RULE_KINDS: tuple[str, ...] = ("onlink", "from", "oif", "iif")
DEFAULT_SYSCTLS: Mapping[str, int | None] = MappingProxyType(
    {"rp_filter": 2, "arp_ignore": 1, "arp_announce": 2, "arp_filter": 1}
)
#: ``sysctls: false``: route without touching /proc/sys (a read-only one in a container).
NO_SYSCTLS: Mapping[str, int | None] = MappingProxyType(dict.fromkeys(SYSCTL_KNOBS))
SYSCTL_RANGES = {
    "rp_filter": (0, 2),
    "arp_ignore": (0, 8),
    "arp_announce": (0, 2),
    "arp_filter": (0, 1),
}
#: Patterns compiled where a file is parsed (``re`` caches them): an apply without a
#: configuration file imports neither the reader nor compiles them.
_IFNAME = r"^[^\s/:]{1,15}$"
_TABLE_NAME = r"^[A-Za-z][A-Za-z0-9_.-]{0,62}$"
_KERNEL_TABLES = ("main", "local", "default", "unspec")
MIN_BAND = 5
DEFAULT_TABLE_RANGE = (10000, 10999)
DEFAULT_PRIORITY_RANGE = (10000, 10099)
DEFAULT_PROBE: IPAddress = ipaddress.ip_address("198.51.100.10")
DEFAULT_PROBE6: IPAddress = ipaddress.ip_address("2001:db8:ffff::10")


@frozen
class Config:
    """Validated configuration; defaults describe the behaviour without a file."""

    primary: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    table_range: tuple[int, int] = DEFAULT_TABLE_RANGE
    table_names: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    priority_range: tuple[int, int] = DEFAULT_PRIORITY_RANGE
    rule_kinds: tuple[str, ...] = RULE_KINDS
    sysctls: Mapping[str, int | None] = field(default_factory=lambda: DEFAULT_SYSCTLS)
    probe: IPAddress = DEFAULT_PROBE
    probe6: IPAddress = DEFAULT_PROBE6
    """The off-link destination `verify` resolves from each IPv6 address."""
    source: str = "(defaults)"
    """Where this configuration came from, for messages."""
    band_claimed: bool = False
    """Not a file key: the agent has already worked in ``priority_range`` (or an apply in
    this namespace used it), so another tool's rule that appears in it later is noted,
    never refused (policy rule 1)."""

    def table_name(self, ifname: str) -> str:
        return self.table_names.get(ifname, f"mh-{ifname}")

    @property
    def sysctls_off(self) -> tuple[str, ...]:
        """The knobs multihome leaves alone (``null``, ``sysctls: false``, ``--no-sysctls``)."""
        return tuple(knob for knob in SYSCTL_KNOBS if self.sysctls.get(knob) is None)

    def without_sysctls(self) -> Config:
        """This configuration routing without any sysctl (``apply --no-sysctls``)."""
        return replace(self, sysctls=NO_SYSCTLS)


def load_config(path: Path | None, *, explicit: bool = False, raw: bytes | None = None) -> Config:
    """Read and validate the configuration file at ``path``.

    With ``explicit`` (the user passed ``--config``) a missing file is an error; otherwise a
    missing default file gives the defaults. ``raw``: the file's bytes, already read (an
    apply parses the very bytes its no-op fingerprint hashes).
    """
    if raw is not None:
        from multihome.reader import decode

        return parse_config(decode(raw, str(path)), str(path))
    if path is None or (not explicit and not os.path.lexists(path)):
        return Config()
    from multihome.reader import read_file

    text = read_file(
        path,
        missing_fix="pass an existing file to --config or omit --config to use the defaults",
        unreadable_fix="check the file's permissions (or run as root)",
    )
    return parse_config(text, str(path))


def parse_config(text: str, source: str) -> Config:
    """Parse the YAML ``text`` (named ``source`` in messages) into a :class:`Config`."""
    from multihome.reader import yaml_document

    document = yaml_document(text, source)
    if document.absent:
        return Config(source=source)
    top = document.mapping(
        {"primary", "interfaces", "tables", "priorities", "rules", "sysctls", "probe", "probe6"}
    )
    primary = None if top["primary"].absent else _ifname(top["primary"])
    include, exclude = _interfaces(top["interfaces"])
    if primary is not None and primary in exclude:
        raise top["primary"].fail(
            f"{primary} is also in interfaces.exclude", "remove it from one of them"
        )
    table_range, table_names = _tables(top["tables"])
    return Config(
        primary=primary,
        include=include,
        exclude=exclude,
        table_range=table_range,
        table_names=MappingProxyType(table_names),
        priority_range=_priorities(top["priorities"]),
        rule_kinds=_rule_kinds(top["rules"]),
        sysctls=MappingProxyType(_sysctls(top["sysctls"])),
        probe=_probe(top["probe"]),
        probe6=_probe(top["probe6"], family=6),
        source=source,
    )


def _ifname(node: Node) -> str:
    return node.matching(
        re.compile(_IFNAME),
        "an interface name",
        "give a name such as eth1 (1-15 characters, no '/', ':' or spaces)",
    )


def _ifnames(node: Node) -> tuple[str, ...]:
    items = node.seq(what="a list of interface names", fix="write e.g. [eth0, eth1]")
    return tuple(_ifname(item) for item in items)


def _interfaces(node: Node) -> tuple[tuple[str, ...], tuple[str, ...]]:
    interfaces = node.mapping({"include", "exclude"}, optional=True)
    include = _ifnames(interfaces["include"])
    exclude = _ifnames(interfaces["exclude"])
    both = sorted(set(include) & set(exclude))
    if both:
        raise node.fail(
            f"include and exclude both list {', '.join(both)}", "keep each interface in one list"
        )
    return include, exclude


def _int_range(node: Node, low: int, high: int) -> tuple[int, int]:
    value = node.value
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise node.fail(f"{node.shown} is not a range", "write [first, last], e.g. [10000, 10999]")
    first, last = int(value[0]), int(value[1])
    if not low <= first <= last <= high:
        raise node.fail(
            f"[{first}, {last}] is out of bounds", f"use first <= last within {low}..{high}"
        )
    return (first, last)


def _tables(node: Node) -> tuple[tuple[int, int], dict[str, str]]:
    tables = node.mapping({"range", "names"}, optional=True)
    table_range = DEFAULT_TABLE_RANGE
    if "range" in tables:
        table_range = _int_range(tables["range"], 1, 2**32 - 1)
        reserved = sorted(t for t in RESERVED_TABLES if table_range[0] <= t <= table_range[1])
        if reserved:
            raise tables["range"].fail(
                f"{list(table_range)} includes reserved table id {reserved[0]} (0 unspec, "
                "253 default, 254 main, 255 local)",
                "choose a range outside them, e.g. [10000, 10999]",
            )
    table_names: dict[str, str] = {}
    names = tables["names"].mapping(optional=True)
    for ifname, name in names.items():
        _ifname(names.key(ifname))
        value = name.value
        if (
            not isinstance(value, str)
            or not re.match(_TABLE_NAME, value)
            or value in _KERNEL_TABLES
        ):
            raise name.fail(
                f"{name.shown} is not a usable table name",
                "use letters, digits, '-', '_' or '.', starting with a letter, and not "
                "main/local/default/unspec",
            )
        table_names[ifname] = value
    if len(set(table_names.values())) != len(table_names):
        raise tables["names"].fail(
            "two interfaces have the same table name", "give each interface its own name"
        )
    return table_range, table_names


def _priorities(node: Node) -> tuple[int, int]:
    if node.absent:
        return DEFAULT_PRIORITY_RANGE
    priorities = node.mapping({"range"})
    priority_range = _int_range(priorities["range"], 1, 32765)
    if priority_range[1] - priority_range[0] + 1 < MIN_BAND:
        raise priorities["range"].fail(
            f"{list(priority_range)} holds fewer than {MIN_BAND} priorities",
            "widen it, e.g. [10000, 10099]",
        )
    return priority_range


def _rule_kinds(node: Node) -> tuple[str, ...]:
    if node.absent:
        return RULE_KINDS
    example = f"write e.g. [{', '.join(RULE_KINDS)}]"
    kinds: list[str] = []
    for item in node.seq(what="a list of rule kinds", fix=example):
        kinds.append(item.text(fix=example))
        if kinds[-1] not in RULE_KINDS:
            raise item.fail(
                f"unknown rule kind {item.shown}", f"choose from {', '.join(RULE_KINDS)}"
            )
    if "from" not in kinds:
        raise node.fail(
            "'from' is required (without it replies leave through the wrong port)",
            "add it to the list",
        )
    return tuple(k for k in RULE_KINDS if k in kinds)


def _sysctls(node: Node) -> dict[str, int | None]:
    if node.value is False:
        return dict(NO_SYSCTLS)
    sysctls = dict(DEFAULT_SYSCTLS)
    for knob, setting in node.mapping(SYSCTL_KNOBS, optional=True).items():
        low, high = SYSCTL_RANGES[knob]
        value = setting.value
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high
        ):
            raise setting.fail(
                f"{setting.shown} is not valid",
                f"use an integer from {low} to {high}, or null to leave it alone",
            )
        sysctls[knob] = value
    return sysctls


def _probe(node: Node, family: int = 4) -> IPAddress:
    """A verification target of ``family`` (``probe``: IPv4, ``probe6``: IPv6) that is routed
    through a gateway (loopback, unspecified, link-local, multicast and broadcast addresses
    never leave through a port's gateway, so every verification would fail)."""
    if node.absent:
        return DEFAULT_PROBE if family == 4 else DEFAULT_PROBE6
    example = DEFAULT_PROBE if family == 4 else DEFAULT_PROBE6
    fix = f"give an off-subnet IPv{family} address reached through the gateways, such as {example}"
    probe = node.address(fix=fix)
    kind = _unroutable(probe)
    if kind:
        raise node.fail(f"{probe} is {kind}: no lookup towards it uses a gateway", fix)
    if probe.version != family:
        key = "probe6" if family == 6 else "probe"
        raise node.fail(f"{probe} is an IPv{probe.version} address; {key} takes IPv{family}", fix)
    return probe


def _unroutable(address: IPAddress) -> str | None:
    """What makes ``address`` useless as a verification target (None: nothing)."""
    kinds = (
        (address.is_loopback, "a loopback address"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address == ipaddress.IPv4Address("255.255.255.255"), "the broadcast address"),
    )
    return next((kind for bad, kind in kinds if bad), None)
