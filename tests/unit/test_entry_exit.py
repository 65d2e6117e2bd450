"""``multihome._entry.exit_now``: the plain apply's end without the interpreter's
finalization says and exits exactly as ``raise SystemExit`` does, and falls back to it
whenever finalization still owes something (an atexit callback, a non-integer status, a
flush that fails)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PRELUDE = "import sys\nfrom multihome._entry import exit_now\n"


def ended(body: str, how: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a Python process running ``body`` and then ending
    with ``how`` (``exit_now(SystemExit(...))`` or ``raise SystemExit(...)``)."""
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + body + how],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("print('buffered out'); sys.stderr.write('buffered err')\n", "3"),
        ("sys.stdout.write('no newline')\n", "None"),
        ("print('out')\n", "'a message'"),
        ("import atexit; atexit.register(print, 'at exit')\n", "0"),
        ("import atexit; atexit.register(sys.exit, 5)\n", "True"),
        ("print('x' * 100000)\n", "256"),
    ],
)
def test_exit_now_ends_as_raise_system_exit(body: str, status: str) -> None:
    """Buffered output (also unflushed, also large), exit codes (None, an int, True, one past
    255), a message as the status and atexit callbacks: the same output and exit code as a
    plain ``raise SystemExit``."""
    fast = ended(body, f"exit_now(SystemExit({status}))\n")
    plain = ended(body, f"raise SystemExit({status})\n")
    assert fast == plain
    assert fast[1] or fast[2] or fast[0] == 0  # something to compare was said or exited


def test_exit_now_skips_finalization_only_when_nothing_is_owed() -> None:
    """Without callbacks the process ends before finalization (an object's ``__del__`` at
    teardown does not run); with an atexit callback registered it runs as before."""
    body = (
        "class Loud:\n"
        "    def __del__(self):\n"
        "        sys.stderr.write('finalized')\n"
        "kept = Loud()\n"
    )
    assert ended(body, "exit_now(SystemExit(0))\n") == (0, "", "")
    assert ended(body, "raise SystemExit(0)\n") == (0, "", "finalized")
    registered = body + "import atexit; atexit.register(lambda: None)\n"
    assert ended(registered, "exit_now(SystemExit(0))\n") == (0, "", "finalized")


def test_exit_now_reports_a_closed_stdout_as_before() -> None:
    """Buffered output for a pipe closed meanwhile: the flush fails and the process ends the
    ordinary way, with Python's own report and exit code."""
    code = PRELUDE + "sys.stdout.write('buffered'); sys.stdin.read()\n{}\n"
    results = []
    for how in ("exit_now(SystemExit(0))", "raise SystemExit(0)"):
        with subprocess.Popen(
            [sys.executable, "-c", code.format(how)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as proc:
            assert proc.stdin is not None and proc.stdout is not None
            assert proc.stderr is not None
            proc.stdout.close()
            proc.stdin.close()
            err = proc.stderr.read().decode()
            results.append((proc.wait(), "BrokenPipeError" in err))
    assert results[0] == results[1]
    assert results[0][0] != 0 and results[0][1]
