"""The CLI's one error path, without click: errors mapped to exit codes, ``multihome: error:``
on stderr and, with ``--json``, the ``{"error": ...}`` document on stdout.

:func:`handled` runs a command and exits with its code. The click CLI (:func:`multihome.cli.
main`) runs through it with click's own outcomes (usage errors, ``Exit``, ``Abort``) mapped
first; the paths decided before click (:mod:`multihome.noop`, :mod:`multihome.apply_cli`)
run through it directly, so that every error reads and exits the same whichever path met it.
click is never imported here: when it is loaded (the CLI ran), :func:`error_json` also
describes its exceptions.
"""

from __future__ import annotations

import errno
import os
import sys
from contextlib import suppress

from multihome.errors import DetailedExitCode, ExitCode, InputError, MultihomeError

TYPE_CHECKING = False  # typing is for the type checker only (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn


def echo(message: str = "", err: bool = False, nl: bool = True) -> None:
    """``message`` on stdout (stderr with ``err``), a newline after it unless ``nl`` is false,
    then flushed: what ``click.echo`` does with a text (so that the two paths interleave
    stdout and stderr alike)."""
    stream = sys.stderr if err else sys.stdout
    text = message + "\n" if nl else message
    if text:
        stream.write(text)
    stream.flush()


def json_requested(argv: list[str]) -> bool:
    """True when the command line asks for ``--json`` (before any ``--``: what follows it,
    such as `lab exec`'s command, is not ours)."""
    for arg in argv:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


def error_json(exc: BaseException, code: int, message: str) -> dict[str, object]:
    """The ``{"error": ...}`` document a ``--json`` command prints on stdout when it fails
    (docs/multihome.8.md, "JSON output"): the exit code, the error's class, its message and,
    for bad input, the file or option at fault with where in it and how to fix it."""
    where: dict[str, object] = {
        "input": None,
        "path": None,
        "line": None,
        "column": None,
        "fix": None,
    }
    kind = type(exc).__name__
    click: Any = sys.modules.get("click")  # only click's own code raises its exceptions
    if isinstance(exc, InputError):
        where.update(input=exc.source, path=exc.path, line=exc.line, column=exc.column, fix=exc.fix)
    elif click is not None and isinstance(exc, click.BadParameter) and exc.param is not None:
        where["input"] = (exc.param.opts or [exc.param.name])[0]
    elif click is not None and isinstance(exc, click.NoSuchOption):
        where["input"] = exc.option_name
    if click is not None and isinstance(exc, click.UsageError):
        kind = "UsageError"
    return {"error": dict(where, code=code, kind=kind, message=message)}


def exit_code(args: list[str], code: int) -> int:
    """``code`` as the command line ``args`` reports it: with ``--detailed-exit-codes`` every
    failure is 1 (terraform's convention, :class:`~multihome.errors.DetailedExitCode`)."""
    if "--detailed-exit-codes" in args:
        return DetailedExitCode.ERROR if code else 0
    return code


def fail(
    message: str,
    code: int,
    exc: BaseException | None = None,
    as_json: bool = False,
    credentials: bool = False,
) -> NoReturn:
    """Print the error (and its JSON document) and exit with ``code``; with ``credentials``
    (a ``cloud`` command) every secret of the cloud credentials is cut out first
    (multihome.cloud.secrets)."""

    def scrub(text: str) -> str:
        return text

    if credentials:
        from multihome.cloud.secrets import known_secrets, redact

        secrets = known_secrets()

        def scrub(text: str) -> str:
            return redact(text, secrets)

    echo(scrub(f"multihome: error: {message}"), err=True)
    if as_json:
        from multihome.files import json_output

        document = json_output(error_json(exc or RuntimeError(message), code, message))
        echo(scrub(document), nl=False)
    sys.exit(code)


def handled(run: Callable[[], Any], args: list[str]) -> NoReturn:
    """Run ``run`` (a command given the command line ``args``) and exit with its code (an
    int it returns, else 0), mapping multihome's errors, Ctrl-C and any other exception to
    exit codes and messages: never a traceback (unless ``MULTIHOME_DEBUG`` is set)."""
    as_json = json_requested(args)
    credentials = "cloud" in args  # its messages may carry what the cloud echoed back
    try:
        code = run()
    except MultihomeError as exc:  # InputError included: its exit_code is 2
        fail(str(exc), exit_code(args, exc.exit_code), exc, as_json, credentials)
    except KeyboardInterrupt as exc:
        fail("interrupted", exit_code(args, ExitCode.FAILURE), exc, as_json)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # the last line of defence: never a traceback
        if os.environ.get("MULTIHOME_DEBUG"):
            raise
        fail(
            f"internal error: {type(exc).__name__}: {exc} (set MULTIHOME_DEBUG=1 for the "
            "traceback and report it)",
            exit_code(args, ExitCode.FAILURE),
            exc,
            as_json,
            credentials,
        )
    sys.exit(code if isinstance(code, int) else 0)


def report_error(exc: BaseException, args: list[str]) -> NoReturn:
    """Say ``exc``, raised for the command line ``args`` before a command ran (the no-op
    decision's errors: a lock held too long, Ctrl-C), and exit, exactly as :func:`handled`."""

    def raise_it() -> None:
        raise exc

    handled(raise_it, args)


def as_click_runs(run: Callable[[], Any], args: list[str]) -> Any:
    """``run()`` (a command decided without click) with what click's ``Command.main`` does
    around every command it runs (non-standalone): Ctrl-C or end of input closes the
    terminal's ``^C`` line and is reported as "aborted"; a closed stdout (EPIPE) ends the
    process with exit 1, silently."""
    try:
        return run()
    except (EOFError, KeyboardInterrupt) as exc:
        echo(err=True)
        fail("aborted", exit_code(args, ExitCode.FAILURE), exc, json_requested(args))
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        _silence()
        sys.exit(1)


def _silence() -> None:
    """Nothing more to stdout or stderr (their buffers may hold output for a closed pipe,
    flushed at exit): what click's ``_PacifyFlushWrapper`` achieves."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # no file descriptor: nothing to silence
            os.dup2(devnull, stream.fileno())
    os.close(devnull)
