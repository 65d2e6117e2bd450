"""Multipath routes through the rtnetlink codec against the real kernel, checked with `ip -j`.

What the kernel does with equal-metric routes (kernel 6.18, measured here): IPv6 gateway
routes of one metric added by userspace with ``NLM_F_APPEND`` (``ip -6 route append``, as
systemd-networkd's and NetworkManager's own RA clients add their defaults) become siblings of
one multipath route; without it (``NLM_F_EXCL``) the second one is refused with "File
exists", and ``replace`` takes the first one's place. The kernel's own RA routes
(``accept_ra``) carry ``RTF_ADDRCONF`` and are never merged (``rt6_qualify_for_ecmp``): two
ports' RA defaults stay two routes (tests/netns/test_ipv6_netns.py). Deleting one sibling by
its gateway and device leaves the other as a single-path route; an IPv4 multipath route is
one fib entry (a delete naming the first next hop removes all of it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from netns_util import HowtoVM, multihome, sh

READ = """
import json
from multihome.backend.netlink import NetlinkBackend
state = NetlinkBackend().read()
print(json.dumps([r.to_json() for r in state.routes if r.table == 254 and r.dst.prefixlen == 0]))
"""

#: Removes what it read (every multipath default), then adds it back, through the codec.
ROUND_TRIP = """
import json
from multihome.backend.netlink import NetlinkBackend
from multihome.plan import Change
backend = NetlinkBackend()
paths = [r for r in backend.read().routes if r.multipath]
backend.apply([Change("remove", r) for r in paths])
gone = [r.to_json() for r in backend.read().routes if r.multipath]
backend.apply([Change("add", r) for r in paths])
back = sorted(r.key for r in backend.read().routes if r.multipath)
print(json.dumps({"gone": gone, "same": back == sorted(r.key for r in paths), "n": len(paths)}))
"""


def _python(ns: str, script: str) -> Any:
    return json.loads(sh("ip", "netns", "exec", ns, sys.executable, "-c", script).stdout)


def _defaults(ns: str, family: str) -> list[dict[str, Any]]:
    routes: list[dict[str, Any]] = json.loads(
        sh("ip", "-n", ns, "-j", family, "route", "show", "default").stdout
    )
    return routes


def test_equal_metric_ipv6_defaults_merge_and_the_codec_reads_and_writes_them(
    vm: HowtoVM,
) -> None:
    """Two appended IPv6 defaults of one metric are one multipath route (as `ip -j` shows);
    the backend reads it with both next hops and their weights (no device nor gateway of
    its own), removes it and adds it back exactly; an IPv4 multipath default with weights
    too. Deleting one IPv6 sibling leaves a single-path route through the other."""
    ns = vm.ns
    sh("ip", "-n", ns, "-6", "route", "append", "default", "via", "fe80::1", "dev", "eth0",
       "proto", "ra", "metric", "1024")  # fmt: skip
    refused = sh("ip", "-n", ns, "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth1",
                 "proto", "ra", "metric", "1024", check=False)  # fmt: skip
    assert refused.returncode != 0 and "File exists" in refused.stderr
    sh("ip", "-n", ns, "-6", "route", "append", "default", "via", "fe80::1", "dev", "eth1",
       "proto", "ra", "metric", "1024")  # fmt: skip
    kernel6 = _defaults(ns, "-6")
    assert len(kernel6) == 1 and [h["dev"] for h in kernel6[0]["nexthops"]] == ["eth0", "eth1"]
    sh("ip", "-n", ns, "route", "del", "default")
    sh("ip", "-n", ns, "route", "add", "default", "metric", "100",
       "nexthop", "via", "192.168.0.1", "dev", "eth0",
       "nexthop", "via", "192.168.0.1", "dev", "eth1", "weight", "3")  # fmt: skip

    read = {(r["dst"], r["metric"]): r for r in _python(ns, READ)}
    six = read[("::/0", 1024)]
    assert six["dev"] is None and six["gateway"] is None and six["proto"] == 9
    assert six["nexthops"] == [
        {"gateway": "fe80::1", "dev": "eth0", "weight": 1},
        {"gateway": "fe80::1", "dev": "eth1", "weight": 1},
    ]
    four = read[("0.0.0.0/0", 100)]
    assert four["nexthops"] == [
        {"gateway": "192.168.0.1", "dev": "eth0", "weight": 1},
        {"gateway": "192.168.0.1", "dev": "eth1", "weight": 3},
    ]

    done = _python(ns, ROUND_TRIP)
    assert done == {"gone": [], "same": True, "n": 2}, done
    again = _defaults(ns, "-4")
    assert [(h["dev"], h["weight"]) for h in again[0]["nexthops"]] == [("eth0", 1), ("eth1", 3)]

    sh("ip", "-n", ns, "-6", "route", "del", "default", "via", "fe80::1", "dev", "eth1",
       "metric", "1024")  # fmt: skip
    left = _defaults(ns, "-6")
    assert len(left) == 1 and left[0]["dev"] == "eth0" and "nexthops" not in left[0], left
    single = [r for r in _python(ns, READ) if r["dst"] == "::/0"]
    assert single[0]["dev"] == "eth0" and "nexthops" not in single[0], single


def _table_defaults6(ns: str) -> dict[str, list[str]]:
    """Per port, the devices of the IPv6 defaults in the table its family-6 ``oif`` rule
    (multihome's) names."""
    rules = json.loads(sh("ip", "-n", ns, "-6", "-j", "rule").stdout)
    tables = {
        r["oif"]: str(r["table"]) for r in rules if r.get("oif") and r.get("protocol") == "222"
    }
    found = {}
    for port, table in sorted(tables.items()):
        routes = json.loads(sh("ip", "-n", ns, "-6", "-j", "route", "show", "table", table).stdout)
        found[port] = [str(r.get("dev")) for r in routes if r["dst"] == "default"]
    return found


def _wait(check: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_the_agent_follows_a_next_hop_leaving_and_joining(vm: HowtoVM, tmp_path: Path) -> None:
    """`multihome agent` on the real kernel while networkd's RA client acts (its netlink
    requests replayed with `ip`: each port's RA default appended at one metric, a router
    with lifetime 0 deleting its sibling): each port's table gets its own path, a sibling
    deleted takes only its port's table default (main keeps a single path through the
    other port), appended again it comes back; main's route is never touched."""
    ns = vm.ns
    for i, port in enumerate(("eth0", "eth1")):
        sh("ip", "-n", ns, "addr", "add", f"2001:db8:1::{10 + i}/64", "dev", port, "nodad")
    sibling = ["default", "via", "fe80::1", "dev", "eth1", "proto", "ra", "metric", "1024"]
    for port in ("eth0", "eth1"):
        sh("ip", "-n", ns, "-6", "route", "append", *sibling[:4], port, *sibling[5:])
    log = (tmp_path / "agent.log").open("w")
    agent = subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "multihome", "--root", str(vm.root),
         "agent", "--source", "kernel", "--no-address"],
        stdout=log, stderr=log,
        env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src")),
    )  # fmt: skip
    try:
        both = {"eth0": ["eth0"], "eth1": ["eth1"]}
        _wait(lambda: _table_defaults6(ns) == both, "both tables' IPv6 defaults")
        sh("ip", "-n", ns, "-6", "route", "del", *sibling)  # eth1's router: lifetime 0
        _wait(lambda: _table_defaults6(ns) == {"eth0": ["eth0"], "eth1": []}, "eth1's to go")
        main = _defaults(ns, "-6")
        assert [(r.get("dev"), r.get("nexthops")) for r in main] == [("eth0", None)], main
        sh("ip", "-n", ns, "-6", "route", "append", *sibling)
        _wait(lambda: _table_defaults6(ns) == both, "eth1's to come back")
        assert [h["dev"] for h in _defaults(ns, "-6")[0]["nexthops"]] == ["eth0", "eth1"]
        assert agent.poll() is None, (tmp_path / "agent.log").read_text()
    finally:
        agent.terminate()
        agent.wait(10)
        log.close()


def test_apply_with_an_ipv4_multipath_default_and_reset(vm: HowtoVM) -> None:
    """The how-to's VM with an admin's IPv4 multipath default instead of the two DHCP
    defaults: apply gives each port's table the path through its own next hop, leaves
    main's multipath default as it was (it belongs to no single port), every address's
    lookup leaves its own port; reset leaves main's default as it was too."""
    ns = vm.ns
    for port in ("eth0", "eth1"):
        sh("ip", "-n", ns, "route", "del", "default", "dev", port)
    sh("ip", "-n", ns, "route", "add", "default", "proto", "static",
       "nexthop", "via", "192.168.0.1", "dev", "eth0",
       "nexthop", "via", "192.168.0.1", "dev", "eth1", "weight", "2")  # fmt: skip
    before = _defaults(ns, "-4")
    done = multihome(ns, "apply", root=vm.root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _defaults(ns, "-4") == before
    rules = json.loads(sh("ip", "-n", ns, "-4", "-j", "rule").stdout)
    tables = {
        r["oif"]: str(r["table"]) for r in rules if r.get("oif") and r.get("protocol") == "222"
    }
    for port, table in tables.items():
        routes = json.loads(sh("ip", "-n", ns, "-j", "route", "show", "table", table).stdout)
        assert [(r.get("gateway"), r.get("dev")) for r in routes if r["dst"] == "default"] == [
            ("192.168.0.1", port)
        ]
    for port, addr in (("eth0", "192.168.0.107"), ("eth1", "192.168.0.112")):
        got = json.loads(sh("ip", "-n", ns, "-j", "route", "get", "198.51.100.10", "from",
                            addr).stdout)[0]  # fmt: skip
        assert got["dev"] == port, got
    again = multihome(ns, "apply", "--detailed-exit-codes", root=vm.root)
    assert again.returncode == 0, again.stdout + again.stderr
    reset = multihome(ns, "reset", root=vm.root)
    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert _defaults(ns, "-4") == before
