"""One whole ``multihome apply`` as ``make bench``'s (c) runs it, counted in instructions.

Wall times on a shared machine move by 2-5x; instruction counts (callgrind) do not. This
builds a ``BenchLab(N)`` (``--dual-stack``: with each port's SLAAC address and RA default),
plans it once as ``run.py`` does, then runs ``RUNS`` whole ``python -m multihome --root R
apply`` processes inside it, the kernel undone between them exactly as ``run.py`` undoes it
(the ``--root`` state, checkpoint and fingerprint, stays, as in ``make bench``). Bytecode is
cached in a private ``PYTHONPYCACHEPREFIX``, as an installed package has it. A first apply
and undo, not counted, warms that cache. The namespaces are deleted at the end, also on
failure.

Modes:

* ``callgrind`` (default): each apply under ``valgrind --tool=callgrind``; prints its
  "Collected" instruction count and keeps ``OUT.I`` for ``callgrind_annotate``;
* ``cprofile``: each apply under cProfile, written to ``OUT.I.prof`` (seconds, not minutes);
* ``time``: the wall seconds of (c), a whole apply, and (c0), the no-op apply after it.

``--no-op``: in the ``callgrind`` and ``cprofile`` modes, also count (c0) after each (c):
the same command again on the namespace that (c) left in sync, which the no-op decision
(:mod:`multihome.noop`) answers before the CLI (``OUT.I.noop``, ``OUT.I.noop.prof``).

Usage (root, from the worktree): ``.venv/bin/python bench/apply_callgrind.py [--ports 256]
[--dual-stack] [--runs 1] [--mode callgrind] [--no-op] [--out /tmp/apply-cg]``. At 256 ports one
callgrind run takes 1-3 minutes.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from lab import BenchLab  # noqa: E402
from run import child, multihome_argv, worker  # noqa: E402

from docs import timed_environment  # noqa: E402
from multihome.plan import Plan  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--ports", type=int, default=256)
    parser.add_argument("--dual-stack", action="store_true")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--mode", choices=("callgrind", "cprofile", "time"), default="callgrind")
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "apply-cg"))
    parser.add_argument(
        "--no-op", action="store_true", help="also count (c0), the no-op apply after each (c)"
    )
    args = parser.parse_args(argv)
    timed_environment()
    with BenchLab(args.ports, dual_stack=args.dual_stack) as lab:
        print(f"lab {lab.name} ({args.ports} ports)", file=sys.stderr, flush=True)
        time.sleep(0.2)  # as run.py: let IPv6 link-local setup settle before the first read
        if args.no_op or args.mode == "time":
            lab.settle()  # (c0) needs the fingerprint of a (c) that nothing disturbed
        plan_file = lab.root / "plan.pickle"
        worker(lab, "plan", str(plan_file))
        with plan_file.open("rb") as handle:
            plan = pickle.load(handle)
        assert isinstance(plan, Plan)
        apply = [sys.executable, "-m", "multihome", "--root", str(lab.root), "apply"]
        if args.mode != "time":  # warm-up: the bytecode cache, first-apply effects
            subprocess.run(lab.exec_args(*apply), check=True, stdout=subprocess.DEVNULL)
            lab.undo(plan.changes)
        for run in range(args.runs):
            if args.mode == "time":
                seconds, _ = child(multihome_argv(lab, "apply"))
                again, _ = child(multihome_argv(lab, "apply"))
                print(f"run {run}: (c) {seconds:.3f} s, (c0) {again:.3f} s", flush=True)
            else:
                names = [("", f"{args.out}.{run}")]
                if args.no_op:
                    names.append((" (c0)", f"{args.out}.{run}.noop"))
                for label, out in names:
                    if not counted(lab, apply, args.mode, out, f"run {run}{label}"):
                        return 1
            lab.undo(plan.changes)
    return 0


def counted(lab: BenchLab, apply: list[str], mode: str, out: str, label: str) -> bool:
    """Run ``apply`` in the lab once under callgrind (``out``) or cProfile (``out.prof``)
    and print what it counted after ``label``; False when it failed (its stderr printed)."""
    if mode == "callgrind":
        done = subprocess.run(
            lab.exec_args("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *apply),
            capture_output=True,
            text=True,
            check=False,
        )
        found = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or found is None:
            print(done.stderr[-2000:], file=sys.stderr)
            return False
        print(f"{label}: {int(found.group(1)) / 1e6:,.1f} M instructions ({out})", flush=True)
        return True
    profiled = [sys.executable, "-m", "cProfile", "-o", f"{out}.prof", *apply[1:]]
    subprocess.run(lab.exec_args(*profiled), check=True, stdout=subprocess.DEVNULL)
    print(f"{label}: {out}.prof", flush=True)
    return True


if __name__ == "__main__":
    sys.exit(main())
