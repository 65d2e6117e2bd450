"""The real kernel backend: rtnetlink in the current network namespace.

Reads are four dumps (links, addresses, routes, rules) decoded straight into the model, plus
the sysctls from ``/proc/sys``. Changes are *batched*: the routes and rules of a plan go to the
kernel many per ``send`` (:meth:`RtnlSocket.batch`), and the kernel's errors (and one
acknowledgement per ``send``) are collected afterwards, instead of one request-and-wait per
change. The contract of
:meth:`Backend.apply` still holds exactly: changes take effect in order, and on the first
failure :class:`ChangeFailed` names that change and how many were made before it. Because the
kernel also handles the requests sent after a failed one, those that succeeded are undone
here (in reverse order) before ``ChangeFailed`` is raised, so that the caller's undo of the
first ``done`` changes leaves the namespace as it was.
"""

from __future__ import annotations

# The C module: socket.py builds enums of every constant at import (start-up of every command).
import _socket
import errno
import functools
import ipaddress
import operator
import os
import struct
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from multihome.backend import (
    Announcement,
    ChangeFailed,
    Fingerprint,
    Lookup,
    Query,
)
from multihome.backend.rtnl import (
    AF_INET,
    AF_INET6,
    FIB_RULE_INVERT,
    FIBRULEHDR,
    FRA_DPORT_RANGE,
    FRA_DST,
    FRA_FWMARK,
    FRA_FWMASK,
    FRA_GOTO,
    FRA_IIFNAME,
    FRA_IP_PROTO,
    FRA_L3MDEV,
    FRA_OIFNAME,
    FRA_PRIORITY,
    FRA_PROTOCOL,
    FRA_SPORT_RANGE,
    FRA_SRC,
    FRA_SUPPRESS_IFGROUP,
    FRA_SUPPRESS_PREFIXLEN,
    FRA_TABLE,
    FRA_UID_RANGE,
    IFA_ADDRESS,
    IFA_CACHEINFO,
    IFA_F_SECONDARY,
    IFA_FLAGS,
    IFA_LOCAL,
    IFADDRMSG,
    IFINFOMSG,
    IFLA_ADDRESS,
    IFLA_AF_SPEC,
    IFLA_GROUP,
    IFLA_IFNAME,
    IFLA_INET_CONF,
    IFLA_INFO_KIND,
    IFLA_LINKINFO,
    IFLA_MASTER,
    IFLA_OPERSTATE,
    NDA_DST,
    NDA_IFINDEX,
    NDMSG,
    NLA_TYPE_MASK,
    NLATTR,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REPLACE,
    OPERSTATES,
    RTA_CACHEINFO,
    RTA_CACHEINFO_STRUCT,
    RTA_DPORT,
    RTA_DST,
    RTA_GATEWAY,
    RTA_IIF,
    RTA_IP_PROTO,
    RTA_MARK,
    RTA_MULTIPATH,
    RTA_NH_ID,
    RTA_OIF,
    RTA_PREFSRC,
    RTA_PRIORITY,
    RTA_SPORT,
    RTA_SRC,
    RTA_TABLE,
    RTA_UID,
    RTA_VIA,
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_DELROUTE,
    RTM_DELRULE,
    RTM_F_CLONED,
    RTM_F_FIB_MATCH,
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_GETNEIGH,
    RTM_GETROUTE,
    RTM_GETRULE,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWNEIGH,
    RTM_NEWROUTE,
    RTM_NEWRULE,
    RTMSG,
    USER_HZ,
    Message,
    NetlinkError,
    RtnlSocket,
    asciiz,
    attr,
    attr_u32,
    attributes,
    multipath,
    nexthops,
    u32,
)
from multihome.kerneldigest import LINK_DUMP, SYSCTL_KNOBS
from multihome.kerneldigest import digest as kernel_digest
from multihome.model import (
    ADDRESS_FLAG_MASK,
    IFA_F_TEMPORARY,
    PROTO_BOOT,
    RTN_UNICAST,
    TABLE_LOCAL,
    Address,
    HostState,
    IPAddress,
    IPInterface,
    IPNetwork,
    Lifetime,
    Link,
    NextHop,
    Route,
    Rule,
    Sysctl,
    conf_sysctl,
    ip_text,
    need_strict,
    with_cached,
)
from multihome.nlattrs import spans
from multihome.processes import NAMESPACE_LOCK

TYPE_CHECKING = False  # typing is for the type checker only (start-up time)
if TYPE_CHECKING:
    import logging
    from typing import Any, TypeVar

    from multihome.plan import Change


def log() -> logging.Logger:
    """This module's logger: ``logging`` (with ``traceback``, ``string``, ``textwrap``; ~19 M
    instructions) is imported only when there is something to say, never on a clean apply."""
    import logging

    return logging.getLogger(__name__)


#: Why a sysctl write fails with EROFS, and the way on (systemd-nspawn without a private
#: network, LXD or Docker without privileges mount /proc/sys read-only).
READ_ONLY_SYSCTLS = (
    "/proc/sys/net is read-only here (a container without its own writable network "
    "sysctls), so multihome cannot set the ports' ARP-flux and reverse-path sysctls. To "
    "route without them: `multihome apply --no-sysctls`, or `sysctls: false` "
    "in /etc/multihome/config.yaml (for the agent too); `multihome doctor` says what is then "
    "not protected"
)
ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
#: The all-nodes multicast group an unsolicited neighbour advertisement goes to, and its MAC.
ALL_NODES = ipaddress.IPv6Address("ff02::1").packed
ALL_NODES_MAC = bytes.fromhex("333300000001")
ICMPV6 = 58
ND_NEIGHBOR_ADVERT = 136
NA_OVERRIDE = 0x20000000
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFA_F_NOPREFIXROUTE = 0x200
NO_SUPPRESS = 0xFFFFFFFF
PORT_RANGE = struct.Struct("=HH")
UID_RANGE = struct.Struct("=II")
FAMILIES = {4: _socket.AF_INET, 6: _socket.AF_INET6}
VERSIONS = {_socket.AF_INET: 4, _socket.AF_INET6: 6}
#: rtm_table / fib_rule_hdr.table hold 8 bits; larger ids travel in RTA_TABLE / FRA_TABLE.
RT_TABLE_UNSPEC = 0
Request = tuple[int, int, bytes]
#: The multicast groups of the notifications :meth:`NetlinkBackend.watch` records: links,
#: IPv4 and IPv6 addresses, routes and rules.
WATCH_GROUPS = 0x1 | 0x10 | 0x40 | 0x80 | 0x100 | 0x400 | 0x40000
NOTIFICATIONS = {
    RTM_NEWLINK: "link",
    RTM_DELLINK: "link",
    RTM_NEWADDR: "addr",
    RTM_DELADDR: "addr",
    RTM_NEWROUTE: "route new",
    RTM_DELROUTE: "route del",
    RTM_NEWRULE: "rule new",
    RTM_DELRULE: "rule del",
}
#: ``IPV4_DEVCONF_*`` (linux/ip.h) of the knobs, as they come in a link's IFLA_INET_CONF
#: (1-based: the value of id ``i`` is the array's ``i - 1``th u32).
DEVCONF = {"rp_filter": 8, "arp_filter": 13, "arp_announce": 18, "arp_ignore": 19}
DEVCONF_KNOBS = tuple((knob, DEVCONF[knob] - 1) for knob in SYSCTL_KNOBS)
#: The devconf's values up to the last knob read, and the knobs' values among them (in
#: :data:`SYSCTL_KNOBS`' order, four: ``itemgetter`` gives a tuple): one ``Struct`` and one
#: ``itemgetter``, made once.
_DEVCONF_HEAD = struct.Struct(f"={max(DEVCONF.values())}i")
_DEVCONF_PICK = operator.itemgetter(*(index for _knob, index in DEVCONF_KNOBS))


#: The start of every rule's message (:meth:`NetlinkBackend.rule_message`): the fib_rule_hdr
#: (family, dst_len, src_len, tos, table, two reserved bytes, action, flags), FRA_PRIORITY,
#: FRA_TABLE (u32 each) and FRA_PROTOCOL (one byte, padded to 4).
_RULE_HEAD = "=BBBBBBBBIHHIHHIHHB3x"
#: The format of a lookup's RTM_GETROUTE body (:meth:`NetlinkBackend._lookup_body`) by its
#: shape: (address bits, with a source, with an output interface). The rtmsg header's family,
#: dst_len, src_len and flags, its other fields 0; RTA_DST; RTA_SRC; RTA_OIF. Made once
#: each, not put together per lookup (a verification at 256 ports asks 768).
_LOOKUP_LAYOUTS = {
    (bits, with_src, with_oif): struct.Struct(
        f"=BBB5xIHH{bits // 8}s"
        + (f"HH{bits // 8}s" if with_src else "")
        + ("HHI" if with_oif else "")
    )
    for bits in (32, 128)
    for with_src in (False, True)
    for with_oif in (False, True)
}


_ROUTE_LAYOUTS: dict[tuple[int, ...], struct.Struct] = {}


def _route_layout(shape: tuple[int, ...]) -> struct.Struct:
    """The ``Struct`` of a route message (:meth:`NetlinkBackend.route_message`) of ``shape``:
    (RTA_DST's address bytes or 0, with RTA_OIF, RTA_GATEWAY's bytes or 0,
    RTA_MULTIPATH's bytes or 0, with RTA_PRIORITY, RTA_PREFSRC's bytes or 0); made the
    first time a shape is asked (an apply meets a handful)."""
    layout = _ROUTE_LAYOUTS.get(shape)
    if layout is None:
        dst, oif, gateway, hops, metric, prefsrc = shape
        layout = _ROUTE_LAYOUTS[shape] = struct.Struct(
            "=BBxxBBBBxxxxHHI"
            + (f"HH{dst}s" if dst else "")
            + ("HHI" if oif else "")
            + (f"HH{gateway}s" if gateway else "")
            + (f"{hops}s" if hops else "")
            + ("HHI" if metric else "")
            + (f"HH{prefsrc}s" if prefsrc else "")
        )
    return layout


#: The kinds of state :meth:`NetlinkBackend.expect` is told about (the agent's event kinds).
KINDS = ("link", "addr", "route", "rule")
#: The kind of state each change of :meth:`NetlinkBackend.apply` changes (a sysctl's value
#: comes with the link dump).
_KIND_OF: dict[type, str] = {Route: "route", Rule: "rule", Sysctl: "link"}


class NetlinkBackend:
    """Reads and changes the kernel state of the namespace this process runs in.

    ``local_table=False``: :meth:`read` leaves out the routes of the ``local`` table (the
    kernel's own, two or three per address: half of all routes on a VM with many ports),
    which an apply never looks at (multihome owns none there; ``explain`` and ``status``
    walk them, and keep the default). The fingerprint leaves them out too."""

    namespace_lock: str | None = NAMESPACE_LOCK

    def __init__(
        self,
        proc_sys: Path = Path("/proc/sys"),
        *,
        local_table: bool = True,
        announce_once: bool = False,
    ) -> None:
        """``local_table``: :meth:`read` decodes the ``local`` table's routes too.
        ``announce_once``: the process announces once (a command, not the agent): the packet
        socket of :meth:`announce` is closed right after it, in the background."""
        self._sock: RtnlSocket | None = None
        self._announce_once = announce_once
        self._proc_sys = proc_sys
        self._local_table = local_table
        self._index: dict[str, int] = {}
        self._names: dict[int, str] = {}
        self._watch: RtnlSocket | None = None
        self._watch_filtered = False  # the watch ignores this backend's changes (see watch)
        self._raw: RawState | None = None
        self._last: RawState | None = None
        """The last read's dumps, for :meth:`expect`."""
        self._stale: set[str] = set(KINDS)
        """What this backend changed itself since the last read (its notifications are not
        the agent's events), or everything when the kept dumps are not to be trusted."""
        self._expected: frozenset[str] | None = None
        self._written: dict[str, str] = {}
        """The sysctl values this backend wrote since the last read."""
        self._decoded: Decoded = ({}, {}, {})
        self._packet: _socket.socket | None = None  # announce(): opened once, see there

    @property
    def sock(self) -> RtnlSocket:
        if self._sock is None:
            self._sock = RtnlSocket()
        return self._sock

    def close(self) -> None:
        if self._packet is not None:
            self._packet.close()
            self._packet = None
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # -- reading -----------------------------------------------------------------------
    def read(self) -> HostState:
        """The state; decoded from the dumps :meth:`fingerprint` has just taken, if any (a
        no-op apply that finds the state changed reads it only once)."""
        raw, self._raw = self._raw, None
        expected, self._expected = self._expected, None
        if raw is None:
            raw = self._dump(None if expected is None else expected | self._stale)
        self._last, self._stale, self._written = raw, set(), {}
        # (without the local table, _dump has left its routes out)
        raw_links, raw_addresses, raw_routes, raw_rules, sysctls, _bodies = raw
        names = {index: name for index, name, *_ in raw_links}
        links = [_link(link, names) for link in raw_links]
        if names != self._names:
            self._decoded = _still_decoded(self._decoded, self._names, names)
        self._index = {name: index for index, name in names.items()}
        self._names = names
        # Most messages are the same from one read to the next (the agent reads after every
        # event): a message's body decodes to the same object, which keeps its sort key.
        old_addresses, old_routes, old_rules = self._decoded
        # Addresses and rules also keep their place in the kernel's list (explain needs it).
        made: dict[Any, Any] = {}  # the networks and addresses made (see _route)
        addresses = [
            _kept(old_addresses.get(body), position) or _address(body, names, position, made)
            for position, body in enumerate(raw_addresses, start=1)
        ]
        routes = [
            old_routes[body] if body in old_routes else _route(body, names, made)
            for body in raw_routes
        ]
        rules = [
            _kept(old_rules.get(body), position) or _rule(body, position)
            for position, body in enumerate(raw_rules, start=1)
        ]
        self._decoded = (
            dict(zip(raw_addresses, addresses, strict=True)),
            dict(zip(raw_routes, routes, strict=True)),
            dict(zip(raw_rules, rules, strict=True)),
        )
        return HostState.build(
            links,
            [a for a in addresses if a is not None],
            [r for r in routes if r is not None],
            [r for r in rules if r is not None],
            sysctls,
        )

    def expect(self, changed: Collection[str]) -> None:
        """Only ``changed`` kinds of state (:data:`KINDS`) changed since the last read, apart
        from this backend's own changes: the next :meth:`read` dumps only what they can
        have changed and keeps the rest of the last read's dumps (the agent knows from its
        events what changed; a route event needs no link, address or rule dump). A link
        change can change everything (the kernel drops a device's IPv4 routes without a
        notification, rules naming it attach or detach), an address its routes too. Hints
        not yet used by a read add up."""
        self._expected = frozenset(changed) | (self._expected or frozenset())

    def _dump(self, changed: frozenset[str] | None = None) -> RawState:
        """The four dumps as message bodies (links already reduced), and the sysctls; with
        ``changed`` (:meth:`expect`), the dumps of the other kinds are the kept ones."""
        kept = self._last
        if changed is None or kept is None or "link" in changed:
            fresh = frozenset(KINDS)
        else:
            fresh = changed | ({"route"} if "addr" in changed else set())
        sock = self.sock
        if "link" in fresh or kept is None:
            link_bodies = sock.dump_bodies(RTM_GETLINK, LINK_DUMP)
            raw_links = [link for body in link_bodies if (link := _raw_link(body)) is not None]
            sysctls = self._sysctls(raw_links)
        else:  # the sysctls come with the links (a sysctl write is no event: see expect)
            raw_links, sysctls, link_bodies = kept[0], kept[4], kept[5]
        addresses = (
            sock.dump_bodies(RTM_GETADDR, IFADDRMSG.pack(0, 0, 0, 0, 0))
            if "addr" in fresh or kept is None
            else kept[1]
        )

        def both_families(
            kind: int, header: struct.Struct, skip_table: int | None = None
        ) -> list[bytes]:
            """One dump per family (the header's first field), IPv4's then IPv6's."""
            bodies: list[bytes] = []
            for family in (AF_INET, AF_INET6):
                request = header.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
                bodies += sock.dump_bodies(kind, request, skip_table=skip_table)
            return bodies

        # Without the local table its routes are dropped as they arrive, not cut out first.
        skip_local = None if self._local_table else TABLE_LOCAL
        routes = (
            both_families(RTM_GETROUTE, RTMSG, skip_local)
            if kept is None or "route" in fresh
            else kept[2]
        )
        rules = (
            both_families(RTM_GETRULE, FIBRULEHDR) if kept is None or "rule" in fresh else kept[3]
        )
        return raw_links, addresses, routes, rules, sysctls, link_bodies

    def fingerprint(self, *, since_read: bool = False) -> Fingerprint:
        """A digest of everything :meth:`read` decodes, from the raw dumps (nothing decoded
        into the model; :func:`multihome.kerneldigest.digest`, which the no-op decision
        before the CLI computes alike), and the sysctls' values. The dumps are kept for the
        next :meth:`read`. ``since_read`` (after an apply: see :meth:`Backend.fingerprint`):
        only the routes and rules are dumped again (:meth:`_since_read`)."""
        raw = self._since_read() if since_read else None
        if raw is None:
            raw = self._raw = self._dump()
        _links, addresses, routes, rules, sysctls, link_bodies = raw
        digest = kernel_digest(link_bodies, addresses, routes, rules, str(self._proc_sys))
        return Fingerprint(digest, sysctls)

    def _since_read(self) -> RawState | None:
        """The last read's dumps with this backend's own changes made since: the routes and
        rules dumped again, the interface sysctls it wrote put into the link messages' IPv4
        devconf (:func:`_with_devconf`; at 256 ports the link dump and its decoding were a
        third of the fingerprint), the addresses as read. None (dump everything) when it
        changed links or addresses itself, or wrote a knob the devconf does not show."""
        kept = self._last
        if kept is None or self._stale - {"route", "rule", "link"}:
            return None
        raw_links, _addresses, _routes, _rules, sysctls, link_bodies = kept
        if self._written:
            patched = _with_devconf(raw_links, link_bodies, self._written)
            if patched is None:
                return None
            link_bodies, sysctls = patched, {**sysctls, **self._written}
        fresh = self._dump(frozenset(("route", "rule")))  # the kept links and addresses
        return fresh[0], fresh[1], fresh[2], fresh[3], sysctls, link_bodies

    def watch(self) -> None:
        """Record, from now on, the namespace's link, address, route and rule notifications
        (until :meth:`notifications`), but those of the route and rule changes this backend
        makes itself."""
        if self._watch is not None:
            self._watch.close()
        self._watch = RtnlSocket(WATCH_GROUPS)
        self._watch_filtered = False

    def _unwatch_own_changes(self) -> None:
        """Before each route or rule change of this backend (nothing unless watching and not
        filtered yet): the kernel is to drop the notifications of the changes requested
        through :attr:`sock` (:meth:`RtnlSocket.ignore_changes_of`; not at :meth:`watch`: a
        no-op apply, which changes nothing, does not build the filter). A kernel that
        refuses the filter drops nothing: the changes' own notifications then show as
        others' (no fingerprint is recorded, the next apply reads everything)."""
        if self._watch is not None and not self._watch_filtered:
            self._watch_filtered = True
            try:
                self._watch.ignore_changes_of(self.sock.portid)
            except OSError as exc:
                log().warning(
                    "the kernel refused the socket filter for this apply's own notifications "
                    "(%s): no fingerprint is recorded, so the next apply reads everything",
                    exc,
                )

    def notifications(self) -> list[str] | None:
        """What :meth:`watch` recorded (``route new 2``, ``rule del 10``, ``link``, ``addr``;
        the number is the address family), and stop recording. None when nothing was
        watched or the kernel dropped notifications (its buffer overflowed)."""
        watch, self._watch = self._watch, None
        if watch is None:
            return None
        try:
            found = watch.notifications()
        except OSError:
            return None
        finally:
            watch.close()
        texts: list[str] = []
        for (kind, family), count in Counter(found).items():
            if kind in NOTIFICATIONS:
                plain = kind in (RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_DELADDR)
                texts += [NOTIFICATIONS[kind] + ("" if plain else f" {family}")] * count
        return texts

    def _read_index(self) -> None:
        """Interface names and indexes alone (when changes come without a read)."""
        raw_links = self.sock.dump(RTM_GETLINK, LINK_DUMP, _link_message)
        self._names = {index: name for index, name, *_ in raw_links}
        self._index = {name: index for index, name in self._names.items()}

    def _sysctls(self, raw_links: list[RawLink]) -> dict[str, str]:
        """The knobs of every interface from the link dump's ipv4 devconf (no file per knob
        and interface: 1000 opens at 256 ports), those of ``all`` and ``default`` and of
        links without one from ``/proc/sys``."""
        values = self._read_sysctls(["all", "default"], defaults=False)
        missing = []
        for raw in raw_links:
            ifname, conf = raw[1], raw[7]
            if conf is None:
                missing.append(ifname)
                continue
            prefix = conf_sysctl(ifname, "", "").name  # net.ipv4.conf.IF. (once per link)
            for knob, value in zip(SYSCTL_KNOBS, conf, strict=True):
                values[prefix + knob] = str(value)
        if missing:
            values.update(self._read_sysctls(missing, defaults=False))
        return values

    def _read_sysctls(self, ifnames: list[str], *, defaults: bool = True) -> dict[str, str]:
        """The knobs of ``ifnames`` (and of ``all`` and ``default``) from ``/proc/sys``."""
        values: dict[str, str] = {}
        base = str(self._proc_sys)
        for ifname in ["all", "default", *ifnames] if defaults else ifnames:
            for knob in SYSCTL_KNOBS:
                sysctl = conf_sysctl(ifname, knob, "")
                try:
                    fd = os.open(f"{base}/{sysctl.path}", os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    continue
                try:
                    values[sysctl.name] = os.read(fd, 4096).decode().strip()
                except OSError:
                    continue
                finally:
                    os.close(fd)
        return values

    # -- changing ----------------------------------------------------------------------
    def apply(self, changes: Sequence[Change]) -> int:
        """Make ``changes`` in order: sysctls one by one, each run of route and rule
        changes as one batch. Stops at the first failure (see the module's docstring)."""
        kinds = {type(c.obj) for c in changes}
        if kinds - {Sysctl}:
            self._unwatch_own_changes()
        self._stale.update(_KIND_OF.get(kind, "link") for kind in kinds)
        if not self._index and kinds - {Sysctl}:
            self._read_index()
        done = 0
        start = 0
        count = len(changes)
        while start < count:
            if isinstance(changes[start].obj, Sysctl):
                end = self._write_sysctls(changes, start, done)
                done += end - start
            else:
                end = start + 1
                while end < count and not isinstance(changes[end].obj, Sysctl):
                    end += 1
                done += self._apply_batch(changes[start:end], done)
            start = end
        return done

    def _write_sysctls(self, changes: Sequence[Change], start: int, done: int) -> int:
        """Write the run of sysctl changes that starts at ``changes[start]``, one file each;
        returns where the run ends. (One loop for the run: an apply at 256 ports writes
        1,024 of them.)"""
        base = f"{self._proc_sys}/"
        written = self._written
        flags = os.O_WRONLY | os.O_CLOEXEC
        end, count = start, len(changes)
        while end < count:
            change = changes[end]
            sysctl = change.obj
            if not isinstance(sysctl, Sysctl):
                break
            try:
                fd = os.open(base + sysctl.path, flags)
                try:
                    os.write(fd, (sysctl.value + "\n").encode())
                finally:
                    os.close(fd)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                if exc.errno == errno.EROFS:
                    reason += f" ({self._proc_sys}/{sysctl.path}): {READ_ONLY_SYSCTLS}"
                raise ChangeFailed(change, done + end - start, reason) from exc
            written[sysctl.name] = sysctl.value
            end += 1
        return end

    def _apply_batch(self, changes: Sequence[Change], done: int) -> int:
        """Route and rule changes as batched requests; returns how many were made."""
        requests: list[Request] = []
        unencodable: OSError | None = None
        for change in changes:
            try:
                requests.append(self._request(change))
            except OSError as exc:  # e.g. the interface is gone: the kernel never sees it
                unencodable = exc
                break
        results = self.sock.batch(requests)
        failed = next((i for i, result in enumerate(results) if result is not None), None)
        if failed is None:
            if unencodable is not None:
                change = changes[len(requests)]
                raise ChangeFailed(
                    change, done + len(requests), unencodable.strerror or str(unencodable)
                )
            return len(requests)
        failure = results[failed]
        assert failure is not None
        reason = failure.strerror or str(failure)
        later = [changes[i] for i in range(failed + 1, len(requests)) if results[i] is None]
        problems = self._take_back(later)
        if problems:
            reason += (
                f"; and {len(problems)} change(s) after it that the kernel made could "
                f"not be undone: {'; '.join(problems)}"
            )
        raise ChangeFailed(changes[failed], done + failed, reason, failure.errno) from failure

    def _take_back(self, later: Sequence[Change]) -> list[str]:
        """Undo, newest first, the changes the kernel made after a failed one."""
        if not later:
            return []
        inverses = [c.inverse() for c in reversed(later)]
        results = self.sock.batch([self._request(c) for c in inverses])
        problems = []
        for change, result in zip(inverses, results, strict=True):
            if result is not None:
                log().error("could not take back %s: %s", change.describe(), result.strerror)
                problems.append(f"{change.describe()}: {result.strerror}")
        return problems

    def _request(self, change: Change) -> Request:
        obj = change.obj
        add = change.action == "add"
        if isinstance(obj, Route):
            return (
                RTM_NEWROUTE if add else RTM_DELROUTE,
                NLM_F_CREATE | NLM_F_EXCL if add else 0,
                self.route_message(obj),
            )
        if isinstance(obj, Rule):
            return (
                RTM_NEWRULE if add else RTM_DELRULE,
                NLM_F_CREATE | NLM_F_EXCL if add else 0,
                self.rule_message(obj),
            )
        raise TypeError(f"not a netlink change: {change.describe()}")

    def route_message(self, route: Route) -> bytes:
        """The rtmsg body that adds or deletes exactly ``route``: its header and attributes
        packed by one ``Struct`` of the message's shape, made once (an apply encodes ~770
        routes at 256 ports: ``struct.pack`` of a format put together per route, the
        destination's version and prefix length asked twice, cost a third more)."""
        table = route.table
        dst = route.dst
        bits = dst.prefixlen
        size = 4 if route.family == 4 else 16
        shape: list[int] = [bits and size]
        values: list[Any] = [
            FAMILIES[route.family],
            bits,
            table if table < 256 else RT_TABLE_UNSPEC,
            route.proto,
            route.scope,
            route.type,
            8,
            RTA_TABLE,
            table,
        ]
        if bits:
            values += (4 + size, RTA_DST, dst.network_address.packed)
        if route.ifname:
            index = self._index.get(route.ifname)
            if index is None:
                raise OSError(errno.ENODEV, f"no interface {route.ifname}")
            values += (8, RTA_OIF, index)
        shape.append(bool(route.ifname))
        gateway = route.gateway
        if gateway is not None:
            packed = gateway.packed
            shape.append(len(packed))
            values += (4 + len(packed), RTA_GATEWAY, packed)
        else:
            shape.append(0)
        if route.nexthops:
            hops = self._multipath(route)
            shape.append(len(hops))
            values.append(hops)
        else:
            shape.append(0)
        shape.append(bool(route.metric))
        if route.metric:
            values += (8, RTA_PRIORITY, route.metric)
        prefsrc = route.prefsrc
        if prefsrc is not None:
            packed = prefsrc.packed
            shape.append(len(packed))
            values += (4 + len(packed), RTA_PREFSRC, packed)
        else:
            shape.append(0)
        return _route_layout(tuple(shape)).pack(*values)

    def _multipath(self, route: Route) -> bytes:
        """A multipath route's RTA_MULTIPATH: an rtnexthop per next hop, its gateway inside
        (RTA_VIA for a gateway of the other family: IPv4 via an IPv6 router)."""
        hops = []
        for hop in route.nexthops:
            if hop.ifname and hop.ifname not in self._index:
                raise OSError(errno.ENODEV, f"no interface {hop.ifname}")
            inner = b""
            if hop.gateway is not None:
                if hop.gateway.version == route.family:
                    inner = attr(RTA_GATEWAY, hop.gateway.packed)
                else:
                    family = FAMILIES[hop.gateway.version]
                    inner = attr(RTA_VIA, struct.pack("=H", family) + hop.gateway.packed)
            hops.append((self._index[hop.ifname] if hop.ifname else 0, hop.weight, inner))
        return multipath(hops)

    @staticmethod
    def rule_message(rule: Rule) -> bytes:
        """The fib_rule_hdr body that adds or deletes exactly ``rule``: its header, the
        attributes every rule has (priority, table, protocol) and the selectors multihome's
        rules use (source, destination, interfaces, suppress_prefixlength, mark) packed by
        one format (an apply encodes ~770 rules at 256 ports: not a function call and a
        bytes object per attribute); the rarer selectors appended as attributes, in the
        same order."""
        table = rule.table
        src, dst = rule.src, rule.dst
        layout = _RULE_HEAD
        values: list[Any] = [
            FAMILIES[rule.family],
            0 if dst is None else dst.prefixlen,
            0 if src is None else src.prefixlen,
            rule.tos,
            table if table < 256 else RT_TABLE_UNSPEC,
            0,
            0,
            rule.action,
            FIB_RULE_INVERT if rule.invert else 0,
            8,
            FRA_PRIORITY,
            rule.priority,
            8,
            FRA_TABLE,
            table,
            5,
            FRA_PROTOCOL,
            rule.proto,
        ]
        for kind, network in ((FRA_SRC, src), (FRA_DST, dst)):
            if network is not None:
                packed = network.network_address.packed
                layout += f"HH{len(packed)}s"
                values += (4 + len(packed), kind, packed)
        for kind, ifname in ((FRA_IIFNAME, rule.iifname), (FRA_OIFNAME, rule.oifname)):
            if ifname:
                name = ifname.encode() + b"\0"
                layout += f"HH{len(name)}s{-len(name) % 4}x"  # padded to 4 bytes
                values += (4 + len(name), kind, name)
        for kind, number in (
            (FRA_SUPPRESS_PREFIXLEN, rule.suppress_prefixlength),
            (FRA_FWMARK, rule.fwmark),
            (FRA_FWMASK, rule.fwmask),
        ):
            if number is not None:
                layout += "HHI"
                values += (8, kind, number)
        rare = []
        if rule.ipproto is not None:
            rare.append(attr(FRA_IP_PROTO, bytes((rule.ipproto,))))
        for kind, ports in ((FRA_SPORT_RANGE, rule.sport), (FRA_DPORT_RANGE, rule.dport)):
            if ports is not None:
                rare.append(attr(kind, PORT_RANGE.pack(*ports)))
        if rule.uid is not None:
            rare.append(attr(FRA_UID_RANGE, UID_RANGE.pack(*rule.uid)))
        if rule.goto is not None:
            rare.append(attr_u32(FRA_GOTO, rule.goto))
        if rule.l3mdev:
            rare.append(attr(FRA_L3MDEV, b"\x01"))
        if rule.suppress_ifgroup is not None:
            rare.append(attr_u32(FRA_SUPPRESS_IFGROUP, rule.suppress_ifgroup))
        if rare:
            extra = b"".join(rare)
            layout += f"{len(extra)}s"
            values.append(extra)
        return struct.pack(layout, *values)

    def replace_route(self, route: Route) -> None:
        """``ip route replace``: the route takes its slot, whatever held it."""
        if route.ifname:
            self._ifindex(route.ifname)
        self._stale.add("route")
        self._unwatch_own_changes()
        self.sock.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, self.route_message(route))

    # -- links and addresses -----------------------------------------------------------------
    def link_index(self, ifname: str) -> int | None:
        self._read_index()
        return self._index.get(ifname)

    def _ifindex(self, ifname: str) -> int:
        if ifname not in self._index:
            self._read_index()
        if ifname not in self._index:
            raise OSError(errno.ENODEV, f"no interface {ifname}")
        return self._index[ifname]

    def set_link_up(self, ifname: str) -> None:
        index = self._ifindex(ifname)
        self._stale.update(KINDS)
        self.sock.request(RTM_NEWLINK, 0, IFINFOMSG.pack(0, 0, index, IFF_UP, IFF_UP))

    def add_address(
        self, address: Address, *, prefix_route: bool = True, lifetime: Lifetime | None = None
    ) -> bool:
        body = self._address_message(address)
        self._stale.update(("addr", "route"))
        if not prefix_route:
            body += attr_u32(IFA_FLAGS, IFA_F_NOPREFIXROUTE)
        flags = NLM_F_CREATE | NLM_F_EXCL
        if lifetime is not None:  # struct ifa_cacheinfo; the kernel fills in the stamps
            body += attr(
                IFA_CACHEINFO, struct.pack("=IIII", lifetime.preferred, lifetime.valid, 0, 0)
            )
            flags = NLM_F_CREATE | NLM_F_REPLACE
        try:
            self.sock.request(RTM_NEWADDR, flags, body)
        except NetlinkError as exc:
            if exc.errno == errno.EEXIST:
                return False
            raise
        return True

    def remove_address(self, address: Address) -> bool:
        self._stale.update(("addr", "route"))
        try:
            self.sock.request(RTM_DELADDR, 0, self._address_message(address))
        except NetlinkError as exc:
            if exc.errno in (errno.EADDRNOTAVAIL, errno.ENOENT, errno.ESRCH):
                return False
            raise
        return True

    def _address_message(self, address: Address) -> bytes:
        index = self._ifindex(address.ifname)
        ip = address.ip.packed
        header = IFADDRMSG.pack(
            FAMILIES[address.family], address.interface.network.prefixlen, 0, 0, index
        )
        return header + attr(IFA_LOCAL, ip) + attr(IFA_ADDRESS, ip)

    # -- neighbours ----------------------------------------------------------------------
    def neighbour_state(self, ifname: str, address: IPAddress) -> int | None:
        """One neighbour dump of the family, filtered by the kernel to ``ifname``
        (``NDA_IFINDEX``; the answers are filtered again here, for kernels that ignore it)."""
        index = self._ifindex(ifname)
        wanted = address.packed

        def state(msg: Message) -> int | None:
            if msg.type != RTM_NEWNEIGH or len(msg.body) < NDMSG.size:
                return None
            _, found, nud, _, _ = NDMSG.unpack_from(msg.body)
            if found != index or attributes(msg.body, NDMSG.size).get(NDA_DST) != wanted:
                return None
            return int(nud)

        request = NDMSG.pack(FAMILIES[address.version], 0, 0, 0, 0)
        states = self.sock.dump(RTM_GETNEIGH, request + attr_u32(NDA_IFINDEX, index), state)
        return states[0] if states else None

    def announce(self, items: Sequence[Announcement]) -> list[tuple[Announcement, str]]:
        """One packet socket for every announcement: opened with protocol 0 (it receives
        nothing), never bound, each frame sent to its port with ``sendto``, kept open until
        :meth:`close`. A packet socket's bind and its close each wait for the network stack
        (an RCU grace period, ~13-16 ms): per address that made the announcement most of an
        apply, and per repair it held the agent's next repair back (the agent's backend
        lives as long as the agent, so its socket is opened once). An IPv4 address gets a
        gratuitous ARP, an IPv6 address an unsolicited neighbour advertisement, on the same
        socket. With ``announce_once`` the socket is closed at once, by a thread of its own:
        its close's wait overlaps the verification instead of adding to the command's end."""
        if not items:
            return []
        failed: list[tuple[Announcement, str]] = []
        packet = self._packet
        if packet is None:
            packet = self._packet = _socket.socket(_socket.AF_PACKET, _socket.SOCK_RAW, 0)
        for item in items:
            v4 = item.address.version == 4
            frame = arp_frame(item) if v4 else na_frame(item)
            try:
                packet.sendto(frame, (item.ifname, ETH_P_ARP if v4 else ETH_P_IPV6))
            except OSError as exc:
                failed.append((item, exc.strerror or str(exc)))
        if self._announce_once:
            import _thread  # not threading (~4 M instructions to import): a bare close

            self._packet = None
            _thread.start_new_thread(packet.close, ())
        return failed

    # -- lookups -----------------------------------------------------------------------
    def lookup(
        self, dst: IPAddress, src: IPAddress | None = None, oif: str | None = None
    ) -> Lookup | None:
        return self.lookups([(dst, src, oif)])[0]

    def route_get(
        self,
        dst: IPAddress,
        src: IPAddress | None = None,
        *,
        oif: str | None = None,
        iif: str | None = None,
        mark: int = 0,
        ipproto: int = 0,
        sport: int = 0,
        dport: int = 0,
        uid: int | None = None,
    ) -> Lookup:
        """The kernel's own answer (RTM_GETROUTE, ``ip route get``) for one flow; a refusal
        comes back as a :class:`Lookup` with its ``error`` (an errno)."""
        family = FAMILIES[dst.version]
        bits = dst.max_prefixlen
        body = [
            RTMSG.pack(family, bits, 0 if src is None else bits, 0, 0, 0, 0, 0, 0),
            attr(RTA_DST, dst.packed),
        ]
        if src is not None:
            body.append(attr(RTA_SRC, src.packed))
        for kind, name in ((RTA_OIF, oif), (RTA_IIF, iif)):
            if name is None:
                continue
            if name not in self._index:
                self._read_index()
            if name not in self._index:
                return Lookup(None, None, None, None, error=errno.ENODEV)
            body.append(attr_u32(kind, self._index[name]))
        if mark:
            body.append(attr_u32(RTA_MARK, mark))
        if uid is not None:
            body.append(attr_u32(RTA_UID, uid))
        if ipproto:
            body.append(attr(RTA_IP_PROTO, bytes((ipproto,))))
        if sport:
            body.append(attr(RTA_SPORT, struct.pack("!H", sport)))
        if dport:
            body.append(attr(RTA_DPORT, struct.pack("!H", dport)))
        try:
            answers = self.sock.request(RTM_GETROUTE, 0, b"".join(body))
        except NetlinkError as exc:
            return Lookup(None, None, None, None, error=exc.errno or errno.EINVAL)
        if not answers:
            return Lookup(None, None, None, None, error=errno.ENETUNREACH)
        if not self._names:
            self._read_index()
        return self._answer(answers[0].body)

    def lookups(self, queries: Sequence[Query], *, sources: bool = True) -> list[Lookup | None]:
        """The lookups as one batch of requests (a round trip each would cost ~0.15 ms).

        ``sources=False`` (the caller reads no answer's ``prefsrc``: verify, status): a
        lookup of a global IPv6 destination is asked as a FIB match (``RTM_F_FIB_MATCH``).
        The kernel's lookup is the same; only its answer differs: the FIB entry matched
        instead of the route made from it, whose answer the kernel completes with the
        source it would choose, and for a global IPv6 destination it chooses among the
        addresses of every device (RFC 6724): ~70 us a lookup at 256 ports, 512 of a
        dual-stack verification's 1,536, its biggest cost in the kernel. The FIB entry
        names the same device, gateway, table and type as the route made from it, unless
        it is a multipath or nexthop-object route (one hop of it is chosen), a local or
        anycast route (answered through ``lo``) or an exception hangs from it for that
        destination (a PMTU's, a redirect's: its own gateway): those are asked again as
        a plain lookup, so every answer is the plain lookup's but for ``prefsrc`` (the
        route's own, if it has one). Only on a kernel that lists its exceptions apart
        (:func:`_exceptions_listed`); on an older one every lookup is asked plainly, once."""
        found = self._lookups(queries, sources, None, max(len(queries), 1))
        assert found is not None  # never interrupted
        return found

    def lookups_unless(
        self,
        queries: Sequence[Query],
        interrupted: Callable[[], bool],
        batch: int,
        *,
        sources: bool = True,
    ) -> list[Lookup | None] | None:
        """:meth:`lookups`, asked ``batch`` at a time, given up (None) as soon as
        ``interrupted()``, asked before each batch, says so. The route exceptions are listed
        once, after the last batch (see :meth:`_lookups`), not once per batch (96 listings
        of a dual-stack verification at 256 ports in batches of 16)."""
        return self._lookups(queries, sources, interrupted, batch)

    def _lookups(
        self,
        queries: Sequence[Query],
        sources: bool,
        interrupted: Callable[[], bool] | None,
        batch: int,
    ) -> list[Lookup | None] | None:
        """:meth:`lookups_unless` (``interrupted`` None: never). The FIB matches' check
        lists the exceptions once, after every lookup was asked: an exception there then is
        found whenever it came, between two batches too (as when each batch listed them
        after its own lookups); one that was there at a lookup and has gone since leaves
        that lookup's FIB match, which a plain lookup gives then too."""
        if any(oif is not None for _dst, _src, oif in queries) and not self._index:
            self._read_index()
        if sources or not _exceptions_listed():
            flags = [0] * len(queries)
        else:
            flags = [
                RTM_F_FIB_MATCH
                if isinstance(dst, ipaddress.IPv6Address) and not need_strict(dst)
                else 0
                for dst, _src, _oif in queries
            ]
        answers: list[bytes | NetlinkError | None] = []
        for start in range(0, len(queries), batch):
            if interrupted is not None and interrupted():
                return None
            answers += self._gets(queries[start : start + batch], flags[start : start + batch])
        if any(flags):
            again = self._not_plain(queries, flags, answers)
            if again:
                asked = self._gets([queries[i] for i in again], [0] * len(again))
                for i, answer in zip(again, asked, strict=True):
                    answers[i] = answer
        if not self._names:
            self._read_index()
        found: list[Lookup | None] = []
        known: dict[bytes, IPAddress] = {}  # the few gateways and sources, each made once
        for answer in answers:
            if answer is None or isinstance(answer, NetlinkError):
                found.append(None)
            else:
                found.append(self._answer(answer, known))
        return found

    def _gets(
        self, queries: Sequence[Query], flags: Sequence[int]
    ) -> list[bytes | NetlinkError | None]:
        """Each lookup's answer (None where its interface does not exist), asked with its
        rtmsg ``flags`` in one batch."""
        bodies = [
            self._lookup_body(dst, src, oif, flag)
            for (dst, src, oif), flag in zip(queries, flags, strict=True)
        ]
        answers = iter(self.sock.gets(RTM_GETROUTE, [b for b in bodies if b is not None]))
        return [None if body is None else next(answers) for body in bodies]

    def _not_plain(
        self,
        queries: Sequence[Query],
        flags: Sequence[int],
        answers: Sequence[bytes | NetlinkError | None],
    ) -> list[int]:
        """The positions of the FIB matches' answers that are not what a plain lookup
        answers (see :meth:`lookups`): all of them when the exceptions cannot be listed."""
        exceptions = self._exceptions6()
        return [
            i
            for i, answer in enumerate(answers)
            if flags[i]
            and isinstance(answer, bytes)
            and (
                exceptions is None
                or (exceptions and queries[i][0].packed in exceptions)
                or not _one_hop(answer)
            )
        ]

    def _exceptions6(self) -> frozenset[bytes] | None:
        """The destinations (packed) of the kernel's IPv6 route exceptions, from one dump of
        them alone (a strict dump with ``RTM_F_CLONED``: ~0.6 ms at 256 dual-stack ports,
        usually empty); None when the kernel cannot tell them apart after all (the dump
        refused or not filtered; :func:`_exceptions_listed` said it would)."""
        sock = self.sock
        try:
            sock.strict(True)
        except OSError:
            return None
        try:
            bodies = sock.dump_bodies(
                RTM_GETROUTE, RTMSG.pack(AF_INET6, 0, 0, 0, 0, 0, 0, 0, RTM_F_CLONED)
            )
        except NetlinkError:
            return None
        finally:
            sock.strict(False)
        found: set[bytes] = set()
        for body in bodies:
            if not U32_AT(body, 8)[0] & RTM_F_CLONED:
                return None  # a route, not an exception: the kernel did not filter
            for _kind, start, stop in spans(body, RTMSG.size, _DST_ONLY):
                found.add(body[start + 4 : stop])
        return frozenset(found)

    def _lookup_body(
        self, dst: IPAddress, src: IPAddress | None, oif: str | None, flags: int = 0
    ) -> bytes | None:
        """The RTM_GETROUTE request of one lookup (None: the interface does not exist),
        packed by the one :data:`_LOOKUP_LAYOUTS` format of its shape; ``flags``: its
        rtmsg's (``RTM_F_FIB_MATCH``)."""
        dst_bytes = dst.packed
        bits = 8 * len(dst_bytes)
        if oif is None:
            index = None
        else:
            index = self._index.get(oif)
            if index is None:
                return None
        layout = _LOOKUP_LAYOUTS[bits, src is not None, index is not None]
        family = AF_INET if bits == 32 else AF_INET6
        attr_size = 4 + bits // 8
        values: tuple[Any, ...]
        if src is None:
            values = (family, bits, 0, flags, attr_size, RTA_DST, dst_bytes)
        else:
            values = (family, bits, bits, flags, attr_size, RTA_DST, dst_bytes)
            values += (attr_size, RTA_SRC, src.packed)
        if index is not None:
            values += (8, RTA_OIF, index)
        return layout.pack(*values)

    def _answer(self, body: bytes, known: dict[bytes, IPAddress] | None = None) -> Lookup:
        """A route lookup's answer (an RTM_NEWROUTE's body) as a :class:`Lookup` (its four
        attributes taken in one pass; a verification at 256 ports reads 768 of them);
        ``known``: the addresses already made from their packed bytes (a batch's answers
        share a few).

        The attributes are found by :func:`multihome.nlattrs.spans`: the answers come in a
        few shapes, so each is one ``unpack_from`` of its headers instead of a walk of its
        nine attributes one by one (a walk that took every attribute's header in turn)."""
        oif_index = table = None
        gateway = prefsrc = None
        for kind, start, stop in spans(body, RTMSG.size, _LOOKUP_KEPT):
            if kind == RTA_OIF:
                oif_index = U32_AT(body, start + 4)[0]
            elif kind == RTA_TABLE:
                table = U32_AT(body, start + 4)[0]
            elif kind == RTA_GATEWAY:
                gateway = body[start + 4 : stop]
            else:
                prefsrc = body[start + 4 : stop]
        if oif_index and oif_index not in self._names:
            self._read_index()  # an interface that appeared since the last read
        if known is None:
            known = {}
        if gateway and gateway not in known:
            known[gateway] = _ip_of(gateway)
        if prefsrc and prefsrc not in known:
            known[prefsrc] = _ip_of(prefsrc)
        return Lookup(  # (ifname, gateway, prefsrc, table, type: by position, 768 of them)
            self._names.get(oif_index) if oif_index else None,
            known[gateway] if gateway else None,
            known[prefsrc] if prefsrc else None,
            table,
            body[7],
        )


U32_AT = struct.Struct("=I").unpack_from
#: The attributes of a lookup's answer that :meth:`NetlinkBackend._answer` takes.
_LOOKUP_KEPT = frozenset({RTA_OIF, RTA_TABLE, RTA_GATEWAY, RTA_PREFSRC})
#: The attributes of a FIB match's answer that say it is not one plain hop (:func:`_one_hop`).
_HOPS = frozenset({RTA_OIF, RTA_MULTIPATH, RTA_NH_ID})
_DST_ONLY = frozenset({RTA_DST})


def _kernel_release(release: str) -> tuple[int, int]:
    """(major, minor) of a kernel release (``os.uname().release``: ``6.1.0-18-amd64``);
    (0, 0) when it does not start so."""
    parts = release.split(".", 2)
    try:
        return int(parts[0]), int(parts[1].split("-")[0])
    except (IndexError, ValueError):
        return 0, 0


@functools.cache
def _exceptions_listed() -> bool:
    """Whether the kernel lists its IPv6 route exceptions apart (a strict dump with
    ``RTM_F_CLONED``, Linux 5.3; before, a dump holds none): only then is a lookup asked as
    a FIB match (else each would be asked again, plainly). Asked at the first such lookup,
    not at import (multihome runs from udev and at boot: its imports do nothing)."""
    return _kernel_release(os.uname().release) >= (5, 3)


def _one_hop(answer: bytes) -> bool:
    """A FIB match's answer names the device and gateway a plain lookup's would: a unicast
    route with its one device, neither multipath nor a nexthop object."""
    if answer[7] != RTN_UNICAST:
        return False
    kinds = [kind for kind, _start, _stop in spans(answer, RTMSG.size, _HOPS)]
    return kinds == [RTA_OIF]


def _ip_of(packed: bytes) -> IPAddress:
    """The address of 4 or 16 packed bytes (the classes themselves: ``ip_address`` tries
    IPv4, then IPv6)."""
    if len(packed) == 4:
        return ipaddress.IPv4Address(packed)
    return ipaddress.IPv6Address(packed)


#: A gratuitous ARP's ethertype and ARP header (Ethernet, IPv4, request): the same in every
#: frame.
_ARP_HEAD = struct.pack("!H", ETH_P_ARP) + struct.pack("!HHBBH", 1, ETH_P_IP, 6, 4, 1)


def arp_frame(item: Announcement) -> bytes:
    """A gratuitous ARP request (sender and target are the address itself), broadcast."""
    hw = bytes.fromhex(item.mac.replace(":", ""))
    packed = item.address.packed
    return b"\xff" * 6 + hw + _ARP_HEAD + hw + packed + b"\x00" * 6 + packed


def na_frame(item: Announcement) -> bytes:
    """An unsolicited neighbour advertisement (RFC 4861 4.4, 7.2.6): from the address itself
    to all nodes, hop limit 255, the override flag set (neighbours replace the link-layer
    address they have), the target link-layer address option carrying the port's MAC."""
    hw = bytes.fromhex(item.mac.replace(":", ""))
    source = item.address.packed
    icmp = bytearray(
        struct.pack("!BBHI", ND_NEIGHBOR_ADVERT, 0, 0, NA_OVERRIDE) + source + bytes((2, 1)) + hw
    )
    pseudo = source + ALL_NODES + struct.pack("!I3xB", len(icmp), ICMPV6)
    struct.pack_into("!H", icmp, 2, _checksum(pseudo + bytes(icmp)))
    header = struct.pack("!IHBB", 6 << 28, len(icmp), ICMPV6, 255) + source + ALL_NODES
    return ALL_NODES_MAC + hw + struct.pack("!H", ETH_P_IPV6) + header + bytes(icmp)


def _checksum(data: bytes) -> int:
    """The internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


# -- decoding dumps into the model ------------------------------------------------------------
#: Per family: (network class, address class), built straight from the packed bytes (the
#: generic ``ipaddress.ip_*`` factories are several times slower).
CLASSES: dict[int, tuple[Any, Any]] = {
    AF_INET: (ipaddress.IPv4Network, ipaddress.IPv4Address),
    AF_INET6: (ipaddress.IPv6Network, ipaddress.IPv6Address),
}
#: Per family: the interface class (an address with its prefix).
INTERFACES: dict[int, Any] = {
    AF_INET: ipaddress.IPv4Interface,
    AF_INET6: ipaddress.IPv6Interface,
}
RawLink = tuple[
    int, str, int, str | None, str | None, int | None, str | None, tuple[int, ...] | None, int
]
#: The last read's message bodies and what they decoded to: addresses, routes, rules.
Decoded = tuple[
    dict[bytes, "Address | None"], dict[bytes, "Route | None"], dict[bytes, "Rule | None"]
]
#: Links (reduced), address, route and rule message bodies, sysctls, the link messages' bodies:
#: one read, undecoded.
RawState = tuple[list[RawLink], list[bytes], list[bytes], list[bytes], dict[str, str], list[bytes]]


if TYPE_CHECKING:
    Positioned = TypeVar("Positioned", Address, Rule)


def _kept(decoded: Positioned | None, position: int) -> Positioned | None:
    """A cached decoding at ``position`` in the kernel's list (None: not seen before).

    A rule added in the band moves every rule after it: the same message body at another
    place is the same rule at another ``position``, which is not part of its identity. The
    copy keeps what was computed for it (``key``, ``order``: the sort of the next read), so
    the agent's read after such an event neither decodes nor sorts it from scratch."""
    if decoded is None or decoded.position == position:
        return decoded
    moved = object.__new__(type(decoded))
    # frozen: fields and cached properties alike, in a dict of its own as values' __init__
    # makes it (not the one materialised from the class's shared keys: see values._template)
    object.__setattr__(moved, "__dict__", {**decoded.__dict__, "position": position})
    return moved


#: The attributes of a link message :func:`_raw_link` reads (of some forty).
LINK_ATTRIBUTES = frozenset(
    {
        IFLA_IFNAME,
        IFLA_ADDRESS,
        IFLA_LINKINFO,
        IFLA_MASTER,
        IFLA_OPERSTATE,
        IFLA_AF_SPEC,
        IFLA_GROUP,
    }
)


#: The one nested attribute :func:`_raw_link` reads at each level.
_INFO_KIND = frozenset({IFLA_INFO_KIND})
_INET = frozenset({AF_INET})
_INET_CONF = frozenset({IFLA_INET_CONF})


def _link_message(msg: Message) -> RawLink | None:
    return _raw_link(msg.body)


def _raw_link(body: bytes) -> RawLink | None:
    """(index, name, flags, mac, kind, master index, operstate, the knobs' values from its
    ipv4 devconf or None) of a link message's body."""
    _family, _type, index, flags, _change = IFINFOMSG.unpack_from(body)
    attrs = attributes(body, IFINFOMSG.size, LINK_ATTRIBUTES)
    name = attrs.get(IFLA_IFNAME)
    if name is None:
        return None
    mac = attrs.get(IFLA_ADDRESS)
    info = attrs.get(IFLA_LINKINFO)
    kind = attributes(info, 0, _INFO_KIND).get(IFLA_INFO_KIND) if info else None
    master = attrs.get(IFLA_MASTER)
    oper = attrs.get(IFLA_OPERSTATE)
    operstate = None
    if oper:
        operstate = OPERSTATES[oper[0]] if oper[0] < len(OPERSTATES) else str(oper[0])
    conf = None
    spec = attrs.get(IFLA_AF_SPEC)
    inet = attributes(spec, 0, _INET).get(AF_INET) if spec else None  # (not IPv6's, large)
    devconf = attributes(inet, 0, _INET_CONF).get(IFLA_INET_CONF) if inet else None
    if devconf and len(devconf) >= _DEVCONF_HEAD.size:
        conf = _DEVCONF_PICK(_DEVCONF_HEAD.unpack_from(devconf))
    return (
        index,
        asciiz(name),
        flags,
        mac.hex(":") if mac else None,
        asciiz(kind) if kind else None,
        u32(master) if master else None,
        operstate,
        conf,
        u32(group) if (group := attrs.get(IFLA_GROUP)) else 0,
    )


def _with_devconf(
    raw_links: list[RawLink], bodies: list[bytes], written: dict[str, str]
) -> list[bytes] | None:
    """The link messages' ``bodies`` as the kernel gives them after the interface sysctls
    ``written`` (``net.ipv4.conf.IF.KNOB`` -> value): each knob's u32 in the link's
    ``IFLA_INET_CONF`` array set to its value (the only part of a link message a sysctl
    write changes). The knobs of ``all`` and ``default``, and those of links without an IPv4
    devconf, are left to the digest's reading of ``/proc/sys``. None when a value written is
    not a number or its knob is not in the devconf array as it was read."""
    if len(raw_links) != len(bodies):
        return None  # a message without a name: the two lists are not aligned
    # net.ipv4.conf.IF (a '.' in IF written '/') -> the link's place, for links with a devconf:
    # the knobs of all, default, IPv6 and links without one are not patched
    where = {
        f"{_IPV4_CONF}{name.replace('.', '/')}": i
        for i, (_index, name, *_rest, conf, _group) in enumerate(raw_links)
        if conf is not None
    }
    wanted: dict[int, dict[int, int]] = {}
    for name, value in written.items():
        head, _dot, knob = name.rpartition(".")
        i = where.get(head)
        if i is None:
            continue
        index = DEVCONF.get(knob)
        if index is None or not value.strip().lstrip("-").isdigit():
            return None
        knobs = wanted.get(i)
        if knobs is None:
            knobs = wanted[i] = {}
        knobs[index] = int(value)
    if not wanted:
        return bodies
    patched = list(bodies)
    headers = b""  # the AF_INET and IFLA_INET_CONF headers before the last devconf found
    for i, knobs in wanted.items():
        offset = _devconf_found(bodies[i], headers)
        if offset is None:
            offset = _devconf_offset(bodies[i])
            if offset is None:
                return None
            headers = bodies[i][offset - 8 : offset]
        body = bytearray(bodies[i])
        for index, number in knobs.items():
            _I32.pack_into(body, offset + 4 * (index - 1), number)
        patched[i] = bytes(body)
    return patched


#: The interface sysctls whose values a link message's devconf holds: ``net.ipv4.conf.IF``.
_IPV4_CONF = "net.ipv4.conf."
_I32 = struct.Struct("=i")
#: The devconf array must reach the last knob :data:`DEVCONF` names.
_DEVCONF_BYTES = 4 * max(DEVCONF.values())


def _devconf_found(body: bytes, headers: bytes) -> int | None:
    """Where the devconf array starts in ``body`` when its two headers (``AF_INET`` and
    ``IFLA_INET_CONF``, lengths included: the same in every link message of a kernel) are
    ``headers``, found by one search in C instead of :func:`_devconf_offset`'s walk over
    ~40 attributes per link (at 256 ports a fifth of the post-apply fingerprint). None (walk
    instead) when they are not found exactly once. A match that were not the attribute
    itself would patch other bytes: the digest recorded would then match no kernel state,
    and the next apply would read everything (as after any change), never skip work."""
    if len(headers) != 8:
        return None
    at = body.find(headers, IFINFOMSG.size)
    if at < 0 or body.find(headers, at + 1) >= 0:
        return None
    offset = at + 8
    return offset if offset + _DEVCONF_BYTES <= len(body) else None


def _devconf_offset(body: bytes) -> int | None:
    """Where the u32 array of ``IFLA_AF_SPEC`` / ``AF_INET`` / ``IFLA_INET_CONF`` starts in
    a link message's body (None: it has none, or too short for the knobs). Walked in
    place: a nested attribute's search ends where its parent ends."""
    unpack = NLATTR.unpack_from
    offset, end = IFINFOMSG.size, len(body)
    for wanted in (IFLA_AF_SPEC, AF_INET, IFLA_INET_CONF):
        while offset + 4 <= end:
            length, kind = unpack(body, offset)
            if length < 4:
                return None
            if kind & NLA_TYPE_MASK == wanted:
                break
            offset += (length + 3) & ~3
        else:
            return None
        if wanted == IFLA_INET_CONF:
            return offset + 4 if length - 4 >= _DEVCONF_BYTES else None
        end = min(end, offset + length)  # the nested attributes end with their parent
        offset += 4
    return None


def _link(raw: RawLink, names: dict[int, str]) -> Link:
    index, name, flags, mac, kind, master, operstate, _conf, group = raw
    return Link(
        name=name,
        index=index,
        mac=mac,
        kind=kind,
        up=bool(flags & IFF_UP) and operstate in ("UP", "UNKNOWN"),
        master=names.get(master) if master else None,
        loopback=bool(flags & IFF_LOOPBACK),
        group=group,
        admin_up=bool(flags & IFF_UP),
    )


#: The attributes of an address message :func:`_address` reads (not its label, broadcast
#: address, lifetimes, protocol: each cut out and kept in a dict for nothing).
ADDRESS_ATTRIBUTES = frozenset({IFA_LOCAL, IFA_ADDRESS, IFA_FLAGS})


def _address(
    body: bytes, names: dict[int, str], position: int = 0, made: dict[Any, Any] | None = None
) -> Address | None:
    """The address of an address message's ``body``. ``made`` (see :func:`_route`): the
    address and its text are kept for the routes whose source it is (every route of a
    port's), its network for the route to its subnet; the address's own ``ip`` and ``key``
    are given from them (a fresh copy computes the same: test_rtnl)."""
    family, prefixlen, flags, scope, index = IFADDRMSG.unpack_from(body)
    ifname = names.get(index)
    if ifname is None or family not in VERSIONS:
        return None
    attrs = attributes(body, IFADDRMSG.size, ADDRESS_ATTRIBUTES)
    value = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
    if value is None:
        return None
    interface = ipaddress.IPv4Interface if family == AF_INET else ipaddress.IPv6Interface
    if IFA_FLAGS in attrs:
        flags = u32(attrs[IFA_FLAGS])
    # One bit, two meanings: IPv4's "secondary", IPv6's "temporary" (a privacy address).
    secondary = family == AF_INET and bool(flags & IFA_F_SECONDARY)
    if family == AF_INET:
        flags &= ~IFA_F_TEMPORARY
    made_interface = (
        interface((value, prefixlen))
        if made is None
        else _interface(family, value, prefixlen, made)
    )
    address = Address(
        ifname=ifname,
        interface=made_interface,
        scope=scope,
        secondary=secondary,
        position=position,
        flags=flags & ADDRESS_FLAG_MASK,
    )
    if made is not None:
        if value not in made:
            made[value] = _address_of(family, value)
        ip, text = made[value]
        # an interface's text is its address's and its prefix length (ip_text)
        with_cached(address, ip=ip, key=(ifname, f"{text}/{prefixlen}"), family=VERSIONS[family])
    return address


def _interface(family: int, value: bytes, prefixlen: int, made: dict[Any, Any]) -> IPInterface:
    """``IPv4Interface((value, prefixlen))`` (or IPv6's) around the network made once per read
    (``made``: shared with the route to that subnet, see :func:`_route`).

    The constructor makes the interface's address, then its network from scratch (another
    address, the netmask, the host bits checked and cleared): 28,000 instructions an IPv4
    address, more than the rest of its decoding. Here the network comes from ``made`` and
    the interface gets exactly the attributes the constructor sets (the address as an int,
    IPv6's empty scope, the network, its netmask, the prefix length);
    tests/unit/test_rtnl.py compares the two on random addresses. What the constructor
    would refuse (a prefix too long, an address of the other family) goes to it."""
    interface_class = INTERFACES[family]
    bits = 8 * len(value)
    if bits != (32 if family == AF_INET else 128) or not 0 <= prefixlen <= bits:
        return interface_class((value, prefixlen))  # type: ignore[no-any-return]
    number = int.from_bytes(value, "big")
    host_bits = bits - prefixlen
    where = (family, (number >> host_bits << host_bits).to_bytes(bits // 8, "big"), prefixlen)
    if where not in made:
        made[where] = (_network_of(family, where[1], prefixlen), None)
    network = made[where][0]
    interface: Any = object.__new__(interface_class)
    interface._ip = number
    if family == AF_INET6:
        interface._scope_id = None
    interface.network = network
    interface.netmask = network.netmask
    interface._prefixlen = prefixlen
    return interface  # type: ignore[no-any-return]


def _still_decoded(decoded: Decoded, old: dict[int, str], new: dict[int, str]) -> Decoded:
    """What stays valid of the last read's decodings when the links changed. An index with
    another name now (a rename): the addresses and routes are decoded again. Links that came
    or went (a hot-plug, a detach): a route decoded while its link was not known yet (no
    device) is decoded again; the others stay (the decodings of a link that went are never
    asked for again: its addresses and routes went with it). Rules name their interfaces
    themselves. Throwing everything away on every hot-plug cost the agent's repair a full
    decoding, and every route's and rule's key and text anew."""
    addresses, routes, rules = decoded
    if any(old.get(index, name) != name for index, name in new.items()):
        return {}, {}, rules
    return addresses, {b: r for b, r in routes.items() if r is not None and r.ifname}, rules


#: Route types without a device: blackhole, unreachable, prohibit, throw.
NO_DEVICE_TYPES = frozenset({6, 7, 8, 9})


def _route(body: bytes, names: dict[int, str], made: dict[Any, Any] | None = None) -> Route | None:
    """The route of a route message's ``body``. ``made``: the networks and addresses already
    made from their bytes, with their texts (one read's): a read at 256 ports has 768 routes
    but some 260 destinations (every default route has the same one) and half as many
    sources as routes, and an ``ipaddress`` network costs more to make and format than the
    rest of the route."""
    family, dst_len, _src_len, _tos, table, proto, scope, kind, _flags = RTMSG.unpack_from(body)
    if family not in VERSIONS:
        return None
    if made is None:
        made = {}
    attrs = attributes(body, RTMSG.size)
    dst = attrs.get(RTA_DST)
    oif = attrs.get(RTA_OIF)
    gateway = attrs.get(RTA_GATEWAY)
    prefsrc = attrs.get(RTA_PREFSRC)
    metric = attrs.get(RTA_PRIORITY)
    table_attr = attrs.get(RTA_TABLE)
    oif_index = U32_AT(oif)[0] if oif else 0
    cache = attrs.get(RTA_CACHEINFO)
    expires = None
    if cache is not None and len(cache) >= RTA_CACHEINFO_STRUCT.size:
        ticks = RTA_CACHEINFO_STRUCT.unpack_from(cache)[2]
        expires = ticks // USER_HZ if ticks > 0 else None
    if family == AF_INET6 and kind in NO_DEVICE_TYPES:
        oif_index = 0  # IPv6 names lo for a route without a device; IPv4 names none
    where = (family, dst or b"\0" * (4 if family == AF_INET else 16), dst_len)
    dst_made = made.get(where)
    if dst_made is None or dst_made[1] is None:  # (an address's network has no text yet)
        dst_made = made[where] = _with_text(
            _network_of(family, where[1], dst_len) if dst_made is None else dst_made[0]
        )
    if gateway and gateway not in made:
        made[gateway] = _address_of(family, gateway)
    if prefsrc and prefsrc not in made:
        made[prefsrc] = _address_of(family, prefsrc)
    gateway_made = made[gateway] if gateway else (None, "None")
    prefsrc_made = made[prefsrc] if prefsrc else (None, "None")
    route = Route(
        table=(U32_AT(table_attr)[0] if table_attr else 0) or table,
        dst=dst_made[0],
        ifname=names.get(oif_index) if oif_index else None,
        gateway=gateway_made[0],
        metric=U32_AT(metric)[0] if metric else 0,
        proto=proto,
        scope=scope,
        prefsrc=prefsrc_made[0],
        type=kind,
        expires=expires,
        nexthops=_nexthops(attrs[RTA_MULTIPATH], names) if RTA_MULTIPATH in attrs else (),
    )
    # Its texts (the key's, the JSON's) are those of the objects made once (test_rtnl
    # compares a fresh copy's).
    return with_cached(
        route, texts=(dst_made[1], gateway_made[1], prefsrc_made[1]), family=VERSIONS[family]
    )


def _address_of(family: int, packed: bytes) -> tuple[IPAddress, str]:
    """``ip_address(packed)`` of ``family`` and its :func:`ip_text`, made from the bytes (once
    per read, see :func:`_route`: every address of a port, every gateway): the address gets
    exactly what the constructor sets (the number; IPv6's empty scope) and its text is the
    bytes' ``inet_ntoa``/``inet_ntop``, as ``ip_text`` formats them after the constructor
    and ``packed`` have turned them into a number and back (three Python calls an address).
    A dotted IPv6 text (IPv4-mapped) is ``ip_text``'s own; bytes of the wrong length go to
    the constructor. tests/unit/test_rtnl.py compares both with the constructor's."""
    address_class = CLASSES[family][1]
    if len(packed) != (4 if family == AF_INET else 16):
        made = address_class(packed)
        return made, ip_text(made)
    made = object.__new__(address_class)
    made._ip = int.from_bytes(packed, "big")
    if family == AF_INET:
        return made, _socket.inet_ntoa(packed)
    made._scope_id = None
    text = _socket.inet_ntop(AF_INET6, packed)
    return made, text if "." not in text else ip_text(made)


def _network_of(family: int, packed: bytes, prefixlen: int) -> IPNetwork:
    """``IPv4Network((packed, prefixlen), strict=False)`` (or IPv6's), made as :func:`_interface`
    makes an interface: with exactly the attributes the constructor sets (the network
    address, the netmask, the prefix length, and the ``hosts`` of a /31 or /32, /127 or
    /128), without its Python calls (split, parse, two addresses, masks compared): once per
    subnet of a read (256 at 256 ports). Anything else (host bits set, a prefix or bytes
    of another length) goes to the constructor; tests/unit/test_rtnl.py compares them."""
    network_class, address_class = CLASSES[family]
    bits = 32 if family == AF_INET else 128
    if len(packed) * 8 != bits or not 0 <= prefixlen <= bits:
        return network_class((packed, prefixlen), strict=False)  # type: ignore[no-any-return]
    number = int.from_bytes(packed, "big")
    netmask = network_class._make_netmask(prefixlen)[0]
    if number & netmask._ip != number:
        return network_class((packed, prefixlen), strict=False)  # type: ignore[no-any-return]
    network: Any = object.__new__(network_class)
    address: Any = object.__new__(address_class)
    address._ip = number
    if family == AF_INET6:
        address._scope_id = None
    network.network_address = address
    network.netmask = netmask
    network._prefixlen = prefixlen
    if prefixlen == bits - 1:
        network.hosts = network.__iter__
    elif prefixlen == bits:
        network.hosts = lambda: [address_class(packed)]
    return network  # type: ignore[no-any-return]


def _with_text(value: IPAddress | IPNetwork) -> tuple[Any, str]:
    """``value`` and its text (:func:`ip_text`), made once per read (see :func:`_route`)."""
    return value, ip_text(value)


def _nexthops(payload: bytes, names: dict[int, str]) -> tuple[NextHop, ...]:
    """A multipath route's next hops (RTA_MULTIPATH), each with its gateway (RTA_GATEWAY, or
    RTA_VIA: an IPv4 route via an IPv6 router)."""
    found = []
    for index, weight, inner in nexthops(payload):
        gateway: IPAddress | None = None
        if RTA_GATEWAY in inner:
            gateway = ipaddress.ip_address(inner[RTA_GATEWAY])
        elif RTA_VIA in inner and len(inner[RTA_VIA]) > 2:
            gateway = ipaddress.ip_address(inner[RTA_VIA][2:])
        found.append(NextHop(gateway, names.get(index) if index else None, weight))
    return tuple(found)


def _rule(body: bytes, position: int = 0) -> Rule | None:
    family, dst_len, src_len, tos, table, _res1, _res2, action, flags = FIBRULEHDR.unpack_from(body)
    if family not in VERSIONS:
        return None
    attrs = attributes(body, FIBRULEHDR.size)
    network = CLASSES[family][0]
    src = attrs.get(FRA_SRC)
    dst = attrs.get(FRA_DST)
    suppress = attrs.get(FRA_SUPPRESS_PREFIXLEN)
    suppress_value = u32(suppress) if suppress else None
    table_attr = attrs.get(FRA_TABLE)
    priority = attrs.get(FRA_PRIORITY)
    fwmark = attrs.get(FRA_FWMARK)
    fwmask = attrs.get(FRA_FWMASK)
    iifname = attrs.get(FRA_IIFNAME)
    oifname = attrs.get(FRA_OIFNAME)
    proto = attrs.get(FRA_PROTOCOL)
    return Rule(
        family=VERSIONS[family],
        priority=u32(priority) if priority else 0,
        table=(u32(table_attr) if table_attr else 0) or table,
        src=network((src, src_len), strict=False) if src else None,
        dst=network((dst, dst_len), strict=False) if dst else None,
        iifname=asciiz(iifname) if iifname else None,
        oifname=asciiz(oifname) if oifname else None,
        suppress_prefixlength=None if suppress_value in (None, NO_SUPPRESS) else suppress_value,
        fwmark=u32(fwmark) if fwmark else None,
        fwmask=u32(fwmask) if fwmask else None,
        action=action,
        proto=(proto[0] if proto else 0) or PROTO_BOOT,
        ipproto=ipproto[0] if (ipproto := attrs.get(FRA_IP_PROTO)) else None,
        sport=_range(attrs.get(FRA_SPORT_RANGE), PORT_RANGE),
        dport=_range(attrs.get(FRA_DPORT_RANGE), PORT_RANGE),
        uid=_range(attrs.get(FRA_UID_RANGE), UID_RANGE),
        goto=u32(target) if (target := attrs.get(FRA_GOTO)) else None,
        l3mdev=bool((l3mdev := attrs.get(FRA_L3MDEV)) and l3mdev[0]),
        suppress_ifgroup=None
        if (group := attrs.get(FRA_SUPPRESS_IFGROUP)) is None or u32(group) == NO_SUPPRESS
        else u32(group),
        invert=bool(flags & FIB_RULE_INVERT),
        tos=tos,
        position=position,
    )


def _range(value: bytes | None, layout: struct.Struct) -> tuple[int, int] | None:
    """A (start, end) range attribute (ports, uids) or None when absent."""
    if value is None:
        return None
    start, end = layout.unpack_from(value)
    return (start, end)
