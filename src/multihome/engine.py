"""Orchestration: read -> policy -> plan -> apply inside a transaction -> announce -> verify.

The transaction: changes are made in the plan's order; if one fails, the ones made before it
are undone in reverse order and :class:`ApplyError` says what failed and what was undone.

:func:`converge` is the one path every change to a namespace takes (``multihome apply``, with
or without ``--interface``, and the agent's repairs): under the namespace's lock it finishes
an interrupted apply, reads, plans, applies (journal first), announces the managed addresses
(gratuitous ARP) and verifies, and only then releases the lock, so that no other multihome
(``reset``, ``rollback``, another apply) can change the namespace between the apply and its
proof. The guarded apply (:mod:`multihome.safety.guard`) runs the same :func:`settle` step
inside its confirmation window.

Every apply runs under the namespace's lock and writes a journal and a checkpoint before the
first kernel change (:mod:`multihome.transaction`): two applies never interleave, an apply killed
half-way is finished or undone by the next run, and ``multihome rollback`` / ``reset`` can go
back. Callers that compute their plan should do it inside :func:`locked`, so that the plan is
made from the state after any recovery; ``apply_plan`` takes the lock itself otherwise.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from multihome import faults
from multihome.backend import Announcement, Backend, ChangeFailed
from multihome.config import Config
from multihome.errors import ApplyError, ConcurrentChangeError
from multihome.facts import NO_FACTS, PortFacts
from multihome.model import HostState
from multihome.names import RT_TABLES_FILE, adds_tables, register_names
from multihome.plan import Assessment, Change, Plan
from multihome.policy import DesiredState, PolicyMemo
from multihome.transaction import DEFAULT_LOCK_TIMEOUT, checkpoint, journal
from multihome.transaction.journal import Recovery
from multihome.transaction.session import Session, open_session
from multihome.transaction.statedir import StateDir
from multihome.values import field, record, replace
from multihome.verify import Check, verify_unless

TYPE_CHECKING = False  # typing is for the type checker only (start-up time)
if TYPE_CHECKING:
    import logging
    from typing import TypeVar

    from multihome.transaction.journal import Mode


def log() -> logging.Logger:
    """This module's logger: ``logging`` (with ``traceback``, ``string``, ``textwrap``; ~19 M
    instructions) is imported only when there is something to say, never on a clean apply."""
    import logging

    return logging.getLogger(__name__)


Progress = Callable[[int, int, Change], None]
if TYPE_CHECKING:
    T = TypeVar("T")


@record
class ApplyResult:
    """What an apply did."""

    plan: Plan
    applied: int = 0
    files: list[Path] = field(default_factory=list)
    recovered: Recovery | None = None
    """What was done about an interrupted earlier apply before this one."""
    checkpoint_id: str | None = None
    """The checkpoint saved before the changes (None when nothing changed)."""

    @property
    def recovered_changes(self) -> int:
        """Kernel changes the recovery of an interrupted apply made before this one."""
        return self.recovered.changes if self.recovered is not None else 0

    @property
    def kernel_changes(self) -> int:
        """Kernel changes: this apply's and the recovery's."""
        return self.applied + self.recovered_changes

    @property
    def changed(self) -> bool:
        """Something changed: this apply's changes, its files, or the recovery's changes."""
        return self.kernel_changes > 0 or bool(self.files)


@record
class Convergence:
    """What one pass of the transaction did: the plan, the changes, the announcement, the
    proof, and the recovery of an interrupted apply it started with."""

    assessment: Assessment
    """The read and plan the changes came from (restricted, for ``--interface``)."""
    result: ApplyResult
    announced: int = 0
    """Gratuitous ARPs sent after the changes."""
    checks: list[Check] = field(default_factory=list)
    """The verification (empty when nothing changed: nothing to prove)."""
    changed_at: float | None = None
    """``time.monotonic()`` when the last kernel change was made (None: none was)."""
    prepared: int = 0
    """Kernel changes the caller's ``prepare`` step made before the apply (or made by an
    earlier pass whose announcement and verification were postponed)."""
    postponed: bool = False
    """The caller's ``postpone`` asked to leave the announcement and the verification to a
    later pass (its changes are owed them)."""

    @property
    def plan(self) -> Plan:
        """The changes that were still needed and were made (or none)."""
        return self.result.plan

    @property
    def recovered(self) -> Recovery | None:
        return self.result.recovered

    @property
    def changed(self) -> bool:
        """Anything changed, the name files included (``--detailed-exit-codes``)."""
        return self.result.changed or self.prepared > 0

    @property
    def kernel_changed(self) -> bool:
        """The kernel changed (what is announced and verified)."""
        return self.result.kernel_changes + self.prepared > 0

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


Prepare = Callable[[Assessment], tuple[Assessment, int] | None]
"""Under the lock, before the apply: the assessment to apply and how many kernel changes the
step made itself (they are announced and verified like the apply's), or None: change nothing."""


def assess(
    backend: Backend,
    config: Config,
    facts: Callable[[HostState], PortFacts] | None = None,
    memo: PolicyMemo | None = None,
) -> Assessment:
    """Read the host once and compute the desired state and the plan; ``facts`` gives the
    ports' own facts for the state read (leases, metadata, memory: :mod:`multihome.facts`);
    ``memo``: the ports' policy parts kept from an earlier call (the agent's)."""
    state = backend.read()
    return Assessment.of(state, config, NO_FACTS if facts is None else facts(state), memo)


@contextmanager
def locked(
    backend: Backend,
    *,
    root: Path,
    timeout: float = DEFAULT_LOCK_TIMEOUT,
    purpose: str = "apply",
    mode: Mode = "finish",
    state: StateDir | None = None,
) -> Iterator[Session]:
    """Hold the namespace's lock; an interrupted apply is finished (or undone) first.
    ``state``: the namespace's state directory, if the caller has it (:func:`open_session`).

    Raises :class:`multihome.transaction.lock.LockTimeoutError` when another multihome holds the
    lock for longer than ``timeout`` seconds.
    """
    session = open_session(backend, root, timeout=timeout, purpose=purpose, mode=mode, state=state)
    try:
        yield session
    finally:
        session.close()


def converge(
    backend: Backend,
    config: Config,
    *,
    root: Path,
    session: Session | None = None,
    assessed: Assessment | None = None,
    prepare: Prepare | None = None,
    progress: Progress | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    verify_retries: int = 5,
    purpose: str = "apply",
    postpone: Callable[[], bool] | None = None,
    facts: Callable[[HostState], PortFacts] | None = None,
    memo: PolicyMemo | None = None,
) -> Convergence | None:
    """Plan, apply, announce, verify and journal, all under the namespace's lock.

    ``session``: the lock the caller already holds (else it is taken here for at most
    ``lock_timeout`` seconds, and an interrupted apply is finished first; ``purpose`` is what
    a waiter is told holds it). ``assessed``: the
    read and plan the caller made under ``session`` (else one is made here, with the ports'
    ``facts`` and the policy's ``memo``, as :func:`assess`).
    ``prepare(assessment)`` runs under the lock before the apply (:data:`Prepare`); None
    from it changes nothing and returns None. Announcement and verification run when anything
    changed (the recovery's and ``prepare``'s changes included), unless ``postpone()``, asked
    after the last change, says the namespace is still moving (the agent: more events wait);
    then the caller owes them to a later pass (``prepare``'s count). A failed check is
    reported in the result, not raised.
    """
    if session is None:
        with locked(backend, root=root, timeout=lock_timeout, purpose=purpose) as own:
            return converge(
                backend,
                config,
                root=root,
                session=own,
                assessed=assessed,
                prepare=prepare,
                progress=progress,
                verify_retries=verify_retries,
                postpone=postpone,
                facts=facts,
                memo=memo,
            )
    assessment = assessed if assessed is not None else assess(backend, config, facts, memo)
    prepared = 0
    if prepare is not None:
        step = prepare(assessment)
        if step is None:
            return None
        assessment, prepared = step
    result = apply_plan(
        backend,
        assessment.plan,
        root=root,
        progress=progress,
        config=config,
        session=session,
        state=assessment.state,
    )
    return settle(
        backend,
        assessment,
        result,
        config,
        retries=verify_retries,
        prepared=prepared,
        postpone=postpone,
    )


#: How many times in all a read, plan and apply is made when another writer keeps taking a
#: slot of the plan between the read and the apply (:class:`ConcurrentChangeError`).
CONFLICT_ATTEMPTS = 3


def again_on_conflict(
    attempt: Callable[[], T],
    note: Callable[[ConcurrentChangeError, int], None],
    attempts: int = CONFLICT_ATTEMPTS,
) -> T:
    """``attempt()`` (read, plan, apply: :func:`converge`), again while another writer (a DHCP
    client's hook, an admin) took a slot of its plan between its read and its apply: that
    apply undid itself, and the other writer's route is a fact for the next read. At most
    ``attempts`` in all (then the error stands); ``note(error, n)`` is told after the n-th
    failed one. The caller holds the lock across the attempts (``multihome apply``) or
    takes it in each (the agent)."""
    for n in range(1, attempts):
        try:
            return attempt()
        except ConcurrentChangeError as exc:
            note(exc, n)
    return attempt()


def settle(
    backend: Backend,
    assessment: Assessment,
    result: ApplyResult,
    config: Config,
    *,
    retries: int = 5,
    prepared: int = 0,
    postpone: Callable[[], bool] | None = None,
) -> Convergence:
    """After a change (this apply's, the recovery's, or ``prepared`` ones a caller made just
    before): announce the managed addresses, then verify that the policy is in force
    (``retries`` times more while checks fail); both are left out when ``postpone()``, asked
    after the last change, after the announcement and between the verification's batches of
    lookups, says so (the verification is then not finished: a later pass owes it). Name
    files alone are not a change to announce or prove."""
    done = Convergence(assessment, result, prepared=prepared)
    if not done.kernel_changed:
        return done
    done.changed_at = time.monotonic()
    if postpone is not None and postpone():
        done.postponed = True
        return done
    done.announced = announce_addresses(backend, assessment.state, assessment.desired)
    # The policy is a pure function of what was read; the apply changed only owned routes,
    # rules and sysctls, so the desired state is the same: no second read.
    checks = verify_unless(backend, assessment.desired, config, postpone, retries=retries)
    if checks is None:
        done.postponed = True
        return done
    done.checks = checks
    return done


def apply_plan(
    backend: Backend,
    plan: Plan,
    *,
    root: Path,
    progress: Progress | None = None,
    config: Config | None = None,
    session: Session | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    state: HostState | None = None,
) -> ApplyResult:
    """Make the plan's changes as one transaction and register the table names.

    Runs under the namespace's lock (``session``, or one taken here for at most
    ``lock_timeout`` seconds). Changes already in effect are skipped. Before the first kernel
    change the checkpoint (for ``rollback``) and the journal (for recovery after a kill) are
    written; ``config`` says which rules and routes are multihome's (default ranges if None).
    ``state`` is the state the plan was computed from, when it was read under ``session``
    (it saves a second read; without it the state is read again here).
    On failure everything done so far is undone and :class:`ApplyError` is raised.
    """
    if session is None:
        with locked(backend, root=root, timeout=lock_timeout) as own:
            return _apply_locked(backend, plan, root, progress, config or Config(), own, None)
    return _apply_locked(backend, plan, root, progress, config or Config(), session, state)


def _apply_locked(
    backend: Backend,
    plan: Plan,
    root: Path,
    progress: Progress | None,
    config: Config,
    session: Session,
    state: HostState | None,
) -> ApplyResult:
    if state is None:
        state = backend.read()
    plan = replace(plan, changes=tuple(journal.still_needed(plan.changes, state)))
    result = ApplyResult(plan, recovered=session.recovery)
    if plan.empty:
        result.files = register_names(root, plan.tables) if plan.tables else []
        return result
    saved = checkpoint.capture(state, plan.changes, config, root, session.apply_id)
    text = saved.text()  # encoded once, for the checkpoint and the journal
    checkpoint.save(session.state, saved, text)
    if saved.moved or saved.sysctls:  # else nothing to add: the record is not even read
        checkpoint.record(session.state, saved)
    journal.begin(session.state, saved, plan.changes, text)
    result.checkpoint_id = saved.id
    # A table the names file gains is registered before the first change; a file that only
    # loses tables (a detach, a port down) is written after the last one: its durable write
    # (two fsyncs under /etc) held back the agent's repair of a detach.
    names_first = adds_tables(saved.files.get(str(RT_TABLES_FILE)), plan.tables)
    if names_first:
        result.files = register_names(root, plan.tables)
    changes = list(plan.changes)
    try:
        result.applied = _apply_changes(backend, changes, progress)
    except ChangeFailed as failure:
        undone, problems = _undo(backend, changes[: failure.done])
        what = failure.change.describe(plan.table_names)
        message = (
            f"apply failed at change {failure.done + 1} of {len(changes)} "
            f"({what}): {failure.reason}; "
        )
        if problems:
            message += (
                f"undo was INCOMPLETE ({len(problems)} change(s) could not be undone: "
                f"{'; '.join(problems)}); the journal is kept: the next multihome "
                "run finishes or undoes it (`multihome rollback` undoes it now)"
            )
        else:
            journal.end(session.state)
            checkpoint.discard(session.state, saved.id)  # the last good one stays
            message += (
                f"undid the {undone} change(s) made before it; the namespace is as it "
                "was. Run `multihome plan` to see the changes again"
            )
        if failure.errno == errno.EEXIST and not problems:
            raise ConcurrentChangeError(message) from failure
        raise ApplyError(message) from failure
    journal.end(session.state)
    if not names_first:
        result.files = register_names(root, plan.tables)
    return result


def announce_addresses(backend: Backend, state: HostState, desired: DesiredState) -> int:
    """After the policy changed, tell the neighbours which port owns each managed address.

    Before the apply, a same-subnet peer may have answered ARP for another port's address
    (ARP flux): the gateway then keeps sending that address's traffic to the wrong port until
    its cache entry ages out. A gratuitous ARP from the right port corrects it at once (what
    keepalived does after a failover); an IPv6 address gets an unsolicited neighbour
    advertisement (RFC 4861 7.2.6) instead. One batch for all addresses (one socket). Best
    effort: a failure is logged, never fatal. Returns how many were sent.
    """
    if len(desired.interfaces) < 2:
        return 0
    items = []
    # By name, the first of a name as ``state.link()`` (which walks the list) finds it.
    links = {link.name: link for link in reversed(state.links)}
    for iface in desired.interfaces:
        link = links.get(iface.name)
        if link is None or not link.mac:
            continue
        items += [Announcement(iface.name, link.mac, addr.ip) for addr in iface.addresses]
    if not items:
        return 0
    try:
        failed = backend.announce(items)
    except OSError as exc:
        log().warning("announcement of %d address(es) not sent: %s", len(items), exc)
        return 0
    for item, reason in failed:
        what = "gratuitous ARP" if item.address.version == 4 else "neighbour advertisement"
        log().warning("%s for %s on %s failed: %s", what, item.address, item.ifname, reason)
    return len(items) - len(failed)


def _apply_changes(backend: Backend, changes: Sequence[Change], progress: Progress | None) -> int:
    point = faults.failpoint()
    if progress is None and point is None:
        return backend.apply(changes)  # one batch: the fast path
    done = 0
    for index, change in enumerate(changes, start=1):
        if point is not None and point[1] == index:
            if point[0] == "kill":
                faults.kill_now()
            elif point[0] == "stop":
                faults.stop_now()
                point = None
            else:
                raise ChangeFailed(change, done, "injected failure (MULTIHOME_FAILPOINT)")
        try:
            backend.apply([change])
        except ChangeFailed as failure:
            raise ChangeFailed(change, done, failure.reason, failure.errno) from failure
        done += 1
        if progress is not None:
            progress(done, len(changes), change)
    return done


def _undo(backend: Backend, done: Sequence[Change]) -> tuple[int, list[str]]:
    problems: list[str] = []
    undone = 0
    for change in reversed(done):
        try:
            backend.apply([change.inverse()])
            undone += 1
        except (ChangeFailed, ValueError) as exc:
            log().error("undo of %s failed: %s", change.describe(), exc)
            problems.append(f"{change.describe()}: {exc}")
    return undone, problems
