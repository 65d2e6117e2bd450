"""The agent's reconcile loop: netlink events in, the policy's delta out.

One reconcile is one :func:`multihome.engine.converge`, the transaction ``multihome apply``
also runs, under the namespace's lock: read the namespace; unless a ``reset`` or ``rollback``
paused the agent (:mod:`multihome.transaction.pause`): forget ports that are gone (stop
their DHCP clients); address ports that nothing addresses (static from metadata, DHCP
otherwise, see :mod:`multihome.agent.addressing`); then apply just the difference, announce
the managed addresses (gratuitous ARP) and verify, after the last kernel change. The policy
builds each port's table from the port's own facts (:mod:`multihome.facts`): its lease or the
metadata, and what its table held before (``seen``: a link flap flushes the table, and main
may get back only some of its routes). Every repair is one log line. Nothing runs between
events: the main thread blocks on the event queue, waking only for a timer it set itself (DHCP
grace period, retry after a failed apply, systemd's watchdog) or a signal.
"""

from __future__ import annotations

import collections
import gc
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from ipaddress import IPv4Interface, ip_interface
from pathlib import Path
from types import FrameType

from multihome.agent import addressing, dhcphook, sdnotify
from multihome.agent.events import Event, EventSource
from multihome.agent.state import AgentStatus, Repair, write_status
from multihome.backend import Backend
from multihome.config import Config
from multihome.engine import Convergence, again_on_conflict, assess, converge, locked
from multihome.errors import (
    ConcurrentChangeError,
    InputError,
    MetadataUnavailable,
    MultihomeError,
)
from multihome.facts import PortFacts
from multihome.leasefiles import agent_lease_files
from multihome.model import (
    TABLE_MAIN,
    Address,
    HostState,
    IPAddress,
    IPInterface,
    IPNetwork,
    Link,
    Route,
)
from multihome.plan import Assessment, Plan
from multihome.policy import FOREIGN_IN_BAND, DesiredState, PolicyMemo, is_left_alone
from multihome.source import Metadata, Retry, resolve
from multihome.source.leases import LeaseReader, parse_dhclient
from multihome.source.portfacts import gather
from multihome.source.ports import (
    PortIntent,
    StaticConfig,
    has_ipv4,
    has_ipv6,
    intents,
    static_config,
    taken_addresses,
)
from multihome.transaction import checkpoint
from multihome.transaction.pause import describe, paused
from multihome.transaction.statedir import StateDir, route_from_json, route_to_json
from multihome.verify import Check, verify_unless

log = logging.getLogger("multihome.agent")

#: More repairs than this within FIGHT_WINDOW seconds: another tool is undoing ours.
FIGHT_REPAIRS = 50
FIGHT_WINDOW = 5.0
MAX_BACKOFF = 30.0
#: Python's cyclic garbage collector runs when the agent is idle, not in the middle of a repair
#: (a collection of the older generations took 1-20 ms, a repair's tail): after this many
#: allocations, at the next moment no event waits; while events never stop, at this many times
#: more, at once.
IDLE_COLLECT = 700
BUSY_COLLECT = 100
#: Seconds before the agent's scan for dhclient processes is due (every 2 s) that an idle
#: agent makes it (:meth:`Agent._wait`): events that come less than a second apart never
#: find it due in their repair (the scans come every 1-2 s then, instead of every 2).
SCAN_AHEAD = 1.0
#: How long a repair waits for another multihome (an apply, a reset) to release the lock;
#: then it fails and is retried (backoff), so that systemd's watchdog is still fed.
LOCK_TIMEOUT = 5.0
#: A check that fails after a repair is an error only when it still fails this many seconds
#: later (checked again then, or by the verification of a repair that comes first): the
#: namespace may be half-way through a change (a hot-plugged port's address before its DHCP
#: default: isolated, its on-link question answered through a peer on the same subnet).
RECHECK_DELAY = 1.0


@dataclass(frozen=True)
class AgentOptions:
    """How the agent behaves (the command's options)."""

    source: str = "auto"
    metadata: str | None = None
    quiet: float = 0.002
    """Debounce: a burst ends after this many seconds without an event."""
    limit: float = 0.1
    """Debounce: a burst never delays a reconcile by more than this."""
    grace: float = 3.0
    """Seconds an unaddressed port is left to others before the agent runs DHCP for it."""
    dhcp: bool = True
    address: bool = True
    """Address unaddressed ports at all (static from metadata, DHCP)."""


class _Wake(Exception):
    """Raised by a signal handler to leave the blocking wait."""


#: How often, and how far apart, the metadata is read again for a port it does not list yet.
METADATA_REFRESHES = 10
METADATA_REFRESH_DELAY = 2.0


@dataclass
class _Timers:
    dhcp: dict[str, float] = field(default_factory=dict)
    dhcp6: dict[str, float] = field(default_factory=dict)
    retry_at: float | None = None
    hold_until: float | None = None
    watchdog_at: float | None = None
    recheck_at: float | None = None
    """When the verification is due again for checks that failed (:data:`RECHECK_DELAY`)."""

    def next(self) -> float | None:
        """When the loop must wake: the first timer, but during a hold (a fight with another
        tool) none before the hold ends, as the loop handles none then (a timer already due
        would wake it at once, again and again); the watchdog is fed all the same."""
        due = [
            t
            for t in (*self.dhcp.values(), *self.dhcp6.values(), self.retry_at, self.recheck_at)
            if t is not None
        ]
        first = min(due) if due else None
        if self.hold_until is not None:
            first = self.hold_until if first is None else max(first, self.hold_until)
        if self.watchdog_at is not None:
            first = self.watchdog_at if first is None else min(first, self.watchdog_at)
        return first


@dataclass(frozen=True)
class _Suspect:
    """A check that failed after a repair and is not an error yet (:data:`RECHECK_DELAY`)."""

    since: float
    """``time.monotonic()`` of the verification where it failed first."""
    trigger: str
    """The repair's trigger it failed after."""
    check: Check
    """Its last failure."""


def _check_key(check: Check) -> tuple[str, str, str, str]:
    """The same question in two verifications."""
    return check.interface, check.address, check.name, check.destination


@dataclass
class _Proof:
    """The verification's failures not judged yet."""

    suspects: dict[tuple[str, str, str, str], _Suspect] = field(default_factory=dict)
    """Checks that failed and are verified again before they count as errors."""
    rechecked: list[Check] | None = None
    """The verification ``_prepare`` made again in this pass (it had nothing to change)."""


@dataclass
class _Dhcp6:
    """The DHCPv6 clients the agent started (``dhclient -6``), and what it knows of their
    ports, by interface."""

    clients: dict[str, addressing.DhcpClient] = field(default_factory=dict)
    awaiting_dad: set[str] = field(default_factory=set)
    """Ports whose DHCPv6 client waits for DAD of their link-local address."""
    bound: set[str] = field(default_factory=set)
    """Ports that had an IPv6 address while the agent's DHCPv6 client ran."""
    resumed: set[str] = field(default_factory=set)
    """Ports checked once for a DHCPv6 client of an earlier agent to start again."""


class Agent:
    """The long-running repairer of one network namespace."""

    def __init__(
        self,
        backend: Backend,
        load_config: Callable[[], Config],
        root: Path,
        options: AgentOptions,
        events: EventSource | None = None,
    ) -> None:
        self.backend = backend
        self.load_config = load_config
        self.root = root
        self.options = options
        self.events = events or EventSource()
        self.config = Config()
        self.claimed = False
        """A repair succeeded, or an apply in this namespace used the band: the band is
        multihome's (``Config.band_claimed``)."""
        self._claimed_config: tuple[Config, Config] | None = None
        """``config`` and its claimed form (:meth:`_config`), made once per ``config``."""
        self.metadata: Metadata | None = None
        self.memo = PolicyMemo()
        """Each port's policy part of the last reconcile: only the ports an event changed
        are computed again (:class:`~multihome.policy.PolicyMemo`)."""
        self.seen: dict[tuple[str, str | None], frozenset[Route]] = {}
        """(name, MAC) -> the routes the port's table held at the last reconcile."""
        self.leases = LeaseReader(root, extra=agent_lease_files(root), process_every=2.0)
        self.warned: set[str] = set()
        self.known: set[int] = set()
        self.names: dict[int, str] = {}
        self.hotplugged: set[str] = set()
        self.left_to: dict[str, str] = {}
        self.resumed: set[str] = set()
        """Ports checked once for a DHCP client of an earlier agent to start again."""
        self.refreshed: dict[str, int] = {}
        """MAC -> metadata refreshes made for a port the metadata did not know yet."""
        self.refused: dict[str, str] = {}
        """Interface -> why its metadata was refused (logged once; the port stays bare)."""
        self.clients: dict[str, addressing.DhcpClient] = {}
        self.static: dict[str, StaticConfig] = {}
        """Interface -> the metadata's configuration the agent gave it (put back after a
        flap, see ``_rebind``)."""
        self.recorded: set[str] = set()
        """Interfaces with a static configuration recorded (by this agent or an earlier)."""
        self.link_names: set[str] = set()
        self.dhcp6 = _Dhcp6()
        self.timers = _Timers()
        self.recent: collections.deque[float] = collections.deque(maxlen=FIGHT_REPAIRS)
        self.backoff = 0.5
        self.hold = 1.0
        self.status = AgentStatus(pid=os.getpid(), started=_now())
        self._stop = False
        self._reload = False
        self._kick = False
        self._owed = False
        """A repair whose announcement and verification were postponed (events waited)."""
        self.proof = _Proof()
        self._idle = False
        self._watchdog = sdnotify.watchdog_interval()
        self._dirty = False
        self._statedir: StateDir | None = None
        """This namespace's state directory, looked up at the first repair (the agent
        never leaves its namespace): the pause marker is read there before every repair."""

    # -- life cycle --------------------------------------------------------------------
    def run(self) -> None:
        """Subscribe, reconcile once, tell systemd we are ready, then repair until SIGTERM."""
        self._install_signals()
        self.config = self.load_config()
        self.claimed = _band_used(self.root, self.config)
        self.events.start()  # subscribed before the first read: no change can slip between
        state = self.backend.read()
        self.known = {link.index for link in state.links}
        self._load_metadata(state)
        self.reconcile("start", time.monotonic())
        write_status(self._state_dir(), self.status)
        sdnotify.notify(
            f"READY=1\nSTATUS=watching {len(state.links)} links; source {self.status.source}"
        )
        log.info(
            "agent %d ready: source %s%s, watching link/address/route/rule events",
            self.status.pid,
            self.status.source,
            f" ({self.status.origin})" if self.status.origin else "",
        )
        # What the start made lives as long as the agent (modules, the first read and
        # policy): never scanned again; the collector runs only when idle (_wait).
        gc.collect()
        gc.freeze()
        gc.disable()
        try:
            self._loop()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        sdnotify.notify("STOPPING=1")
        gc.enable()  # as it was before run() (an agent run inside another program: tests)
        gc.unfreeze()
        for client in (*self.clients.values(), *self.dhcp6.clients.values()):
            client.stop()
        self.clients.clear()
        self.dhcp6.clients.clear()
        self.status.configured.clear()  # their DHCP clients stopped with the agent
        self.status.configured6.clear()
        if self.proof.suspects:  # stopped before the re-check: neither proved nor an error
            log.info(
                "stopped before checking again: %s",
                _failures(s.check for s in self.proof.suspects.values()),
            )
        self.status.running = False
        self.status.stopped = _now()
        self._save()
        log.info("agent %d stopped after %d repairs", self.status.pid, self.status.repairs)

    def _save(self) -> None:
        self._dirty = False
        try:
            write_status(self._state_dir(), self.status)
        except MultihomeError as exc:
            log.error("cannot write the state file: %s", exc)

    def request_stop(self) -> None:
        self._stop = True

    def _install_signals(self) -> None:
        def stop(_signum: int, _frame: FrameType | None) -> None:
            self._stop = True
            if self._idle:
                raise _Wake()

        def reload(_signum: int, _frame: FrameType | None) -> None:
            self._reload = True
            if self._idle:
                raise _Wake()

        def kick(_signum: int, _frame: FrameType | None) -> None:
            self._kick = True  # `multihome agent resume`: reconcile now
            if self._idle:
                raise _Wake()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)
        signal.signal(signal.SIGUSR1, kick)

    def _loop(self) -> None:
        while not self._stop:
            if self._reload:
                self._reload = False
                self._do_reload()
            if self._kick:
                self._kick = False
                self.reconcile("resume", time.monotonic())
            burst = self._wait()
            if self._stop:
                break
            now = time.monotonic()
            self._feed_watchdog(now)
            if self.timers.hold_until is not None and now < self.timers.hold_until:
                continue
            self.timers.hold_until = None
            timer_due = self._timer_due(now)
            if not burst and not timer_due:
                continue
            self._take(burst)
            trigger = (
                _describe(burst, self.names)
                if burst
                else "re-check"
                if self._recheck_due(now)
                else "timer"
            )
            self.reconcile(trigger, burst[0].at if burst else now)

    def _take(self, burst: list[Event]) -> None:
        """Count and observe a burst, and tell the backend what its events say changed: the
        next read dumps only that (an overrun or a timer: everything)."""
        self.status.events += len(burst)
        self._observe(burst)
        kinds = {event.kind for event in burst}
        if burst and "overrun" not in kinds:
            self.backend.expect(kinds)

    def _wait(self) -> list[Event]:
        idle = self.events.pending() == 0
        if self._dirty and idle:
            self._save()  # only when idle: the file never delays a repair
        allocated = gc.get_count()[0]
        if allocated >= IDLE_COLLECT * (1 if idle else BUSY_COLLECT):
            gc.collect()
        if idle and self.leases.scan_due(ahead=SCAN_AHEAD):
            # The /proc scan for other tools' dhclient processes (their lease files), due
            # every 2 s, is made now when it is due within SCAN_AHEAD, rather than by the
            # next repair's read of the leases, before its first change (a few ms: every
            # process's command line; a repair in three paid it when events came every
            # 0.5 s). A repair still scans when it is due then (no idle moment since).
            self.leases.scan()
        due = self.timers.next()
        timeout = None if due is None else max(0.0, due - time.monotonic())
        self._idle = True
        try:
            if self._stop or self._reload or self._kick:
                return []  # a signal that came while busy (saving the file): it woke nobody
            first = self.events.wait(timeout)
        except _Wake:
            return []
        finally:
            self._idle = False
        if first is None:
            return []
        return self.events.burst(first, self.options.quiet, self.options.limit)

    def _timer_due(self, now: float) -> bool:
        due = False
        if self.timers.retry_at is not None and now >= self.timers.retry_at:
            self.timers.retry_at = None
            due = True
        if any(now >= t for t in (*self.timers.dhcp.values(), *self.timers.dhcp6.values())):
            due = True
        return due or self._recheck_due(now)

    def _recheck_due(self, now: float) -> bool:
        """Failed checks are due to be verified again (until a verification runs)."""
        return self.timers.recheck_at is not None and now >= self.timers.recheck_at

    def _feed_watchdog(self, now: float) -> None:
        if self._watchdog is None:
            return
        if self.timers.watchdog_at is None or now >= self.timers.watchdog_at:
            sdnotify.notify("WATCHDOG=1")
            self.timers.watchdog_at = now + self._watchdog

    def _do_reload(self) -> None:
        band = self.config.priority_range
        try:
            self.config = self.load_config()
        except InputError as exc:
            log.error("reload: %s (keeping the previous configuration)", exc)
            return
        if self.config.priority_range != band:
            self.claimed = _band_used(self.root, self.config)  # a new band
        state = self.backend.read()
        self._load_metadata(state)
        log.info("reloaded the configuration and the metadata")
        self.reconcile("reload", time.monotonic())

    # -- metadata ------------------------------------------------------------------------
    def _load_metadata(self, state: HostState, retry: Retry | None = None) -> None:
        # A guest that had OpenStack metadata stays an OpenStack guest: with ``auto`` the
        # host route to 169.254.169.254 that makes it look like one can be gone (flushed by
        # a flap), and the metadata service still answers through the default.
        source = self.options.source
        if source == "auto" and self.metadata is not None:
            source = "openstack"
        try:
            resolved = resolve(source, state, self.options.metadata, retry)
        except (MetadataUnavailable, InputError) as exc:
            # Missing or malformed metadata: the kernel's view, never a deletion.
            log.warning("metadata: %s; using the kernel's view", exc)
            self.status.last_error = str(exc)
            return
        if resolved.metadata is not None:
            self.metadata = resolved.metadata
        elif resolved.note:
            log.info("metadata: %s", resolved.note)
        self.status.source = resolved.used if self.metadata is None else "openstack"
        self.status.origin = None if self.metadata is None else self.metadata.origin

    def _observe(self, burst: list[Event]) -> None:
        for event in burst:
            if event.kind != "link" or event.index is None:
                continue
            if event.action == "new" and event.index not in self.known:
                self.known.add(event.index)
                if event.ifname:
                    self.hotplugged.add(event.ifname)
            elif event.action == "del":
                self.known.discard(event.index)

    # -- one reconcile ---------------------------------------------------------------------
    def reconcile(self, trigger: str, started: float) -> Plan | None:
        """Bring the namespace back to the policy; return the plan applied (None if none)."""
        self.status.reconciles += 1
        lines: list[str] = []
        try:
            # A DHCP client's hook (or an admin) may add a route or rule into a slot of the
            # plan's between the read and the apply; everything is undone then. Its route
            # is a fact now: read and plan again, at once (not an error).
            done = again_on_conflict(lambda: self._converge(lines), _conflict)
        except Exception as exc:  # every failure is logged and retried, never fatal
            self._failed(trigger, exc)
            return None
        self.backoff = 0.5
        self.claimed = True
        if done is None:  # paused
            return None
        self._owed = done.postponed
        self._remember(done.assessment.state, done.assessment.desired)
        self._warn_once(n for n in done.assessment.desired.notes if n.startswith(FOREIGN_IN_BAND))
        if done.result.applied:
            lines += done.plan.lines()
        # The checks of the verification this pass ran: the apply's (after a kernel change,
        # unless postponed) or the re-check's (nothing to change); None when none ran.
        verified = done.kernel_changed and not done.postponed
        checks = done.checks if verified else self.proof.rechecked
        if lines:
            self._repaired(trigger, started, lines, done)
        elif checks and self.status.last_repair is not None:  # a postponed one's or re-check
            last = self.status.last_repair
            self.status.last_repair = replace(
                last,
                announced=done.announced if done.checks else last.announced,
                verified=_score(checks),
            )
            if done.checks:
                log.info(
                    "repair after %s: verify %s, %d announced",
                    last.trigger,
                    _score(checks),
                    done.announced,
                )
            self._dirty = True
        if checks is not None and (checks or self.proof.suspects):
            # Judged even when nothing was asked (every port down since): a suspect that is
            # not asked any more is no error, and its re-check timer must not stay due.
            self._check_verified(trigger, checks)
        return done.plan if lines else None

    def _converge(self, lines: list[str]) -> Convergence | None:
        """One pass of the transaction (plan, apply, announce, verify) with the agent's
        ``prepare`` step; its lines are added to ``lines``."""
        with locked(
            self.backend,
            root=self.root,
            timeout=LOCK_TIMEOUT,
            purpose="agent repair",
            state=self._state_dir(),
        ) as session:
            return converge(
                self.backend,
                self._config(),
                root=self.root,
                session=session,
                assessed=self._assess(),
                prepare=lambda found: self._prepare(found, lines),
                verify_retries=0,  # a failed check is logged; the next event repairs again
                # More events wait: the next pass repairs, announces and verifies; the ARPs
                # and lookups would only delay it.
                postpone=lambda: self.events.pending() > 0,
                facts=self._facts,
                memo=self.memo,
            )

    def _assess(self) -> Assessment:
        """Read, then plan: events that came while the lock was taken and the state read (a
        flap's router answer, the kernel's IPv6 routes of a link that came up) are taken
        first and what they changed read again (:meth:`_late`), so that the policy is not
        computed for a read that is already out of date (the taking after the plan, in
        :meth:`_prepare`, then re-read and re-planned: 2-3 ms of a flap's repair at 16
        dual-stack ports)."""
        state = self.backend.read()
        if self._late():
            state = self.backend.read()
        return Assessment.of(state, self._config(), self._facts(state), self.memo)

    def _late(self) -> bool:
        """Take the events queued now into this pass, with the rest of their burst (its
        debounce), and tell the backend what they changed; whether there were any."""
        late = self.events.take()
        if not late:
            return False
        late[-1:] = self.events.burst(late[-1], self.options.quiet, self.options.limit)
        self._take(late)
        log.debug("planning again with %s", _describe(late, self.names))
        return True

    def _config(self) -> Config:
        """The configuration the policy sees: once a repair succeeded, another tool's rule
        that appears in the band is noted, not refused (every repair would fail). One
        object until the configuration is loaded again (a reload): every read and plan of a
        pass and its apply see the same (the owned rules and routes found for a read are
        kept for the config asked, by identity: the checkpoint looked for them again)."""
        if not self.claimed:
            return self.config
        made = self._claimed_config
        if made is None or made[0] is not self.config:
            made = self._claimed_config = (self.config, replace(self.config, band_claimed=True))
        return made[1]

    def _prepare(self, assessment: Assessment, lines: list[str]) -> tuple[Assessment, int] | None:
        """Under the lock, before the apply: nothing when paused; else the agent's own
        changes (ports gone, ports to address), the assessment to apply and how many kernel
        changes were made here (plus one when an earlier repair's announcement and
        verification are owed)."""
        config = self._config()
        self.proof.rechecked = None
        if self._paused():
            return None
        if self._late():
            # Events came while this pass planned (a flap's router answer right after the
            # link came up): planned with them, once, before the first change, rather than
            # in a pass of their own after this one's changes and bookkeeping; with the
            # rest of their disturbance, as a burst (its debounce).
            assessment = assess(self.backend, config, self._facts, self.memo)
        state = assessment.state
        self.names.update((link.index, link.name) for link in state.links)
        lines += self._forget_gone(state)
        addressed = self._address_ports(state) + self._address_ports6(state)
        lines += addressed
        if addressed:
            assessment = assess(self.backend, config, self._facts, self.memo)
        prepared = len(addressed) + int(self._owed)
        if prepared == 0 and self._recheck_due(time.monotonic()):
            if assessment.plan.empty:
                # Nothing to change: verify again, without announcing (None: events wait).
                self.proof.rechecked = verify_unless(
                    self.backend,
                    assessment.desired,
                    config,
                    lambda: self.events.pending() > 0,
                    retries=0,
                )
            else:
                prepared = 1  # the apply's verification is the re-check, whatever it changes
        return assessment, prepared

    def _state_dir(self) -> StateDir:
        """The namespace's state directory, looked up once (its identity: a socket for the
        namespace cookie, the boot id, the identity file): the agent never leaves its
        namespace. The lock recreates the folder, with that identity, if it was removed."""
        if self._statedir is None:
            self._statedir = StateDir.current(self.root)
        return self._statedir

    def _paused(self) -> bool:
        marker = paused(self.root, self._state_dir())
        if marker is None:
            if self.status.paused is not None:
                log.info("resumed (was %s)", self.status.paused)
                self.status.paused = None
                self._dirty = True
            return False
        if self.status.paused is None:
            by = str(marker.get("by", "?"))
            self.status.paused = f"by {by} at {marker.get('at', '?')}"
            self._dirty = True
            log.warning("%s", describe(by))
        # Nothing is due while paused: a timer would only wake the loop for nothing. A check
        # that failed is moot: `reset` or `rollback` takes the policy away.
        self.timers.dhcp.clear()
        self.timers.dhcp6.clear()
        self.timers.retry_at = None
        self.timers.recheck_at = None
        self.proof.suspects.clear()
        return True

    def _failed(self, trigger: str, exc: BaseException) -> None:
        self.status.errors += 1
        self.status.last_error = f"{_now()} after {trigger}: {exc}"
        log.error("repair after %s failed: %s (retry in %.1f s)", trigger, exc, self.backoff)
        self.timers.retry_at = time.monotonic() + self.backoff
        if self.timers.recheck_at is not None:  # with the retry, not at once again
            self.timers.recheck_at = max(self.timers.recheck_at, self.timers.retry_at)
        self.backoff = min(MAX_BACKOFF, self.backoff * 2)
        self._dirty = True

    def _repaired(self, trigger: str, started: float, lines: list[str], done: Convergence) -> None:
        now = time.monotonic()
        # The latency ends with the last kernel change; announce and verify come after it.
        latency = ((done.changed_at or now) - started) * 1000
        self.status.repairs += 1
        self.status.changes += len(lines)
        self.status.last_repair = Repair(
            at=_now(),
            trigger=trigger,
            changes=tuple(lines),
            latency_ms=round(latency, 3),
            announced=done.announced,
            verified=_score(done.checks),
        )
        if done.postponed:
            settled = " (announce and verify postponed: more events wait)"
        else:
            settled = f" (verify {_score(done.checks)}, {done.announced} announced)"
        log.info(
            "repair after %s: %d change(s) in %.1f ms: %s%s",
            trigger,
            len(lines),
            latency,
            "; ".join(lines),
            settled if done.checks or done.postponed else "",
        )
        self._dirty = True
        self.recent.append(now)
        if len(self.recent) == FIGHT_REPAIRS and now - self.recent[0] < FIGHT_WINDOW:
            self.timers.hold_until = now + self.hold
            log.warning(
                "%d repairs in %.1f s: another tool keeps undoing multihome's state; "
                "pausing %.0f s (configure it to leave multihome's tables and rules "
                "alone, see multihome-agent(8))",
                FIGHT_REPAIRS,
                now - self.recent[0],
                self.hold,
            )
            self.hold = min(MAX_BACKOFF, self.hold * 2)
            self.recent.clear()

    def _check_verified(self, trigger: str, checks: list[Check]) -> None:
        """Judge a verification (a repair's, or a re-check's): a check that fails is an error
        only when it failed :data:`RECHECK_DELAY` seconds before as well and still fails,
        said once with its details; a new failure is checked again then (or by the next
        repair's verification, if one comes first)."""
        now = time.monotonic()
        asked = {(c.interface, c.address) for c in checks}
        failing = {_check_key(c): c for c in checks if not c.ok}
        unasked = [s for key, s in self.proof.suspects.items() if key[:2] not in asked]
        if unasked:
            log.info(
                "verification after %s: %d check(s) that failed after %s are not asked any "
                "more (no check of their address: its port is down or gone): %s",
                trigger,
                len(unasked),
                unasked[0].trigger,
                _failures(s.check for s in unasked),
            )
        passed = [
            s for key, s in self.proof.suspects.items() if key[:2] in asked and key not in failing
        ]
        if passed:
            log.info(
                "verification after %s: %d check(s) that failed %.0f ms earlier (after %s) "
                "no longer fail: %s",
                trigger,
                len(passed),
                (now - min(s.since for s in passed)) * 1000,
                passed[0].trigger,
                _failures(s.check for s in passed),
            )
        earlier = self.proof.suspects
        self.proof.suspects = {}
        persistent: list[_Suspect] = []
        new: list[Check] = []
        for key, check in failing.items():
            suspect = earlier.get(key)
            if suspect is None:
                self.proof.suspects[key] = _Suspect(now, trigger, check)
                new.append(check)
            elif now - suspect.since >= RECHECK_DELAY:
                persistent.append(replace(suspect, check=check))
            else:
                self.proof.suspects[key] = replace(suspect, check=check)
        if new:
            log.info(
                "after %s, verification: %s (checked again in %.1f s)",
                trigger,
                _failures(new),
                RECHECK_DELAY,
            )
        if persistent:
            first = persistent[0]
            message = (
                f"after {first.trigger}: verification: {_failures(s.check for s in persistent)}"
                f" (still failing {now - first.since:.1f} s later)"
            )
            self.status.errors += 1
            self.status.last_error = f"{_now()} {message}"
            self._dirty = True
            log.warning("%s", message)
        self.timers.recheck_at = (
            min(s.since for s in self.proof.suspects.values()) + RECHECK_DELAY
            if self.proof.suspects
            else None
        )

    def _ports(self, state: HostState) -> list[Link]:
        config = self.config
        ports = []
        for link in state.links:
            if link.name in config.exclude:
                continue
            if config.include:
                if link.name not in config.include:
                    continue
            elif is_left_alone(link):
                continue
            ports.append(link)
        return ports

    def _forget_gone(self, state: HostState) -> list[str]:
        present = {(link.name, link.mac) for link in state.links}
        names = {link.name for link in state.links}
        for key in [k for k in self.seen if k not in present]:
            del self.seen[key]
        lines = []
        for ifname in [n for n in self.clients if n not in names]:
            self.clients.pop(ifname).stop()
            lines.append(f"- dhcp client for {ifname} (port removed)")
        for ifname in [n for n in self.dhcp6.clients if n not in names]:
            self.dhcp6.clients.pop(ifname).stop()
            lines.append(f"- dhcpv6 client for {ifname} (port removed)")
        for ifname in [n for n in self.status.configured if n not in names]:
            del self.status.configured[ifname]
        for ifname in [n for n in self.status.configured6 if n not in names]:
            del self.status.configured6[ifname]
        for ifname in [n for n in self.timers.dhcp6 if n not in names]:
            del self.timers.dhcp6[ifname]
        self.hotplugged &= names
        for ifname in [n for n in self.timers.dhcp if n not in names]:
            del self.timers.dhcp[ifname]
        self.resumed &= names
        # Keys of IPv6 entries are "<if>/6" ('/' is in no interface name).
        for ifname in [n for n in self.left_to if n.split("/")[0] not in names]:
            del self.left_to[ifname]
        for ifname in [n for n in self.refused if n.split("/")[0] not in names]:
            del self.refused[ifname]
        for ifname in [n for n in self.static if n not in names]:
            del self.static[ifname]
        if names != self.link_names:  # ports came or went: the records of those gone go
            self.link_names = names
            self.recorded = _forget_static(Path(self._state_dir().path), names)
        self.dhcp6.awaiting_dad &= names
        self.dhcp6.bound &= names
        self.dhcp6.resumed &= names
        return lines

    def _address_ports(self, state: HostState) -> list[str]:
        if not self.options.address:
            return []
        lines: list[str] = []
        waiting: set[str] = set()
        taken = taken_addresses(state)  # grows with each port addressed below
        for link in self._ports(state):
            if has_ipv4(state, link.name):
                lines.extend(self._resume_dhcp(link))
                lines.extend(self._rebind(state, link))
                continue
            client = self.clients.get(link.name)
            if client is not None and client.running():
                continue
            if not link.up and link.name not in self.hotplugged:
                continue  # set down by someone, not hot-plugged: leave it down
            mode = self._mode_of(state, link)
            if mode == "static":
                lines.extend(self._configure_static(state, link, taken))
            elif self.options.dhcp and not self._ipv6_only(state, link):
                lines.extend(self._maybe_dhcp(link))
                if link.name in self.timers.dhcp:
                    waiting.add(link.name)
        for ifname in [n for n in self.timers.dhcp if n not in waiting]:
            del self.timers.dhcp[ifname]
        return lines

    def _resume_dhcp(self, link: Link) -> list[str]:
        """A port an earlier agent addressed by DHCP (its lease file is in the namespace's
        folder) that no client serves any more, since that agent stopped it, or that only
        that agent's orphaned client serves (the agent was killed; the orphan is stopped):
        the client starts again, as this agent's, so that the lease is renewed and its
        routes come back after a flap."""
        if not self.options.dhcp or link.name in self.clients or link.name in self.resumed:
            return []
        self.resumed.add(link.name)
        if not addressing.lease_file(link.name, self.root).exists():
            return []
        if addressing.dhclient_available() is None:
            return []
        # The client of an earlier agent that was killed still runs, but follows no flap:
        # this agent's own client takes over (the one lease file stays).
        earlier = addressing.stop_earlier_client(link.name, self.root)
        if addressing.manager_of(link.name, link.index, self.root) is not None:
            return []
        client = addressing.start_dhclient(link.name, self.root)
        self.clients[link.name] = client
        self.status.configured[link.name] = f"dhcp (dhclient pid {client.pid})"
        took = "" if earlier is None else f", an earlier agent's dhclient pid {earlier} stopped"
        return [f"+ dhcp client for {link.name} again (dhclient pid {client.pid}, its lease{took})"]

    def _rebind(self, state: HostState, link: Link) -> list[str]:
        """A port the agent addresses itself whose subnet route left main: a link flap
        flushes every route of the link, and nothing else puts them back (its address is
        ``noprefixroute``, so the kernel adds no prefix route when the link comes up; ISC
        dhclient does not watch the carrier and binds again only at the lease's renewal,
        hours later on a real cloud). As a network manager does on carrier, the agent puts
        them back into main at once: the DHCP client script's routes from the client's own
        lease, or the metadata's static configuration (recorded in the namespace's folder
        when the agent made it: a restarted agent knows it without the metadata service,
        which a sole port without routes cannot reach). A port down, or whose address is
        not the lease's or the metadata's any more, is left alone."""
        name = link.name
        ours = name in self.clients or name in self.static or name in self.recorded
        if not ours or not link.up or _connected(state, name):
            return []
        held = {a.interface for a in state.addresses_of(link.name, 4)}
        config = self.static.get(link.name) or _recorded_static(self._state_dir(), link)
        if config is not None:
            if not held & {a.interface for a in config.addresses}:
                return []
            addressing.configure_static(self.backend, config)
            return [f"+ {link.name}: its static routes back in main (from the metadata)"]
        client = self.clients.get(link.name)
        if client is None or not client.running():
            return []
        lease = _client_lease(addressing.lease_file(link.name, self.root), held)
        if lease is None:
            return []
        iface, routes, origin = lease
        dhcphook.bind(self.backend, link.name, link.index, iface, routes)
        return [f"+ {link.name}: its lease's routes back in main ({origin})"]

    def _mode_of(self, state: HostState, link: Link) -> str:
        intent = self._intent_of(state, link)
        return "unknown" if intent is None else intent.mode

    def _intent_of(self, state: HostState, link: Link) -> PortIntent | None:
        """What the metadata says of ``link`` (None: no metadata, or it does not list the
        port); a port it does not know yet is looked up again a few times."""
        if self.metadata is None and self.options.source == "kernel":
            return None
        known = self.metadata is not None and self.metadata.network.link_by_mac(link.mac)
        if (
            not known
            and link.mac
            and self.refreshed.get(link.mac, 0) < METADATA_REFRESHES
            and self.options.source != "kernel"
        ):
            # A port attached after boot: the metadata service knows it, a config drive not.
            # Nova may publish it a moment after the port appears: look again a few times.
            self.refreshed[link.mac] = self.refreshed.get(link.mac, 0) + 1
            self._load_metadata(state, Retry(3, 2.0, 0.2))
            if self.metadata is None or not self.metadata.network.link_by_mac(link.mac):
                retry = time.monotonic() + METADATA_REFRESH_DELAY
                self.timers.retry_at = min(self.timers.retry_at or retry, retry)
        if self.metadata is None:
            return None
        for intent in intents(state, self.metadata.network):
            if intent.ifname == link.name:
                return intent
        return None

    def _ipv6_only(self, state: HostState, link: Link) -> bool:
        """The metadata lists the port with IPv6 networks only: no DHCPv4 client for it."""
        if self.metadata is None:
            return False
        intent = next(
            (i for i in intents(state, self.metadata.network) if i.ifname == link.name), None
        )
        return (
            intent is not None
            and intent.networks != ()
            and all(n.family == 6 for n in intent.networks)
        )

    def _configure_static(
        self, state: HostState, link: Link, taken: dict[IPAddress, str], family: int = 4
    ) -> list[str]:
        assert self.metadata is not None
        intent = next(i for i in intents(state, self.metadata.network) if i.ifname == link.name)
        config = static_config(link, intent, taken, family)
        configured = self.status.configured if family == 4 else self.status.configured6
        key = link.name if family == 4 else f"{link.name}/6"
        if config.refused is not None:
            if self.refused.get(key) != config.refused:
                self.refused[key] = config.refused
                log.error("%s (fix the port's fixed IP in OpenStack)", config.describe())
                configured[link.name] = f"refused: {config.refused}"
                self._dirty = True
            return []
        self.refused.pop(key, None)
        addressing.configure_static(self.backend, config)
        if family == 4:  # IPv6's static address comes back by _address_ports6 after a flap
            self.static[link.name] = config
            _record_static(self._state_dir(), link, config)
            self.recorded.add(link.name)
        taken.update((a.ip, a.ifname) for a in config.addresses)
        for note in config.notes:
            log.warning("%s", note)
        what = "static" if family == 4 else "static IPv6"
        configured[link.name] = f"{what} from {self.metadata.origin}"
        return [f"+ {config.describe()}"]

    # -- IPv6 --------------------------------------------------------------------------------
    def _address_ports6(self, state: HostState) -> list[str]:
        """IPv6 of the ports that have no global IPv6 address, by the metadata's type
        (:mod:`multihome.agent.addressing`): static from the metadata, a DHCPv6 client, or
        for SLAAC only the link up (a hot-plugged port is down)."""
        if not self.options.address or self.metadata is None:
            return []
        network = self.metadata.network
        if not any(n.family == 6 for n in network.networks):
            return []  # an IPv4-only cloud: nothing to do, no port scanned
        self.dhcp6.bound.update(n for n in self.dhcp6.clients if has_ipv6(state, n))
        ports = self._ports(state)
        lines: list[str] = []
        for link in ports:
            if link.name not in self.dhcp6.resumed and has_ipv6(state, link.name):
                lines.extend(self._resume_dhcp6(link))
        bare = [link for link in ports if not has_ipv6(state, link.name)]
        if not bare:
            return lines
        # A port the metadata does not list yet was looked up again by the IPv4 pass.
        listed = {i.ifname: i for i in intents(state, network)}
        waiting: set[str] = set()
        taken = taken_addresses(state)
        for link in bare:
            client = self.dhcp6.clients.get(link.name)
            if client is not None and client.running():
                lines.extend(self._ask_again6(state, link, client))
                continue
            if not link.up and (
                link.name not in self.hotplugged or link.name in self.status.configured6
            ):
                # Set down by someone (also after the agent addressed it: a link that goes
                # down loses its IPv6 addresses): leave it down.
                continue
            intent = listed.get(link.name)
            mode = "unknown" if intent is None else intent.mode6
            if mode == "static":
                lines.extend(self._configure_static(state, link, taken, 6))
            elif mode == "slaac" and not link.up:
                self.backend.set_link_up(link.name)
                self.status.configured6[link.name] = "slaac"
                lines.append(f"+ {link.name} up: SLAAC (its router's advertisements address it)")
            elif mode == "dhcpv6" and self.options.dhcp:
                lines.extend(self._maybe_dhcp6(state, link))
                if link.name in self.timers.dhcp6:
                    waiting.add(link.name)
        for ifname in [n for n in self.timers.dhcp6 if n not in waiting]:
            del self.timers.dhcp6[ifname]
        return lines

    def _resume_dhcp6(self, link: Link) -> list[str]:
        """A port an earlier agent gave a DHCPv6 client (its lease file is in the namespace's
        folder), which stopped with that agent: the client starts again, so that the lease
        is renewed (as :meth:`_resume_dhcp` does for DHCPv4)."""
        self.dhcp6.resumed.add(link.name)
        if not self.options.dhcp or link.name in self.dhcp6.clients:
            return []
        if not addressing.lease_file(link.name, self.root, 6).exists():
            return []
        if addressing.dhclient_available() is None:
            return []
        if addressing.manager_of(link.name, link.index, self.root, family=6) is not None:
            return []
        client = addressing.start_dhclient(link.name, self.root, family=6)
        self.dhcp6.clients[link.name] = client
        self.status.configured6[link.name] = f"dhcpv6 (dhclient -6 pid {client.pid})"
        return [f"+ dhcpv6 client for {link.name} again (dhclient -6 pid {client.pid}, its lease)"]

    def _ask_again6(self, state: HostState, link: Link, client: addressing.DhcpClient) -> list[str]:
        """The address of a port whose DHCPv6 client had bound went (a link that goes down
        loses its IPv6 addresses, and the client would not notice before its renewal, hours
        later): the client starts again, and asks for its lease (from its lease file) once
        the link-local address has passed DAD again (an address event). Not when the lease
        is over (its lease file): the address went with it, and the client is soliciting."""
        if link.name not in self.dhcp6.bound or not link.up or not _link_local_ready(state, link):
            return []
        self.dhcp6.bound.discard(link.name)
        if addressing.lease6_over(link.name, self.root, time.time()):
            # The lease ran out (or the server gave lifetime 0): the client removed the
            # address itself and is soliciting a new lease already.
            log.info("%s: its DHCPv6 lease is over; its client asks for a new one", link.name)
            return []
        client.stop()
        again = addressing.start_dhclient(link.name, self.root, family=6)
        self.dhcp6.clients[link.name] = again
        self.status.configured6[link.name] = f"dhcpv6 (dhclient -6 pid {again.pid})"
        return [
            f"~ dhcpv6 client for {link.name} again (dhclient -6 pid {again.pid}): its "
            "address went, it asks for its lease"
        ]

    def _maybe_dhcp6(self, state: HostState, link: Link) -> list[str]:
        """A DHCPv6 client for ``link`` after the grace period, when nothing else manages its
        IPv6; the link comes up first, and the client starts once the link-local address it
        binds to has passed DAD (the address event of DAD's end reconciles again)."""
        now = time.monotonic()
        deadline = self.timers.dhcp6.setdefault(link.name, now + self.options.grace)
        if now < deadline and link.name not in self.dhcp6.awaiting_dad:
            return []
        manager = addressing.manager_of(link.name, link.index, self.root, family=6)
        key = f"{link.name}/6"
        if manager is not None:
            del self.timers.dhcp6[link.name]
            if self.left_to.get(key) != manager:
                self.left_to[key] = manager
                log.info("%s: no IPv6 address yet; left to %s", link.name, manager)
            return []
        if addressing.dhclient_available() is None:
            del self.timers.dhcp6[link.name]
            if self.left_to.get(key) != "nobody":
                self.left_to[key] = "nobody"
                log.warning(
                    "%s: no IPv6 address and no DHCPv6 client to get one (install isc-dhcp-client)",
                    link.name,
                )
            return []
        lines = []
        if not link.up:
            self.backend.set_link_up(link.name)
            lines.append(f"+ {link.name} up (for its DHCPv6 client)")
        if not _link_local_ready(state, link):
            # DAD's end is an address event; look again in a second should none come.
            self.dhcp6.awaiting_dad.add(link.name)
            self.timers.dhcp6[link.name] = now + 1.0
            return lines
        self.dhcp6.awaiting_dad.discard(link.name)
        del self.timers.dhcp6[link.name]
        client = addressing.start_dhclient(link.name, self.root, family=6)
        self.dhcp6.clients[link.name] = client
        self.status.configured6[link.name] = f"dhcpv6 (dhclient -6 pid {client.pid})"
        return [*lines, f"+ dhcpv6 client for {link.name} (dhclient -6 pid {client.pid})"]

    def _maybe_dhcp(self, link: Link) -> list[str]:
        now = time.monotonic()
        deadline = self.timers.dhcp.setdefault(link.name, now + self.options.grace)
        if now < deadline:
            return []
        del self.timers.dhcp[link.name]
        manager = addressing.manager_of(link.name, link.index, self.root)
        if manager is not None:
            if self.left_to.get(link.name) != manager:
                self.left_to[link.name] = manager
                log.info("%s: no address yet; left to %s", link.name, manager)
            return []
        if addressing.dhclient_available() is None:
            if self.left_to.get(link.name) != "nobody":
                self.left_to[link.name] = "nobody"
                log.warning(
                    "%s: no address and no DHCP client to get one (install isc-dhcp-client)",
                    link.name,
                )
            return []
        if not link.up:
            self.backend.set_link_up(link.name)
        client = addressing.start_dhclient(link.name, self.root)
        self.clients[link.name] = client
        self.status.configured[link.name] = f"dhcp (dhclient pid {client.pid})"
        return [f"+ dhcp client for {link.name} (dhclient pid {client.pid})"]

    def _facts(self, state: HostState) -> PortFacts:
        """The ports' own facts for the policy: leases, the metadata, what was seen."""
        macs = {link.name: link.mac for link in state.links}
        seen = {name: routes for (name, mac), routes in self.seen.items() if macs.get(name) == mac}
        network = None if self.metadata is None else self.metadata.network
        origin = "metadata" if self.metadata is None else self.metadata.origin
        facts = gather(state, self.leases, network, origin, seen)
        self._warn_once(facts.notes)
        return facts

    def _warn_once(self, notes: Iterable[str]) -> None:
        for note in notes:
            if note not in self.warned:
                self.warned.add(note)
                log.warning("%s", note)

    def _remember(self, state: HostState, desired: DesiredState) -> None:
        macs = {link.name: link.mac for link in state.links}
        by_table: dict[int, list[Route]] = {}  # one pass, not one per port
        for route in desired.routes:
            by_table.setdefault(route.table, []).append(route)
        for iface in desired.interfaces:
            if iface.table is None or iface.role == "isolated":
                continue
            routes = frozenset(by_table.get(iface.table.id, ()))
            if any(r.is_default for r in routes):
                self.seen[(iface.name, macs.get(iface.name))] = routes


def _band_used(root: Path, config: Config) -> bool:
    """An apply in this namespace (this boot) used ``config``'s rule band: the last
    checkpoint says so (an agent that restarts while a single port leaves no rule of
    multihome's in the band still knows the band is multihome's)."""
    try:
        saved = checkpoint.load(StateDir.current(root))
    except (OSError, ValueError, KeyError, TypeError, MultihomeError):
        return False
    return saved is not None and saved.priority_range == config.priority_range


def _conflict(exc: ConcurrentChangeError, attempt: int) -> None:
    log.info("another writer changed the namespace meanwhile (%s): again", exc)


def _connected(state: HostState, ifname: str) -> bool:
    """Main routes one of ``ifname``'s IPv4 addresses' subnets through ``ifname``."""
    return any(
        route.ifname == ifname
        and route.gateway is None
        and route.family == 4
        and address.ip in route.dst
        for route in state.routes_in(TABLE_MAIN)
        for address in state.addresses_of(ifname, 4)
        if route.dst.prefixlen > 0
    )


STATIC_RECORD = "static.{}.json"
"""The metadata's configuration the agent gave a port (``static.eth2.json`` in the
namespace's folder, beside the DHCP clients' lease files)."""


def _record_static(state: StateDir, link: Link, config: StaticConfig) -> None:
    """Keep ``config`` for ``link`` in the namespace's folder ``state`` (the agent's, looked
    up once; a failure only logged)."""
    data = {
        "mac": link.mac,
        "addresses": [str(a.interface) for a in config.addresses],
        "routes": [route_to_json(r) for r in config.routes],
    }
    try:
        state.write_json(STATIC_RECORD.format(link.name), data)
    except (OSError, MultihomeError) as exc:
        log.warning("cannot record %s's static configuration: %s", link.name, exc)


def _recorded_static(state: StateDir, link: Link) -> StaticConfig | None:
    """The configuration recorded for ``link`` (same MAC) in the namespace's folder
    ``state`` (the agent's, looked up once), or None."""
    try:
        data = state.read_json(STATIC_RECORD.format(link.name))  # as write_json wrote it
        if data is None or data.get("mac") != link.mac:
            return None
        addresses = tuple(Address(link.name, ip_interface(a)) for a in data["addresses"])
        routes = tuple(route_from_json(r) for r in data["routes"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return StaticConfig(link.name, addresses, routes)


def _forget_static(folder: Path, names: set[str]) -> set[str]:
    """Remove the records of ports that are gone from the namespace's ``folder`` (the
    agent's state directory, looked up once: before the first change of a hot-plug's and a
    detach's repair); the names of those kept."""
    prefix, suffix = STATIC_RECORD.split("{}")
    try:  # a listing, not a glob (pathlib's compiles a pattern each time): a hot-plug's repair
        records = [
            n
            for n in os.listdir(folder)
            if n.startswith(prefix) and n.endswith(suffix) and len(n) >= len(prefix + suffix)
        ]
    except OSError:
        return set()
    kept = set()
    for record in records:
        name = record[len(prefix) : -len(suffix)]
        if name in names:
            kept.add(name)
        else:
            (folder / record).unlink(missing_ok=True)
    return kept


def _client_lease(
    path: Path, held: set[IPInterface]
) -> tuple[IPv4Interface, list[tuple[IPNetwork, IPAddress]], str] | None:
    """The newest unexpired lease in the agent's dhclient lease file ``path`` for one of the
    addresses ``held``: the address, its routes and where it was read (None: none)."""
    try:
        text = path.read_text()
    except OSError:
        return None
    origin = f"dhclient lease {path}"
    leases, _warnings = parse_dhclient(text, origin)
    now = time.time()
    for lease in reversed(leases):  # dhclient appends: the last block is the newest
        if lease.address is None or lease.prefixlen is None or lease.expired(now):
            continue
        iface = IPv4Interface(f"{lease.address}/{lease.prefixlen}")
        if iface in held:
            return iface, [(r.dst, r.gateway) for r in lease.routes], origin
    return None


def _link_local_ready(state: HostState, link: Link) -> bool:
    """The port's link-local address has passed DAD (a DHCPv6 client binds to it)."""
    return any(a.ip.is_link_local and not a.tentative for a in state.addresses_of(link.name, 6))


def _describe(burst: list[Event], names: dict[int, str]) -> str:
    first = burst[0].describe(names)
    return first if len(burst) == 1 else f"{first} (+{len(burst) - 1} more events)"


def _score(checks: list[Check]) -> str:
    """``passed/total`` checks, or empty when none ran."""
    if not checks:
        return ""
    return f"{sum(c.ok for c in checks)}/{len(checks)}"


def _failures(checks: Iterable[Check]) -> str:
    """The failed checks' details, for the log and ``last_error``."""
    return "; ".join(
        f"{c.interface} {c.address} {c.name}: expected {c.expected}, got {c.got}" for c in checks
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
