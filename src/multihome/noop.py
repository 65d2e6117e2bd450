"""The no-op ``apply``, decided before the CLI is imported.

``multihome apply`` run again on a namespace it left in sync has nothing to do, and most of
its time would go to importing click, the CLI, the configuration parser and the backend.
:func:`answer` sees such a run through with only the state directory, the lock and one raw
digest of the kernel (:mod:`multihome.kerneldigest`), and gives exactly the answer of the
full path (``cli.apply`` -> ``open_session`` -> the fingerprint -> the agent's resume):

- only for command lines it fully understands (:func:`parse`: ``[--root R] [--config C]
  apply`` with ``-q``/``--quiet``, ``--detailed-exit-codes``, ``--no-sysctls``,
  ``--lock-timeout S``); anything else goes to the CLI;
- only as root (else the CLI says that apply needs root), only in a state directory that is
  this namespace's, and under the same lock, taken the same way;
- never when an interrupted apply or a confirmation window waits to be recovered (the
  journal's code needs the backend), when the configuration cannot be read, or when the
  recorded fingerprint's inputs (version, configuration bytes, options, lease files, name
  files) or kernel digest differ or a lease it read has expired.

Whenever it cannot be sure it answers nothing and the full apply runs as if it had not been
asked (without click: :mod:`multihome.apply_cli`; it decides again, from scratch, except
that a digest found changed is not taken again: :attr:`Answer.changed`). Its errors (a lock
held too long, Ctrl-C) are reported by the CLI's own error path
(:mod:`multihome.errorpath`), with the same words and exit codes.
"""

from __future__ import annotations

import os
import sys

from multihome.transaction import DEFAULT_LOCK_TIMEOUT

TYPE_CHECKING = False  # typing is for the type checker only (start-up time)
if TYPE_CHECKING:
    from _typeshed import StrPath

    from multihome.transaction.statedir import StateDir

#: What an apply with nothing to do says (unless ``--quiet``).
NO_CHANGES = "no changes: the kernel already matches the policy"
#: The flags of ``apply`` that :func:`parse` accepts (none of them matters to a no-op but
#: ``--no-sysctls``, which is part of the recorded inputs).
FLAGS = frozenset({"-q", "--quiet", "--detailed-exit-codes", "--no-sysctls"})


class Request:
    """A plain apply's command line: ``--root``, ``--config`` (as given: text, no
    ``pathlib`` on the no-op's path; whatever takes them writes them as ``pathlib`` would,
    :mod:`multihome.files`) and ``apply``'s options."""

    __slots__ = ("config", "detailed", "lock_timeout", "no_sysctls", "quiet", "root")

    def __init__(
        self,
        root: str,
        config: str | None,
        quiet: bool,
        no_sysctls: bool,
        lock_timeout: float,
        detailed: bool = False,
    ) -> None:
        self.root = root
        self.config = config
        self.quiet = quiet
        self.no_sysctls = no_sysctls
        self.lock_timeout = lock_timeout
        self.detailed = detailed


class Answer:
    """What :func:`answer` decided: the exit code of a no-op (its output written), or None
    (the full apply must run) and whether the namespace or the inputs were found changed
    under the lock since the recorded apply (then the full apply need not digest the kernel
    a second time; if the state went back meanwhile, a full apply is still right)."""

    __slots__ = ("changed", "code")

    def __init__(self, code: int | None, changed: bool = False) -> None:
        self.code = code
        self.changed = changed


#: The answer that leaves everything to the full apply.
UNANSWERED = Answer(None)


def parse(args: list[str]) -> Request | None:
    """``args`` (without the program) as a :class:`Request`; None for anything else (other
    commands, options, spellings, values the CLI would check or refuse)."""
    values: dict[str, str] = {}
    position = 0
    while position < len(args) and args[position] != "apply":
        name, value, position = _option(args, position)
        if name not in ("--root", "--config") or not value or name in values:
            return None
        values[name] = value
    flags: set[str] = set()
    lock_timeout = DEFAULT_LOCK_TIMEOUT
    position += 1
    if position > len(args):
        return None  # no "apply"
    while position < len(args):
        if args[position] in FLAGS:
            flags.add(args[position])
            position += 1
            continue
        name, value, position = _option(args, position)
        if name != "--lock-timeout" or value is None:
            return None
        timeout = _seconds(value)
        if timeout is None:
            return None
        lock_timeout = timeout
    return Request(
        root=values.get("--root", "/"),
        config=values.get("--config"),
        quiet=bool(flags & {"-q", "--quiet"}),
        no_sysctls="--no-sysctls" in flags,
        lock_timeout=lock_timeout,
        detailed="--detailed-exit-codes" in flags,
    )


def _option(args: list[str], position: int) -> tuple[str, str | None, int]:
    """The long option at ``position`` (``--name value`` or ``--name=value``), its value and
    the position after it."""
    word = args[position]
    if not word.startswith("--") or word == "--":
        return "", None, position + 1
    name, equals, value = word.partition("=")
    if equals:
        return name, value, position + 1
    if position + 1 >= len(args):
        return name, None, position + 1
    return name, args[position + 1], position + 2


def _seconds(text: str) -> float | None:
    """A plain non-negative decimal number of seconds (what else click may accept, the CLI
    checks)."""
    whole, _dot, fraction = text.partition(".")
    digits = whole + fraction
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    return float(text)


def answer(request: Request, args: list[str]) -> Answer:
    """The no-op's answer to ``request`` (the command line ``args``, which :func:`parse`
    understood): its exit code when nothing is to be done (its output written), else
    :data:`UNANSWERED` or an unanswered :class:`Answer` that says the namespace changed."""
    if os.geteuid() != 0:
        return UNANSWERED
    from multihome.errors import MultihomeError

    answered: list[bool] = []
    try:
        return _decide(request, answered)
    except (MultihomeError, KeyboardInterrupt) as exc:
        from multihome.errorpath import report_error

        report_error(exc, args)
    except Exception as exc:
        if answered:  # said "no changes" already: the CLI's error path, never twice
            from multihome.errorpath import report_error

            report_error(exc, args)
        return UNANSWERED  # the full apply meets it again, and says it its way


def _decide(request: Request, answered: list[bool]) -> Answer:
    """The no-op's answer; ``answered`` gets an item once output is written."""
    from multihome.kerneldigest import matches
    from multihome.leasefiles import host_signature
    from multihome.transaction.fingerprint import config_source, inputs, trusted
    from multihome.transaction.session import open_clean_session
    from multihome.transaction.statedir import FINGERPRINT, StateDir, current_namespace

    identity = current_namespace()
    found = StateDir.of(request.root, identity.key)
    if found.recorded() != identity:
        return UNANSWERED  # no state yet, or another namespace's: the apply creates or removes it
    state = StateDir(found.path, found.netns, identity)
    if not state.exists(FINGERPRINT):
        return UNANSWERED  # nothing recorded: no lock taken for nothing
    source = config_source(request.config, request.root)
    lock = open_clean_session(state, request.root, timeout=request.lock_timeout)
    if lock is None:
        return UNANSWERED
    try:
        options = "--no-sysctls" if request.no_sysctls else ""
        facts = host_signature(request.root, lock.state)
        digest = inputs(source, request.root, facts, options)
        kernel = trusted(lock.state, digest)
        if kernel is None or not matches(kernel):
            return Answer(None, changed=True)
        answered.append(True)
        if not request.quiet:
            sys.stdout.write(NO_CHANGES + "\n")
        resume_agent(request.root, lock.state)
        return Answer(0)
    finally:
        lock.release()


def resume_agent(root: StrPath, state: StateDir | None = None) -> None:
    """End a pause of the agent (reset, rollback), and say so: every whole apply does.
    ``state``: this namespace's state directory, when the caller has it."""
    from multihome.transaction.pause import resume

    marker = resume(root, state)
    if marker is not None:
        sys.stdout.flush()
        sys.stderr.write(
            f"multihome: resumed the agent (paused by {marker.get('by', '?')} at "
            f"{marker.get('at', '?')})\n"
        )
        sys.stderr.flush()
