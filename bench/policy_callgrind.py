"""The policy and the plan of one whole ``multihome apply``, counted in instructions.

``apply_callgrind.py`` counts a whole apply, where the policy and the plan are a fifth of the
instructions and two fresh labs differ by ~5%: too coarse to see a change of the policy. This
reads a ``BenchLab(N)``'s state once as ``apply`` reads it (``local_table=False``, the ports'
facts under its ``--root``), keeps it in a pickle, deletes the lab, and then counts, outside
any namespace, what ``apply`` computes from that state: ``Assessment.of`` (``compute_policy``
and ``make_plan``) and the plan's printed lines (``Plan.lines``). The count is the difference
between two processes under ``valgrind --tool=callgrind`` (``PYTHONHASHSEED=0``, the cyclic GC
off as in ``apply``): one that loads the pickle and computes, one that only loads it.

Usage (root, from the worktree): ``.venv/bin/python bench/policy_callgrind.py [--ports 256]
[--dual-stack] [--state /tmp/state.pickle] [--mode callgrind|time|cprofile]``. With
``--state``, an existing pickle is used (made by an earlier run, which keeps it there).
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
from typing import Any

HERE = Path(__file__).resolve().parent


def capture(out: str, root: str) -> None:
    """Inside the lab's namespace: the state, config and facts apply computes from."""
    from multihome.backend.netlink import NetlinkBackend
    from multihome.source.portfacts import host_facts

    backend = NetlinkBackend(local_table=False)
    try:
        state = backend.read()
    finally:
        backend.close()
    facts = host_facts(Path(root))(state)
    parts = (state.links, state.addresses, state.routes, state.rules, dict(state.sysctls))
    known = (dict(facts.declared), dict(facts.seen), facts.notes, dict(facts.declared6))
    with open(f"{out}.tmp", "wb") as handle:  # (a mappingproxy does not pickle)
        pickle.dump((parts, known), handle)
    os.replace(f"{out}.tmp", out)


def load(path: str) -> tuple[Any, Any]:
    """The state and the facts of ``path`` (written by :func:`capture`), as new objects."""
    from types import MappingProxyType

    from multihome.facts import PortFacts
    from multihome.model import HostState

    with open(path, "rb") as handle:
        parts, known = pickle.load(handle)  # written by capture() above
    *tables, sysctls = parts
    declared, seen, notes, declared6 = known
    facts = PortFacts(
        MappingProxyType(declared), MappingProxyType(seen), notes, MappingProxyType(declared6)
    )
    return HostState(*tables, MappingProxyType(sysctls)), facts


def assess(state: Any, facts: Any) -> int:
    """What apply computes from the state: the assessment and the plan's printed lines."""
    from multihome.config import Config
    from multihome.plan import Assessment

    assessment = Assessment.of(state, Config(), facts)  # apply's, without a file
    return len(assessment.plan.lines())


def compute(path: str, phase: str, repeat: int, profile: Any = None) -> None:
    """Load the pickle and (``phase`` ``all``) compute the assessment and its lines, with the
    cyclic GC off as the plain ``apply`` runs (``multihome._entry``)."""
    import gc

    gc.disable()
    from multihome.config import Config  # noqa: F401 (imported in both phases)
    from multihome.plan import Assessment  # noqa: F401

    lines = 0
    for _ in range(repeat):
        state, facts = load(path)
        if phase == "all":
            lines += (
                assess(state, facts) if profile is None else profile.runcall(assess, state, facts)
            )
    print(lines)


def count(path: str, phase: str) -> int:
    """The instructions of one ``compute`` process under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={tmp}/cg",
                sys.executable,
                __file__,
                "compute",
                path,
                phase,
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
    found = re.search(r"Collected : (\d+)", out.stderr)
    assert found, out.stderr
    return int(found.group(1))


def make_state(ports: int, dual_stack: bool, path: str) -> None:
    from lab import BenchLab

    with BenchLab(ports, dual_stack=dual_stack) as lab:
        time.sleep(0.2)  # as run.py: let IPv6 link-local setup settle before the read
        subprocess.run(
            lab.exec_args(sys.executable, __file__, "capture", path, str(lab.root)), check=True
        )


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["capture"]:
        capture(args_in[1], args_in[2])
        return 0
    if args_in[:1] == ["compute"]:
        compute(args_in[1], args_in[2], int(args_in[3]) if len(args_in) > 3 else 1)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--ports", type=int, default=256)
    parser.add_argument("--dual-stack", action="store_true")
    parser.add_argument("--state", help="the state pickle: used if it exists, else made")
    parser.add_argument("--mode", choices=("callgrind", "time", "cprofile"), default="callgrind")
    parser.add_argument("--repeat", type=int, default=20, help="computations (time, cprofile)")
    args = parser.parse_args(args_in)
    kind = "ds" if args.dual_stack else "v4"
    path = args.state or os.path.join(tempfile.gettempdir(), f"policy-{kind}-{args.ports}.pickle")
    if not os.path.exists(path):
        make_state(args.ports, args.dual_stack, path)
    sys.path.insert(0, str(HERE))
    from docs import timed_environment

    timed_environment()  # bytecode cached, as installed; filled by a first run:
    subprocess.run(
        [sys.executable, __file__, "compute", path, "all"], check=True, stdout=subprocess.DEVNULL
    )
    if args.mode == "callgrind":
        total, base = count(path, "all"), count(path, "load")
        print(f"policy+plan+lines: {total - base:,} instructions ({total:,} - {base:,})")
    elif args.mode == "time":
        runs: list[float] = []
        for _ in range(5):
            start = time.perf_counter()
            compute(path, "all", args.repeat)
            mid = time.perf_counter()
            compute(path, "load", args.repeat)
            runs.append((mid - start - (time.perf_counter() - mid)) / args.repeat)
        print(f"policy+plan+lines: min {min(runs) * 1000:.2f} ms per computation")
    else:
        import cProfile
        import pstats

        profile = cProfile.Profile()
        compute(path, "all", args.repeat, profile)
        stats: Any = pstats.Stats(profile)
        stats.sort_stats("tottime").print_stats(40)
    return 0


if __name__ == "__main__":
    sys.exit(main())
