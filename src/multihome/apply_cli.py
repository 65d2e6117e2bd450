"""``multihome apply``'s body, without click: the click command (:func:`multihome.cli.apply`)
and the plain ``apply`` decided before click (:func:`main`, from :mod:`multihome._entry`) both
run :func:`apply`, with the same output, exit codes, error messages and progress.

click, with what it imports (``inspect``, ``typing``'s machinery, ``gettext``, ``locale``),
is a fifth of a small apply's instructions; the command lines :func:`multihome.noop.parse`
understands (``[--root R] [--config F] apply`` with ``-q``, ``--detailed-exit-codes``,
``--no-sysctls``, ``--lock-timeout S``) need none of it: they are the apply that boot, udev
and configuration management run. Their errors go through the CLI's one error path
(:mod:`multihome.errorpath`), as click's would.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from multihome.errorpath import as_click_runs, echo, handled
from multihome.errors import DetailedExitCode, MultihomeError

TYPE_CHECKING = False  # typing is for the type checker only (start-up time)
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from multihome.noop import Request

#: The confirmation window when stdin is a terminal and --confirm-timeout is not given.
DEFAULT_CONFIRM_TIMEOUT = 120.0
#: The ANSI colour of a plan line by its first character (what ``click.style`` writes).
_COLORS = {"+": "\x1b[32m", "-": "\x1b[31m", "~": "\x1b[33m"}


class CliOptions:
    """Options shared by every verb (the group's ``--config`` and ``--root``)."""

    __slots__ = ("color", "config_path", "root")

    def __init__(self, config_path: Path | None, root: Path, color: bool) -> None:
        self.config_path = config_path
        self.root = root
        self.color = color

    def __repr__(self) -> str:
        return (
            f"CliOptions(config_path={self.config_path!r}, root={self.root!r}, "
            f"color={self.color!r})"
        )

    def config(self, source: tuple[str, bytes | None] | None = None) -> Any:
        """The configuration; from ``source`` (:func:`~multihome.transaction.fingerprint.
        config_source`: the path and the bytes already read) when given."""
        from multihome.config import load_config
        from multihome.files import DEFAULT_CONFIG_PATH, under_root

        if source is not None:  # what was read is what is parsed (even if it changed since)
            path, raw = source
            if raw is None:  # the default file was absent
                return load_config(None)
            return load_config(Path(path), explicit=self.config_path is not None, raw=raw)
        if self.config_path is not None:
            return load_config(self.config_path, explicit=True)
        return load_config(under_root(self.root, DEFAULT_CONFIG_PATH))

    def facts(self) -> Any:
        """The ports' facts under ``root`` (DHCP leases) that status, plan, apply and doctor
        all assess with: one truth."""
        from multihome.source.portfacts import host_facts

        return host_facts(self.root)


def styled(line: str, color: bool) -> str:
    """A plan line coloured by its sign on a terminal, as ``click.style(line, fg=...)``."""
    if not color:
        return line
    return f"{_COLORS.get(line[:1], '')}{line}\x1b[0m"


def print_plan(obj: CliOptions, assessment: Any) -> None:
    """The plan as ``multihome plan`` and ``apply --dry-run`` print it."""
    from multihome.model import Route

    for skipped in assessment.desired.skipped:
        echo(f"# {skipped.ifname}: skipped ({skipped.reason})")
    for note in assessment.plan.notes:
        echo(f"# {note}")
    if assessment.plan.empty:
        echo("no changes: the kernel already matches the policy")
        return
    origins = assessment.desired.origins
    names = assessment.plan.table_names
    for change in assessment.plan.changes:
        line = change.describe(names)
        if change.action == "add" and isinstance(change.obj, Route) and change.obj in origins:
            line += f"  # from {origins[change.obj]}"
        echo(styled(line, obj.color))
    echo(f"{len(assessment.plan.changes)} change(s)")


def main(request: Request, args: list[str], changed: bool) -> NoReturn:
    """Run the plain ``apply`` of ``request`` (the command line ``args``, which
    :func:`multihome.noop.parse` understood) without click, and exit as the CLI would;
    ``changed``: the no-op decision found, under the lock, that the namespace or its inputs
    changed since the recorded apply (no need to digest the kernel again)."""
    from multihome.files import check_root

    def run() -> Any:
        """The apply's exit code (:func:`handled` exits with it)."""
        check_root(request.root)  # as the CLI's group does
        config = None if request.config is None else Path(request.config)
        obj = CliOptions(config_path=config, root=Path(request.root), color=sys.stdout.isatty())
        return as_click_runs(
            lambda: apply(
                obj,
                detailed_exit_codes=request.detailed,
                quiet=request.quiet,
                no_sysctls=request.no_sysctls,
                lock_timeout=request.lock_timeout,
                changed=changed,
            ),
            args,
        )

    handled(run, args)


@contextmanager
def backend_of(*, local_table: bool = True) -> Iterator[Any]:
    """The kernel of this namespace for one command (closed after it)."""
    from multihome.backend.netlink import NetlinkBackend

    backend = NetlinkBackend(local_table=local_table, announce_once=True)
    try:
        yield backend
    finally:
        backend.close()


def apply(
    obj: CliOptions,
    *,
    dry_run: bool = False,
    detailed_exit_codes: bool = False,
    quiet: bool = False,
    interface: str | None = None,
    confirm_timeout: float | None = None,
    management_peer: str | None = None,
    checks: tuple[str, ...] = (),
    no_sysctls: bool = False,
    lock_timeout: float,
    changed: bool = False,
) -> int:
    """``multihome apply``: apply the policy to the kernel, as one transaction, then announce
    and verify it; the exit code (2: changed, with ``detailed_exit_codes``). ``changed``: the
    namespace is known to have changed since the recorded apply (:func:`main`)."""
    from multihome.processes import require_root
    from multihome.source.portfacts import host_facts, host_reader
    from multihome.transaction.fingerprint import config_source, inputs
    from multihome.transaction.session import open_session

    source = config_source(obj.config_path, obj.root)  # the bytes parsed are those hashed
    config = obj.config(source)
    if no_sysctls:
        config = config.without_sysctls()
    probes = _probes(checks)
    if confirm_timeout is None:
        confirm_timeout = DEFAULT_CONFIRM_TIMEOUT if sys.stdin.isatty() else 0.0
    if not dry_run:
        require_root()
    with backend_of(local_table=False) as backend:  # an apply never looks at the local table
        reader = host_reader(obj.root)
        facts = host_facts(obj.root, reader)
        if dry_run:
            _dry_run(obj, backend, config, facts, interface)
            return 0
        # Everything from the read to the verification happens under the lock: no reset,
        # rollback or other apply can change the namespace in between.
        with open_session(backend, obj.root, timeout=lock_timeout) as session:  # the lock
            if session.recovery is not None:
                echo(f"multihome: {session.recovery.message}", err=True)
            whole = interface is None and session.recovery is None
            options = "--no-sysctls" if no_sysctls else ""
            leases = reader.signature() if whole else ""  # before the leases are read
            digest = inputs(source, obj.root, leases, options) if whole else None
            if whole and _unchanged(backend, session, digest, quiet, changed):
                _resume_agent(obj.root)
                return 0  # without importing the engine, the policy or the plan
            from multihome.engine import again_on_conflict

            # Another writer (a DHCP client's hook) may take a slot of the plan meanwhile:
            # the apply undoes itself and the lock stays held for the next read.
            assessment, settled, guarded = again_on_conflict(
                lambda: _apply_once(
                    obj,
                    backend,
                    session,
                    config,
                    facts,
                    interface,
                    management_peer,
                    confirm_timeout,
                    probes,
                    quiet,
                ),
                _again,
            )
            if interface is None:  # after the apply: a rolled-back one leaves the pause on
                _resume_agent(obj.root)
            _report_apply(settled, quiet)
            if whole and (not guarded or not settled.result.applied):
                from multihome.transaction.fingerprint import record

                record(
                    backend,
                    session.state,
                    inputs(source, obj.root, leases, options),  # the name files it wrote
                    assessment.state,
                    settled.result.plan.changes,
                    reader.next_expiry(),
                )
    if detailed_exit_codes and settled.changed:
        return DetailedExitCode.CHANGED
    return 0


def _apply_once(
    obj: CliOptions,
    backend: Any,
    session: Any,
    config: Any,
    facts: Any,
    interface: str | None,
    management_peer: str | None,
    confirm_timeout: float,
    probes: tuple[Any, ...],
    quiet: bool,
) -> tuple[Any, Any, bool]:
    """Under ``session``: read, plan, print the plan, apply, announce and verify; the
    assessment, the result and whether a confirmation window guarded it."""
    import os

    from multihome.engine import assess, converge
    from multihome.safety.checks import find_peer

    assessment = assess(backend, config, facts)
    if interface is not None:
        assessment = assessment.restrict(interface)
    addresses = [a.ip for a in assessment.state.addresses]
    peer = find_peer(management_peer, os.environ, addresses)
    guarded = confirm_timeout > 0 or bool(probes) or peer is not None
    progress = _progress(len(assessment.plan.changes))
    if not assessment.plan.empty and not quiet:  # one write: 2800 lines at 256 ports
        lines = assessment.plan.lines()
        echo("\n".join((styled(line, True) for line in lines) if obj.color else lines))
    if guarded:
        settled = _guarded_apply(
            obj, backend, session, assessment, config, confirm_timeout, peer, probes, progress
        )
    else:
        settled = converge(
            backend,
            config,
            root=obj.root,
            session=session,
            assessed=assessment,
            progress=progress,
        )
        assert settled is not None  # None only when a prepare step declines
    return assessment, settled, guarded


def _again(exc: Exception, failed: int) -> None:
    """Said when another writer took a slot of the plan: the apply reads and plans again."""
    from multihome.backend import ChangeFailed
    from multihome.engine import CONFLICT_ATTEMPTS

    cause = exc.__cause__
    what = f"{cause.change.describe()}: {cause.reason}" if isinstance(cause, ChangeFailed) else exc
    echo(
        f"multihome: another writer changed the namespace between the read and the apply "
        f"({what}; undone); reading and planning again (attempt {failed + 1} of "
        f"{CONFLICT_ATTEMPTS})",
        err=True,
    )


def _probes(specs: tuple[str, ...]) -> tuple[Any, ...]:
    """The parsed ``--check`` probes (the checks' module only when there are some: a no-op
    apply does not import it)."""
    if not specs:
        return ()
    from multihome.safety.checks import parse_probe

    return tuple(parse_probe(spec) for spec in specs)


def _progress(total: int) -> Callable[[int, int, Any], None] | None:
    """A progress line on a terminal for long plans."""
    if not sys.stderr.isatty() or total <= 50:
        return None

    def progress(done: int, count: int, _change: Any) -> None:
        if done % 50 == 0 or done == count:
            echo(f"\r{done}/{count} changes", err=True, nl=done == count)

    return progress


def _dry_run(obj: CliOptions, backend: Any, config: Any, facts: Any, interface: str | None) -> None:
    from multihome.engine import assess

    assessment = assess(backend, config, facts)
    if interface is not None:
        assessment = assessment.restrict(interface)
    print_plan(obj, assessment)


def _unchanged(backend: Any, session: Any, inputs: str | None, quiet: bool, changed: bool) -> bool:
    """True (and said) when the namespace is as the last apply left it: nothing to do;
    ``changed``: known not to be (no digest of the kernel needed)."""
    from multihome.noop import NO_CHANGES
    from multihome.transaction.fingerprint import unchanged

    backend.watch()  # before the read: the notifications show what else changes the kernel
    if changed or not unchanged(backend, session.state, inputs):
        return False
    if not quiet:
        echo(NO_CHANGES)
    return True


def _resume_agent(root: Path) -> None:
    from multihome.noop import resume_agent

    resume_agent(root)


def _report_apply(settled: Any, quiet: bool) -> None:
    result = settled.result
    if not settled.kernel_changed:  # name files alone: still "changed" for the exit code
        if not quiet:
            echo("no changes: the kernel already matches the policy")
        return
    made = f"applied {result.applied} change(s)"
    if result.recovered_changes:
        made += f" (and {result.recovered_changes} finishing or undoing an interrupted apply)"
    checks, failed = settled.checks, settled.failed
    echo(
        f"{made}; verify: {len(checks) - len(failed)}/{len(checks)} checks pass; "
        f"{settled.announced} address(es) announced"
    )
    for check in failed:
        echo(
            f"  FAIL {check.interface} {check.address} {check.name} -> "
            f"{check.destination}: expected {check.expected}, got {check.got}",
            err=True,
        )
    if failed:
        raise MultihomeError(f"{len(failed)} verification check(s) failed after apply")


def _guarded_apply(
    obj: CliOptions,
    backend: Any,
    session: Any,
    assessment: Any,
    config: Any,
    timeout: float,
    peer: Any,
    probes: Any,
    progress: Any,
) -> Any:
    from multihome.errors import RolledBackError
    from multihome.safety.guard import Guard, guarded_apply

    interactive = sys.stdin.isatty()
    with _keypress(interactive) as poll:

        def announce(result: Any, checks: Any, deadline: float) -> None:
            for check in checks:
                echo(f"check ok: {check.name}: {check.detail}", err=True)
            if peer is None:
                echo(
                    "note: no management peer known (no $SSH_CONNECTION); give "
                    "--management-peer to check the path back to you",
                    err=True,
                )
            how = "press any key or run" if interactive else "run"
            echo(
                f"applied {result.applied} change(s); {how} `multihome confirm` within "
                f"{timeout:g} s to keep them, or they are rolled back "
                f"(state: {session.state.path})",
                err=True,
            )

        done = guarded_apply(
            backend,
            session,
            assessment,
            config,
            obj.root,
            Guard(timeout, peer, probes),
            progress=progress,
            announce=announce,
            poll=poll,
        )
    for check in done.checks:
        if not check.ok:
            echo(f"check FAILED: {check.name}: {check.detail}", err=True)
        elif timeout <= 0:
            echo(f"check ok: {check.name}: {check.detail}", err=True)
    if done.outcome == "rolled-back":
        message = (
            f"rolled back ({done.reason}): {done.restored} change(s) undone, the "
            "namespace is as before the apply"
        )
        if done.problems:
            message += f"; INCOMPLETE: {'; '.join(done.problems)}"
        raise RolledBackError(message)
    if done.outcome == "confirmed" and timeout > 0:
        echo("confirmed: the changes stay", err=True)
    return done.settled


@contextmanager
def _keypress(interactive: bool) -> Iterator[Callable[[float], bool] | None]:
    """A poll(seconds_left) that shows a countdown and returns True on a keypress."""
    if not interactive:
        yield None
        return
    import os
    import select
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    flushed: list[bool] = []

    def poll(left: float) -> bool:
        if not flushed:
            termios.tcflush(fd, termios.TCIFLUSH)  # keys typed during the apply do not count
            flushed.append(True)
        echo(f"\r{left:5.0f} s left ", err=True, nl=False)
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            os.read(fd, 64)
            echo("", err=True)
            return True
        return False

    tty.setcbreak(fd)
    try:
        yield poll
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
