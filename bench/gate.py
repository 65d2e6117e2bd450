"""The benchmark gate of ``make test``: a quick form of the benchmarks that fails when a ratio
from the same run falls past a generous threshold (ratios only, never absolute times).

* apply, N=64 ports (``lab.py``), 3 runs alternating: (a) the how-to's way, one ``ip`` per
  change; (b) ``ip -batch`` + ``sysctl -p``; (c) ``multihome apply`` as a whole process. The
  kernel state after (c) must equal the state after (a) (else the gate fails: a fast apply
  that changes nothing is no pass). Gated: (a)/(c) and (c)/(b), medians.
* the agent, 2 ports, 10 re-added defaults (``agent_latency.py``): its repair latency (from
  the disturbing notification to the repair's last one) against the kernel-change phase of
  the same change made directly (the disturbing netlink call). Gated: the ratio of medians.

The thresholds sit far outside the spread measured over 20 runs of this gate on a loaded
2-core machine (bench/results/gate-spread.json, bench/README.md). Run as root:
``.venv/bin/python bench/gate.py [--json FILE]``; exit 1 when a ratio is past its threshold.
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from agent_latency import outer as agent_run  # noqa: E402 - bench/ is on sys.path
from lab import BenchLab  # noqa: E402
from run import child, multihome_argv, worker  # noqa: E402

from docs import timed_environment  # noqa: E402
from multihome.plan import Plan  # noqa: E402

PORTS = 64
RUNS = 3
AGENT_EVENTS = 10
#: name -> (threshold, True when the ratio must stay above it). Over 20 runs on the loaded
#: 2-core machine (bench/results/gate-spread.json) the ratios ranged 4.05-9.33, 7.29-18.35
#: and 2.38-16.38; the regression this gate is for (a packet socket bound and closed per
#: address) gave 1.38 and 42 for the first two.
THRESHOLDS: dict[str, tuple[float, bool]] = {
    "apply: how-to's way / multihome apply": (2.0, True),
    "apply: multihome apply / ip -batch + sysctl -p": (36.0, False),
    "agent: repair latency / kernel-change phase": (50.0, False),
}


def apply_ratios() -> dict[str, float]:
    """(a)/(c) and (c)/(b) at ``PORTS`` ports, medians of ``RUNS`` alternating runs."""
    with BenchLab(PORTS) as lab:
        time.sleep(2.0)  # IPv6 link-local addresses settle (DAD): the state stays put
        plan_file = lab.root / "plan.pickle"
        worker(lab, "plan", str(plan_file))
        with plan_file.open("rb") as handle:
            plan = pickle.load(handle)
        assert isinstance(plan, Plan)
        before = lab.fingerprint()
        seconds: dict[str, list[float]] = {"a": [], "b": [], "c": []}
        expected: dict[str, Any] | None = None
        for run in range(RUNS + 1):  # round 0 warms (b) and (c) up, unrecorded
            for method in "abc"[run % 3 :] + "abc"[: run % 3] if run else "bc":
                if method == "a":
                    took = float(worker(lab, "time", "ip-each", str(plan_file))["seconds"])
                elif method == "b":
                    took = float(worker(lab, "time", "ip-batch", str(plan_file))["seconds"])
                else:
                    took = child(multihome_argv(lab, "apply"))[0]
                after = lab.fingerprint()
                if expected is None:
                    expected = after
                if after == before or after != expected:
                    raise SystemExit(f"gate: ({method}) did not make the plan's changes")
                if run:
                    seconds[method].append(took)
                lab.undo(plan.changes)
        a, b, c = (statistics.median(seconds[m]) for m in "abc")
    return {
        "apply: how-to's way / multihome apply": a / c,
        "apply: multihome apply / ip -batch + sysctl -p": c / b,
    }


def agent_ratio() -> float:
    summary = agent_run(AGENT_EVENTS, 0.0, 0.2, 2, kinds=("default",))
    row = summary["kinds"]["default"]
    return float(row["p50_ms"]) / max(float(row["disturbing_p50_ms"]), 1e-3)


def judge(ratios: dict[str, float]) -> list[tuple[str, float, bool]]:
    """(line to print, the ratio, within its threshold) for each gated ratio."""
    verdicts = []
    for name, value in ratios.items():
        threshold, above = THRESHOLDS[name]
        ok = value >= threshold if above else value <= threshold
        sign = ">=" if above else "<="
        line = f"{'ok  ' if ok else 'FAIL'} {name}: {value:.2f} (must be {sign} {threshold:g})"
        verdicts.append((line, value, ok))
    return verdicts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="append this run's ratios (one JSON line)")
    args = parser.parse_args()
    timed_environment()
    started = time.monotonic()
    ratios = apply_ratios()
    ratios["agent: repair latency / kernel-change phase"] = agent_ratio()
    verdicts = judge(ratios)
    for line, _value, _ok in verdicts:
        print(line)
    failed = [line for line, _value, ok in verdicts if not ok]
    took = time.monotonic() - started
    print(f"gate: {len(ratios) - len(failed)}/{len(ratios)} ratios within bounds in {took:.1f} s")
    if args.json:
        with args.json.open("a") as handle:
            handle.write(json.dumps({"ratios": ratios, "seconds": took}) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
