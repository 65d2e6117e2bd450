"""Netlink events: link, address, route and rule changes of the current namespace.

A reader thread blocks in ``recv`` on a socket bound to the rtnetlink multicast groups and
hands each message, reduced to an :class:`Event`, to a queue. The main
thread blocks on that queue (no polling: an idle agent uses no CPU) and gathers a burst with
:meth:`EventSource.burst`: after the first event it waits until ``quiet`` seconds pass without
another (or ``limit`` seconds in all), so that a link going down with its dozen routes is one
reconcile.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import queue
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multihome.backend.rtnl import Message

log = logging.getLogger(__name__)

RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV4_RULE = 0x80
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400
RTMGRP_IPV6_RULE = 0x40000
GROUPS = (
    RTMGRP_LINK
    | RTMGRP_IPV4_IFADDR
    | RTMGRP_IPV4_ROUTE
    | RTMGRP_IPV4_RULE
    | RTMGRP_IPV6_IFADDR
    | RTMGRP_IPV6_ROUTE
    | RTMGRP_IPV6_RULE
)
#: Message type (RTM_NEWLINK ... RTM_DELRULE) -> kind.
KINDS = {16: "link", 17: "link", 20: "addr", 21: "addr", 24: "route", 25: "route", 32: "rule",
         33: "rule"}  # fmt: skip
NEW = frozenset({16, 20, 24, 32})


@dataclass(frozen=True)
class Event:
    """One netlink notification, reduced to what the log needs."""

    kind: str
    """``link``, ``addr``, ``route``, ``rule``, or ``overrun`` (events were lost: re-read)."""
    action: str
    """``new`` or ``del``."""
    index: int | None = None
    """ifindex of the link concerned, when the message names one."""
    ifname: str | None = None
    detail: str = ""
    at: float = 0.0
    """``time.monotonic()`` when the reader received it."""

    def describe(self, names: Mapping[int, str] | None = None) -> str:
        """``route new default table 254 dev eth1``, naming the link when known."""
        name = self.ifname or (names or {}).get(self.index or 0)
        if name is None and self.index:
            name = f"if{self.index}"
        where = f"dev {name}" if name and self.kind in ("route", "addr") else name
        return " ".join(p for p in (self.kind, self.action, self.detail, where) if p)


def event_from(msg: Message, now: float) -> Event | None:
    """An :class:`Event` for a link, address, route or rule notification (else None)."""
    from multihome.backend import rtnl

    kind = KINDS.get(msg.type)
    if kind is None:
        return None
    action = "new" if msg.type in NEW else "del"
    index: int | None = None
    ifname: str | None = None
    if kind == "link":
        _family, _type, index, flags, _change = rtnl.IFINFOMSG.unpack_from(msg.body)
        attrs = rtnl.attributes(msg.body, rtnl.IFINFOMSG.size)
        name = attrs.get(rtnl.IFLA_IFNAME)
        ifname = rtnl.asciiz(name) if name else None
        oper = attrs.get(rtnl.IFLA_OPERSTATE)
        running = oper is not None and oper[:1] in (b"\x00", b"\x06")  # UNKNOWN, UP
        detail = "removed" if action == "del" else "up" if flags & 1 and running else "down"
    elif kind == "addr":
        _family, prefixlen, _flags, _scope, index = rtnl.IFADDRMSG.unpack_from(msg.body)
        attrs = rtnl.attributes(msg.body, rtnl.IFADDRMSG.size)
        value = attrs.get(rtnl.IFA_LOCAL) or attrs.get(rtnl.IFA_ADDRESS)
        detail = f"{ipaddress.ip_address(value)}/{prefixlen}" if value else ""
    elif kind == "route":
        _family, dst_len, _src, _tos, table, *_rest = rtnl.RTMSG.unpack_from(msg.body)
        attrs = rtnl.attributes(msg.body, rtnl.RTMSG.size)
        oif = attrs.get(rtnl.RTA_OIF)
        index = rtnl.u32(oif) if oif else None
        if rtnl.RTA_TABLE in attrs:
            table = rtnl.u32(attrs[rtnl.RTA_TABLE])
        dst = attrs.get(rtnl.RTA_DST)
        detail = (
            f"{ipaddress.ip_address(dst)}/{dst_len} table {table}"
            if dst
            else f"default table {table}"
        )
    else:
        attrs = rtnl.attributes(msg.body, rtnl.FIBRULEHDR.size)
        priority = attrs.get(rtnl.FRA_PRIORITY)
        detail = f"priority {rtnl.u32(priority) if priority else 0}"
    return Event(kind, action, index, ifname, detail, now)


class EventSource:
    """The subscription: a reader thread and a queue. ``start()`` returns once bound, so that
    no event after it is missed."""

    def __init__(self, groups: int = GROUPS, own: int | None = None) -> None:
        """``own``: the netlink port id of the socket the agent changes the kernel through.
        The kernel's notifications of those changes carry it (the kernel's own changes carry
        0, other processes' their own port id) and are not events: the agent knows what it
        just did, and reconciling again after every repair only to find nothing to do held
        the next repair back (and postponed the repair's announcement and verification)."""
        self._groups = groups
        self._own = own
        self._queue: queue.Queue[Event | BaseException] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._read, name="netlink-events", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the netlink event socket did not come up")
        item = self._peek_error()
        if item is not None:
            raise item

    def _peek_error(self) -> BaseException | None:
        try:
            item = self._queue.get_nowait()
        except queue.Empty:
            return None
        if isinstance(item, BaseException):
            return item
        self._queue.put(item)
        return None

    def _read(self) -> None:
        """The reader thread: one blocking ``recv`` per datagram, decoded with ``struct``
        (pyroute2's generic decoder cost ~0.15 ms per message, taken from the repair that
        runs meanwhile on the main thread)."""
        from multihome.backend.rtnl import RtnlSocket

        try:
            sock = RtnlSocket(self._groups)
        except Exception as exc:
            self._queue.put(exc)
            self._ready.set()
            return
        self._ready.set()
        failures = 0
        while True:
            try:
                messages = sock.receive()
                failures = 0
            except OSError as exc:  # ENOBUFS: the kernel dropped events; re-read all
                if exc.errno != errno.ENOBUFS:
                    self._queue.put(exc)
                    return
                self._queue.put(
                    Event("overrun", "new", detail=f"errno {exc.errno}", at=time.monotonic())
                )
                failures += 1
                time.sleep(min(1.0, 0.01 * failures))
                continue
            now = time.monotonic()
            for msg in messages:
                if self._own is not None and msg.pid == self._own:
                    continue  # the agent's own change
                try:
                    event = event_from(msg, now)
                except (struct.error, ValueError) as exc:
                    log.debug("undecodable notification %d: %s", msg.type, exc)
                    continue
                if event is not None:
                    self._queue.put(event)

    def wait(self, timeout: float | None) -> Event | None:
        """Block until an event arrives (None after ``timeout`` seconds). The reader's error
        is raised, and stays queued: the reader stopped, every later wait raises it too (a
        burst taken inside a repair does not swallow what must stop the agent's loop)."""
        try:
            item = self._queue.get(timeout=timeout) if timeout is not None else self._queue.get()
        except queue.Empty:
            return None
        if isinstance(item, BaseException):
            self._queue.put(item)
            raise item
        return item

    def burst(self, first: Event, quiet: float, limit: float) -> list[Event]:
        """``first`` and the events that follow it closely (debouncing): the burst ends when
        no event comes within ``quiet`` seconds of taking the last one from the queue, or
        ``limit`` seconds after ``first`` was taken. Events that waited in the queue while a
        repair ran are taken at once, and the burst still waits ``quiet`` after them for the
        rest of their disturbance."""
        events = [first]
        deadline = time.monotonic() + limit
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return events
            event = self.wait(min(quiet, left))
            if event is None:
                return events
            events.append(event)

    def pending(self) -> int:
        """How many events wait in the queue now (approximate, never blocks)."""
        return self._queue.qsize()

    def take(self) -> list[Event]:
        """The events queued now, without waiting (none: an empty list). An error of the
        reader thread is left queued, for :meth:`wait` to raise in the main loop."""
        events: list[Event] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return events
            if isinstance(item, BaseException):
                self._queue.put(item)  # the reader's last item: it stopped (see wait)
                return events
            events.append(item)
