"""Test helpers that run INSIDE a bench namespace (``ip netns exec``), guarded like the
benchmark's worker: they refuse to run anywhere but in the namespace named by --netns.

``parity``  the struct-based reader and the pyroute2 reference reader see the same state
``desired`` apply the plan; the policy's interfaces and primary are the same before and after
``claim ROOT`` record the current state's fingerprint under ROOT as if an apply had left it
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pyroute2_reader import read_with_pyroute2
from worker import require_namespace

from multihome.backend.netlink import NetlinkBackend
from multihome.config import Config
from multihome.plan import make_plan
from multihome.policy import compute_policy


def parity() -> dict[str, Any]:
    """Compare the two readers; IPv6 link-local routes appear a moment after a link comes
    up, so a difference is read again (up to 20 times, 0.25 s apart) before it counts."""
    for _ in range(20):
        backend = NetlinkBackend()
        try:
            mine = backend.read()
        finally:
            backend.close()
        reference = read_with_pyroute2()
        if mine == reference:
            break
        time.sleep(0.25)
    answer: dict[str, Any] = {}
    for name in ("links", "addresses", "routes", "rules"):
        a, b = set(getattr(mine, name)), set(getattr(reference, name))
        answer[name] = {
            "count": len(a),
            "only_mine": sorted(map(repr, a - b))[:5],
            "only_pyroute2": sorted(map(repr, b - a))[:5],
        }
    answer["sysctls_equal"] = dict(mine.sysctls) == dict(reference.sysctls)
    return answer


def desired() -> dict[str, Any]:
    backend = NetlinkBackend()
    try:
        before = compute_policy(backend.read(), Config())
        state = backend.read()
        applied = backend.apply(make_plan(state, before, Config()).changes)
        after_state = backend.read()
        after = compute_policy(after_state, Config())
        left = make_plan(after_state, after, Config())
    finally:
        backend.close()
    return {
        "applied": applied,
        "interfaces_equal": before.interfaces == after.interfaces,
        "primary_equal": before.primary == after.primary,
        "managed": len(before.interfaces),
        "left": len(left.changes),
    }


def claim(root: Path) -> dict[str, Any]:
    """Write the fingerprint file that an apply would write, for the state as it is now."""
    from multihome.source.portfacts import host_reader
    from multihome.transaction.fingerprint import config_source, inputs
    from multihome.transaction.statedir import FINGERPRINT, StateDir

    backend = NetlinkBackend()
    try:
        digest = backend.fingerprint().digest
    finally:
        backend.close()
    facts = host_reader(root).signature()
    StateDir.current(root).write_json(
        FINGERPRINT, {"kernel": digest, "inputs": inputs(config_source(None, root), root, facts)}
    )
    return {"kernel": digest}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--netns", required=True)
    parser.add_argument("command", choices=["parity", "desired", "claim"])
    parser.add_argument("root", nargs="?", type=Path)
    args = parser.parse_args()
    require_namespace(args.netns)
    if args.command == "claim":
        print(json.dumps(claim(args.root)))
        return
    print(json.dumps(parity() if args.command == "parity" else desired()))


if __name__ == "__main__":
    main()
