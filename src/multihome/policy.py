"""The policy: a pure function from what the host has (HostState + Config) to what it should have.

All decisions live here (docs/design.md, section 5, "The policy's rules"):

* which interfaces are managed (and why the others are skipped or left alone);
* which one is primary (the lowest-metric default route in main, unless configured);
* one table per managed interface with a gateway, with a stable id derived from the MAC and
  kept once assigned, and a name (``mh-eth1``);
* the interface's routes copied into its table; secondary interfaces' defaults taken out of
  main (the how-to's fix), the primary's left alone;
* rules in the reserved priority band, marked with multihome's protocol number::

      band+0  from <addr>/32 lookup <table>          (table first: replies leave their port)
      band+1  lookup main suppress_prefixlength 0    (main-table specifics, for everyone else)
      band+3  oif <if> lookup <table>
      band+4  iif <if> lookup <table>

  and in each port's table a ``throw`` route for each specific route of main that does not
  go through a port (containers, VPNs, ``lo``, unreachable...), so those fall through to
  main at band+1 (without ``onlink`` in the configuration's ``rules``: no throws, the ``from``
  rule at band+2, after main's specifics);

* ARP-flux and reverse-path sysctls per managed interface, explicitly, when multi-homed.
* IPv6 in the same tables: a port's router-advertised default (via the router's link-local
  address) and on-link prefixes copied into its table, the same rules in family 6 (``from
  <addr>/128``), only for addresses past DAD; the kernel's own RA routes in main are left
  alone (docs/design.md, section 5, "IPv6").
* A multipath route in main (networkd's RA defaults of one metric, an IPv4 ``nexthop``
  default): each managed port among its next hops gets the single path through its own next
  hop in its table; main's route stays (docs/design.md, section 5, "Multipath routes").

No I/O happens here.
"""

from __future__ import annotations

import ipaddress
import zlib
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from operator import attrgetter

from multihome.config import Config
from multihome.errors import InputError
from multihome.facts import NO_FACTS, Declaration, PortFacts
from multihome.model import (
    IFA_F_DADFAILED,
    IFA_F_TENTATIVE,
    ORDER,
    PROTO_DHCP,
    PROTO_MULTIHOME,
    PROTO_STATIC,
    RESERVED_TABLES,
    RTN_THROW,
    RTN_UNICAST,
    SCOPE_LINK,
    SCOPE_UNIVERSE,
    TABLE_MAIN,
    Address,
    HostState,
    IPAddress,
    IPNetwork,
    Link,
    Route,
    Rule,
    Sysctl,
    Table,
    conf_sysctl,
    default_network,
    ip_text,
    is_link_local_net,
    is_multicast_net,
    order_key,
    with_cached,
)
from multihome.values import field, frozen, record, replace

TYPE_CHECKING = False  # typing is for the type checker only (start-up time)
if TYPE_CHECKING:
    from typing import NamedTuple

#: Link kinds that are not VM ports: left alone unless listed in interfaces.include.
IGNORED_KINDS = frozenset(
    {
        "bridge",
        "tun",
        "tap",
        "wireguard",
        "gre",
        "gretap",
        "ip6gre",
        "ip6gretap",
        "ipip",
        "sit",
        "ip6tnl",
        "vti",
        "vti6",
        "vxlan",
        "geneve",
        "ifb",
        "dummy",
        "nlmon",
        "vrf",
        "macsec",
        "xfrm",
        "openvswitch",
    }
)

#: Name prefixes of container, VPN and virtualisation plumbing.
IGNORED_PREFIXES = (
    "docker",
    "veth",
    "br-",
    "virbr",
    "cali",
    "flannel",
    "cni",
    "lxc",
    "lxd",
    "vnet",
    "tailscale",
    "wg",
    "tun",
    "tap",
    "kube",
    "cilium",
    "weave",
    "podman",
    "zt",
    "vxlan",
    "genev",
    "nebula",
)

#: Offsets of each rule kind inside the priority band: ``onlink`` is the table-first ``from``
#: rule (design.md section 5), ``from`` the same rule after main's specifics (without
#: ``onlink`` in the configuration's ``rules``).
RULE_OFFSETS = {"onlink": 0, "suppress": 1, "from": 2, "oif": 3, "iif": 4}
#: Per family, the longest prefix of a split default (OpenVPN's ``0.0.0.0/1`` and
#: ``128.0.0.0/1``; for IPv6 ``::/1``, ``2000::/3``, ``2000::/4`` and ``3000::/4``): like the
#: default, such a route of main gets no throw, so a port's own default takes its replies.
SPLIT_DEFAULT_PREFIXLEN = {4: 1, 6: 4}
#: IPv6's link-local prefix, thrown in every table of family 6.
LINK_LOCAL6 = ipaddress.IPv6Network("fe80::/64")
LINK_LOCAL6_TEXT = "fe80::/64"
#: The metric of a throw route: IPv6 routes without one get the kernel's 1024.
THROW_METRIC = {4: 0, 6: 1024}


@frozen
class ManagedInterface:
    """A port multihome manages, and the decisions made for it."""

    name: str
    role: str
    """``primary``, ``secondary`` or ``isolated`` (no gateway: no table needed)."""
    addresses: tuple[Address, ...]
    table: Table | None
    gateway: IPAddress | None
    metric: int | None
    gateway6: IPAddress | None = None
    """The IPv6 default's router (a link-local address, reached through this port)."""

    def gateway_for(self, family: int) -> IPAddress | None:
        """The default's gateway of ``family`` (4 or 6)."""
        return self.gateway if family == 4 else self.gateway6

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "role": self.role,
            "addresses": [str(a.interface) for a in self.addresses],
            "table": None if self.table is None else {"id": self.table.id, "name": self.table.name},
            "gateway": None if self.gateway is None else str(self.gateway),
            "gateway6": None if self.gateway6 is None else str(self.gateway6),
            "metric": self.metric,
        }


@frozen
class Skipped:
    """An interface that is not managed, and why (said to the user)."""

    ifname: str
    reason: str


@frozen
class DesiredState:
    """What the policy wants. ``routes`` and ``rules`` are owned by multihome."""

    interfaces: tuple[ManagedInterface, ...]
    skipped: tuple[Skipped, ...]
    ignored: tuple[Skipped, ...]
    tables: tuple[Table, ...]
    routes: frozenset[Route]
    rules: frozenset[Rule]
    sysctls: tuple[Sysctl, ...]
    main_removals: frozenset[Route]
    primary: str | None
    notes: tuple[str, ...] = ()
    origins: Mapping[Route, str] = field(default_factory=dict)
    """Where each table route that main does not hold came from: a lease,
    the metadata, the address, or an earlier copy (see :mod:`multihome.facts`)."""

    @property
    def table_names(self) -> dict[int, str]:
        return {t.id: t.name for t in self.tables}

    def route_origins(self) -> list[dict[str, str]]:
        """Where each desired table route that main does not hold came from (JSON)."""
        names = self.table_names
        return [
            {"route": r.describe(names), "origin": origin}
            for r, origin in sorted(self.origins.items(), key=lambda item: item[0].order)
        ]

    def interface(self, name: str) -> ManagedInterface | None:
        for iface in self.interfaces:
            if iface.name == name:
                return iface
        return None


def is_owned_rule(rule: Rule, config: Config) -> bool:
    """A rule multihome created: its protocol number and inside its priority band."""
    low, high = config.priority_range
    return rule.proto == PROTO_MULTIHOME and low <= rule.priority <= high


def is_owned_route(route: Route, config: Config, elsewhere: Iterable[int] = ()) -> bool:
    """A route multihome created: its protocol number, inside its table range or in one of
    the tables ``elsewhere`` (see :func:`owned_tables_elsewhere`), or the primary's default
    that multihome put back in main (its protocol number, in main)."""
    low, high = config.table_range
    return route.proto == PROTO_MULTIHOME and (
        low <= route.table <= high
        or route.table in elsewhere
        or (route.table == TABLE_MAIN and route.is_default)
    )


def owned_tables_elsewhere(state: HostState, config: Config) -> frozenset[int]:
    """Tables outside ``tables.range`` that are multihome's all the same: multihome's own
    rules (its protocol, its band) point at them, so an earlier ``tables.range`` gave them
    out. Another tool's protocol-222 routes elsewhere are not multihome's without this."""
    return _elsewhere(owned_rules(state, config), config)


def _elsewhere(rules: Iterable[Rule], config: Config) -> frozenset[int]:
    """The tables outside ``tables.range`` that multihome's ``rules`` point at."""
    low, high = config.table_range
    return frozenset(
        r.table for r in rules if not low <= r.table <= high and r.table not in RESERVED_TABLES
    )


def is_persisted_rule(rule: Rule, config: Config) -> bool:
    """A rule in multihome's band that a network manager installed from the configuration
    ``multihome persist`` wrote (networkd and NetworkManager mark rules with their own
    protocol): it points into multihome's table range, or is the main-specifics rule."""
    low, high = config.priority_range
    if rule.proto == PROTO_MULTIHOME or not low <= rule.priority <= high:
        return False
    first, last = config.table_range
    return first <= rule.table <= last or (
        rule.table == TABLE_MAIN and rule.suppress_prefixlength == 0
    )


def persisted_rules(state: HostState, config: Config) -> frozenset[Rule]:
    return _owned(state, config)[2]


def native_table_routes(
    state: HostState, config: Config, assigned: dict[str, int]
) -> dict[int, dict[str, list[Route]]]:
    """Routes a network manager keeps in an interface's own table (DHCP's ``RouteTable=``,
    ``ipv4.route-table``; for IPv6 the persisted copies: networkd's ``Gateway=_ipv6ra``,
    NetworkManager's ``ipv6.routes``): not multihome's, but exactly where the policy wants
    them. Per family (4 and 6), per interface; one pass over the routes."""
    found: dict[int, dict[str, list[Route]]] = {4: {}, 6: {}}
    for r in state.routes:
        if (
            r.ifname is not None
            and assigned.get(r.ifname) == r.table
            and r.type == RTN_UNICAST
            and not is_owned_route(r, config)
            and not (r.family == 6 and (is_link_local_net(r.dst) or is_multicast_net(r.dst)))
        ):
            found[r.family].setdefault(r.ifname, []).append(r)
    return found


def owned_rules(state: HostState, config: Config) -> frozenset[Rule]:
    return _owned(state, config)[0]


def owned_routes(state: HostState, config: Config) -> frozenset[Route]:
    return _owned(state, config)[1]


def _owned(state: HostState, config: Config) -> _Owned:
    """The owned rules and routes of ``state`` under ``config``, and the rules a network
    manager persisted (:func:`is_persisted_rule`), kept on the (immutable) state for the last
    config asked (by identity): a repair asks three times, the policy, the plan and the
    checkpoint, each a pass over every rule and route. One pass over the rules for both."""
    kept = state.__dict__.get("_owned")
    if kept is not None and kept[0] is config:
        return kept[1]  # type: ignore[no-any-return]
    owned: list[Rule] = []
    persisted: list[Rule] = []
    both: list[Rule] = []
    for rule in state.rules:
        if is_owned_rule(rule, config):
            owned.append(rule)
            both.append(rule)
        elif is_persisted_rule(rule, config):
            persisted.append(rule)
            both.append(rule)
    elsewhere = _elsewhere(owned, config)
    routes = [r for r in state.routes if is_owned_route(r, config, elsewhere)]
    found = _Owned(frozenset(owned), frozenset(routes), frozenset(persisted), both, routes)
    state.__dict__["_owned"] = (config, found)
    return found


if TYPE_CHECKING:

    class _Owned(NamedTuple):
        """What :func:`_owned` finds in a state."""

        rules: frozenset[Rule]
        routes: frozenset[Route]
        persisted: frozenset[Rule]
        band: list[Rule]
        """The owned and the persisted rules, in the state's order."""
        ordered: list[Route]
        """The owned routes, in the state's order."""

else:  # the same tuple without typing at run time
    from collections import namedtuple

    _Owned = namedtuple("_Owned", "rules routes persisted band ordered")


def stray_routes(state: HostState, config: Config) -> frozenset[Route]:
    """Routes with multihome's protocol that are not provably multihome's: outside
    ``tables.range`` with no rule of multihome's pointing at their table (an earlier range's
    leftovers, or another tool's that uses protocol 222). Reported, never removed by apply."""
    elsewhere = owned_tables_elsewhere(state, config)
    return frozenset(
        r
        for r in state.routes
        if r.proto == PROTO_MULTIHOME and not is_owned_route(r, config, elsewhere)
    )


def is_left_alone(link: Link) -> str | None:
    """Why a link is not a VM port (None when it is one)."""
    if link.loopback or link.name == "lo":
        return "loopback"
    if link.master:
        return f"enslaved to {link.master}"
    if link.kind in IGNORED_KINDS:
        return f"{link.kind} device"
    if link.name.startswith(IGNORED_PREFIXES):
        return "container, VPN or virtualisation plumbing"
    return None


@record
class _PortPart:
    """The routes and rules of one port's table, and where the routes came from."""

    routes: frozenset[Route]
    rules: frozenset[Rule]
    origins: dict[Route, str]


@record
class PolicyMemo:
    """Each port's table part of the last :func:`compute_policy`, by everything it was
    computed from, for the next call (the agent's: an event changes one port, and its peers'
    tables were recomputed in full after every event, most of a repair at 16 ports). Owned by
    its caller, never shared between configurations (a new one is taken when ``config``
    changes); it keeps only the parts of the last call."""

    config: Config | None = None
    parts: dict[tuple[object, ...], _PortPart] = field(default_factory=dict)
    hits: int = 0
    """Ports whose part came from the memo (what tests and profiles count)."""
    throws: dict[tuple[int, str], Route] = field(default_factory=dict)
    """The last computation's throw routes by table and destination (:func:`_throws`)."""
    _used: dict[tuple[object, ...], _PortPart] = field(default_factory=dict)
    _sysctls: tuple[tuple[str, ...], tuple[Sysctl, ...]] | None = None

    def start(self, config: Config) -> None:
        """A computation under ``config`` begins (the parts of another one are forgotten)."""
        if self.config != config:
            self.config, self.parts, self.throws, self._sysctls = config, {}, {}, None
        self._used = {}

    def sysctls(self, config: Config, managed: list[Link]) -> list[Sysctl]:
        """:func:`_sysctls` of ``managed``, made again only when the ports changed."""
        names = tuple(link.name for link in managed)
        if self._sysctls is None or self._sysctls[0] != names:
            self._sysctls = (names, tuple(_sysctls(config, managed)))
        return list(self._sysctls[1])

    def part(self, key: tuple[object, ...], compute: Callable[[], _PortPart]) -> _PortPart:
        """The part computed from ``key``'s inputs: kept, or ``compute()``d now."""
        found = self.parts.get(key)
        if found is None:
            found = compute()
        else:
            self.hits += 1
        self._used[key] = found
        return found

    def end(self) -> None:
        """Keep only the parts this computation used."""
        self.parts, self._used = self._used, {}


def compute_policy(
    state: HostState,
    config: Config,
    facts: PortFacts = NO_FACTS,
    memo: PolicyMemo | None = None,
) -> DesiredState:
    """Compute the desired state for ``state`` under ``config`` and the ports' ``facts``
    (pure; ``memo``: the ports' parts of an earlier call, reused where a port's inputs are the
    same, and updated: the result is the same with or without it).

    A port's table is built from its own facts (docs/design.md, "Port facts"): main's routes
    of the port as they are now, the routes its lease or the metadata declares, the routes
    seen earlier while the port lived (our copies in its table, the agent's memory), and the
    subnet route of each of its addresses. Main losing a route is never, by itself, a reason
    to drop the table's copy; a lease or metadata that no longer lists a gateway route is,
    and so is the address a route depends on going away.
    """
    band_notes = check_config_against_host(state, config)
    managed, skipped, ignored = _select(state, config)
    owned_rule_set, owned_route_set, _persisted, in_band, ordered = _owned(state, config)
    assigned = _existing_tables(in_band, ordered)
    # Grouped once, not scanned once per interface (hosts with hundreds of ports).
    # shared: the ports' paths of main's multipath routes (never removed from main)
    # The owned routes in the state's order, not the set's: they are in the memo's keys, and
    # a set's order moves with its other members (an event on one port made every port's key
    # new: 12 of 16 parts computed again per reconcile).
    (routes_by_if, shared), owned_by_if = (
        _main_routes_by_if(state, [m.name for m in managed]),
        _ipv4_by_if(ordered),
    )
    native, native6 = native_table_routes(state, config, assigned).values()
    declared, by_dst = _applicable(state, managed, facts), _peer_candidates(routes_by_if)

    defaults = _defaults(
        state, managed, routes_by_if, native, owned_by_if, assigned, declared, facts
    )
    six = _Ipv6.gather(
        state, managed, ordered, assigned, facts,
        native6, owned_rule_set,
    )  # fmt: skip

    primary = _choose_primary(state, config, managed, defaults, routes_by_if, shared) or _primary6(
        state, six.defaults
    )
    # A port that is down for a moment still counts: its peers keep their tables meanwhile.
    resting = [s for s in skipped if s.ifname in assigned]
    multihomed = len(managed) + len(resting) >= 2
    tables = _assign_tables(
        state,
        config,
        [m for m in managed if m.name in defaults or m.name in six.defaults or m.name in six.gone]
        if multihomed
        else [],
        assigned,
        native,
    )

    interfaces: list[ManagedInterface] = []
    routes: set[Route] = set()
    rules: set[Rule] = set()
    main_removals: set[Route] = set()
    origins: dict[Route, str] = {}
    one_shot = memo is None  # (then no part's key is built nor hashed: nothing keeps them)
    memo = PolicyMemo() if memo is None else memo
    memo.start(config)
    peers = _gateway_routes(routes_by_if)
    for link in managed:
        addrs = tuple(a for a in state.addresses_of(link.name, 4) if a.scope == SCOPE_UNIVERSE)
        default = defaults.get(link.name)
        table = tables.get(link.name)
        role = (
            "isolated"
            if default is None and link.name not in six.defaults and link.name not in six.gone
            else ("primary" if link.name == primary else "secondary")
        )
        interfaces.append(
            ManagedInterface(
                name=link.name,
                role=role,
                addresses=addrs + six.addresses[link.name],
                table=table,
                gateway=None if default is None else default.gateway,
                metric=None if default is None else default.metric,
                gateway6=six.gateway(link.name),
            )
        )
        if table is None:
            continue
        compute = partial(
            _port_part, config, link, table.id, addrs, default, routes_by_if, by_dst,
            declared, owned_by_if, facts, native, six, owned_rule_set,
        )  # fmt: skip
        part = (
            compute()
            if one_shot
            else memo.part(
                (
                    link.name,
                    table.id,
                    addrs,
                    default,
                    tuple(routes_by_if[link.name]),
                    declared.get(link.name),
                    tuple(owned_by_if.get(link.name, ())),
                    facts.seen.get(link.name),
                    tuple(native.get(link.name, ())),
                    peers,
                    six.key(link.name, table.id, owned_rule_set),
                ),
                compute,
            )
        )
        routes |= part.routes
        rules |= part.rules
        origins.update(part.origins)
        if default is not None and role == "secondary":
            # a multipath default belongs to no single port: it stays in main
            main_removals.update(
                r for r in routes_by_if[link.name] if r.is_default and r not in shared
            )
    memo.end()
    routes.update(_primary_default_in_main(primary, defaults, routes_by_if))

    preserved_rules, preserved_routes, notes = _preserve_for_skipped(
        state, config, skipped, owned_rule_set, owned_route_set, assigned
    )
    rules |= preserved_rules
    routes |= preserved_routes
    _band_wide(state, config, [*(m.name for m in managed), *(k.ifname for k in skipped)],
               routes, rules, memo.throws)  # fmt: skip

    sysctls = memo.sysctls(config, managed) if multihomed else []
    if not multihomed and managed:
        notes.append(f"only one managed interface ({managed[0].name}): nothing to do")
    if any(s.reason in {"down", "no address"} for s in skipped):
        notes.append("skipped interfaces keep what multihome set up for them earlier")
    notes.extend((*_multipath_notes(state, {m.name for m in managed}), *facts.notes, *band_notes))
    return DesiredState(
        interfaces=tuple(interfaces),
        skipped=tuple(skipped),
        ignored=tuple(ignored),
        tables=tuple(
            sorted(_named_tables(config, tables, resting, assigned), key=order_key(Table))
        ),
        routes=frozenset(routes),
        rules=frozenset(rules),
        sysctls=tuple(sysctls),
        main_removals=frozenset(main_removals),
        primary=primary,
        notes=tuple(notes),
        origins=_origins_of(routes, origins),
    )


def _gateway_routes(routes_by_if: dict[str, list[Route]]) -> tuple[Route, ...]:
    """The ports' specific routes through a gateway in main: what a port's table part
    depends on beyond its own facts (:func:`_peer_candidates`, :func:`_peer_specifics`)."""
    return tuple(
        r
        for name in sorted(routes_by_if)
        for r in routes_by_if[name]
        if r.gateway is not None and not r.is_default
    )


def _port_part(
    config: Config,
    link: Link,
    table: int,
    addrs: tuple[Address, ...],
    default: Route | None,
    routes_by_if: dict[str, list[Route]],
    by_dst: dict[IPNetwork, list[tuple[str, Route]]],
    declared: dict[str, Declaration],
    owned_by_if: dict[str, list[Route]],
    facts: PortFacts,
    native: dict[str, list[Route]],
    six: _Ipv6,
    owned_rules: frozenset[Rule],
) -> _PortPart:
    """The routes and rules of ``link``'s table (both families), from its own facts and its
    peers' gateway routes in main (:class:`PolicyMemo` keeps it by exactly these)."""
    routes: set[Route] = set()
    rules: set[Rule] = set()
    origins: dict[Route, str] = {}
    six.fill(config, link.name, table, owned_rules, origins, routes, rules)
    if default is None:
        return _PortPart(frozenset(routes), frozenset(rules), origins)
    kept = [r for r in native.get(link.name, ()) if r.table == table]
    copies = _table_routes(
        link.name,
        table,
        addrs,
        default,
        routes_by_if[link.name],
        declared.get(link.name),
        [
            *owned_by_if.get(link.name, ()),
            *sorted(facts.seen.get(link.name, ()), key=ORDER),
        ],
        {r.dst for r in kept},
        origins,
    )
    _peer_specifics(link.name, table, addrs, default, by_dst, copies, kept, origins)
    # Our copy already in the table stands for a new one that differs only in its metric
    # (one route per destination: the metric means nothing there), so that a route
    # coming back to main with another metric changes nothing. What the network manager
    # already keeps in the table stands for our copy of it, and is wanted as it is
    # (persist renders it again, plan adds nothing next to it).
    copies = _with_native(
        _with_existing(copies, owned_by_if.get(link.name, ()), table, origins), kept
    )
    routes.update(copies)
    rules |= _interface_rules(config, link.name, table, addrs)
    return _PortPart(frozenset(routes), frozenset(rules), origins)


def _band_wide(
    state: HostState,
    config: Config,
    ports: list[str],
    routes: set[Route],
    rules: set[Rule],
    made: dict[tuple[int, str], Route],
) -> None:
    """What the band has once, whatever the ports: main's specifics rule per family, and
    (with ``onlink``) every table's throws, computed afresh (also a resting port's)."""
    band = config.priority_range[0]
    for family in sorted({r.family for r in rules}):
        rules.add(_rule(band, "suppress", TABLE_MAIN, family, suppress_prefixlength=0))
    routes.difference_update([r for r in routes if r.type == RTN_THROW])
    if "onlink" in config.rule_kinds:
        routes |= _throws(state, config, set(ports), routes, rules, made)


def _primary_default_in_main(
    primary: str | None, defaults: dict[str, Route], routes_by_if: dict[str, list[Route]]
) -> list[Route]:
    """The primary's default belongs in main. When main lost it and nobody put it back (the
    port left alone when its peers went, whose default multihome had moved into its table;
    a flap no DHCP client followed), the port's facts put it back, as ours; only once main
    reaches its gateway through the port (else the kernel refuses the route)."""
    if primary is None or primary not in defaults:
        return []
    in_main = routes_by_if[primary]
    if any(r.is_default for r in in_main):
        return []
    default = defaults[primary]
    if not _fits_main(default, in_main):
        return []
    return [replace(default, table=TABLE_MAIN, proto=PROTO_MULTIHOME)]


def _fits_main(default: Route, in_main: list[Route]) -> bool:
    """Main reaches the default's gateway through the port (one of the port's own routes in
    main, ``in_main``, is a link route that holds the gateway): main can take it."""
    return default.gateway is None or any(
        r.gateway is None and r.dst.prefixlen > 0 and default.gateway in r.dst for r in in_main
    )


def _multipath_notes(state: HostState, managed: set[str]) -> list[str]:
    """What the policy does with each multipath route in main through managed ports."""
    notes = []
    for route in state.routes:
        if not route.nexthops or route.table != TABLE_MAIN or route.proto == PROTO_MULTIHOME:
            continue
        ports = sorted({hop.ifname for hop in route.nexthops if hop.ifname in managed})
        if ports:
            notes.append(
                f"main's {'default' if route.is_default else route.dst} (metric {route.metric}) "
                f"is multipath across {', '.join(ports)}: it stays in main (the kernel hashes "
                "each new unsourced flow to one next hop); each port's table gets the path "
                "through its own next hop"
            )
    return notes


def _sysctls(config: Config, managed: list[Link]) -> list[Sysctl]:
    """The ARP-flux and reverse-path sysctls of each managed port of a multi-homed host."""
    return [
        conf_sysctl(link.name, knob, value)
        for link in managed
        for knob, value in config.sysctls.items()
        if value is not None
    ]


def _origins_of(routes: set[Route], origins: dict[Route, str]) -> dict[Route, str]:
    """The origins of the routes that made it into the desired state."""
    return {route: origin for route, origin in origins.items() if route in routes}


def _table_routes(
    ifname: str,
    table: int,
    addrs: tuple[Address, ...],
    default: Route,
    in_main: list[Route],
    declaration: Declaration | None,
    earlier: list[Route],
    native: set[IPNetwork],
    origins: dict[Route, str],
) -> list[Route]:
    """The routes of ``ifname``'s table, one per destination, from its facts in this order:
    main's routes of the port now; the routes its lease or metadata declares; the routes seen
    earlier (our copies, the agent's memory) that still fit its addresses -- through a
    gateway only while no declaration speaks for the port, since a newer lease that no
    longer lists a route is a reason to drop it; the subnet route of each address. A
    destination the network manager keeps in the table (``native``) needs no other source."""
    copies = [_copy(r, table) for r in in_main if not r.is_default]
    have = {r.dst for r in copies} | native
    networks = [a.network for a in addrs]

    def fits(route: Route) -> bool:
        return (route.prefsrc is None or any(route.prefsrc == a.ip for a in addrs)) and (
            route.gateway is None or any(route.gateway in n for n in networks)
        )

    def take(route: Route, origin: str) -> None:
        copies.append(route)
        have.add(route.dst)
        origins[route] = origin

    if declaration is not None:
        for declared in declaration.routes:
            route = Route(
                table=table,
                dst=declared.dst,
                ifname=ifname,
                gateway=declared.gateway,
                metric=default.metric,
                proto=PROTO_MULTIHOME,
                prefsrc=declaration.address,
            )
            if not declared.is_default and declared.dst not in have and fits(route):
                take(route, declaration.origin)
    for old in earlier:  # our copies (state order: sorted), then the memory (sorted by caller)
        route = _copy(old, table)
        if (
            route.family != 4
            or route.type == RTN_THROW  # throws follow main (_throws), never the memory
            or route.is_default
            or route.dst in have
            or not fits(route)
            or (route.gateway is not None and declaration is not None)
        ):
            continue
        take(route, "seen earlier in the table")
    for addr in addrs:
        if addr.network not in have and addr.network.prefixlen < addr.network.max_prefixlen:
            # The port's metric, as DHCP clients and network managers give the prefix route.
            take(
                Route(
                    table=table,
                    dst=addr.network,
                    ifname=ifname,
                    metric=default.metric,
                    proto=PROTO_MULTIHOME,
                    scope=SCOPE_LINK,
                    prefsrc=addr.ip,
                ),
                f"the address {addr.interface}",
            )
    copy = _copy(default, table)
    copies.append(copy)
    if default.table != TABLE_MAIN or default.proto == PROTO_MULTIHOME:
        origins[copy] = (
            "seen earlier in the table"
            if default.proto == PROTO_MULTIHOME
            else "the network manager's table"
        )
    elif default.proto == PROTO_DHCP and declaration is not None and default not in in_main:
        origins[copy] = declaration.origin
    return copies


def _peer_candidates(
    routes_by_if: dict[str, list[Route]],
) -> dict[IPNetwork, list[tuple[str, Route]]]:
    """Main's specific routes through a gateway, by destination: (port, route) in the order
    :func:`_peer_specifics` takes them (ports sorted by name, then state order). Grouped once
    for all ports: a walk of every port's routes per port was N^2 (131k steps at 256 ports).

    Another port's on-link routes (its subnet, no gateway) are left out: the table-first
    ``from`` rule sends a port's traffic to them through its own default."""
    found: dict[IPNetwork, list[tuple[str, Route]]] = {}
    for peer in sorted(routes_by_if):
        for route in routes_by_if[peer]:
            if route.gateway is not None and not route.is_default:
                found.setdefault(route.dst, []).append((peer, route))
    return found


def _peer_specifics(
    ifname: str,
    table: int,
    addrs: tuple[Address, ...],
    default: Route,
    by_dst: dict[IPNetwork, list[tuple[str, Route]]],
    copies: list[Route],
    native: list[Route],
    origins: dict[Route, str],
) -> None:
    """Main's specific routes through *other* ports whose gateway is on one of ``ifname``'s
    subnets, copied into its table through the port itself (design.md, section 5, "Another
    port's routes"): the same next hop, reached from the right port. Appended to ``copies``.

    The table-first ``from`` rule needs nothing else for another port's routes: a
    destination its table lacks takes the table's default (the port's own gateway), whatever
    main holds through the other port (its subnet, its lease's metadata host route)."""
    have = {r.dst for r in (*copies, *native)}
    networks = [a.network for a in addrs]
    for dst, candidates in by_dst.items():
        if dst in have:
            continue
        peer, route = next(
            (
                (p, r)
                for p, r in candidates
                if p != ifname and any(r.gateway in n for n in networks if r.gateway)
            ),
            ("", None),
        )
        if route is None:
            continue
        copy = Route(
            table=table,
            dst=route.dst,
            ifname=ifname,
            gateway=route.gateway,
            metric=default.metric,
            proto=PROTO_MULTIHOME,
        )
        copies.append(copy)
        origins[copy] = f"{peer}'s route in main (its gateway is on {ifname}'s subnet)"


def _throws(
    state: HostState,
    config: Config,
    ports: set[str],
    routes: set[Route],
    rules: set[Rule],
    made: dict[tuple[int, str], Route],
) -> set[Route]:
    """The throw routes of the table-first band (design.md, section 5, "Main's other
    specifics"): in every table that a band+0 ``from`` rule of a family looks up, one
    ``throw <dst>`` per specific route of main of that family that does not go through a
    port (a container bridge, a VPN, ``lo``, an unreachable or blackhole route), so that a
    port's traffic to it falls through to main at band+1, as everyone's does.

    Not thrown: main's defaults and split defaults (``SPLIT_DEFAULT_PREFIXLEN``: the port's
    own default takes its replies); the routes through a port (managed, or resting), which
    the table has (its own) or must not take (another port's: the table's default
    does); a destination the table holds itself. Always thrown: IPv6's link-local prefix
    ``fe80::/64`` (a link-local destination needs its device's route in main, even while a
    flap has flushed it) and multicast routes. A
    network manager's own throw in the table (persisted) stands for ours. O(tables x
    foreign specifics): one pass over main."""
    first = config.priority_range[0] + RULE_OFFSETS["onlink"]
    tables: dict[int, set[int]] = {}
    for rule in rules:
        if rule.priority == first and rule.src is not None and rule.table != TABLE_MAIN:
            tables.setdefault(rule.family, set()).add(rule.table)
    # A link-local destination needs its device's route in main, whatever main holds now.
    # by the destination's text (the routes' cached texts[0]: ipaddress hashes in Python)
    foreign: dict[int, dict[str, IPNetwork]] = (
        {6: {LINK_LOCAL6_TEXT: LINK_LOCAL6}} if 6 in tables else {}
    )
    for route in state.routes:
        family = route.family
        if (
            route.table != TABLE_MAIN
            or family not in tables
            or route.dst.prefixlen <= SPLIT_DEFAULT_PREFIXLEN[family]
            or route.proto == PROTO_MULTIHOME
        ):
            continue
        through_port = route.ifname in ports and route.type == RTN_UNICAST
        if (
            through_port
            and not is_multicast_net(route.dst)
            and not (family == 6 and is_link_local_net(route.dst))
        ):
            continue
        foreign.setdefault(family, {})[route.texts[0]] = route.dst
    if not foreign:
        made.clear()
        return set()
    have = {(r.table, r.texts[0]) for r in routes}
    native = {
        r
        for r in state.routes
        if r.type == RTN_THROW
        and r.proto != PROTO_MULTIHOME
        and r.table in tables.get(r.family, ())
        and r.texts[0] in foreign.get(r.family, ())
    }
    have |= {(r.table, r.texts[0]) for r in native}
    throws = set(native)
    # The throws of the last computation are taken again (``made``, the memo's: the same
    # objects keep their cached keys and texts); the rest are made now.
    kept: dict[tuple[int, str], Route] = {}
    for family, dsts in foreign.items():
        metric = THROW_METRIC[family]
        for table in tables[family]:
            for text, dst in dsts.items():
                if (table, text) in have:
                    continue
                throw = made.get((table, text))
                if throw is None or throw.metric != metric:
                    throw = with_cached(
                        Route(
                            table=table,
                            dst=dst,
                            metric=metric,
                            proto=PROTO_MULTIHOME,
                            type=RTN_THROW,
                        ),
                        texts=(text, *_NO_TEXTS),
                        family=family,
                    )
                kept[table, text] = throw
    made.clear()
    made.update(kept)
    throws.update(kept.values())
    return throws


def _applicable(state: HostState, managed: list[Link], facts: PortFacts) -> dict[str, Declaration]:
    """The declarations that apply now: the port is managed and still has the address the
    lease was given for (a lease for another address says nothing about this one)."""
    found: dict[str, Declaration] = {}
    for link in managed:
        declaration = facts.declared.get(link.name)
        if declaration is None:
            continue
        ips = {a.ip for a in state.addresses_of(link.name, 4)}
        if declaration.address is None or declaration.address in ips:
            found[link.name] = declaration
    return found


def _interface_rules(
    config: Config,
    ifname: str,
    table: int,
    addrs: Iterable[Address],
    *,
    family: int = 4,
) -> set[Rule]:
    """The rules of one family that send an interface's traffic to its table: its
    addresses' ``from`` rules (table first at band+0 with ``onlink``, else after main's
    specifics at band+2), ``oif`` and ``iif``."""
    band = config.priority_range[0]
    kind = "onlink" if "onlink" in config.rule_kinds else "from"
    rules: set[Rule] = set()
    for addr in addrs:
        # From the integer: ip_network(address) formats the address and parses it again
        # (a third of this function's time in the agent's profile).
        ip = addr.ip
        host = (ipaddress.IPv4Network if ip.version == 4 else ipaddress.IPv6Network)(int(ip))
        rules.add(_rule(band, kind, table, family, src=host, src_text=_host_text(addr, host)))
    if "oif" in config.rule_kinds:
        rules.add(_rule(band, "oif", table, family, oifname=ifname))
    if "iif" in config.rule_kinds:
        rules.add(_rule(band, "iif", table, family, iifname=ifname))
    return rules


def _host_text(addr: Address, host: IPNetwork) -> str:
    """``ip_text(host)``, ``addr`` as a host network (``10.0.0.5/32``), from the address's key
    (``10.0.0.5/24``, formatted already): the same address text, but for a scoped address
    (whose scope the network does not keep)."""
    text = addr.key[1].rpartition("/")[0]
    if "%" in text:
        return ip_text(host)
    return f"{text}/{host.max_prefixlen}"


#: How a note about another tool's rule inside multihome's band begins (the agent logs them).
FOREIGN_IN_BAND = "another tool's rule"


def check_config_against_host(state: HostState, config: Config) -> list[str]:
    """Configuration errors only the host can reveal (exit 2, nothing changed), and notes.

    Another tool's rule inside ``priorities.range`` is an error only while the band holds
    no rule of multihome's and no running agent has worked in it (``band_claimed``):
    choosing a band is the configuration's job. Once multihome's rules are there (an
    earlier apply, a persisted configuration) or the agent has repaired in the band (it may
    hold no rule of multihome's for a while: a single port needs none), a rule another tool
    put into the band afterwards is left alone and named in a note: refusing then would
    stop every later repair, and the ports' routing with it."""
    names = {link.name for link in state.links}
    for ifname in ((config.primary,) if config.primary else ()) + config.include:
        if ifname not in names:
            key = "primary" if ifname == config.primary else "interfaces.include"
            raise InputError(
                f"{config.source}: {key}: interface {ifname!r} does not exist on "
                f"this host (it has {', '.join(sorted(names))}); fix the name or "
                "remove it"
            )
    low, high = config.priority_range
    # multihome's rules and the persisted ones are the band's by definition; every other
    # rule in the band is another tool's
    ours = bool(owned_rules(state, config) or persisted_rules(state, config))
    intruders = [
        rule
        for rule in state.rules
        if low <= rule.priority <= high
        and rule.proto != PROTO_MULTIHOME
        and not is_persisted_rule(rule, config)
    ]
    if intruders and not ours and not config.band_claimed:
        raise InputError(
            f"{config.source}: priorities.range [{low}, {high}] overlaps the existing rule "
            f"'{intruders[0].describe()}' that multihome does not own; choose a free band in "
            "priorities.range (multihome never changes other tools' rules)"
        )
    return [
        f"{FOREIGN_IN_BAND} '{rule.describe()}' is inside multihome's priorities.range "
        f"[{low}, {high}]: left alone; move it out of the band (rules of one priority are "
        "matched in the order they were added)"
        for rule in intruders
    ]


def _select(state: HostState, config: Config) -> tuple[list[Link], list[Skipped], list[Skipped]]:
    managed: list[Link] = []
    skipped: list[Skipped] = []
    ignored: list[Skipped] = []
    for link in state.links:
        if link.name in config.exclude:
            ignored.append(Skipped(link.name, "excluded by configuration"))
            continue
        if config.include:
            if link.name not in config.include:
                ignored.append(Skipped(link.name, "not in interfaces.include"))
                continue
        else:
            why = is_left_alone(link)
            if why:
                ignored.append(Skipped(link.name, why))
                continue
        if not link.up:
            skipped.append(Skipped(link.name, "down"))
        elif not any(
            a.scope == SCOPE_UNIVERSE for a in state.addresses_of(link.name, 4)
        ) and not any(a.usable for a in state.addresses_of(link.name, 6)):
            skipped.append(Skipped(link.name, "no address"))
        else:
            managed.append(link)
    return managed, skipped, ignored


def _route_essence(route: Route) -> tuple[object, ...]:
    """What a network manager's route must share with our copy to stand for it: not the
    protocol, not the preferred source (NetworkManager's static copies have none)."""
    return (*route.slot, route.ifname, route.texts[1], route.scope, route.type)


def _loose_essence(route: Route) -> tuple[object, ...]:
    """:func:`_route_essence` without the metric."""
    essence = _route_essence(route)
    return essence[:3] + essence[4:]


def _with_existing(
    copies: list[Route], owned: Iterable[Route], table: int, origins: dict[Route, str]
) -> list[Route]:
    """``copies`` with each one replaced by our route already in ``table`` that differs from
    it only in its metric (the only one for its destination there)."""

    def essence(route: Route) -> tuple[object, ...]:
        return (route.dst, route.ifname, route.gateway, route.scope, route.prefsrc, route.type)

    owned = [r for r in owned if r.table == table]
    if not owned or set(copies) <= set(owned):
        return copies  # the common case: the table is as wanted
    existing: dict[tuple[object, ...], list[Route]] = {}
    for route in owned:
        existing.setdefault(essence(route), []).append(route)
    counts: dict[tuple[object, ...], int] = {}
    for copy in copies:
        counts[essence(copy)] = counts.get(essence(copy), 0) + 1
    result = []
    for copy in copies:
        found = existing.get(essence(copy), [])
        if len(found) == 1 and found[0] != copy and counts[essence(copy)] == 1:
            if copy in origins:
                origins[found[0]] = origins[copy]
            result.append(found[0])
        else:
            result.append(copy)
    return result


def _with_native(copies: list[Route], native: list[Route]) -> list[Route]:
    """``copies`` with each one the network manager keeps already replaced by its route, plus
    the manager's other routes in the table (a secondary's DHCP routes). A stale one (another
    gateway) is not taken: the copy replaces it in its slot. As for our own copies, the
    manager's one route for a destination that differs only in its metric stands for the
    copy (a static IPv6 prefix persisted at the agent's metric, 256 in main after boot)."""
    if not native:  # the usual case: nothing of the manager's in the table
        return copies
    by_essence = {_route_essence(r): r for r in native}
    by_dst: dict[tuple[object, ...], list[Route]] = {}
    for route in native:
        by_dst.setdefault(_loose_essence(route), []).append(route)
    result = []
    for copy in copies:
        found = by_essence.pop(_route_essence(copy), None)
        if found is None:
            loose = by_dst.get(_loose_essence(copy), [])
            if len(loose) == 1 and _route_essence(loose[0]) in by_essence:
                found = by_essence.pop(_route_essence(loose[0]))
        result.append(copy if found is None else found)
    slots = {r.slot for r in result}
    return result + [r for r in by_essence.values() if r.slot not in slots]


def _defaults(
    state: HostState,
    managed: list[Link],
    routes_by_if: dict[str, list[Route]],
    native: dict[str, list[Route]],
    owned: dict[str, list[Route]],
    assigned: dict[str, int],
    declared: dict[str, Declaration],
    facts: PortFacts,
) -> dict[str, Route]:
    """A default route per interface: main's (fresh from DHCP) wins over one that the network
    manager keeps in the interface's table (persisted), which wins over the lease's (or the
    metadata's) gateway, which wins over our earlier copy, then the agent's memory. A gateway
    must be on one of the port's subnets."""
    defaults: dict[str, Route] = {}
    for link in managed:
        networks = [a.network for a in state.addresses_of(link.name, 4)]

        def usable(route: Route, networks: list[IPNetwork] = networks) -> bool:
            return route.gateway is None or any(route.gateway in n for n in networks)

        in_main = [r for r in routes_by_if[link.name] if r.is_default] or [
            r
            for r in owned.get(link.name, ())
            if r.is_default and r.table == TABLE_MAIN and usable(r)
        ]
        # the later sources only when the earlier ones have none (main's: every fresh port)
        candidates = in_main or [r for r in native.get(link.name, ()) if r.is_default]
        if not candidates:
            copies = [
                r
                for r in owned.get(link.name, ())
                if r.is_default and usable(r) and assigned.get(link.name) == r.table
            ]
            seen = [
                r
                for r in facts.seen.get(link.name, ())
                if r.is_default and r.family == 4 and usable(r)
            ]
            from_lease = _declared_default(
                declared.get(link.name), link.name, [*copies, *seen, *routes_by_if[link.name]]
            )
            if from_lease is not None and not usable(from_lease):
                from_lease = None
            candidates = ([] if from_lease is None else [from_lease]) or copies or seen
        chosen = min(candidates, key=_METRIC, default=None)
        if chosen is not None:
            defaults[link.name] = chosen
    return defaults


#: A route's metric (the key of the lowest).
_METRIC = attrgetter("metric")


def _declared_default(
    declaration: Declaration | None, ifname: str, known: list[Route]
) -> Route | None:
    """The default a lease declares, with the metric the port's routes have had (the earlier
    default's, else its main routes'), so that a new gateway replaces the old in its slot."""
    if declaration is None or declaration.gateway is None:
        return None
    metric = next((r.metric for r in known if r.is_default), next((r.metric for r in known), 0))
    return Route(
        table=TABLE_MAIN,
        dst=default_network(4),
        ifname=ifname,
        gateway=declaration.gateway,
        metric=metric,
        proto=PROTO_DHCP,
        prefsrc=declaration.address,
    )


def _ipv4_by_if(routes: Iterable[Route]) -> dict[str, list[Route]]:
    """IPv4 routes grouped by interface: one pass, not one per interface."""
    return _family_by_if(routes, 4)


def _family_by_if(routes: Iterable[Route], family: int) -> dict[str, list[Route]]:
    """The routes of ``family`` grouped by interface."""
    found: dict[str, list[Route]] = {}
    for route in routes:
        if route.family == family and route.ifname is not None:
            found.setdefault(route.ifname, []).append(route)
    return found


def _main_routes_by_if(
    state: HostState, ifnames: list[str]
) -> tuple[dict[str, list[Route]], set[Route]]:
    """Each interface's own IPv4 unicast routes in main (not multihome's), in state order; of
    a multipath route, each port's single path (:func:`_add_paths`), which are also
    returned apart."""
    found: dict[str, list[Route]] = {name: [] for name in ifnames}
    shared: set[Route] = set()
    for r in state.routes:
        if (
            r.table == TABLE_MAIN
            and r.family == 4
            and r.type == RTN_UNICAST
            and r.proto != PROTO_MULTIHOME
        ):
            if r.ifname in found:
                found[r.ifname].append(r)
            elif r.nexthops:
                _add_paths(r, found, shared)
    return found, shared


def _add_paths(route: Route, found: dict[str, list[Route]], shared: set[Route] | None) -> None:
    """A multipath route in main, for each managed port among its next hops: the single
    path through that port's next hop (design.md section 5, "Multipath routes"). The
    paths are also put in ``shared``: they are views, not routes main holds, so nothing
    ever removes them from main."""
    for hop in route.nexthops:
        if hop.ifname in found:
            path = route.through(hop)
            found[hop.ifname].append(path)
            if shared is not None:
                shared.add(path)


def _existing_tables(rules: Iterable[Rule], routes: Iterable[Route]) -> dict[str, int]:
    """Tables already assigned by an earlier apply: they never change (stable identity).
    ``rules`` and ``routes`` in their order (a state's): the first one met names a port's."""
    found: dict[str, int] = {}
    for rule in rules:
        for ifname in (rule.oifname, rule.iifname):
            if ifname:
                found.setdefault(ifname, rule.table)
    for route in routes:
        if route.ifname and route.table != TABLE_MAIN:  # a primary's default put back in main
            found.setdefault(route.ifname, route.table)
    return found


def _choose_primary(
    state: HostState,
    config: Config,
    managed: list[Link],
    defaults: dict[str, Route],
    routes_by_if: dict[str, list[Route]],
    shared: set[Route],
) -> str | None:
    if config.primary is not None:
        if config.primary not in {m.name for m in managed}:
            raise InputError(
                f"{config.source}: primary: interface {config.primary!r} is not "
                "manageable now (down, no address or excluded); bring it up or "
                "choose another primary"
            )
        return config.primary
    # A multipath default in main counts through each of its ports' paths: of its ports, the
    # one with the lowest index (the kernel's choice among them for unsourced traffic
    # depends on each flow's hash; the primary only names whose default main keeps).
    in_main = [
        r
        for r in state.routes
        if r.table == TABLE_MAIN and r.is_default and r.family == 4 and r.ifname in defaults
    ] + [r for r in shared if r.is_default and r.ifname in defaults]
    # No default left in main: a port whose default main can take again comes first (a
    # port addressed ``noprefixroute`` whose main routes a flap flushed cannot).
    candidates = (
        in_main
        or [d for d in defaults.values() if _fits_main(d, routes_by_if[d.ifname or ""])]
        or list(defaults.values())
    )
    if not candidates:
        return None
    index = {link.name: link.index for link in state.links}
    best = min(candidates, key=lambda r: (r.metric, index.get(r.ifname or "", 0)))
    return best.ifname


def _assign_tables(
    state: HostState,
    config: Config,
    links: list[Link],
    assigned: dict[str, int],
    native: dict[str, list[Route]],
) -> dict[str, Table]:
    low, high = config.table_range
    result: dict[str, Table] = {}
    kept: set[int] = set()
    for link in links:
        # A table once assigned stays: another tool's rule or route pointing into it is a
        # reference to this port's table, not a claim on the id (only new ids avoid them).
        table_id = assigned.get(link.name)
        if table_id is not None and low <= table_id <= high and table_id not in kept:
            kept.add(table_id)
            result[link.name] = Table(table_id, config.table_name(link.name), link.name)
    new = [link for link in links if link.name not in result]
    if not new:  # (every repair but a hot-plug's: the tables other tools use are not needed)
        return result
    ours = {id(r) for routes in native.values() for r in routes}
    used = {r.table for r in state.routes if not is_owned_route(r, config) and id(r) not in ours}
    used |= {
        r.table
        for r in state.rules
        if not is_owned_rule(r, config) and not is_persisted_rule(r, config)
    }
    used |= kept
    for link in sorted(new, key=lambda x: (x.mac or "", x.name)):
        size = high - low + 1
        start = zlib.crc32((link.mac or link.name).encode()) % size
        for step in range(size):
            candidate = low + (start + step) % size
            if candidate not in used and candidate not in assigned.values():
                break
        else:
            raise InputError(
                f"{config.source}: tables.range [{low}, {high}] has no free table "
                "id left; widen tables.range"
            )
        used.add(candidate)
        result[link.name] = Table(candidate, config.table_name(link.name), link.name)
    return result


def _named_tables(
    config: Config, tables: dict[str, Table], resting: list[Skipped], assigned: dict[str, int]
) -> list[Table]:
    """The tables to name: the ports' and those of ports that rest (down, no address), whose
    rules and table stay (``_preserve_for_skipped``), so their names stay too: ``ip rule`` and
    ``ip route show table NAME`` go on showing them, reset and doctor know them by the names
    file, and a flap does not write the file twice (durably, under /etc) to drop the name
    and put it back."""
    named = list(tables.values())
    ids = {table.id for table in named}
    for skipped in resting:
        table_id = assigned[skipped.ifname]
        if table_id not in ids:
            ids.add(table_id)
            named.append(Table(table_id, config.table_name(skipped.ifname), skipped.ifname))
    return named


def _preserve_for_skipped(
    state: HostState,
    config: Config,
    skipped: list[Skipped],
    rules: frozenset[Rule],
    routes: frozenset[Route],
    assigned: dict[str, int],
) -> tuple[set[Rule], set[Route], list[str]]:
    """Owned state of interfaces that still exist but are down or unaddressed is kept.

    Missing data never causes a deletion (docs/design.md, rule 7): a port whose lease is being
    renewed or whose link flaps gets its rules back when it returns, without anyone re-planning.
    """
    keep_tables = {assigned[s.ifname] for s in skipped if s.ifname in assigned}
    kept_rules = {r for r in rules if r.table in keep_tables}
    kept_routes = {r for r in routes if r.table in keep_tables}
    notes = [
        f"{s.ifname}: {s.reason}; its table {assigned[s.ifname]} and rules are kept"
        for s in skipped
        if s.ifname in assigned
    ]
    return kept_rules, kept_routes, notes


def _copy(route: Route, table: int) -> Route:
    """``route`` in ``table``, as multihome's (without an expiry or next hops); its texts and
    family are the route's (the same destination, gateway and source objects)."""
    return with_cached(
        Route(
            table=table,
            dst=route.dst,
            ifname=route.ifname,
            gateway=route.gateway,
            metric=route.metric,
            proto=PROTO_MULTIHOME,
            scope=route.scope,
            prefsrc=route.prefsrc,
            type=route.type,
        ),
        texts=route.texts,
        family=route.family,
    )


#: The texts of a rule without a source or destination (``ip_text(None)`` twice).
_NO_TEXTS = (ip_text(None), ip_text(None))


def _rule(
    band: int,
    kind: str,
    table: int,
    family: int = 4,
    *,
    src: IPNetwork | None = None,
    src_text: str = _NO_TEXTS[0],
    iifname: str | None = None,
    oifname: str | None = None,
    suppress_prefixlength: int | None = None,
) -> Rule:
    """One of multihome's rules of ``kind`` in the band; ``src_text``: ``ip_text(src)``,
    known to the caller (its texts are not formatted again)."""
    return with_cached(
        Rule(
            family=family,
            priority=band + RULE_OFFSETS[kind],
            table=table,
            src=src,
            iifname=iifname,
            oifname=oifname,
            suppress_prefixlength=suppress_prefixlength,
            proto=PROTO_MULTIHOME,
        ),
        texts=_NO_TEXTS if src is None else (src_text, _NO_TEXTS[1]),
    )


# -- IPv6 (docs/design.md, section 5, "IPv6") --------------------------------------------------
def _main_routes6_by_if(state: HostState, ifnames: list[str]) -> dict[str, list[Route]]:
    """Each interface's own IPv6 unicast routes in main (not multihome's): the router
    advertisement's default and prefixes, static ones; of a multipath route (a network
    manager's RA defaults of one metric), each port's single path; not its link-local prefix
    (fe80::/64 is per device in main already, and a link-local destination needs its
    device)."""
    found: dict[str, list[Route]] = {name: [] for name in ifnames}
    for r in state.routes:
        if (
            r.table == TABLE_MAIN
            and r.family == 6
            and r.type == RTN_UNICAST
            and r.proto != PROTO_MULTIHOME
            and not is_link_local_net(r.dst)
            and not is_multicast_net(r.dst)
        ):
            if r.ifname in found:
                found[r.ifname].append(r)
            elif r.nexthops:
                _add_paths(r, found, None)
    return found


def _defaults6(
    state: HostState,
    managed: list[Link],
    routes6_by_if: dict[str, list[Route]],
    owned6: dict[str, list[Route]],
    assigned: dict[str, int],
    facts: PortFacts,
    declared6: dict[str, Declaration],
) -> tuple[dict[str, Route], frozenset[str]]:
    """An IPv6 default per interface: main's (the router advertisement's, ``proto ra``, or a
    static one), else the gateway of a DHCP-disabled network's metadata (``declared6``,
    ``static``: no advertisement speaks for such a port), else our copy in the port's table
    (main lost it in a flap: missing data), else the agent's memory. Among several routers
    on one link, the lowest metric, then the lowest address.

    Also the ports whose router is gone: main lost only the default while the port's own
    link-local prefix route stayed (a flap flushes every route of the device, fe80::/64
    too). The kernel removes an RA default only when its router said so (router lifetime
    0) or when the lifetime it announced ran out: positive information, not missing data
    (rule 7), so the earlier default is not kept; the port's IPv6 table (once it has one)
    keeps its prefixes and rules until a router advertises again."""
    found: dict[str, Route] = {}
    gone: set[str] = set()
    live: frozenset[str] | None = None  # made when first needed
    for link in managed:
        earlier = [
            r
            for r in owned6.get(link.name, ())
            if r.is_default and assigned.get(link.name) == r.table
        ] or [r for r in facts.seen.get(link.name, ()) if r.is_default and r.family == 6]
        candidates = [r for r in routes6_by_if[link.name] if r.is_default] or _declared_default6(
            declared6.get(link.name), link.name, [*earlier, *routes6_by_if[link.name]]
        )
        had = earlier or [
            r for r in owned6.get(link.name, ()) if r.table == assigned.get(link.name)
        ]
        if not candidates and had:
            if live is None:
                live = _ipv6_routes_live(state)
            if link.name in live:
                gone.add(link.name)  # its table keeps its prefixes and rules, without a default
                continue
        candidates = candidates or earlier
        if candidates:
            found[link.name] = (
                candidates[0]
                if len(candidates) == 1
                else min(candidates, key=lambda r: (r.metric, ip_text(r.gateway)))
            )
    return found, frozenset(gone)


def _declared_default6(
    declaration: Declaration | None, ifname: str, known: list[Route]
) -> list[Route]:
    """The default a DHCP-disabled IPv6 network's metadata declares (none for the other
    types: their router's advertisements speak for them), with the metric the port's
    default had, else that of its static routes in main (the agent's configuration from the
    metadata), else the kernel's default for a route (1024)."""
    if declaration is None or not declaration.static or declaration.gateway is None:
        return []
    metric = next(
        (r.metric for r in known if r.is_default),
        next((r.metric for r in known if r.proto == PROTO_STATIC), IPV6_ROUTE_METRIC),
    )
    return [
        Route(
            table=TABLE_MAIN,
            dst=default_network(6),
            ifname=ifname,
            gateway=declaration.gateway,
            metric=metric,
            proto=PROTO_STATIC,
        )
    ]


def _applicable6(state: HostState, managed: list[Link], facts: PortFacts) -> dict[str, Declaration]:
    """The IPv6 declarations that apply now: the port is managed and holds the declared
    address (SLAAC's or DHCPv6's may not have come yet, a static one may have been
    refused)."""
    found: dict[str, Declaration] = {}
    for link in managed:
        declaration = facts.declared6.get(link.name)
        if declaration is not None and declaration.address in {
            a.ip for a in state.addresses_of(link.name, 6)
        }:
            found[link.name] = declaration
    return found


def _ipv6_routes_live(state: HostState) -> frozenset[str]:
    """The devices whose link-local prefix (fe80::/64) main still holds: their routes were
    not flushed (the device did not go down since). One pass for every port."""
    return frozenset(
        r.ifname
        for r in state.routes
        if r.table == TABLE_MAIN
        and r.family == 6
        and r.ifname is not None
        and r.dst.prefixlen == 64
        and is_link_local_net(r.dst)
    )


def _primary6(state: HostState, defaults6: dict[str, Route]) -> str | None:
    """An IPv6-only host's primary: the port of the lowest-metric IPv6 default (IPv4's
    primary wins on a dual-stack host; the kernel's IPv6 defaults stay in main either way)."""
    if not defaults6:
        return None
    index = {link.name: link.index for link in state.links}
    return min(defaults6.values(), key=lambda r: (r.metric, index.get(r.ifname or "", 0))).ifname


@frozen
class _Ipv6:
    """The IPv6 facts of the managed ports, gathered once per policy computation."""

    state: HostState
    addresses: dict[str, tuple[Address, ...]]
    """Per port, its global addresses past DAD."""
    in_main: dict[str, list[Route]]
    owned: dict[str, list[Route]]
    seen: dict[str, list[Route]]
    defaults: dict[str, Route]
    gone: frozenset[str]
    """Ports whose router left (``_defaults6``): their tables keep prefixes and rules."""
    native: dict[str, list[Route]]
    """The network manager's IPv6 routes in each port's table (persisted copies)."""
    declared: dict[str, Declaration]
    """The metadata's IPv6 declaration of each port that holds its address."""
    ruled: frozenset[int]
    """The tables that multihome's family-6 rules point at."""

    @classmethod
    def gather(
        cls,
        state: HostState,
        managed: list[Link],
        owned_routes: Iterable[Route],
        assigned: dict[str, int],
        facts: PortFacts,
        native: dict[str, list[Route]],
        owned_rules: frozenset[Rule],
    ) -> _Ipv6:
        in_main = _main_routes6_by_if(state, [m.name for m in managed])
        owned = _family_by_if(owned_routes, 6)
        declared = _applicable6(state, managed, facts)
        defaults, gone = _defaults6(state, managed, in_main, owned, assigned, facts, declared)
        return cls(
            state=state,
            addresses={
                m.name: tuple(a for a in state.addresses_of(m.name, 6) if a.usable) for m in managed
            },
            in_main=in_main,
            owned=owned,
            seen={
                name: sorted((r for r in routes if r.family == 6), key=ORDER)
                for name, routes in facts.seen.items()
            },
            defaults=defaults,
            gone=gone,
            native=native,
            declared=declared,
            ruled=frozenset(r.table for r in owned_rules if r.family == 6),
        )

    def key(self, ifname: str, table: int, owned_rules: frozenset[Rule]) -> tuple[object, ...]:
        """Everything :meth:`fill` reads for ``ifname`` (:class:`PolicyMemo`'s key)."""
        waiting = self._waiting(ifname, table)
        return (
            self.addresses[ifname],
            self.defaults.get(ifname),
            ifname in self.gone,
            tuple(self.owned.get(ifname, ())),
            tuple(self.seen.get(ifname, ())),
            tuple(self.in_main[ifname]),
            tuple(self.native.get(ifname, ())),
            waiting,
            frozenset(r for r in owned_rules if r.table == table and r.family == 6)
            if waiting
            else None,
        )

    def _waiting(self, ifname: str, table: int) -> bool:
        """The port's IPv6 addresses are away for a moment (missing data, rule 7): one is
        being checked (DAD runs again after a flap), or the port has none left and the
        link's going down flushed its table's IPv6 routes (a flap: the kernel removes a
        SLAAC or DHCPv6 address with the link, its throws aside, and the router's answer
        to the port's solicitation brings it back). An address that went while the link
        stayed up (its lifetime's end, a lease's, a renumbering) leaves the table's copies
        of its prefix and router behind: that port's IPv6 part goes."""
        if _dad_pending(self.state, ifname):
            return True
        return (
            table in self.ruled
            and not self.addresses[ifname]
            and not any(
                r.table == table and r.type != RTN_THROW for r in self.owned.get(ifname, ())
            )
        )

    def gateway(self, ifname: str) -> IPAddress | None:
        """The router of ``ifname``'s IPv6 default, if it has one."""
        default = self.defaults.get(ifname)
        return None if default is None else default.gateway

    def fill(
        self,
        config: Config,
        ifname: str,
        table: int,
        owned_rules: frozenset[Rule],
        origins: dict[Route, str],
        routes: set[Route],
        rules: set[Rule],
    ) -> None:
        """Add the IPv6 routes and rules of ``ifname``'s table to ``routes`` and ``rules``.
        Without an address past DAD while its addresses are away for a flap
        (:meth:`_waiting`: missing data, rule 7) what the table has is kept."""
        addrs = self.addresses[ifname]
        default = self.defaults.get(ifname)
        owned = [r for r in self.owned.get(ifname, ()) if r.table == table]
        if addrs and (default is not None or ifname in self.gone):
            earlier = [*owned, *self.seen.get(ifname, ())]
            copies = _table_routes6(
                ifname,
                table,
                addrs,
                default,
                self.in_main[ifname],
                self.declared.get(ifname),
                earlier,
                origins,
            )
            copies = _with_existing(copies, owned, table, origins)
            copies = _with_native(copies, self.native.get(ifname, []))
            routes.update(copies)
            rules |= _interface_rules(config, ifname, table, addrs, family=6)
        elif self._waiting(ifname, table):
            routes.update(r for r in owned if r.type != RTN_THROW)
            rules |= {r for r in owned_rules if r.table == table and r.family == 6}


def _dad_pending(state: HostState, ifname: str) -> bool:
    """The port has a global IPv6 address whose duplicate address detection is running."""
    return any(
        a.scope == SCOPE_UNIVERSE and a.flags & IFA_F_TENTATIVE and not a.flags & IFA_F_DADFAILED
        for a in state.addresses_of(ifname, 6)
    )


def _table_routes6(
    ifname: str,
    table: int,
    addrs: tuple[Address, ...],
    default: Route | None,
    in_main: list[Route],
    declaration: Declaration | None,
    earlier: list[Route],
    origins: dict[Route, str],
) -> list[Route]:
    """The IPv6 routes of ``ifname``'s table, one per destination: main's routes of the port
    now (the advertised prefixes and routes); the routes the metadata declares for it (its
    subnet's host routes: no advertisement carries them); our earlier copies and the agent's
    memory while they still fit the port (an on-link prefix that holds one of its addresses,
    a gateway that is link-local or on one of its prefixes); the prefix of each address; the
    default (none when the router is gone)."""
    copies = [_copy(r, table) for r in in_main if not r.is_default]
    have = {r.dst for r in copies}

    def fits(route: Route) -> bool:
        if route.gateway is None:
            return any(a.ip in route.dst for a in addrs)
        return route.gateway.is_link_local or any(route.gateway in a.network for a in addrs)

    metric = IPV6_ROUTE_METRIC if default is None else default.metric
    declared_routes, origin = (
        ((), "") if declaration is None else (declaration.routes, declaration.origin)
    )
    for declared in declared_routes:
        route = Route(
            table=table,
            dst=declared.dst,
            ifname=ifname,
            gateway=declared.gateway,
            metric=metric,
            proto=PROTO_MULTIHOME,
        )
        if not declared.is_default and declared.dst not in have and fits(route):
            copies.append(route)
            have.add(route.dst)
            origins[route] = origin
    for old in earlier:
        route = _copy(old, table)
        if (
            route.family != 6
            or route.type == RTN_THROW
            or route.is_default
            or route.dst in have
            or not fits(route)
        ):
            continue
        copies.append(route)
        have.add(route.dst)
        origins[route] = "seen earlier in the table"
    for addr in addrs:
        if addr.network not in have and addr.network.prefixlen < addr.network.max_prefixlen:
            route = Route(
                table=table,
                dst=addr.network,
                ifname=ifname,
                metric=IPV6_PREFIX_METRIC,
                proto=PROTO_MULTIHOME,
            )
            copies.append(route)
            have.add(addr.network)
            origins[route] = f"the address {addr.interface}"
    if default is None:
        return copies
    copy = _copy(default, table)
    copies.append(copy)
    if default.table != TABLE_MAIN:
        origins[copy] = "seen earlier in the table"
    elif declaration is not None and default not in in_main:
        origins[copy] = declaration.origin
    return copies


#: The metric the kernel gives an IPv6 address's prefix route (IP6_RT_PRIO_ADDRCONF).
IPV6_PREFIX_METRIC = 256
#: The metric the kernel gives an IPv6 route added without one (IP6_RT_PRIO_USER), and the
#: router advertisement's default by default (``ra_defrtr_metric``).
IPV6_ROUTE_METRIC = 1024
