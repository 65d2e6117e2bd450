"""A minimal rtnetlink client: the dumps multihome reads and the requests it sends.

Why not pyroute2 here: importing pyroute2 costs about 0.15 s and decoding a dump through its
generic NLA machinery about 0.15 ms per message; multihome runs at boot and from udev and
reads thousands of routes and rules on large hosts. The messages it needs are few and fixed
(``rtnetlink(7)``, ``linux/rtnetlink.h``, ``linux/fib_rules.h``), so they are encoded and
decoded here with :mod:`struct`, and requests are *batched*: many requests go to the kernel in
one ``send``, each with its own sequence number, the last one with ``NLM_F_ACK``; the errors
and that acknowledgement are collected afterwards (the kernel handles the requests of one
``send`` in order and answers every failed one).

Nothing here knows the model; :mod:`multihome.backend.netlink` maps messages to it.
"""

from __future__ import annotations

# The C module: socket.py builds enums of every constant at import (start-up of every command).
import _socket
import contextlib
import errno
import os
import struct
import sys
from collections.abc import Callable, Iterator, Sequence

from multihome.nlattrs import payloads
from multihome.values import frozen

TYPE_CHECKING = False  # typing is for the type checker only (start-up time)
if TYPE_CHECKING:
    from typing import TypeVar

# -- netlink (linux/netlink.h) ----------------------------------------------------------------
NETLINK_ROUTE = 0
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_REPLACE = 0x100  # in a new-object request: replace the one already there
NLM_F_CAPPED = 0x100  # in an NLMSG_ERROR: only the request's header is echoed
NLM_F_ACK_TLVS = 0x200  # in an NLMSG_ERROR: extended-ack attributes follow
NLMSGERR_ATTR_MSG = 1
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
NETLINK_GET_STRICT_CHK = 12
NLA_TYPE_MASK = 0x3FFF

# -- rtnetlink message types --------------------------------------------------------------------
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
RTM_NEWROUTE = 24
RTM_DELROUTE = 25
RTM_GETROUTE = 26
RTM_NEWNEIGH = 28
RTM_GETNEIGH = 30
RTM_NEWRULE = 32
RTM_DELRULE = 33
RTM_GETRULE = 34

# -- attributes ---------------------------------------------------------------------------------
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MASTER = 10
IFLA_OPERSTATE = 16
IFLA_LINKINFO = 18
IFLA_AF_SPEC = 26
IFLA_GROUP = 27
IFLA_EXT_MASK = 29
IFLA_INET_CONF = 1  # in IFLA_AF_SPEC's AF_INET: the interface's ipv4 devconf, u32 each
IFLA_INFO_KIND = 1
RTEXT_FILTER_SKIP_STATS = 1 << 3
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_CACHEINFO = 6  # struct ifa_cacheinfo: preferred, valid (seconds), cstamp, tstamp
IFA_FLAGS = 8
IFA_F_SECONDARY = 0x01
RTA_DST = 1
RTA_SRC = 2
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_PREFSRC = 7
RTA_IIF = 3
RTA_MULTIPATH = 9
RTA_CACHEINFO = 12
RTA_VIA = 18
RTA_TABLE = 15
RTA_MARK = 16
RTA_UID = 25
RTA_IP_PROTO = 27
RTA_SPORT = 28
RTA_DPORT = 29
RTA_NH_ID = 30
#: rtm_flags: a lookup's answer is the FIB entry it matched (Linux 4.12); a route that is
#: an exception (a cached route: a PMTU's, a redirect's), which a strict dump asks for alone.
RTM_F_FIB_MATCH = 0x2000
RTM_F_CLONED = 0x200
FRA_DST = 1
FRA_SRC = 2
FRA_IIFNAME = 3
FRA_GOTO = 4
FRA_PRIORITY = 6
FRA_FWMARK = 10
FRA_SUPPRESS_PREFIXLEN = 14
FRA_TABLE = 15
FRA_FWMASK = 16
FRA_OIFNAME = 17
FRA_SUPPRESS_IFGROUP = 13
FRA_L3MDEV = 19
FRA_UID_RANGE = 20
FRA_PROTOCOL = 21
FRA_IP_PROTO = 22
FRA_SPORT_RANGE = 23
FRA_DPORT_RANGE = 24
FIB_RULE_INVERT = 0x2
NDA_DST = 1
NDA_IFINDEX = 8
#: Families as the kernel numbers them.
AF_INET = _socket.AF_INET
AF_INET6 = _socket.AF_INET6
#: The route dump family that returns IPv4 and IPv6 routes at once (an AF_UNSPEC route dump
#: returns only IPv4); pyroute2's ``get_routes()`` uses the same value.
AF_ALL_ROUTES = 255
OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")

NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
NLATTR = struct.Struct("=HH")  # len, type
IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, proto, scope, type
NDMSG = struct.Struct("=BxxxiHBB")  # family, (pad), ifindex, state, flags, type
FIBRULEHDR = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, res, res, act
#: rtnexthop (one next hop inside RTA_MULTIPATH, its own attributes after it): len, flags,
#: hops (the weight less one), ifindex.
RTNEXTHOP = struct.Struct("=HBBi")
#: rta_cacheinfo: clntref, lastuse, expires (clock ticks, USER_HZ), error, used, id, ts, tsage.
RTA_CACHEINFO_STRUCT = struct.Struct("=IIiIIIII")
USER_HZ = 100
U32 = struct.Struct("=I")
I32 = struct.Struct("=i")
#: A netlink header's length and type (:data:`NLMSGHDR`'s first two fields).
_HEAD = struct.Struct("=IH")

#: Requests per ``send``: every error (when all fail) must fit the receive buffer until read.
BATCH_SIZE = 256
RCVBUF = 4 * 1024 * 1024
RECV_SIZE = 256 * 1024

# -- socket filters (linux/filter.h): classic BPF ----------------------------------------------
SO_ATTACH_FILTER = 26
BPF_LD_W_ABS = 0x20  # A = the 32-bit word at offset k, read big-endian
BPF_LD_H_ABS = 0x28  # A = the 16-bit half word at offset k, read big-endian
BPF_JEQ_K = 0x15  # A == k: jump jt instructions ahead, else jf
BPF_RET_K = 0x06  # deliver k bytes of the message (0: drop it)
#: One instruction: code, jt, jf, k.
SOCK_FILTER = struct.Struct("=HBBI")
#: struct sock_fprog: the number of instructions and their address.
SOCK_FPROG = struct.Struct("@HP")
#: The notifications of route and rule changes (those a request of this tool makes).
CHANGE_NOTIFICATIONS = (RTM_NEWROUTE, RTM_DELROUTE, RTM_NEWRULE, RTM_DELRULE)
if TYPE_CHECKING:
    T = TypeVar("T")


class NetlinkError(OSError):
    """The kernel refused a request: ``errno`` and its text (plus the kernel's own words)."""


@frozen
class Message:
    """One decoded netlink message: its type, flags and body (after the header)."""

    type: int
    flags: int
    body: bytes
    pid: int = 0
    """The header's port id: in a notification, the port id of the socket whose request made
    the change (0: the kernel's own change); set by :meth:`RtnlSocket.receive` only."""


def align(length: int) -> int:
    return (length + 3) & ~3


#: The attributes of a message from an offset on: type -> payload (the last one of a type
#: wins), only those of the wanted types (default: all); one walk per message shape
#: (:mod:`multihome.nlattrs`).
attributes = payloads


def attr(kind: int, payload: bytes) -> bytes:
    """One attribute, padded."""
    length = 4 + len(payload)
    return NLATTR.pack(length, kind) + payload + b"\0" * (align(length) - length)


def attr_u32(kind: int, value: int) -> bytes:
    return NLATTR.pack(8, kind) + U32.pack(value)


def attr_str(kind: int, value: str) -> bytes:
    return attr(kind, value.encode() + b"\0")


def nexthops(payload: bytes) -> list[tuple[int, int, dict[int, bytes]]]:
    """The next hops of an RTA_MULTIPATH attribute: (ifindex, weight, attributes) each."""
    found = []
    offset = 0
    end = len(payload)
    while offset + RTNEXTHOP.size <= end:
        length, _flags, hops, ifindex = RTNEXTHOP.unpack_from(payload, offset)
        if length < RTNEXTHOP.size:
            break
        inner = attributes(payload[offset : offset + length], RTNEXTHOP.size)
        found.append((ifindex, hops + 1, inner))
        offset += align(length)
    return found


def multipath(hops: Sequence[tuple[int, int, bytes]]) -> bytes:
    """An RTA_MULTIPATH attribute of (ifindex, weight, attributes) next hops."""
    return attr(
        RTA_MULTIPATH,
        b"".join(
            RTNEXTHOP.pack(RTNEXTHOP.size + len(inner), 0, weight - 1, ifindex) + inner
            for ifindex, weight, inner in hops
        ),
    )


def u32(payload: bytes) -> int:
    value: int = U32.unpack_from(payload)[0]
    return value


def asciiz(payload: bytes) -> str:
    return payload.split(b"\0", 1)[0].decode(errors="replace")


def message(msg_type: int, flags: int, seq: int, body: bytes) -> bytes:
    """A netlink message: header and ``body`` (already padded to 4 bytes)."""
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), msg_type, flags, seq, 0) + body


class RtnlSocket:
    """A NETLINK_ROUTE socket bound in the current network namespace."""

    def __init__(self, groups: int = 0) -> None:
        """``groups``: the rtnetlink multicast groups to listen to (0: none, requests only)."""
        sock = _socket.socket(
            _socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, NETLINK_ROUTE
        )
        try:
            try:  # root may exceed net.core.rmem_max; others get what the sysctl allows
                sock.setsockopt(_socket.SOL_SOCKET, 33, RCVBUF)  # SO_RCVBUFFORCE
            except OSError:
                sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVBUF, RCVBUF)
            for option in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
                # acks without the request echoed back; errors with the kernel's words
                with contextlib.suppress(OSError):
                    sock.setsockopt(SOL_NETLINK, option, 1)
            sock.bind((0, groups))
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._seq = int.from_bytes(os.urandom(2), "little") << 8
        self._buffer = bytearray(RECV_SIZE)

    def close(self) -> None:
        self._sock.close()

    def strict(self, on: bool) -> None:
        """Strict checking of this socket's dump requests on or off
        (``NETLINK_GET_STRICT_CHK``, Linux 4.20): with it the kernel filters a dump by its
        request's header (a route dump's ``RTM_F_CLONED``: the exceptions alone) and refuses
        a header it cannot take. ``OSError`` from a kernel without it."""
        self._sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, int(on))

    def next_seq(self, count: int = 1) -> int:
        """Reserve ``count`` sequence numbers; return the first."""
        first = self._seq + 1
        self._seq = (self._seq + count) & 0x7FFFFFFF
        return first

    # -- receiving ----------------------------------------------------------------------------
    @property
    def portid(self) -> int:
        """This socket's netlink port id: the kernel's notifications of the changes requested
        through it carry it (:attr:`Message.pid`)."""
        portid: int = self._sock.getsockname()[0]
        return portid

    def _receive(self) -> Iterator[tuple[int, int, int, bytes, int]]:
        """The messages of one datagram: (type, flags, seq, body, port id)."""
        size = self._sock.recv_into(self._buffer)
        data = bytes(self._buffer[:size])
        offset = 0
        while offset + NLMSGHDR.size <= size:
            length, msg_type, flags, seq, pid = NLMSGHDR.unpack_from(data, offset)
            if length < NLMSGHDR.size:
                break
            yield msg_type, flags, seq, data[offset + NLMSGHDR.size : offset + length], pid
            offset += align(length)

    def receive(self) -> list[Message]:
        """The messages of the next datagram (blocks until one arrives). ``OSError``
        (ENOBUFS) when the kernel had to drop notifications for this socket."""
        return [Message(kind, flags, body, pid) for kind, flags, _seq, body, pid in self._receive()]

    def notifications(self) -> list[tuple[int, int]]:
        """(message type, address family) of every notification received so far (a socket
        bound to multicast ``groups``), without waiting. ``OSError`` (ENOBUFS) when the
        kernel had to drop some."""
        found: list[tuple[int, int]] = []
        receive, buffer = self._sock.recv_into, self._buffer
        head = _HEAD.unpack_from  # the header's length and type (an apply's ~1,500 of them)
        while True:
            try:
                size = receive(buffer, 0, _socket.MSG_DONTWAIT)
            except BlockingIOError:
                return found
            offset = 0
            while offset + 16 <= size:
                length, msg_type = head(buffer, offset)
                if length < 16:
                    break
                found.append((msg_type, buffer[offset + 16] if length > 16 else 0))
                offset += (length + 3) & ~3

    def ignore_changes_of(self, portid: int) -> None:
        """From now on, the kernel drops, instead of queueing them here, the notifications
        of the route and rule changes requested through the socket ``portid`` (a socket
        filter: an apply at 256 dual-stack ports makes ~3,000 such changes, whose notifications
        were as many ``recv`` calls for :meth:`notifications` to count them). Every other
        notification comes as before: another writer's, the kernel's own (port id 0), and a
        link or address change of any socket."""
        import array  # the filter's address for the kernel (only a changing apply needs it)

        def big_endian(value: int, size: int) -> int:
            # BPF_ABS loads read big-endian; netlink headers are in the host's byte order.
            return int.from_bytes(value.to_bytes(size, sys.byteorder), "big")

        count = len(CHANGE_NOTIFICATIONS)
        drop = [(BPF_RET_K, 0, 0, 0)]
        deliver = [(BPF_RET_K, 0, 0, 0xFFFFFFFF)]  # all of it
        program = [
            (BPF_LD_W_ABS, 0, 0, 12),  # nlmsg_pid
            (BPF_JEQ_K, 0, 1 + count + 1, big_endian(portid, 4)),  # another's: deliver
            (BPF_LD_H_ABS, 0, 0, 4),  # nlmsg_type
        ]
        for i, kind in enumerate(CHANGE_NOTIFICATIONS):  # a change's: drop, else deliver
            after = count - 1 - i  # the comparisons after this one
            program.append((BPF_JEQ_K, after, 0 if after else 1, big_endian(kind, 2)))
        program += drop + deliver
        code = array.array("B", b"".join(SOCK_FILTER.pack(*op) for op in program))
        address, _size = code.buffer_info()
        self._sock.setsockopt(
            _socket.SOL_SOCKET, SO_ATTACH_FILTER, SOCK_FPROG.pack(len(program), address)
        )

    # -- dumps --------------------------------------------------------------------------------
    def dump(
        self, msg_type: int, body: bytes, decode: Callable[[Message], T | None], *, retries: int = 5
    ) -> list[T]:
        """A dump request; ``decode`` each answer (None drops it). Retried when the kernel
        says the dump was interrupted by a concurrent change."""
        found = []
        for kind, flags, payload in self._dump(msg_type, body, retries):
            item = decode(Message(kind, flags, payload))
            if item is not None:
                found.append(item)
        return found

    def dump_bodies(
        self, msg_type: int, body: bytes, *, retries: int = 5, skip_table: int | None = None
    ) -> list[bytes]:
        """The bodies of a dump's answers (:meth:`dump` without a :class:`Message` and a
        call per answer: a read at 256 ports takes thousands). ``skip_table``: a route
        dump's answers of that table (the header's ``rtm_table`` byte) are dropped unread."""
        return [
            payload for _kind, _flags, payload in self._dump(msg_type, body, retries, skip_table)
        ]

    def _dump(
        self, msg_type: int, body: bytes, retries: int, skip_table: int | None = None
    ) -> list[tuple[int, int, bytes]]:
        """(type, flags, body) of each answer of a dump, its datagrams parsed in place; the
        answers whose fifth body byte (a route's ``rtm_table``) is ``skip_table`` are not
        cut out of the datagram (the ``local`` table: half of all routes with many ports)."""
        sock, buffer = self._sock, self._buffer
        unpack, size_of = NLMSGHDR.unpack_from, NLMSGHDR.size
        skipped = -1 if skip_table is None else skip_table  # -1: no byte is
        at_table = size_of + 4  # rtm_table: after family, dst_len, src_len and tos
        for _ in range(retries):
            seq = self.next_seq()
            sock.send(message(msg_type, NLM_F_REQUEST | NLM_F_DUMP, seq, body))
            found: list[tuple[int, int, bytes]] = []
            interrupted = False
            done = False
            while not done:
                size = sock.recv_into(buffer)
                data = bytes(buffer[:size])
                offset = 0
                while offset + size_of <= size:
                    length, kind, flags, rseq, _pid = unpack(data, offset)
                    if length < size_of:
                        break
                    start, offset = offset, offset + ((length + 3) & ~3)
                    if rseq != seq:
                        continue
                    if flags & NLM_F_DUMP_INTR:
                        interrupted = True
                    if kind == NLMSG_DONE:
                        done = True
                        break
                    skip = length > at_table and data[start + at_table] == skipped
                    if skip and kind != NLMSG_ERROR:
                        continue
                    payload = data[start + size_of : start + length]
                    if kind == NLMSG_ERROR:
                        code = -I32.unpack_from(payload)[0]
                        if code:
                            raise error(code, payload, flags)
                        done = True
                        break
                    found.append((kind, flags, payload))
            if not interrupted:
                return found
        raise NetlinkError(errno.EINTR, "netlink dump interrupted again and again; retry")

    # -- requests -----------------------------------------------------------------------------
    def request(self, msg_type: int, flags: int, body: bytes) -> list[Message]:
        """One request and its answers (an ack, or the messages of a ``get``)."""
        seq = self.next_seq()
        self._sock.send(message(msg_type, NLM_F_REQUEST | NLM_F_ACK | flags, seq, body))
        answers: list[Message] = []
        while True:
            for kind, rflags, rseq, payload, _pid in self._receive():
                if rseq != seq:
                    continue
                if kind == NLMSG_ERROR:
                    code = -I32.unpack_from(payload)[0]
                    if code:
                        raise error(code, payload, rflags)
                    return answers
                answers.append(Message(kind, rflags, payload))

    def gets(self, msg_type: int, bodies: Sequence[bytes]) -> list[bytes | NetlinkError]:
        """``get`` requests (without a dump), ``BATCH_SIZE`` per ``send``: per request its
        one answer's body (after the netlink header; a get's answer has one type, the new
        object's), or the kernel's error. The answers are parsed in place in the receive
        buffer (a verification at 256 ports asks 768: no generator, one copy per answer
        and no :class:`Message` around it, as :meth:`_errors`)."""
        sock, buffer = self._sock, self._buffer
        pack, unpack, code_of = NLMSGHDR.pack, NLMSGHDR.unpack_from, I32.unpack_from
        results: list[bytes | NetlinkError] = []
        for start in range(0, len(bodies), BATCH_SIZE):
            chunk = bodies[start : start + BATCH_SIZE]
            count = len(chunk)
            first = self.next_seq(count)
            sock.send(
                b"".join(  # :func:`message` of each, without a call per request (as batch)
                    pack(16 + len(body), msg_type, NLM_F_REQUEST, seq & 0x7FFFFFFF, 0) + body
                    for seq, body in enumerate(chunk, start=first)
                )
            )
            answers: list[bytes | NetlinkError | None] = [None] * count
            waiting = count
            while waiting:
                size = sock.recv_into(buffer)
                offset = 0
                while offset + 16 <= size:
                    length, kind, flags, seq, _pid = unpack(buffer, offset)
                    if length < 16:
                        break
                    at, offset = offset + 16, offset + ((length + 3) & ~3)
                    index = (seq - first) & 0x7FFFFFFF
                    if index >= count or answers[index] is not None:
                        continue
                    end = min(at - 16 + length, size)
                    if kind == NLMSG_ERROR:
                        code = -code_of(buffer, at)[0]
                        if not code:
                            continue  # an acknowledgement, not an answer
                        answers[index] = error(code, bytes(buffer[at:end]), flags)
                    else:
                        answers[index] = bytes(buffer[at:end])
                    waiting -= 1
            results += [a for a in answers if a is not None]
        return results

    def batch(self, requests: Sequence[tuple[int, int, bytes]]) -> list[NetlinkError | None]:
        """Send ``requests`` (type, flags, body) in order, ``BATCH_SIZE`` per ``send``, each
        with its own sequence number; collect the kernel's errors.

        Returns, per request, None (done) or the kernel's error. The kernel handles every
        request, also those after a failed one: the caller decides what to do about them.

        Only the last request of a ``send`` asks for an acknowledgement (``NLM_F_ACK``): the
        kernel answers every failed request with its error whether or not it was asked to,
        and handles one socket's requests in order, so the last one's answer comes after
        every error of the requests before it. (An ack per request was a datagram and a
        ``recv`` each: 1,536 at 256 ports, for the same information.)
        """
        results: list[NetlinkError | None] = [None] * len(requests)
        pack = NLMSGHDR.pack
        for start in range(0, len(requests), BATCH_SIZE):
            chunk = requests[start : start + BATCH_SIZE]
            count = len(chunk)
            first = self.next_seq(count)
            last = first + count - 1
            data = b"".join(  # :func:`message` of each, without a call per request
                pack(
                    16 + len(body),
                    kind,
                    NLM_F_REQUEST | flags | (NLM_F_ACK if seq == last else 0),
                    seq & 0x7FFFFFFF,
                    0,
                )
                + body
                for seq, (kind, flags, body) in enumerate(chunk, start=first)
            )
            self._sock.send(data)
            self._errors(first, count, results, start)
        return results

    def _errors(
        self, first: int, count: int, results: list[NetlinkError | None], start: int
    ) -> None:
        """Receive the answers to requests ``first`` to ``first + count - 1`` (sequence
        numbers) until the last one's came (its acknowledgement or its error): each error
        into ``results[start + i]``. Parsed in place in the receive buffer (no message is
        copied but an error's)."""
        receive, buffer = self._sock.recv_into, self._buffer
        unpack, code_of = NLMSGHDR.unpack_from, I32.unpack_from
        last = count - 1
        while True:
            size = receive(buffer)
            offset = 0
            answered = False
            while offset + 16 <= size:
                length, kind, flags, seq, _pid = unpack(buffer, offset)
                if length < 16:
                    break
                index = (seq - first) & 0x7FFFFFFF
                if kind == NLMSG_ERROR and index < count:
                    code = -code_of(buffer, offset + 16)[0]
                    if code:
                        payload = bytes(buffer[offset + 16 : offset + length])
                        results[start + index] = error(code, payload, flags)
                    answered = answered or index == last
                offset += (length + 3) & ~3
            if answered:
                return


def error(code: int, payload: bytes, flags: int) -> NetlinkError:
    """The NetlinkError of an NLMSG_ERROR body (``flags`` are its header's), with the kernel's
    extended-ack text when it sent one."""
    text = os.strerror(code)
    if flags & NLM_F_ACK_TLVS and len(payload) >= 4 + NLMSGHDR.size:
        echoed = NLMSGHDR.size if flags & NLM_F_CAPPED else align(u32(payload[4:8]))
        words = attributes(payload, 4 + echoed).get(NLMSGERR_ATTR_MSG)
        if words:
            text = f"{text} ({asciiz(words)})"
    return NetlinkError(code, text)
