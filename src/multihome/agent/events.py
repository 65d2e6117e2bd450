"""Netlink events: link, address, route and rule changes of the current namespace.

A reader thread blocks in pyroute2's ``IPRoute.get()`` on a socket bound to the rtnetlink
multicast groups and hands each message, reduced to an :class:`Event`, to a queue. The main
thread blocks on that queue (no polling: an idle agent uses no CPU) and gathers a burst with
:meth:`EventSource.burst`: after the first event it waits until ``quiet`` seconds pass without
another (or ``limit`` seconds in all), so that a link going down with its dozen routes is one
reconcile.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
KINDS = {
    "RTM_NEWLINK": "link",
    "RTM_DELLINK": "link",
    "RTM_NEWADDR": "addr",
    "RTM_DELADDR": "addr",
    "RTM_NEWROUTE": "route",
    "RTM_DELROUTE": "route",
    "RTM_NEWRULE": "rule",
    "RTM_DELRULE": "rule",
}


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


def event_from(msg: Any, now: float) -> Event | None:
    """An :class:`Event` for a pyroute2 message (None for other message types)."""
    name = msg.get("event")
    kind = KINDS.get(name)
    if kind is None:
        return None
    action = "new" if name.startswith("RTM_NEW") else "del"
    index: int | None = None
    ifname: str | None = None
    detail = ""
    if kind == "link":
        index = msg.get("index")
        ifname = msg.get("IFLA_IFNAME")
        detail = (
            "up"
            if msg.get("flags", 0) & 1 and msg.get("IFLA_OPERSTATE") in ("UP", "UNKNOWN")
            else "down"
        )
        if action == "del":
            detail = "removed"
    elif kind == "addr":
        index = msg.get("index")
        value = msg.get("IFA_LOCAL") or msg.get("IFA_ADDRESS")
        detail = f"{value}/{msg.get('prefixlen')}" if value else ""
    elif kind == "route":
        index = msg.get("RTA_OIF")
        dst = msg.get("RTA_DST")
        table = msg.get("RTA_TABLE") or msg.get("table")
        detail = f"{dst}/{msg.get('dst_len')} table {table}" if dst else f"default table {table}"
    else:
        detail = f"priority {msg.get('FRA_PRIORITY') or 0}"
    return Event(kind, action, index, ifname, detail, now)


class EventSource:
    """The subscription: a reader thread and a queue. ``start()`` returns once bound, so that
    no event after it is missed."""

    def __init__(self, groups: int = GROUPS) -> None:
        self._groups = groups
        self._queue: queue.Queue[Event | BaseException] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._ipr: Any = None

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
        from pyroute2 import IPRoute, NetlinkError

        try:
            self._ipr = IPRoute()
            self._ipr.bind(groups=self._groups)
        except Exception as exc:
            self._queue.put(exc)
            self._ready.set()
            return
        self._ready.set()
        failures = 0
        while True:
            try:
                messages = self._ipr.get()
                failures = 0
            except NetlinkError as exc:  # ENOBUFS: the kernel dropped events; re-read all
                self._queue.put(
                    Event("overrun", "new", detail=f"errno {exc.code}", at=time.monotonic())
                )
                failures += 1
                time.sleep(min(1.0, 0.01 * failures))
                continue
            except Exception as exc:
                self._queue.put(exc)
                return
            now = time.monotonic()
            for msg in messages:
                event = event_from(msg, now)
                if event is not None:
                    self._queue.put(event)

    def wait(self, timeout: float | None) -> Event | None:
        """Block until an event arrives (None after ``timeout`` seconds)."""
        try:
            item = self._queue.get(timeout=timeout) if timeout is not None else self._queue.get()
        except queue.Empty:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    def burst(self, first: Event, quiet: float, limit: float) -> list[Event]:
        """``first`` and the events that follow it closely (debouncing)."""
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

    def drain(self) -> list[Event]:
        """Everything queued now, without waiting."""
        events: list[Event] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return events
            if isinstance(item, BaseException):
                raise item
            events.append(item)
