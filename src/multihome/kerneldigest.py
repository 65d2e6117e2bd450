"""The digest of the kernel state a no-op ``apply`` compares, from raw rtnetlink dumps.

One definition for both sides of the no-op: :meth:`NetlinkBackend.fingerprint` records it
after an apply (from the dumps its read reuses), and the no-op decision made before the CLI
is imported (:mod:`multihome.noop`) takes the dumps itself and compares, part by part
(:func:`matches`: rules, routes, addresses, links; the first part that differs ends it).
So this module imports nothing of multihome but :mod:`multihome.nlattrs` (the attribute
walk it shares with the backend) and nothing heavy (no model, no dataclasses, no typing at
run time): it is on the path of every no-op ``apply``.

What is hashed is what :meth:`NetlinkBackend.read` decodes into the model, and only that:
the parts of the messages that change while the model stays the same (an IPv6 address's
lifetimes and a route's cache timers, a link's statistics, a bridge's timers, the IPv6
neighbour parameters' re-randomised reachable time) are left out, so that an idle namespace
keeps its digest.

- links: the header (index, type, flags), the name, MAC, master, operstate and group, the
  kind of ``IFLA_LINKINFO`` alone, and of ``IFLA_AF_SPEC`` the IPv4 part alone (the
  devconf array: the interface's sysctls);
- addresses: the header, the address, the local address and the flags;
- IPv4 routes and all rules: the whole message (they carry no timers nor counters);
- IPv6 routes: the header and the attributes the model keeps;
- no route of the ``local`` table (half of all routes with many ports): an apply reads none;
- the knobs of ``all`` and ``default`` (and of any link without an IPv4 devconf), read from
  ``/proc/sys``.
"""

from __future__ import annotations

# The C module: socket.py builds enums of every constant at import (8% of the no-op's
# instructions); a plain netlink socket is all that is needed.
import _socket
import os
import struct

# hashlib's own blake2b, without hashlib's OpenSSL binding (a shared library to load).
from _blake2 import blake2b
from _operator import itemgetter

from multihome.nlattrs import spans

TYPE_CHECKING = False  # typing is for the type checker only (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from multihome.nlattrs import Spans

#: The IPv4 sysctls multihome reads and sets per interface (the configuration's ``sysctls``).
SYSCTL_KNOBS = ("rp_filter", "arp_ignore", "arp_announce", "arp_filter")

# linux/rtnetlink.h, if_link.h, if_addr.h, netlink.h
RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE, RTM_GETRULE = 18, 22, 26, 34
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP, NLM_F_DUMP_INTR = 0x1, 0x300, 0x10
NLA_TYPE_MASK = 0x3FFF
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MASTER = 1, 3, 10
IFLA_OPERSTATE, IFLA_LINKINFO, IFLA_AF_SPEC, IFLA_GROUP = 16, 18, 26, 27
IFLA_INFO_KIND = 1
IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS = 29, 1 << 3
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS = 1, 2, 8
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC, RTA_MULTIPATH, RTA_TABLE = (
    1,
    4,
    5,
    6,
    7,
    9,
    15,
)
#: The link attributes kept whole (those with nested parts are reduced, see :func:`digest`).
LINK_FIELDS = frozenset({IFLA_ADDRESS, IFLA_IFNAME, IFLA_MASTER, IFLA_OPERSTATE, IFLA_GROUP})
#: What the digest keeps of address and IPv6 route messages: the attributes the model is
#: built from. An address's flags are kept: DAD finishing makes an IPv6 address usable.
ADDRESS_FIELDS = frozenset({IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS})
ROUTE_FIELDS = frozenset(
    {RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PREFSRC, RTA_PRIORITY, RTA_TABLE, RTA_MULTIPATH}
)
#: The link attributes :func:`link_part` looks at, and the nested ones it keeps.
LINK_KEPT = LINK_FIELDS | {IFLA_LINKINFO, IFLA_AF_SPEC}
_INFO_KIND = frozenset({IFLA_INFO_KIND})
_INET = frozenset({_socket.AF_INET})
_NLMSGHDR = struct.Struct("=IHHII")
IFINFOMSG_SIZE, IFADDRMSG_SIZE, RTMSG_SIZE = 16, 8, 12
#: The ``local`` table: its routes are the kernel's own, made from the addresses (hashed),
#: and an apply never reads them (``NetlinkBackend(local_table=False)``).
TABLE_LOCAL = 255
#: The dump requests: links without statistics, addresses, and per family routes and rules.
LINK_DUMP = struct.pack("=BxHiII", 0, 0, 0, 0, 0) + struct.pack(
    "=HHI", 8, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS
)
_RECV_SIZE = 256 * 1024
#: What :func:`only` keeps of a message's fixed header: an address's whole ``ifaddrmsg``, a
#: route's ``rtmsg`` but its flags.
HEAD = 8
#: :func:`only`'s slicers, by the layout's spans (bounded as :mod:`multihome.nlattrs`' own).
_PARTS: dict[Spans, Callable[[bytes], tuple[bytes, ...]]] = {}
_PARTS_KEPT = 4096


def only(body: bytes, header: int, keep: frozenset[int]) -> bytes:
    """The first :data:`HEAD` bytes of ``body`` and its attributes (after ``header``) of the
    types in ``keep``.

    The parts are taken by one ``itemgetter`` of their slices, made once per layout that
    :func:`spans` remembers (a digest at 256 ports takes them of 770 address and route
    messages of a few layouts); a list of slices built per message cost 60% more."""
    found = spans(body, header, keep)
    if not found:
        return body[:HEAD]
    take = _PARTS.get(found)
    if take is None:
        if len(_PARTS) >= _PARTS_KEPT:
            _PARTS.clear()  # an agent that runs for years meets odd shapes
        slices = [slice(start, stop) for _kind, start, stop in found]
        take = _PARTS[found] = itemgetter(slice(0, HEAD), *slices)
    return b"".join(take(body))


def _nested(payload: bytes, wanted: frozenset[int]) -> bytes:
    """The first attribute of a type in ``wanted`` (header included) of the nested attributes
    ``payload`` (an attribute, its own header first)."""
    found = spans(payload, 4, wanted)
    return payload[found[0][1] : found[0][2]] if found else b""


def link_part(body: bytes) -> tuple[bytes, str | None]:
    """What the digest keeps of a link message, and its name when it has no IPv4 devconf
    (its knobs are then read from ``/proc/sys``)."""
    kept = [body[:12]]  # family, type, index, flags; not ifi_change
    name = None
    inet = b""
    for kind, start, stop in spans(body, IFINFOMSG_SIZE, LINK_KEPT):
        if kind == IFLA_LINKINFO:
            kept.append(_nested(body[start:stop], _INFO_KIND))
        elif kind == IFLA_AF_SPEC:
            inet = _nested(body[start:stop], _INET)
            kept.append(inet)
        else:
            kept.append(body[start:stop])
            if kind == IFLA_IFNAME:
                name = body[start + 4 : stop]
    if inet or name is None:  # the name is decoded only for a link without an IPv4 devconf
        return b"".join(kept), None
    return b"".join(kept), name.split(b"\0", 1)[0].decode()


def knob_files(proc_sys: str, ifnames: list[str]) -> list[tuple[str, str]]:
    """``(path below proc_sys, value)`` of the knobs of ``all``, ``default`` and ``ifnames``
    (a knob that cannot be read is left out)."""
    found = []
    for ifname in ("all", "default", *ifnames):
        for knob in SYSCTL_KNOBS:
            path = f"net/ipv4/conf/{ifname.replace('.', '/')}/{knob}"
            try:
                fd = os.open(f"{proc_sys}/{path}", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                found.append((path, os.read(fd, 4096).decode().strip()))
            except OSError:
                continue
            finally:
                os.close(fd)
    return found


#: The parts of a digest, in the order :func:`matches` compares them and stops at the first
#: that differs: the cheapest to dump and hash first, and first what an apply changes. The
#: rules are two small dumps hashed whole (an apply's rules, undone or changed by someone
#: else, show there at once), the routes two dumps (IPv4's hashed whole), the addresses one;
#: the links last (the largest messages, each reduced by :func:`link_part`, and the knobs
#: read from ``/proc/sys``). A failing check (every apply after something changed) then
#: costs the link dump (taken first, see :func:`_fresh_parts`) and the rule dump and hash,
#: not the four dumps and hashes of a whole digest (a tenth of a whole apply).
PARTS = ("rules", "routes", "addresses", "links")


def rules_digest(rules: list[bytes]) -> str:
    """The rules' part of a digest: their whole messages (no timers nor counters)."""
    return blake2b(b"".join(rules), digest_size=20).hexdigest()


def routes_digest(routes: list[bytes]) -> str:
    """The routes' part of a digest: but the ``local`` table's, IPv4's whole, IPv6's
    header and the attributes the model keeps (not their cache timers)."""
    hashed = blake2b(digest_size=20)
    for body in routes:
        if body[4] == TABLE_LOCAL:
            continue  # the kernel's own (from the addresses); an apply never reads them
        if body[0] == _socket.AF_INET:
            hashed.update(body)  # IPv4 routes carry no timers nor counters
        else:
            hashed.update(only(body, RTMSG_SIZE, ROUTE_FIELDS))
    return hashed.hexdigest()


def addresses_digest(addresses: list[bytes]) -> str:
    """The addresses' part of a digest: the header and the address, its flags; not its
    lifetimes."""
    hashed = blake2b(digest_size=20)
    for body in addresses:
        hashed.update(only(body, IFADDRMSG_SIZE, ADDRESS_FIELDS))
    return hashed.hexdigest()


def links_digest(links: list[bytes], proc_sys: str = "/proc/sys") -> str:
    """The links' part of a digest (:func:`link_part`) and the knobs of ``all``,
    ``default`` and of the links without an IPv4 devconf."""
    hashed = blake2b(digest_size=20)
    bare = []
    for body in links:
        part, name = link_part(body)
        hashed.update(part)
        if name is not None:
            bare.append(name)
    hashed.update(repr(knob_files(proc_sys, bare)).encode())
    return hashed.hexdigest()


def compose(parts: Iterable[str]) -> str:
    """A digest's text from its parts' digests, in :data:`PARTS` order: ``rules:<hex>
    routes:<hex> addresses:<hex> links:<hex>`` (:func:`matches` reads it part by part)."""
    return " ".join(f"{name}:{hexdigest}" for name, hexdigest in zip(PARTS, parts, strict=True))


def digest(
    links: list[bytes],
    addresses: list[bytes],
    routes: list[bytes],
    rules: list[bytes],
    proc_sys: str = "/proc/sys",
) -> str:
    """The digest of the four dumps' message bodies and the knobs (see the module), one
    part each (:func:`compose`)."""
    return compose(
        (
            rules_digest(rules),
            routes_digest(routes),
            addresses_digest(addresses),
            links_digest(links, proc_sys),
        )
    )


def dump(
    sock: _socket.socket, kind: int, request: bytes, seq: int, skip_table: int = -1
) -> list[bytes]:
    """The bodies of the answers to the dump request ``kind`` (retried when the kernel says a
    concurrent change interrupted it); ``OSError`` when the kernel refuses it. A route
    dump's answers of the table ``skip_table`` (``rtm_table``, the body's fifth byte) are
    dropped as they arrive (:func:`digest` leaves them out anyway).

    :meth:`multihome.backend.rtnl.RtnlSocket.dump` does the same for the backend, decoding
    each message and raising the kernel's extended error; it is not used here because
    importing anything from ``multihome.backend`` imports the model (this module is on the
    no-op apply's path)."""
    unpack = _NLMSGHDR.unpack_from  # the loop below runs once per message (~3,600 a no-op)
    for attempt in range(5):
        expected = seq + attempt
        sock.send(
            _NLMSGHDR.pack(16 + len(request), kind, NLM_F_REQUEST | NLM_F_DUMP, expected, 0)
            + request
        )
        bodies: list[bytes] = []
        keep = bodies.append
        interrupted = False
        while True:
            data = sock.recv(_RECV_SIZE)
            offset, size = 0, len(data)
            done = False
            while offset + 16 <= size:
                length, msg_type, flags, rseq, _pid = unpack(data, offset)
                if length < 16:
                    break
                if rseq == expected:
                    if flags & NLM_F_DUMP_INTR:
                        interrupted = True
                    if msg_type <= NLMSG_DONE:  # netlink's own types: the end, an error
                        if msg_type == NLMSG_DONE:
                            done = True
                            break
                        if msg_type == NLMSG_ERROR:
                            code = -struct.unpack_from("=i", data, offset + 16)[0]
                            if code:
                                raise OSError(code, os.strerror(code))
                            done = True
                            break
                    if length <= 20 or data[offset + 20] != skip_table:
                        keep(data[offset + 16 : offset + length])
                offset += (length + 3) & ~3
            if done:
                break
        if not interrupted:
            return bodies
    raise OSError(4, "netlink dump interrupted again and again")


def _netlink() -> _socket.socket:
    """A bound rtnetlink socket of this network namespace."""
    sock = _socket.socket(
        _socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, _socket.NETLINK_ROUTE
    )
    try:
        sock.bind((0, 0))
    except BaseException:
        sock.close()
        raise
    return sock


def _fresh_parts(sock: _socket.socket, proc_sys: str) -> Iterator[str]:
    """The parts of this namespace's digest now, in :data:`PARTS` order, each dumped only
    when asked for (:func:`matches` stops at the first that differs)."""

    def both_families(kind: int, seq: int, skip_table: int = -1) -> list[bytes]:
        bodies: list[bytes] = []
        for family in (_socket.AF_INET, _socket.AF_INET6):
            request = bytes([family]) + bytes(RTMSG_SIZE - 1)
            bodies += dump(sock, kind, request, seq + family, skip_table)
        return bodies

    # The links are dumped first all the same: a fresh process that dumps them after the
    # others spends 5% more of the no-op's instructions (measured; the kernel's answers
    # come in other sizes), and their dump is the cheapest of the four to take.
    links = dump(sock, RTM_GETLINK, LINK_DUMP, 1)
    yield rules_digest(both_families(RTM_GETRULE, 40))
    yield routes_digest(both_families(RTM_GETROUTE, 20, TABLE_LOCAL))
    yield addresses_digest(dump(sock, RTM_GETADDR, bytes(IFADDRMSG_SIZE), 10))
    yield links_digest(links, proc_sys)


def current(proc_sys: str = "/proc/sys") -> str:
    """The digest of this network namespace's state now (its own netlink socket)."""
    sock = _netlink()
    try:
        return compose(_fresh_parts(sock, proc_sys))
    finally:
        sock.close()


def matches(recorded: str, proc_sys: str = "/proc/sys") -> bool:
    """Whether this network namespace's digest now is ``recorded`` (:func:`compose`'s
    text), compared part by part in :data:`PARTS` order: the first part that differs ends
    it, its later parts never dumped. False for any other text (a digest recorded by an
    earlier version, one hash of everything: the full apply then reads, and records anew)."""
    words = [word.partition(":") for word in recorded.split(" ")]
    if [(name, colon) for name, colon, _hex in words] != [(name, ":") for name in PARTS]:
        return False
    expected = [hexdigest for _name, _colon, hexdigest in words]
    sock = _netlink()
    try:
        return all(
            found == wanted
            for found, wanted in zip(_fresh_parts(sock, proc_sys), expected, strict=True)
        )
    finally:
        sock.close()
