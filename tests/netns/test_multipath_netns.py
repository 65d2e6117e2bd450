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
import sys
from typing import Any

from netns_util import HowtoVM, sh

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
