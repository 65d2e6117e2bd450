"""multihome benchmarks: apply at scale against the kernel's floor, and start-up time.

Run as root from the repository: ``make bench`` (``.venv/bin/python bench/run.py``). For every
N (default 16, 64, 256) it builds throwaway namespaces ``mhbench-<hex>-N`` and ``...-sw``
with N veth ports configured like the how-to (see ``lab.py``), computes multihome's plan for
them once, and then times, alternating the order from run to run, the same kernel changes made

  (a) the how-to's way: one ``ip`` (or ``sysctl -w``) process per change;
  (b) ``ip -batch`` with exactly the plan's route and rule changes, plus ``sysctl -p``;
  (c) ``multihome apply`` as a whole process (``ip netns exec NS multihome --root TMP apply``),
      followed by the same command again, which has nothing to do (re-apply, no-op);
  (d) the kernel-change phase alone: ``NetlinkBackend.apply(plan.changes)`` in one process.

After each, the kernel state (``ip -j rule``, ``ip -j route show table all``, the sysctls)
must equal the state after the first method, and after undoing it (``ip -batch``), the
state before: every method makes exactly the same changes. Cold start: ``multihome
--version`` against ``python -c pass`` and ``python -c "import pyroute2"``; ``multihome
status`` against ``python -c "import pyroute2"`` plus one route dump, in each namespace; peak
RSS of each process from ``wait4``. It prints a Markdown report (median and min-max of the
runs, ratios of medians) and writes it, with the raw numbers, to --out.

With ``--dual-stack`` every port also has what SLAAC and a router advertisement give it (a
global IPv6 address, its on-link prefix route, a ``proto ra`` default via ``fe80::1``: see
``lab.py``), so the plan also holds the family-6 routes and rules; (a) and (b) make those
with ``ip -6 route``/``ip -6 rule``, one process per change or in the one batch, exactly as
they make the IPv4 ones (the same kernel state is checked after each method, both families).
The cold-start commands, which read nothing, are left out of that run.

Examples::

    .venv/bin/python bench/run.py                      # the full run, about 2 minutes
    .venv/bin/python bench/run.py --sizes 4 --runs 1   # a smoke run
    .venv/bin/python bench/run.py --dual-stack --sizes 256   # dual-stack ports
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from lab import BenchLab  # noqa: E402 - bench/ is not a package: found through sys.path

from docs import machine, replace_results, timed_environment  # noqa: E402 - bench/ is on sys.path
from multihome.plan import Plan  # noqa: E402 - after the sys.path line, like lab

BIN = Path(sys.executable).parent
METHODS = ("a", "b", "c", "d")
TITLES = {
    "a": "(a) one `ip` process per change (the how-to)",
    "b": "(b) `ip -batch` + `sysctl -p` (the floor)",
    "c": "(c) `multihome apply`, whole process",
    "c0": "(c0) `multihome apply` again, nothing to change",
    "d": "(d) `NetlinkBackend.apply` (kernel-change phase)",
}
PYROUTE2_DUMP = (
    "import pyroute2\nipr = pyroute2.IPRoute()\nroutes = list(ipr.get_routes())\nipr.close()"
)


@dataclass
class Sample:
    """The runs of one measurement."""

    seconds: list[float] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def cell(self) -> str:
        low, high = min(self.seconds), max(self.seconds)
        return f"{fmt(self.median)} ({fmt(low)}-{fmt(high)})"

    def to_json(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "rss_kb": self.rss_kb, "median": self.median}


def fmt(seconds: float) -> str:
    if seconds < 0.1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.3f} s"


def child(argv: Sequence[str]) -> tuple[float, int]:
    """Run a process to its end: (wall seconds, its peak RSS in KiB). Raises on failure.

    The peak RSS comes from GNU time (package ``time``) wrapped around the process: a child
    forked straight from this (larger) Python process would report this process's RSS.
    Without GNU time it is 0 (unknown). The wrapper adds the same ~1 ms to every command.
    """
    timer = shutil.which("time", path="/usr/bin:/bin")
    with tempfile.NamedTemporaryFile() as rss_file, tempfile.TemporaryFile() as err:
        full = [timer, "-f", "%M", "-o", rss_file.name, *argv] if timer else list(argv)
        start = time.perf_counter()
        proc = subprocess.run(full, stdout=subprocess.DEVNULL, stderr=err, check=False)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(
                f"{' '.join(argv)}: exit {proc.returncode}: "
                f"{err.read().decode(errors='replace').strip()}"
            )
        text = Path(rss_file.name).read_text().split()
    return seconds, int(text[-1]) if timer and text else 0


def worker(lab: BenchLab, *args: str) -> dict[str, Any]:
    """Run bench/worker.py inside the lab's namespace; its JSON answer."""
    out = subprocess.run(
        lab.exec_args(sys.executable, str(HERE / "worker.py"), "--netns", lab.name, *args),
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"worker {' '.join(args)}: {out.stderr.strip()}")
    answer: dict[str, Any] = json.loads(out.stdout)
    return answer


def multihome_argv(lab: BenchLab, *args: str) -> list[str]:
    return lab.exec_args(str(BIN / "multihome"), "--root", str(lab.root), *args)


@dataclass
class SizeResult:
    n: int
    changes: int
    kinds: dict[str, int]
    ipv6: int
    samples: dict[str, Sample]
    status: Sample
    status_baseline: Sample


def bench_size(  # noqa: PLR0915
    n: int, runs: int, log: Callable[[str], None], *, dual_stack: bool = False
) -> SizeResult:
    with BenchLab(n, dual_stack=dual_stack) as lab:
        log(f"lab {lab.name} ({n} ports)")
        time.sleep(0.2)  # let IPv6 link-local setup settle before the first read
        plan_file = lab.root / "plan.pickle"
        info = worker(lab, "plan", str(plan_file))
        with plan_file.open("rb") as handle:
            plan = pickle.load(handle)
        assert isinstance(plan, Plan)
        initial = lab.fingerprint()
        expected: dict[str, Any] | None = None
        samples = {m: Sample() for m in (*METHODS, "c0")}
        status, baseline = Sample(), Sample()

        def check(label: str, want: dict[str, Any]) -> None:
            got = lab.fingerprint()
            if got != want:
                diff = {
                    k: (len(set(got[k]) - set(want[k])), len(set(want[k]) - set(got[k])))
                    for k in got
                }
                raise RuntimeError(f"N={n} {label}: kernel state differs (extra, missing): {diff}")

        def once(method: str, record: bool) -> None:
            nonlocal expected
            if method == "a":
                seconds = float(worker(lab, "time", "ip-each", str(plan_file))["seconds"])
                rss = 0
            elif method == "b":
                seconds = float(worker(lab, "time", "ip-batch", str(plan_file))["seconds"])
                rss = 0
            elif method == "d":
                seconds = float(worker(lab, "time", "backend", str(plan_file))["seconds"])
                rss = 0
            else:
                seconds, rss = child(multihome_argv(lab, "apply"))
                again, again_rss = child(multihome_argv(lab, "apply"))
                if record:
                    samples["c0"].seconds.append(again)
                    samples["c0"].rss_kb.append(again_rss)
            if expected is None:
                expected = lab.fingerprint()
                if expected == initial and plan.changes:
                    raise RuntimeError(f"N={n}: method {method} changed nothing")
            else:
                check(f"after ({method})", expected)
            if record:
                samples[method].seconds.append(seconds)
                samples[method].rss_kb.append(rss)
            lab.undo(plan.changes)
            check(f"undo of ({method})", initial)

        for method in ("b", "c", "d"):  # warm-up: caches, first-run effects; not recorded
            once(method, record=False)
        for run in range(runs):
            order = METHODS[run % 4 :] + METHODS[: run % 4]
            for method in order:
                once(method, record=True)
            s_sec, s_rss = child(multihome_argv(lab, "status"))
            b_sec, b_rss = child(lab.exec_args(sys.executable, "-c", PYROUTE2_DUMP))
            status.seconds.append(s_sec)
            status.rss_kb.append(s_rss)
            baseline.seconds.append(b_sec)
            baseline.rss_kb.append(b_rss)
            log(
                f"  N={n} run {run + 1}/{runs}: "
                + ", ".join(f"{m} {fmt(samples[m].seconds[-1])}" for m in (*METHODS, "c0"))
            )
        return SizeResult(
            n,
            int(info["changes"]),
            dict(info["kinds"]),
            int(info["ipv6"]),
            samples,
            status,
            baseline,
        )


def cold_start(runs: int) -> dict[str, Sample]:
    """Start-up commands that need no namespace (nothing is read or changed)."""
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import pyroute2'": [sys.executable, "-c", "import pyroute2"],
        "multihome --version": [str(BIN / "multihome"), "--version"],
    }
    found = {name: Sample() for name in commands}
    for argv in commands.values():  # warm-up
        child(argv)
    for run in range(runs):
        names = list(commands)
        names = names[run % 3 :] + names[: run % 3]
        for name in names:
            seconds, rss = child(commands[name])
            found[name].seconds.append(seconds)
            found[name].rss_kb.append(rss)
    return found


def ratio(num: float, den: float) -> str:
    return f"{num / den:.2f}x"


def report(
    sizes: list[SizeResult],
    cold: dict[str, Sample] | None,
    runs: int,
    host: dict[str, str],
    elapsed: float,
    *,
    dual_stack: bool = False,
    compare: tuple[dict[str, Any], str] | None = None,
) -> tuple[str, list[tuple[str, bool]]]:
    """The Markdown report and the targets (text, met). ``cold`` None: no cold-start part."""
    lines = ["## Results, dual-stack ports" if dual_stack else "## Results", ""]
    lines += [f"- {k}: {v}" for k, v in host.items()]
    if dual_stack:
        lines.append(
            "- ports: IPv4 as in the IPv4-only run, plus a global IPv6 address, its on-link "
            "prefix and a `proto ra` default each; changes of family 6 per N: "
            + ", ".join(f"N={size.n} {size.ipv6} of {size.changes}" for size in sizes)
        )
    lines += [
        f"- runs per measurement: {runs} (median, min-max in brackets); whole run {elapsed:.0f} s",
        "",
    ]
    header = "| N | changes | " + " | ".join(TITLES[m] for m in (*METHODS, "c0")) + " |"
    lines += [header, "|" + "---|" * (2 + len(METHODS) + 1)]
    for size in sizes:
        cells = [size.samples[m].cell() for m in (*METHODS, "c0")]
        lines.append(f"| {size.n} | {size.changes} | " + " | ".join(cells) + " |")
    lines += ["", "Ratios of medians (same run):", ""]
    lines += [
        "| N | (a)/(c) | (a)/(d) | (d)/(b) | (c)/(b) | (c0)/(c) | status/"
        "(import pyroute2 + dump) | status | import pyroute2 + dump | "
        "status peak RSS |",
        "|" + "---|" * 10,
    ]
    for size in sizes:
        s = {m: size.samples[m].median for m in (*METHODS, "c0")}
        lines.append(
            f"| {size.n} | {ratio(s['a'], s['c'])} | {ratio(s['a'], s['d'])} | "
            f"{ratio(s['d'], s['b'])} | {ratio(s['c'], s['b'])} | "
            f"{s['c0'] / s['c']:.0%} | {ratio(size.status.median, size.status_baseline.median)}"
            f" | {size.status.cell()} | {size.status_baseline.cell()} | "
            f"{max(size.status.rss_kb) / 1024:.1f} MiB |"
        )
    lines += [
        "",
        "Peak RSS of `multihome apply` (c): "
        + ", ".join(f"N={size.n} {max(size.samples['c'].rss_kb) / 1024:.1f} MiB" for size in sizes),
        "",
    ]
    if compare is not None:
        lines += compare_lines(sizes, *compare)
    if cold is not None:
        lines += cold_lines(cold)
    checks: list[tuple[str, bool]] = []
    big = max(sizes, key=lambda s: s.n)
    m = {k: big.samples[k].median for k in (*METHODS, "c0")}
    checks.append(
        (
            f"(c) at least 20x faster than (a) at N={big.n}: {ratio(m['a'], m['c'])}",
            m["a"] >= 20 * m["c"],
        )
    )
    checks.append(
        (f"(c) within 4x of (b) at N={big.n}: {ratio(m['c'], m['b'])}", m["c"] <= 4 * m["b"])
    )
    checks.append(
        (f"(d) within 2x of (b) at N={big.n}: {ratio(m['d'], m['b'])}", m["d"] <= 2 * m["b"])
    )
    if cold is not None:
        version, base = cold["multihome --version"].median, cold["python -c pass"].median
        checks.append(
            (
                f"`multihome --version` within 2x of `python -c pass`: {ratio(version, base)}",
                version <= 2 * base,
            )
        )
    small = min(sizes, key=lambda s: s.n)
    for size in sorted({small.n: small, big.n: big}.values(), key=lambda s: s.n):
        st, bl = size.status.median, size.status_baseline.median
        checks.append(
            (
                f"`multihome status` within 1.5x of import pyroute2 + one dump at "
                f"N={size.n}: {ratio(st, bl)}",
                st <= 1.5 * bl,
            )
        )
    checks.append(
        (
            f"re-apply with nothing to change under 25% of a full apply at N={big.n}: "
            f"{m['c0'] / m['c']:.0%}",
            m["c0"] < 0.25 * m["c"],
        )
    )
    lines += ["", "Targets:", ""]
    lines += [f"- [{'x' if ok else ' '}] {text}" for text, ok in checks]
    return "\n".join(lines) + "\n", checks


def compare_lines(sizes: list[SizeResult], ipv4: dict[str, Any], source: str) -> list[str]:
    """Each in-run ratio beside the IPv4-only run's (``ipv4``: its results JSON) at the same
    N, and whole `multihome apply` against the IPv4-only one (two runs: indicative only)."""
    theirs = {int(size["n"]): size for size in ipv4.get("sizes", [])}
    lines = [
        f"Against the IPv4-only run at the same N ({source}, commit "
        f"{ipv4.get('machine', {}).get('multihome', 'unknown')}; each ratio is from its own "
        "run; the last column compares two runs, so the load of each moves it):",
        "",
        "| N | changes IPv4 / dual-stack | (a)/(c) IPv4 / dual-stack | (c)/(b) IPv4 / "
        "dual-stack | (c0)/(c) IPv4 / dual-stack | (c) dual-stack / (c) IPv4 |",
        "|---|---|---|---|---|---|",
    ]
    for size in sizes:
        if size.n not in theirs:
            continue
        v4 = {m: float(theirs[size.n]["samples"][m]["median"]) for m in ("a", "b", "c", "c0")}
        ds = {m: size.samples[m].median for m in ("a", "b", "c", "c0")}
        lines.append(
            f"| {size.n} | {theirs[size.n]['changes']} / {size.changes} | "
            f"{ratio(v4['a'], v4['c'])} / {ratio(ds['a'], ds['c'])} | "
            f"{ratio(v4['c'], v4['b'])} / {ratio(ds['c'], ds['b'])} | "
            f"{v4['c0'] / v4['c']:.0%} / {ds['c0'] / ds['c']:.0%} | {ratio(ds['c'], v4['c'])} |"
        )
    return [*lines, ""]


def cold_lines(cold: dict[str, Sample]) -> list[str]:
    """The cold-start table of the report."""
    lines = [
        "Cold start (no namespace needed):",
        "",
        "| command | time | vs `python -c pass` | peak RSS |",
        "|---|---|---|---|",
    ]
    base = cold["python -c pass"].median
    for name, sample in cold.items():
        lines.append(
            f"| `{name}` | {sample.cell()} | {ratio(sample.median, base)} | "
            f"{max(sample.rss_kb) / 1024:.1f} MiB |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="16,64,256", help="comma-separated numbers of ports [default: 16,64,256]"
    )
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement [5]")
    parser.add_argument(
        "--dual-stack",
        action="store_true",
        help="every port also has a global IPv6 address, its prefix and a proto ra default "
        "(lab.py); no cold-start part; the docs section is the dual-stack one",
    )
    parser.add_argument(
        "--compare",
        type=Path,
        help="an IPv4-only run's results (bench/results/apply.json): its ratios beside these",
    )
    parser.add_argument(
        "--docs",
        type=Path,
        help="also regenerate the results section of this Markdown file (docs/benchmarks.md)",
    )
    parser.add_argument(
        "--json", type=Path, help="also write the raw results here (bench/results/apply.json)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "bench" / "out",
        help="directory for report.md and results.json [bench/out]",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench: needs root (it creates network namespaces)", file=sys.stderr)
        return 2
    if shutil.which("ip") is None or not (BIN / "multihome").exists():
        print(f"bench: needs iproute2 and {BIN / 'multihome'} (make venv)", file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(",") if s]
    timed_environment()

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = time.perf_counter()
    results = []
    for n in sizes:
        kind = " dual-stack" if args.dual_stack else ""
        log(f"N={n}: building{kind} namespaces and timing (a) (b) (c) (d) x {args.runs}")
        results.append(bench_size(n, args.runs, log, dual_stack=args.dual_stack))
    cold = None
    if not args.dual_stack:
        log("cold start")
        cold = cold_start(max(args.runs, 5) * 2)
    host = machine()
    text, checks = report(
        results,
        cold,
        args.runs,
        host,
        time.perf_counter() - started,
        dual_stack=args.dual_stack,
        compare=(
            (json.loads(args.compare.read_text()), str(args.compare))
            if args.compare and args.compare.exists()
            else None
        ),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text(text)
    raw = {
        "machine": host,
        "dual_stack": args.dual_stack,
        "sizes": [
            {
                "n": r.n,
                "changes": r.changes,
                "kinds": r.kinds,
                "ipv6_changes": r.ipv6,
                "samples": {k: v.to_json() for k, v in r.samples.items()},
                "status": r.status.to_json(),
                "status_baseline": r.status_baseline.to_json(),
            }
            for r in results
        ],
        "cold_start": {k: v.to_json() for k, v in cold.items()} if cold else {},
        "targets": [{"target": t, "met": ok} for t, ok in checks],
    }
    (args.out / "results.json").write_text(json.dumps(raw, indent=2) + "\n")
    if args.json:
        args.json.write_text(json.dumps(raw, indent=2) + "\n")
    if args.docs:
        script = "bench/run.py --dual-stack" if args.dual_stack else "bench/run.py"
        replace_results(args.docs, script, text)
    print(text)
    log(f"written: {args.out / 'report.md'}, {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
