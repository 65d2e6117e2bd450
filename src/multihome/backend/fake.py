"""An in-memory twin of the kernel backend, for unit tests of pure logic.

It keeps a HostState, applies changes to it with the kernel's own refusals (adding an
existing route slot or rule is EEXIST, removing a missing one is ESRCH), can fail on the
k-th change, and answers lookups with a simplified rule walk (enough for the policy's rules).
Links go up and addresses come and go as in the kernel (an address brings its subnet route
into main unless ``prefix_route=False``; a link or address that goes takes the routes through
it along); :meth:`set_link_down`, :meth:`add_link` and :meth:`remove_link` let a test play the
events a VM sees (a flap, a hot-plug, a detach).
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from multihome.backend import Announcement, ChangeFailed, Fingerprint, Lookup, Query
from multihome.model import (
    IFA_F_DEPRECATED,
    IFA_F_NOPREFIXROUTE,
    PROTO_KERNEL,
    RTN_THROW,
    SCOPE_LINK,
    TABLE_LOCAL,
    TABLE_MAIN,
    Address,
    HostState,
    IPAddress,
    Lifetime,
    Link,
    Route,
    Rule,
    Sysctl,
    sortable,
)

if TYPE_CHECKING:
    from multihome.plan import Change

DEFAULT_RULES = (
    Rule(family=4, priority=0, table=TABLE_LOCAL, proto=2),
    Rule(family=4, priority=32766, table=TABLE_MAIN, proto=2),
    Rule(family=4, priority=32767, table=253, proto=2),
)
#: The kernel's own IPv6 rules (local, main), which a state without IPv6 rules is taken to have.
DEFAULT_RULES6 = (
    Rule(family=6, priority=0, table=TABLE_LOCAL, proto=2),
    Rule(family=6, priority=32766, table=TABLE_MAIN, proto=2),
)


class FakeBackend:
    """A namespace in memory."""

    namespace_lock: str | None = None  # not the kernel's: nothing namespace-wide to lock

    def __init__(self, state: HostState, fail_at: int | None = None) -> None:
        self.state = state
        self.fail_at = fail_at
        self.calls = 0
        self.announced: list[tuple[str, str, str]] = []
        self.route_lookups = 0
        """How many route lookups were asked (verification makes them)."""
        self.announce_calls = 0
        """How many batches of announcements were sent (one per apply)."""
        self.watched: list[str] | None = None
        """The notifications since ``watch()`` (None: not watching)."""
        self.neighbours: dict[tuple[str, IPAddress], int] = {}
        """The neighbour tables: ``NUD_*`` state by (interface, address), as a test sets it."""
        self.lifetimes: dict[tuple[str, str], Lifetime] = {}
        """The lifetimes :meth:`add_address` was last given per address key (the twin does
        not count them down)."""

    def read(self) -> HostState:
        return self.state

    def expect(self, changed: Collection[str]) -> None:
        """Nothing to keep: the state in memory is always whole."""

    def apply(self, changes: Sequence[Change]) -> int:
        done = 0
        for change in changes:
            self.calls += 1
            if self.fail_at is not None and self.calls == self.fail_at:
                raise ChangeFailed(change, done, "injected failure")
            error = self._apply_one(change)
            if error:
                code = errno.EEXIST if error == "File exists" else None
                raise ChangeFailed(change, done, error, code)
            done += 1
        return done

    def _apply_one(self, change: Change) -> str | None:
        obj = change.obj
        state = self.state
        if isinstance(obj, Sysctl):
            sysctls = dict(state.sysctls)
            sysctls[obj.name] = obj.value
            self.state = HostState.build(
                state.links, state.addresses, state.routes, state.rules, sysctls
            )
            return None
        if isinstance(obj, Route):
            routes, error = _toggled(
                state.routes,
                obj,
                change.action,
                clash=lambda r: r.slot == obj.slot,
                missing="No such process",
            )
            self.state = replace(state, routes=routes)
            return error
        rules, error = _toggled(
            state.rules,
            obj,
            change.action,
            clash=lambda r: r == obj,
            missing="No such file or directory",
        )
        self.state = replace(state, rules=rules)
        return error

    def replace_route(self, route: Route) -> None:
        """As the kernel does: the route takes its slot (table, destination, metric)."""
        if route.ifname:
            self._require_link(route.ifname)
        state = self.state
        kept = tuple(r for r in state.routes if r.slot != route.slot)
        routes = tuple(sorted((*kept, route), key=lambda r: r.order))
        self.state = replace(state, routes=routes)

    # -- links and addresses -------------------------------------------------------------
    def link_index(self, ifname: str) -> int | None:
        link = self.state.link(ifname)
        return None if link is None else link.index

    def set_link_up(self, ifname: str) -> None:
        """As the kernel does: a link that comes up gets its addresses' subnet routes back,
        except those of ``noprefixroute`` addresses (their owner adds its own)."""
        was_up = self._require_link(ifname).up
        self._set_link(ifname, up=True)
        if was_up:
            return
        state = self.state
        present = {(r.table, r.dst, r.ifname) for r in state.routes}
        subnets = tuple(
            Route(
                table=TABLE_MAIN,
                dst=a.network,
                ifname=ifname,
                proto=PROTO_KERNEL,
                scope=SCOPE_LINK,
                prefsrc=a.ip,
            )
            for a in state.addresses_of(ifname, 4)
            if (TABLE_MAIN, a.network, ifname) not in present and not a.flags & IFA_F_NOPREFIXROUTE
        )
        self.state = replace(state, routes=(*state.routes, *subnets))

    def set_link_down(self, ifname: str) -> None:
        """As the kernel does: every route through the link goes, in every table."""
        self._set_link(ifname, up=False)
        self._drop_device(ifname)

    def add_link(self, link: Link) -> None:
        state = self.state
        self.state = replace(state, links=(*state.links, link))

    def remove_link(self, ifname: str) -> None:
        state = self.state
        self.state = replace(
            state,
            links=tuple(lnk for lnk in state.links if lnk.name != ifname),
            addresses=tuple(a for a in state.addresses if a.ifname != ifname),
        )
        self._drop_device(ifname)

    def add_address(
        self, address: Address, *, prefix_route: bool = True, lifetime: Lifetime | None = None
    ) -> bool:
        self._require_link(address.ifname)
        state = self.state
        if lifetime is not None:
            if lifetime.valid == 0 or lifetime.preferred > lifetime.valid:
                raise OSError(errno.EINVAL, "Invalid argument")  # as the kernel refuses them
            self.lifetimes[address.key] = lifetime
            deprecated = IFA_F_DEPRECATED if lifetime.preferred == 0 else 0
            address = replace(address, flags=(address.flags & ~IFA_F_DEPRECATED) | deprecated)
            there = [a for a in state.addresses if a.key == address.key]
            if there:  # replace: the same address, its lifetimes and flags updated
                flags = (there[0].flags & ~IFA_F_DEPRECATED) | address.flags
                if not prefix_route:
                    flags |= IFA_F_NOPREFIXROUTE
                updated = replace(there[0], flags=flags)
                self.state = replace(
                    state,
                    addresses=tuple(
                        updated if a.key == address.key else a for a in state.addresses
                    ),
                )
                return True
        if any(a.key == address.key for a in state.addresses):
            return False
        routes = state.routes
        if not prefix_route:
            address = replace(address, flags=address.flags | IFA_F_NOPREFIXROUTE)
        else:
            subnet = Route(
                table=TABLE_MAIN,
                dst=address.network,
                ifname=address.ifname,
                proto=PROTO_KERNEL,
                scope=SCOPE_LINK,
                prefsrc=address.ip,
            )
            routes = (*routes, subnet)
        self.state = replace(state, addresses=(*state.addresses, address), routes=routes)
        return True

    def remove_address(self, address: Address) -> bool:
        state = self.state
        kept = tuple(a for a in state.addresses if a.key != address.key)
        if len(kept) == len(state.addresses):
            return False
        self.state = replace(state, addresses=kept)
        self._drop_routes(lambda r: r.prefsrc == address.ip)
        return True

    def _set_link(self, ifname: str, *, up: bool) -> None:
        link = self._require_link(ifname)
        state = self.state
        links = tuple(replace(link, up=up) if lnk.name == ifname else lnk for lnk in state.links)
        self.state = replace(state, links=links)

    def _require_link(self, ifname: str) -> Link:
        link = self.state.link(ifname)
        if link is None:
            raise OSError(19, f"no interface {ifname}")
        return link

    def _drop_routes(self, gone: Callable[[Route], bool]) -> None:
        state = self.state
        self.state = replace(state, routes=tuple(r for r in state.routes if not gone(r)))

    def _drop_device(self, ifname: str) -> None:
        """As the kernel does when a device goes: its routes go, and a multipath route loses
        the next hop through it (one left: a single-path route)."""
        kept: list[Route] = []
        for route in self.state.routes:
            if not route.nexthops:
                if route.ifname != ifname:
                    kept.append(route)
                continue
            hops = tuple(hop for hop in route.nexthops if hop.ifname != ifname)
            if len(hops) == 1:
                kept.append(route.through(hops[0]))
            elif hops:
                kept.append(replace(route, nexthops=hops))
        self.state = replace(self.state, routes=tuple(kept))

    def lookup(
        self, dst: IPAddress, src: IPAddress | None = None, oif: str | None = None
    ) -> Lookup | None:
        """The rules and tables walked for one flow; of a multipath route the first next hop
        (the one through ``oif`` when bound): the kernel's hash is not modelled here."""
        self.route_lookups += 1
        rules = list(self.state.rules or DEFAULT_RULES)
        if dst.version == 6 and not any(r.family == 6 for r in rules):
            rules += DEFAULT_RULES6
        rules.sort(key=lambda r: r.priority)
        for rule in rules:
            if rule.family != dst.version or rule.table == TABLE_LOCAL:
                continue
            if rule.src is not None and (src is None or src not in rule.src):
                continue
            if rule.dst is not None and dst not in rule.dst:
                continue
            if rule.oifname is not None and rule.oifname != oif:
                continue
            if rule.iifname is not None:
                continue  # locally generated traffic has iif lo
            best = self._best_route(rule.table, dst, oif)
            if best is None or best.type == RTN_THROW:  # a throw: the next rule, as the kernel
                continue
            if (
                rule.suppress_prefixlength is not None
                and best.dst.prefixlen <= rule.suppress_prefixlength
            ):
                continue
            hop = next(h for h in best.paths if oif is None or h.ifname == oif)
            return Lookup(hop.ifname, hop.gateway, best.prefsrc, rule.table)
        return None

    def lookups(self, queries: Sequence[Query], *, sources: bool = True) -> list[Lookup | None]:
        return [self.lookup(dst, src, oif) for dst, src, oif in queries]

    def lookups_unless(
        self,
        queries: Sequence[Query],
        interrupted: Callable[[], bool],
        batch: int,
        *,
        sources: bool = True,
    ) -> list[Lookup | None] | None:
        found: list[Lookup | None] = []
        for start in range(0, len(queries), batch):
            if interrupted():
                return None
            found += self.lookups(queries[start : start + batch], sources=sources)
        return found

    def _best_route(self, table: int, dst: IPAddress, oif: str | None) -> Route | None:
        candidates = [
            r
            for r in self.state.routes
            if r.table == table
            and r.family == dst.version
            and dst in r.dst
            and (oif is None or oif in r.devices or r.type == RTN_THROW)
        ]
        if not candidates:
            return None
        return min(candidates, key=lambda r: (-r.dst.prefixlen, r.metric))

    def neighbour_state(self, ifname: str, address: IPAddress) -> int | None:
        self._require_link(ifname)
        return self.neighbours.get((ifname, address))

    def announce(self, items: Sequence[Announcement]) -> list[tuple[Announcement, str]]:
        self.announce_calls += 1
        failed = []
        for item in items:
            if item.ifname not in {link.name for link in self.state.links}:
                failed.append((item, "No such device"))
                continue
            self.announced.append((item.ifname, item.mac, str(item.address)))
        return failed

    def fingerprint(self, *, since_read: bool = False) -> Fingerprint:
        return Fingerprint(
            hashlib.blake2b(repr(self.state).encode()).hexdigest(), dict(self.state.sysctls)
        )

    def watch(self) -> None:
        self.watched = []

    def notifications(self) -> list[str] | None:
        found, self.watched = self.watched, None
        return found

    def foreign(self, state: HostState, notification: str) -> None:
        """Another tool changes the namespace to ``state`` (tests)."""
        self.state = state
        if self.watched is not None:
            self.watched.append(notification)

    def close(self) -> None:
        return None


T = TypeVar("T", Route, Rule)


def _toggled(
    items: tuple[T, ...], obj: T, action: str, *, clash: Callable[[T], bool], missing: str
) -> tuple[tuple[T, ...], str | None]:
    """``items`` with ``obj`` added or removed, or unchanged and the kernel's refusal."""
    present = set(items)
    if action == "add":
        if any(clash(item) for item in present):
            return items, "File exists"
        present.add(obj)
    elif obj in present:
        present.discard(obj)
    else:
        return items, missing
    return tuple(sorted(present, key=lambda item: sortable(item.key))), None


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """Shorthand for tests."""
    return ipaddress.ip_network(text)
