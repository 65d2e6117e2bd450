"""The dual-stack benchmark (``bench/run.py --dual-stack``): its lab gives every port what SLAAC
and a router advertisement give it, the baselines make multihome's family-6 changes by hand
(``ip -6`` per change, ``ip -6 -batch``) with the same resulting kernel state, and the harness
runs end to end and reports them. No timing assertions: the machine is shared."""

from __future__ import annotations

import ipaddress
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bench_util import BENCH, inside
from lab import ROUTER6, BenchLab, batch_lines, port_net6

from multihome.model import Route, Rule
from multihome.plan import Change, Plan

WORKER = BENCH / "worker.py"
PORTS = 3


@pytest.fixture(scope="module")
def ds_lab() -> Iterator[BenchLab]:
    """Three dual-stack ports p0..p2, in namespaces mhbench-ds-<hex>-3 (and -sw)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    with BenchLab(PORTS, dual_stack=True) as made:
        yield made


def ip6_json(lab: BenchLab, *args: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["ip", "-n", lab.name, "-j", "-6", *args], capture_output=True, text=True, check=True
    ).stdout
    found: list[dict[str, Any]] = json.loads(out or "[]")
    return found


def test_every_port_has_a_global_address_its_prefix_and_an_ra_default(ds_lab: BenchLab) -> None:
    """Port i: 2001:db8:0:i::10/64 usable at once (not tentative), its /64 (proto kernel,
    metric 256, expiring) and a default via fe80::1 (proto ra, metric 1024+i, expiring)."""
    routes = ip6_json(ds_lab, "route", "show", "table", "main")
    for i in range(PORTS):
        dev = f"p{i}"
        iface = ipaddress.IPv6Interface(port_net6(i))
        (info,) = ip6_json(ds_lab, "address", "show", "dev", dev)
        (addr,) = [a for a in info["addr_info"] if a["scope"] == "global"]
        assert addr["local"] == str(iface.ip)
        assert not addr.get("tentative")
        (prefix,) = [r for r in routes if r["dst"] == str(iface.network)]
        assert (prefix["dev"], prefix["protocol"], prefix["metric"]) == (dev, "kernel", 256)
        assert prefix["expires"] > 0
        (default,) = [r for r in routes if r["dst"] == "default" and r["dev"] == dev]
        assert (default["gateway"], default["protocol"]) == (ROUTER6, "ra")
        assert default["metric"] == 1024 + i
        assert default["expires"] > 0


def test_fingerprint_leaves_out_the_lifetimes_that_count_down(ds_lab: BenchLab) -> None:
    """`ip -j` shows the RA routes' remaining lifetime; the fingerprint (compared between the
    methods, seconds apart) does not, but keeps the routes themselves."""
    routes = [json.loads(r) for r in ds_lab.fingerprint()["routes"]]
    ra = [r for r in routes if r.get("protocol") == "ra"]
    assert len(ra) == PORTS
    assert not [r for r in routes if "expires" in r]


def test_the_plan_holds_family_6_changes_that_ip_6_batch_makes_as_one_ip_each(
    ds_lab: BenchLab,
) -> None:
    """multihome's plan for the dual-stack ports has 6N+1 family-6 changes (two copies, four
    rules per port, one suppress rule); `ip -batch` + `ip -6 -batch` (b) and one `ip` per
    change (a) leave the same rules and routes of both families, and undoing restores the
    start."""
    path = ds_lab.root / "plan.pickle"
    info = inside(ds_lab, WORKER, "plan", str(path))
    with path.open("rb") as handle:
        plan = pickle.load(handle)
    assert isinstance(plan, Plan)
    assert info["ipv6"] == 6 * PORTS + 1
    before = ds_lab.fingerprint()
    states = []
    for method in ("ip-batch", "ip-each"):
        answer = inside(ds_lab, WORKER, "time", method, str(path))
        if method == "ip-batch":
            assert answer["processes"] == 3  # sysctl -p, ip -batch, ip -6 -batch
        states.append(ds_lab.fingerprint())
        ds_lab.undo(plan.changes)
        assert ds_lab.fingerprint() == before
    assert states[0] == states[1] != before
    rules6 = [json.loads(r) for r in states[0]["rules"]]
    for i in range(PORTS):
        src = str(ipaddress.IPv6Interface(port_net6(i)).ip)
        assert any(r.get("src") == src for r in rules6), src


def test_batch_lines_put_family_6_in_its_own_batch_without_the_option() -> None:
    """A batch line takes no `-6`: family-6 changes go to the `ip -6 -batch` lines, in order."""
    v6 = Route(
        table=1000,
        dst=ipaddress.ip_network("::/0"),
        ifname="p0",
        gateway=ipaddress.ip_address("fe80::1"),
        proto=222,
        metric=1024,
    )
    v4 = Rule(family=4, priority=1000, table=1000, proto=222)
    v6_rule = Rule(family=6, priority=1001, table=254, proto=222)
    lines = batch_lines([Change("add", v6), Change("add", v4), Change("del", v6_rule)])
    assert lines[4] == [
        "rule add priority 1000 from all lookup 1000 protocol 222",
    ]
    assert lines[6][0].startswith("route add default via fe80::1 dev p0 table 1000 proto 222")
    assert lines[6][1] == "rule del priority 1001 from all lookup main protocol 222"


def test_harness_runs_dual_stack_at_tiny_n_with_the_ipv4_run_beside_it(tmp_path: Path) -> None:
    """`bench/run.py --dual-stack --sizes 2 --runs 1 --compare FILE` exits 0 (it fails when a
    method leaves another kernel state), reports the family-6 changes, this run's ratios and
    the IPv4-only run's beside them, and no cold-start part."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    samples = {m: {"median": 1.0} for m in ("a", "b", "c", "c0")}
    ipv4 = {
        "machine": {"multihome": "abc1234"},
        "sizes": [{"n": 2, "changes": 22, "samples": samples}],
    }
    compare = tmp_path / "ipv4.json"
    compare.write_text(json.dumps(ipv4))
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run.py"),
            "--dual-stack",
            "--sizes",
            "2",
            "--runs",
            "1",
            "--compare",
            str(compare),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["dual_stack"] is True
    assert results["cold_start"] == {}
    (size,) = results["sizes"]
    assert size["ipv6_changes"] == 13  # 6N+1: two copies, a throw, three rules per port, suppress
    assert size["changes"] > 13 + 2 * 4  # and the IPv4 plan: 4 sysctls per port, routes, rules
    assert len(results["targets"]) == 5  # no `--version` target without the cold start
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("## Results, dual-stack ports")
    assert f"| 2 | 22 / {size['changes']} | 1.00x / " in report
    assert "commit abc1234" in report
    assert "Cold start" not in report
