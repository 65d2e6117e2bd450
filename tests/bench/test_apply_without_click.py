"""The plain `multihome apply` runs without click (multihome.apply_cli, from the entry point)
and says and does exactly what the click CLI says and does for the same command line:
stdout, stderr and the exit code compared with `multihome.cli.main` run on the same argv in
the same state, for a successful apply (also with --detailed-exit-codes), bad configuration,
an unprivileged user and a lock held too long; the kernel state compared with `ip -j`
(BenchLab.fingerprint). Whether click was imported is seen in ``PYTHONPROFILEIMPORTTIME``."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys

import pytest
from bench_util import BENCH, inside
from lab import BenchLab

from multihome.plan import Plan
from multihome.processes import NAMESPACE_LOCK

pytestmark = pytest.mark.netns
WORKER = BENCH / "worker.py"
#: The click CLI on the same command line, without the entry point's plain paths.
CLICKED = ("-c", "import sys; from multihome.cli import main; main(sys.argv[1:])")
NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
IMPORTED_CLICK = re.compile(r"^import time:.*\|\s+click$", re.MULTILINE)
#: Start-up costs a plain apply leaves out: dataclasses, inspect (multihome.values), typing
#: (annotations for mypy only), threading (the announcement's socket closed by a bare
#: ``_thread``) and, without a configuration file, its reader.
IMPORTED_SLOW = re.compile(
    r"^import time:.*\|\s+(dataclasses|inspect|typing|threading|multihome\.reader)$",
    re.MULTILINE,
)


def both(
    lab: BenchLab, *args: str, between: object = None, prefix: tuple[str, ...] = ()
) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    """``multihome --root R ARGS`` run plain (``python -m multihome``: the entry point) and
    through the click CLI, in the lab's namespace (``between()`` called between the two):
    (exit code, stdout, stderr) of each. The plain run must not have imported click, nor
    what :data:`IMPORTED_SLOW` names (unless a configuration file is to be read)."""
    results = []
    for command in (CLICKED, ("-m", "multihome")):
        proc = subprocess.run(
            lab.exec_args(*prefix, sys.executable, *command, "--root", str(lab.root), *args),
            capture_output=True,
            text=True,
            check=False,
            env=dict(os.environ, PYTHONPROFILEIMPORTTIME="1"),
        )
        clicked = bool(IMPORTED_CLICK.search(proc.stderr))
        assert clicked == (command == CLICKED), proc.stderr[-2000:]
        if command != CLICKED:
            slow = set(IMPORTED_SLOW.findall(proc.stderr))
            if (lab.root / "etc/multihome/config.yaml").exists():
                slow.discard("multihome.reader")
            assert not slow, slow
        stderr = "".join(
            line
            for line in proc.stderr.splitlines(keepends=True)
            if not line.startswith("import time:")
        )
        results.append((proc.returncode, proc.stdout, stderr))
        if callable(between) and command == CLICKED:
            between()
    return results[0], results[1]


def plan_of(lab: BenchLab) -> Plan:
    """The plan an apply makes in the lab (to undo it: the kernel as before)."""
    path = lab.root / "plan.pickle"
    inside(lab, WORKER, "plan", str(path))
    with path.open("rb") as handle:
        plan = pickle.load(handle)
    assert isinstance(plan, Plan)
    return plan


def test_an_apply_without_click_says_and_does_what_the_cli_does(lab: BenchLab) -> None:
    """A whole apply (the plan, "applied N change(s); verify: ...") and one with
    --detailed-exit-codes (exit 2: changed), each after the kernel was put back: the same
    output, exit code and kernel state on both paths."""
    plan = plan_of(lab)
    initial = lab.fingerprint()
    applied: list[dict[str, object]] = []

    def undo() -> None:
        applied.append(lab.fingerprint())
        lab.undo(plan.changes)
        assert lab.fingerprint() == initial

    for options in ((), ("--detailed-exit-codes", "--lock-timeout", "5")):
        clicked, plain = both(lab, "apply", *options, between=undo)
        assert clicked == plain
        code, stdout, stderr = plain
        assert code == (2 if options else 0), stderr
        assert stderr == ""
        assert f"applied {len(plan.changes)} change(s); verify: " in stdout
        assert lab.fingerprint() == applied[-1]
        lab.undo(plan.changes)


def test_bad_input_and_refusals_read_the_same_without_click(lab: BenchLab) -> None:
    """Bad configuration (exit 2; 1 with --detailed-exit-codes) and an unprivileged user
    (exit 2, "needs root") get the same message on stderr and exit code on both paths, and
    nothing is changed."""
    initial = lab.fingerprint()
    config = lab.root / "etc/multihome/config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("tables: [10, 5]\n")
    for options in ((), ("--detailed-exit-codes", "-q")):
        clicked, plain = both(lab, "apply", *options)
        assert clicked == plain
        code, stdout, stderr = plain
        assert (code, stdout) == (1 if options else 2, ""), stderr
        assert stderr.startswith(f"multihome: error: {config}:1:"), stderr
    config.unlink()
    lab.root.chmod(0o755)  # the unprivileged user reads below the root
    clicked, plain = both(lab, "apply", prefix=NOBODY)
    assert clicked == plain
    code, stdout, stderr = plain
    assert (code, stdout) == (2, ""), stderr
    assert "needs root" in stderr
    assert lab.fingerprint() == initial


def test_a_lock_held_too_long_reads_the_same_without_click(lab: BenchLab) -> None:
    """While another process holds the namespace's lock, an apply with --lock-timeout waits
    that long and fails with the same message and exit code (1) on both paths; nothing is
    changed."""
    initial = lab.fingerprint()
    holder = subprocess.Popen(
        lab.exec_args(
            sys.executable,
            "-c",
            "import socket, sys; s = socket.socket(socket.AF_UNIX); "
            f"s.bind(b'\\0{NAMESPACE_LOCK}'); print('held', flush=True); sys.stdin.read()",
        ),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        clicked, plain = both(lab, "apply", "--lock-timeout", "0.2")
    finally:
        holder.communicate("")
    assert clicked == plain
    code, stdout, stderr = plain
    assert (code, stdout) == (1, ""), stderr
    assert stderr.startswith(
        f"multihome: error: another multihome is changing this network namespace: pid {holder.pid} "
    ), stderr
    assert "waited 0.2 s for the lock" in stderr
    assert lab.fingerprint() == initial
