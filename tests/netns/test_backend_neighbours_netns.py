"""The kernel backend's neighbour read and route replace, and the DHCP hook built on them,
against the real kernel: a veth pair between two fresh namespaces, the neighbour table filled
by real ARP/ND (ping) and checked with `ip -j neigh`, routes and addresses with `ip -j`."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from netns_util import namespaces, sh, unique

#: ``ip -j neigh``'s state names as the kernel's NUD_* bits.
NUD = {
    "INCOMPLETE": 0x01,
    "REACHABLE": 0x02,
    "STALE": 0x04,
    "DELAY": 0x08,
    "PROBE": 0x10,
    "FAILED": 0x20,
    "NOARP": 0x40,
    "PERMANENT": 0x80,
}

NEIGHBOURS = """
import errno, ipaddress, json, sys
from multihome.backend.netlink import NetlinkBackend
from multihome.safety.checks import neighbour_problem

ip = ipaddress.ip_address
backend = NetlinkBackend()
done = {name: backend.neighbour_state("va", ip(address)) for name, address in (
    ("peer4", "10.77.0.2"), ("peer6", "fd00:77::2"), ("pinned", "10.77.0.50"),
    ("unknown", "10.77.0.9"))}
done["other_link"] = backend.neighbour_state("lo", ip("10.77.0.2"))
try:
    backend.neighbour_state("nosuch0", ip("10.77.0.2"))
except OSError as exc:
    done["missing"] = exc.errno
done["resolves"] = neighbour_problem(backend, ip("10.77.0.3"), "va")
done["resolved"] = backend.neighbour_state("va", ip("10.77.0.3"))
done["silent"] = neighbour_problem(backend, ip("10.77.0.9"), "va", timeout=1.5)
print(json.dumps(done))
"""

ROUTES = """
import ipaddress, json
from multihome.backend.netlink import NetlinkBackend
from multihome.model import PROTO_DHCP, SCOPE_LINK, Route

ip, net = ipaddress.ip_address, ipaddress.ip_network
backend = NetlinkBackend()
first = Route(254, net("10.88.0.0/16"), "va", ip("10.77.0.2"), 1005, PROTO_DHCP,
              prefsrc=ip("10.77.0.1"))
backend.replace_route(first)
backend.replace_route(Route(254, net("10.88.0.0/16"), "va", ip("10.77.0.3"), 1005, PROTO_DHCP,
                            prefsrc=ip("10.77.0.1")))
backend.replace_route(Route(254, net("10.77.0.0/24"), "va", None, 1005, PROTO_DHCP,
                            scope=SCOPE_LINK, prefsrc=ip("10.77.0.1")))
done = {"index": backend.link_index("va"), "gone": backend.link_index("nosuch0")}
try:
    backend.replace_route(Route(254, net("10.99.0.0/16"), "nosuch0", metric=5))
except OSError as exc:
    done["missing"] = exc.errno
print(json.dumps(done))
"""


@pytest.fixture
def pair() -> Iterator[tuple[str, str]]:
    """Namespaces A (``va`` 10.77.0.1/24, fd00:77::1/64) and B (``vb`` 10.77.0.2 and .3,
    fd00:77::2), joined by a veth pair; deleted by name afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    a, b = unique("mhneigh"), unique("mhneigh")
    with namespaces(a, b):
        sh("ip", "link", "add", "va", "netns", a, "type", "veth", "peer", "vb", "netns", b)
        for ns, dev, last in ((a, "va", (1,)), (b, "vb", (2, 3))):
            for n in last:
                sh("ip", "-n", ns, "addr", "add", f"10.77.0.{n}/24", "dev", dev)
            sh("ip", "-n", ns, "addr", "add", f"fd00:77::{last[0]}/64", "dev", dev, "nodad")
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield a, b


def _in(ns: str, script: str) -> dict[str, object]:
    out = sh("ip", "netns", "exec", ns, sys.executable, "-c", script).stdout
    result: dict[str, object] = json.loads(out)
    return result


def _ip_states(ns: str) -> dict[str, int]:
    entries = json.loads(sh("ip", "-n", ns, "-j", "neigh", "show", "dev", "va").stdout)
    return {e["dst"]: sum(NUD[s] for s in e.get("state", [])) for e in entries}


def test_neighbour_state_reads_what_arp_and_nd_left(pair: tuple[str, str]) -> None:
    """After a ping over IPv4 and IPv6, ``neighbour_state`` gives the peer's NUD state exactly
    as `ip -j neigh` shows it (an answered state), a permanent entry as PERMANENT, None for an
    address without an entry or on another link, ENODEV for a missing link; the post-apply
    check on top resolves a fresh next hop itself and names a silent one."""
    a, _ = pair
    # -w: keep asking once a second until the first answer (a veth pair's carrier and the
    # IPv6 stack of a just-raised link can take a moment under load); -c 1 stops there.
    sh("ip", "netns", "exec", a, "ping", "-c", "1", "-w", "10", "10.77.0.2")
    sh("ip", "netns", "exec", a, "ping", "-6", "-c", "1", "-w", "10", "fd00:77::2")
    sh("ip", "-n", a, "neigh", "add", "10.77.0.50", "lladdr", "02:00:00:00:00:50", "dev", "va")
    done = _in(a, NEIGHBOURS)
    seen = _ip_states(a)
    assert done["peer4"] == seen["10.77.0.2"] and done["peer6"] == seen["fd00:77::2"], seen
    answered = 0x02 | 0x04 | 0x08 | 0x10
    assert isinstance(done["peer4"], int) and done["peer4"] & answered, done
    assert isinstance(done["peer6"], int) and done["peer6"] & answered, done
    assert done["pinned"] == NUD["PERMANENT"] == seen["10.77.0.50"]
    assert done["unknown"] is None and done["other_link"] is None
    assert done["missing"] == 19
    assert done["resolves"] is None
    assert isinstance(done["resolved"], int) and done["resolved"] & answered
    assert seen["10.77.0.3"] & answered
    assert isinstance(done["silent"], str), done
    assert re.fullmatch(
        r"next hop 10\.77\.0\.9 (does|did) not answer ARP/ND on va.*", done["silent"]
    )
    assert seen["10.77.0.9"] & (NUD["INCOMPLETE"] | NUD["FAILED"]), seen


def test_replace_route_takes_the_slot(pair: tuple[str, str]) -> None:
    """``replace_route`` adds a route to a free slot, replaces the one in its slot (table,
    destination, metric) with every attribute as given, and refuses a missing link (ENODEV)."""
    a, _ = pair
    done = _in(a, ROUTES)
    assert done["missing"] == 19 and done["gone"] is None
    routes = json.loads(sh("ip", "-n", a, "-j", "route", "show", "table", "main").stdout)
    ours = sorted(
        (r["dst"], r.get("gateway"), r.get("scope", "global"), r["prefsrc"])
        for r in routes
        if r.get("protocol") == "dhcp" and r.get("metric") == 1005 and r["dev"] == "va"
    )
    assert ours == [
        ("10.77.0.0/24", None, "link", "10.77.0.1"),
        ("10.88.0.0/16", "10.77.0.3", "global", "10.77.0.1"),
    ], routes
    link = json.loads(sh("ip", "-n", a, "-j", "link", "show", "va").stdout)[0]
    assert done["index"] == link["ifindex"]


def test_dhcp_hook_in_a_namespace(pair: tuple[str, str]) -> None:
    """The hook dhclient runs, given a lease as dhclient passes it: the address without its
    prefix route, the subnet and option-121 routes ``proto dhcp`` with metric 1000 + ifindex;
    a lease that expires takes the address and its routes along."""
    a, _ = pair
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join(sys.path),
        "reason": "BOUND",
        "interface": "va",
        "new_ip_address": "10.66.0.5",
        "new_subnet_mask": "255.255.255.0",
        "new_rfc3442_classless_static_routes": "32 169 254 169 254 10 66 0 100 0 10 66 0 1",
    }
    hook = [sys.executable, "-m", "multihome.agent.dhcphook"]
    bound = sh("ip", "netns", "exec", a, "env", *(f"{k}={v}" for k, v in env.items()), *hook)
    assert bound.returncode == 0 and not bound.stderr, bound.stderr
    index = json.loads(sh("ip", "-n", a, "-j", "link", "show", "va").stdout)[0]["ifindex"]
    addrs = json.loads(sh("ip", "-n", a, "-j", "-4", "addr", "show", "dev", "va").stdout)
    local = {x["local"]: x for x in addrs[0]["addr_info"]}
    assert local["10.66.0.5"]["prefixlen"] == 24 and local["10.66.0.5"].get("noprefixroute")
    routes = json.loads(sh("ip", "-n", a, "-j", "route", "show", "table", "main").stdout)
    lease = sorted(
        (r["dst"], r.get("gateway"), r.get("scope", "global"))
        for r in routes
        if r.get("protocol") == "dhcp"
        and r.get("metric") == 1000 + index
        and r.get("prefsrc") == "10.66.0.5"
    )
    assert lease == [
        ("10.66.0.0/24", None, "link"),
        ("169.254.169.254", "10.66.0.100", "global"),
        ("default", "10.66.0.1", "global"),
    ], routes
    expire = {**env, "reason": "EXPIRE", "old_ip_address": "10.66.0.5"}
    expire.update(old_subnet_mask="255.255.255.0", new_ip_address="")
    gone = sh("ip", "netns", "exec", a, "env", *(f"{k}={v}" for k, v in expire.items()), *hook)
    assert gone.returncode == 0, gone.stderr
    addrs = json.loads(sh("ip", "-n", a, "-j", "-4", "addr", "show", "dev", "va").stdout)
    assert "10.66.0.5" not in {x["local"] for x in addrs[0]["addr_info"]}
    routes = json.loads(sh("ip", "-n", a, "-j", "route", "show", "table", "main").stdout)
    assert not [r for r in routes if r.get("prefsrc") == "10.66.0.5"], routes


def test_dhcpv6_hook_gives_the_kernel_the_lease_lifetimes(pair: tuple[str, str]) -> None:
    """The hook under ``dhclient -6``, given what dhclient 4.4 passed here: BOUND6 adds the
    /128 ``noprefixroute`` (no host route in main) with the lease's lifetimes, which the
    kernel counts down (``dynamic``); DEPREF6 deprecates it (preferred 0, valid kept);
    RENEW6 refreshes both; a RENEW6 with lifetimes 0 (the server no longer leases it)
    removes it; a lease of 5 s left alone is deprecated, then removed by the kernel."""
    a, _ = pair
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join(sys.path),
        "interface": "va",
        "new_ip6_address": "fd00:77::70",
        "new_ip6_prefixlen": "128",
    }
    hook = [sys.executable, "-m", "multihome.agent.dhcphook"]

    def leased() -> dict[str, Any] | None:
        out = sh("ip", "-n", a, "-j", "-6", "addr", "show", "dev", "va", "scope", "global").stdout
        found = [
            x for e in json.loads(out) for x in e["addr_info"] if x.get("local") == "fd00:77::70"
        ]
        return found[0] if found else None

    def run(reason: str, **env: object) -> dict[str, Any] | None:
        given = {**base, "reason": reason, **{k: str(v) for k, v in env.items()}}
        done = sh("ip", "netns", "exec", a, "env", *(f"{k}={v}" for k, v in given.items()), *hook)
        assert done.returncode == 0 and not done.stderr, done.stderr
        return leased()

    now = int(time.time())
    bound = run("BOUND6", new_life_starts=now, new_preferred_life=100, new_max_life=120)
    assert bound is not None and bound["prefixlen"] == 128
    assert bound.get("dynamic") and bound.get("noprefixroute") and not bound.get("deprecated")
    assert 98 <= int(bound["preferred_life_time"]) <= 100
    assert 118 <= int(bound["valid_life_time"]) <= 120
    routes = json.loads(sh("ip", "-n", a, "-j", "-6", "route", "show", "table", "main").stdout)
    assert not [r for r in routes if r["dst"].startswith("fd00:77::70")], routes
    current = {"cur_ip6_address": "fd00:77::70", "cur_ip6_prefixlen": "128"}
    deprecated = run(
        "DEPREF6", **current, cur_life_starts=now - 100, cur_preferred_life=100, cur_max_life=120
    )
    assert deprecated is not None and deprecated.get("deprecated")
    assert deprecated["preferred_life_time"] == 0
    assert 18 <= int(deprecated["valid_life_time"]) <= 20
    old = {"old_ip6_address": "fd00:77::70", "old_ip6_prefixlen": "128"}
    renewed = run("RENEW6", **old, new_life_starts=now, new_preferred_life=300, new_max_life=600)
    assert renewed is not None and not renewed.get("deprecated")
    assert 590 <= int(renewed["valid_life_time"]) <= 600
    assert run("RENEW6", **old, new_life_starts=now, new_preferred_life=0, new_max_life=0) is None
    # A lease nobody renews: the kernel deprecates the address, then removes it, by itself.
    # Lifetimes of 3 s and 5 s: the lease's start is a whole second (as dhclient gives it)
    # and the hook's own start-up on a loaded machine must not use up the preferred one.
    short = run("BOUND6", new_life_starts=int(time.time()), new_preferred_life=3, new_max_life=5)
    assert short is not None and not short.get("deprecated")
    states = []
    deadline = time.monotonic() + 10
    while (now_there := leased()) is not None and time.monotonic() < deadline:
        states.append("deprecated" if now_there.get("deprecated") else "preferred")
        time.sleep(0.1)
    assert now_there is None and "deprecated" in states, states
