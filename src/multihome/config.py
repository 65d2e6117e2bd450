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
    sysctls:                      # per managed interface; null disables a knob
      rp_filter: 2
      arp_ignore: 1
      arp_announce: 2
      arp_filter: 1
    probe: 198.51.100.10          # off-subnet destination that `verify` resolves
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from multihome.errors import ConfigError
from multihome.model import RESERVED_TABLES, IPAddress

DEFAULT_CONFIG_PATH = Path("/etc/multihome/config.yaml")
RULE_KINDS: tuple[str, ...] = ("onlink", "from", "oif", "iif")
SYSCTL_KNOBS = ("rp_filter", "arp_ignore", "arp_announce", "arp_filter")
DEFAULT_SYSCTLS: Mapping[str, int | None] = MappingProxyType(
    {"rp_filter": 2, "arp_ignore": 1, "arp_announce": 2, "arp_filter": 1}
)
SYSCTL_RANGES = {"rp_filter": (0, 2), "arp_ignore": (0, 8), "arp_announce": (0, 2),
                 "arp_filter": (0, 1)}
_IFNAME = re.compile(r"^[^\s/:]{1,15}$")
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,62}$")
MIN_BAND = 5
DEFAULT_TABLE_RANGE = (10000, 10999)
DEFAULT_PRIORITY_RANGE = (10000, 10099)
DEFAULT_PROBE: IPAddress = ipaddress.ip_address("198.51.100.10")


@dataclass(frozen=True)
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
    source: str = "(defaults)"
    """Where this configuration came from, for messages."""

    def table_name(self, ifname: str) -> str:
        return self.table_names.get(ifname, f"mh-{ifname}")


def load_config(path: Path | None, *, explicit: bool = False) -> Config:
    """Read and validate the configuration file at ``path``.

    With ``explicit`` (the user passed ``--config``) a missing file is an error; otherwise a
    missing default file gives the defaults.
    """
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        if explicit:
            raise ConfigError(f"{path}: no such file; pass an existing file to --config "
                              "or omit --config to use the defaults") from exc
        return Config()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror}); check the file's "
                          "permissions (or run as root)") from exc
    return parse_config(text, str(path))


def load_yaml(text: str, source: str) -> Any:
    """``text`` parsed as YAML; a syntax error names ``source``, line and column, and the fix."""
    import yaml  # lazy: multihome starts at boot and from udev

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}{where}: malformed YAML: {problem}; fix the syntax "
                          "(indentation, colons, brackets)") from exc


def parse_config(text: str, source: str) -> Config:
    """Parse the YAML ``text`` (named ``source`` in messages) into a :class:`Config`."""
    data = load_yaml(text, source)
    if data is None:
        return Config(source=source)
    reader = _Reader(source)
    top = reader.mapping(data, "(top level)")
    reader.only_keys(top, "(top level)",
                     {"primary", "interfaces", "tables", "priorities", "rules", "sysctls",
                      "probe"})
    primary = reader.ifname(top.get("primary"), "primary", optional=True)
    include, exclude = _interfaces(reader, top)
    if primary is not None and primary in exclude:
        raise ConfigError(f"{source}: primary: {primary} is also in interfaces.exclude; "
                          "remove it from one of them")
    table_range, table_names = _tables(reader, top)
    priority_range = _priorities(reader, top)
    rule_kinds = _rule_kinds(reader, top)
    sysctls = _sysctls(reader, top)
    probe = _probe(reader, top)
    return Config(primary=primary, include=include, exclude=exclude, table_range=table_range,
                  table_names=MappingProxyType(table_names), priority_range=priority_range,
                  rule_kinds=rule_kinds, sysctls=MappingProxyType(sysctls), probe=probe,
                  source=source)


def _interfaces(reader: _Reader, top: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if "interfaces" not in top:
        return (), ()
    ifaces = reader.mapping(top["interfaces"], "interfaces")
    reader.only_keys(ifaces, "interfaces", {"include", "exclude"})
    include = reader.ifname_list(ifaces.get("include", []), "interfaces.include")
    exclude = reader.ifname_list(ifaces.get("exclude", []), "interfaces.exclude")
    both = sorted(set(include) & set(exclude))
    if both:
        raise ConfigError(f"{reader.source}: interfaces.include and interfaces.exclude both "
                          f"list {', '.join(both)}; keep each interface in one list")
    return include, exclude


def _tables(reader: _Reader, top: dict[str, Any]) -> tuple[tuple[int, int], dict[str, str]]:
    table_range = DEFAULT_TABLE_RANGE
    table_names: dict[str, str] = {}
    if "tables" not in top:
        return table_range, table_names
    source = reader.source
    tables = reader.mapping(top["tables"], "tables")
    reader.only_keys(tables, "tables", {"range", "names"})
    if "range" in tables:
        table_range = reader.int_range(tables["range"], "tables.range", 1, 2**32 - 1)
        reserved = sorted(t for t in RESERVED_TABLES if table_range[0] <= t <= table_range[1])
        if reserved:
            raise ConfigError(
                f"{source}: tables.range {list(table_range)} includes reserved table id "
                f"{reserved[0]} (0 unspec, 253 default, 254 main, 255 local); choose a "
                "range outside them, e.g. [10000, 10999]")
    names = reader.mapping(tables.get("names", {}), "tables.names")
    for ifname, name in names.items():
        reader.ifname(ifname, f"tables.names key {ifname!r}")
        if not isinstance(name, str) or not _TABLE_NAME.match(name) or name in (
                "main", "local", "default", "unspec"):
            raise ConfigError(f"{source}: tables.names.{ifname}: {name!r} is not a usable "
                              "table name; use letters, digits, '-', '_' or '.', starting "
                              "with a letter, and not main/local/default/unspec")
        table_names[str(ifname)] = name
    if len(set(table_names.values())) != len(table_names):
        raise ConfigError(f"{source}: tables.names gives two interfaces the same table "
                          "name; give each interface its own name")
    return table_range, table_names


def _priorities(reader: _Reader, top: dict[str, Any]) -> tuple[int, int]:
    if "priorities" not in top:
        return DEFAULT_PRIORITY_RANGE
    prios = reader.mapping(top["priorities"], "priorities")
    reader.only_keys(prios, "priorities", {"range"})
    priority_range = reader.int_range(prios.get("range"), "priorities.range", 1, 32765)
    if priority_range[1] - priority_range[0] + 1 < MIN_BAND:
        raise ConfigError(f"{reader.source}: priorities.range {list(priority_range)} holds "
                          f"fewer than {MIN_BAND} priorities; widen it, e.g. [10000, 10099]")
    return priority_range


def _rule_kinds(reader: _Reader, top: dict[str, Any]) -> tuple[str, ...]:
    if "rules" not in top:
        return RULE_KINDS
    kinds = top["rules"]
    source = reader.source
    if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
        raise ConfigError(f"{source}: rules: expected a list of rule kinds such as "
                          f"[{', '.join(RULE_KINDS)}]")
    unknown = [k for k in kinds if k not in RULE_KINDS]
    if unknown:
        raise ConfigError(f"{source}: rules: unknown rule kind {unknown[0]!r}; choose from "
                          f"{', '.join(RULE_KINDS)}")
    if "from" not in kinds:
        raise ConfigError(f"{source}: rules: 'from' is required (without it replies "
                          "leave through the wrong port); add it to the list")
    return tuple(k for k in RULE_KINDS if k in kinds)


def _sysctls(reader: _Reader, top: dict[str, Any]) -> dict[str, int | None]:
    sysctls = dict(DEFAULT_SYSCTLS)
    if "sysctls" not in top:
        return sysctls
    given = reader.mapping(top["sysctls"], "sysctls")
    reader.only_keys(given, "sysctls", set(SYSCTL_KNOBS))
    for knob, value in given.items():
        low, high = SYSCTL_RANGES[knob]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not low <= value <= high):
            raise ConfigError(f"{reader.source}: sysctls.{knob}: {value!r} is not valid; use "
                              f"an integer from {low} to {high}, or null to leave it alone")
        sysctls[knob] = value
    return sysctls


def _probe(reader: _Reader, top: dict[str, Any]) -> IPAddress:
    if "probe" not in top:
        return DEFAULT_PROBE
    try:
        return ipaddress.ip_address(str(top["probe"]))
    except ValueError as exc:
        raise ConfigError(f"{reader.source}: probe: {top['probe']!r} is not an IP address; "
                          "give an off-subnet address such as 198.51.100.10") from exc


class _Reader:
    """Typed accessors that raise :class:`ConfigError` naming the file and the key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str, fix: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {problem}; {fix}")

    def mapping(self, value: object, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping, got {type(value).__name__}",
                            "write it as 'key: value' lines")
        return {str(k): v for k, v in value.items()}

    def only_keys(self, data: dict[str, Any], where: str, allowed: set[str]) -> None:
        for key in data:
            if key not in allowed:
                raise self.fail(where, f"unknown key {key!r}",
                                f"use one of {', '.join(sorted(allowed))}")

    def ifname(self, value: object, key: str, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or not _IFNAME.match(value):
            raise self.fail(key, f"{value!r} is not an interface name",
                            "give a name such as eth1 (1-15 characters, no '/', ':' or spaces)")
        return value

    def ifname_list(self, value: object, key: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(key, "expected a list of interface names", "write e.g. [eth0, eth1]")
        return tuple(str(self.ifname(v, key)) for v in value)

    def int_range(self, value: object, key: str, low: int, high: int) -> tuple[int, int]:
        if (not isinstance(value, list) or len(value) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
            raise self.fail(key, f"{value!r} is not a range", "write [first, last], e.g. "
                            "[10000, 10999]")
        first, last = int(value[0]), int(value[1])
        if not low <= first <= last <= high:
            raise self.fail(key, f"[{first}, {last}] is out of bounds",
                            f"use first <= last within {low}..{high}")
        return (first, last)
