"""A no-op `multihome apply` trusts the fingerprint the last apply recorded, and any change to
the kernel state, the name files or the configuration makes it do the full read again.
Checked with `ip -j` and the command's own output in a bench lab's namespaces."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from bench_util import HERE, inside
from lab import BenchLab, run

pytestmark = pytest.mark.netns
MULTIHOME = str(Path(sys.executable).parent / "multihome")
NO_CHANGES = "no changes: the kernel already matches the policy"


def apply(lab: BenchLab, *args: str) -> str:
    proc = subprocess.run(
        lab.exec_args(MULTIHOME, "--root", str(lab.root), *args, "apply"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def settled(lab: BenchLab) -> BenchLab:
    """IPv6 link-local addresses and their routes appear for a moment after the links come
    up (DAD); an apply made meanwhile sees them arrive and records no fingerprint."""
    time.sleep(2.5)
    return lab


def test_a_recorded_fingerprint_is_what_a_no_op_apply_trusts(lab: BenchLab) -> None:
    """White box: a fingerprint claiming that the unconfigured namespace is in sync makes
    `apply` report no changes without reading the state (so the fast path is taken); a real
    apply then replaces the claim, and the next apply again has nothing to do."""
    settled(lab)
    before = lab.fingerprint()
    inside(lab, HERE / "inside.py", "claim", str(lab.root))
    assert apply(lab).strip() == NO_CHANGES
    assert lab.fingerprint() == before
    run(["ip", "-n", lab.name, "route", "add", "192.0.2.0/24", "dev", "p0"])  # any change
    assert "applied" in apply(lab)
    assert apply(lab).strip() == NO_CHANGES


def _route_in_main(lab: BenchLab) -> None:
    run(["ip", "-n", lab.name, "route", "add", "default", "via", "10.0.3.1", "dev", "p3",
         "proto", "dhcp", "metric", "50"])  # fmt: skip


def _sysctl(lab: BenchLab) -> None:
    lab.write_sysctls({"net.ipv4.conf.p2.rp_filter": "0"})


def _owned_rule(lab: BenchLab) -> None:
    run(["ip", "-n", lab.name, "rule", "del", "from", "10.0.1.10", "protocol", "222"])


def _name_file(lab: BenchLab) -> None:
    (lab.root / "etc/iproute2/rt_tables.d/multihome.conf").unlink()


def _config(lab: BenchLab) -> None:
    path = lab.root / "etc/multihome/config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("interfaces:\n  exclude: [p7]\n")


@pytest.mark.parametrize(
    "change",
    [_route_in_main, _sysctl, _owned_rule, _name_file, _config],
    ids=["default-in-main", "sysctl", "owned-rule-deleted", "name-file-deleted", "config"],
)
def test_any_change_after_an_apply_is_repaired_by_the_next(
    lab: BenchLab, change: Callable[[BenchLab], None]
) -> None:
    """After an apply (which records the fingerprint) and a no-op, a change made by someone
    else (a route, a sysctl, an owned rule, the table names file, the configuration) makes
    the next apply change things again; the one after it has nothing to do."""
    settled(lab)
    assert "applied" in apply(lab)
    assert apply(lab).strip() == NO_CHANGES
    change(lab)
    out = apply(lab)
    if change is not _name_file:  # a file written back is not a kernel change
        assert "applied" in out, out
    assert (lab.root / "etc/iproute2/rt_tables.d/multihome.conf").exists()
    assert apply(lab).strip() == NO_CHANGES
