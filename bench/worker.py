"""The part of the benchmark that runs INSIDE the bench namespace (``ip netns exec NS``).

It refuses to run anywhere but in the namespace named by ``--netns`` (checked against
``/run/netns/NAME``), so that nothing here can ever change the host's own network.
Subcommands (all print one JSON document):

``plan PLAN``            compute multihome's plan for the namespace, pickle it to PLAN
``time METHOD PLAN ...`` make the plan's changes one way, return the seconds it took:
                         ``ip-each`` (one ``ip``/``sysctl`` process per change, the how-to's
                         way), ``ip-batch`` (``ip -batch`` + ``sysctl -p``), ``backend``
                         (``NetlinkBackend.apply`` in this process: the kernel-change phase),
                         ``backend-each`` (``NetlinkBackend.apply`` one change at a time)
``inject PLAN K``        apply the plan with a failing change inserted before change K; report
                         what ``ChangeFailed`` said
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lab import batch_lines, ip_words, split_changes, sysctl_line

from multihome.backend import ChangeFailed
from multihome.backend.netlink import NetlinkBackend
from multihome.config import Config
from multihome.engine import assess
from multihome.model import Route, Rule, Sysctl
from multihome.plan import Change, Plan


def require_namespace(name: str) -> None:
    """Exit unless this process runs in the named namespace (``/run/netns/NAME``) that the
    harness created: nothing here may ever change the host's own network."""
    try:
        wanted = os.stat(f"/run/netns/{name}").st_ino
        mine = os.stat("/proc/self/ns/net").st_ino
    except OSError as exc:
        sys.exit(f"worker: cannot check the network namespace ({exc}); refusing to run")
    if wanted != mine:
        sys.exit(f"worker: not running in namespace {name}; refusing to run")


def load(path: str) -> Plan:
    with open(path, "rb") as handle:
        plan = pickle.load(handle)  # written by this harness, see cmd_plan
    assert isinstance(plan, Plan)
    return plan


def cmd_plan(args: argparse.Namespace) -> dict[str, Any]:
    backend = NetlinkBackend()
    try:
        assessment = assess(backend, Config())
    finally:
        backend.close()
    with open(args.plan, "wb") as handle:
        pickle.dump(assessment.plan, handle)
    kinds: dict[str, int] = {}
    ipv6 = 0
    for change in assessment.plan.changes:
        key = f"{change.action} {change.kind}"
        kinds[key] = kinds.get(key, 0) + 1
        ipv6 += isinstance(change.obj, (Route, Rule)) and change.obj.family == 6
    return {"changes": len(assessment.plan.changes), "kinds": kinds, "ipv6": ipv6}


def _run(argv: list[str], stdin: str | None = None) -> None:
    subprocess.run(argv, input=stdin, text=True, check=True, stdout=subprocess.DEVNULL)


def cmd_time(args: argparse.Namespace) -> dict[str, Any]:
    plan = load(args.plan)
    sysctls, netlink = split_changes(plan.changes)
    method = args.method
    if method == "ip-each":
        argvs = [
            ["sysctl", "-q", "-w", f"{c.obj.name}={c.obj.value}"]
            if isinstance(c.obj, Sysctl)
            else ["ip", *ip_words(c)]
            for c in plan.changes
        ]
        start = time.perf_counter()
        for argv in argvs:
            _run(argv)
        return {"seconds": time.perf_counter() - start, "processes": len(argvs)}
    if method == "ip-batch":
        lines = batch_lines(netlink)
        sysctl_text = "".join(
            sysctl_line(c.obj) + "\n" for c in sysctls if isinstance(c.obj, Sysctl)
        )
        with (
            tempfile.NamedTemporaryFile("w", suffix=".batch") as batch4,
            tempfile.NamedTemporaryFile("w", suffix=".batch6") as batch6,
        ):
            batch4.write("".join(line + "\n" for line in lines[4]))
            batch4.flush()
            batch6.write("".join(line + "\n" for line in lines[6]))
            batch6.flush()
            # one `ip -batch` per family (a batch line takes no -6), as a person would do it
            argvs = [["ip", "-batch", batch4.name]] if lines[4] else []
            argvs += [["ip", "-6", "-batch", batch6.name]] if lines[6] else []
            start = time.perf_counter()
            if sysctl_text:
                _run(["sysctl", "-q", "-p", "-"], sysctl_text)
            for argv in argvs:
                _run(argv)
            return {
                "seconds": time.perf_counter() - start,
                "processes": len(argvs) + bool(sysctl_text),
            }
    if method in ("backend", "backend-each"):
        backend = NetlinkBackend()
        try:
            backend.read()  # as in `multihome apply`: the state was read before the changes
            start = time.perf_counter()
            if method == "backend":
                done = backend.apply(plan.changes)
            else:
                done = sum(backend.apply([change]) for change in plan.changes)
            seconds = time.perf_counter() - start
        finally:
            backend.close()
        return {"seconds": seconds, "done": done}
    raise SystemExit(f"unknown method {method}")


def cmd_inject(args: argparse.Namespace) -> dict[str, Any]:
    """Insert, before change K, a rule that already exists in the kernel (EEXIST)."""
    plan = load(args.plan)
    changes = list(plan.changes)
    existing = Rule(family=4, priority=0, table=255, proto=2)  # the kernel's `0: lookup local`
    bad = Change("add", existing)
    changes.insert(args.k, bad)
    backend = NetlinkBackend()
    try:
        backend.read()
        backend.apply(changes)
    except ChangeFailed as failure:
        return {
            "failed": True,
            "is_injected": failure.change is bad,
            "done": failure.done,
            "reason": failure.reason,
        }
    finally:
        backend.close()
    return {"failed": False}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--netns", required=True, help="the namespace this must run in")
    sub = parser.add_subparsers(dest="command", required=True)
    p_plan = sub.add_parser("plan")
    p_plan.add_argument("plan")
    p_time = sub.add_parser("time")
    p_time.add_argument("method", choices=["ip-each", "ip-batch", "backend", "backend-each"])
    p_time.add_argument("plan")
    p_inject = sub.add_parser("inject")
    p_inject.add_argument("plan")
    p_inject.add_argument("k", type=int)
    args = parser.parse_args()
    require_namespace(args.netns)
    handlers = {"plan": cmd_plan, "time": cmd_time, "inject": cmd_inject}
    print(json.dumps(handlers[args.command](args)))


if __name__ == "__main__":
    main()
