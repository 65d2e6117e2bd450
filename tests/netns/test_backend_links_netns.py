"""The kernel backend's link and address calls (what the agent's addressing uses) against the
real kernel in a namespace, checked with `ip -j`: a link set up, an address added with and
without its subnet route, added twice, removed, removed twice."""

from __future__ import annotations

import json
import sys

from netns_util import HowtoVM, sh

SCRIPT = """
import ipaddress, json
from multihome.backend.netlink import NetlinkBackend
from multihome.model import Address

backend = NetlinkBackend()
plain = Address("eth1", ipaddress.ip_interface("10.20.0.5/24"))
bare = Address("eth1", ipaddress.ip_interface("10.30.0.5/24"))
done = {"up": backend.set_link_up("eth1"),
        "plain": backend.add_address(plain), "again": backend.add_address(plain),
        "bare": backend.add_address(bare, prefix_route=False)}
state = backend.read()
done["link_up"] = state.link("eth1").up
done["seen"] = sorted(str(a.interface) for a in state.addresses_of("eth1", 4))
done["subnets"] = sorted(str(r.dst) for r in state.routes_in(254) if r.ifname == "eth1")
done["removed"] = backend.remove_address(plain)
done["removed_again"] = backend.remove_address(plain)
try:
    backend.set_link_up("nosuch0")
except OSError as exc:
    done["missing"] = exc.errno
print(json.dumps(done))
"""


def test_set_link_up_add_and_remove_addresses(vm: HowtoVM) -> None:
    """set_link_up brings a down link up; add_address adds the subnet route unless told not
    to and says False for an address already there; remove_address says False for one that is
    gone; a missing link is ENODEV."""
    sh("ip", "-n", vm.ns, "link", "set", "eth1", "down")
    out = sh("ip", "netns", "exec", vm.ns, sys.executable, "-c", SCRIPT).stdout
    done = json.loads(out)
    assert done["plain"] is True and done["again"] is False and done["bare"] is True
    assert done["removed"] is True and done["removed_again"] is False
    assert done["missing"] == 19
    assert "10.20.0.5/24" in done["seen"] and "10.30.0.5/24" in done["seen"]
    assert done["link_up"] is True
    assert "10.20.0.0/24" in done["subnets"] and "10.30.0.0/24" not in done["subnets"]
    link = json.loads(sh("ip", "-n", vm.ns, "-j", "link", "show", "eth1").stdout)[0]
    assert "UP" in link["flags"]
    addrs = json.loads(sh("ip", "-n", vm.ns, "-j", "-4", "addr", "show", "dev", "eth1").stdout)
    local = {a["local"]: a for a in addrs[0]["addr_info"]}
    assert "10.20.0.5" not in local and "10.30.0.5" in local
    assert local["10.30.0.5"].get("noprefixroute") is True, local["10.30.0.5"]
    routes = json.loads(sh("ip", "-n", vm.ns, "-j", "route", "show", "table", "main").stdout)
    assert not [r for r in routes if r["dst"] in ("10.20.0.0/24", "10.30.0.0/24")], routes


RENAME_SCRIPT = """
import json, subprocess
from multihome.backend.netlink import NetlinkBackend

def ip(*args):
    subprocess.run(["ip", *args], check=True)

def devices(state):
    return {"routes": sorted(f"{r.dst} {r.ifname}" for r in state.routes_in(254) if r.family == 4),
            "addrs": sorted(f"{a.interface} {a.ifname}" for a in state.addresses if a.family == 4)}

backend = NetlinkBackend()
seen = {"before": devices(backend.read())}
kept = {id(r) for r in backend.read().routes}
ip("link", "add", "eth7", "type", "veth", "peer", "name", "peer7")
ip("addr", "add", "10.77.0.5/24", "dev", "eth7")
ip("link", "set", "eth7", "up")
state = backend.read()
seen["plugged"] = devices(state)
seen["kept"] = sum(id(r) in kept for r in state.routes)
ip("link", "set", "eth1", "down")
ip("link", "set", "eth1", "name", "eth9")
ip("link", "set", "eth9", "up")
seen["renamed"] = devices(backend.read())
print(json.dumps(seen))
"""


def test_reads_keep_their_decodings_across_a_hotplug_not_a_rename(vm: HowtoVM) -> None:
    """The backend's reader keeps the routes it decoded when a link comes (a hot-plug: the
    same objects, their keys computed once) and decodes again when an index is renamed:
    every route and address names its device as `ip` does after both."""
    out = sh("ip", "netns", "exec", vm.ns, sys.executable, "-c", RENAME_SCRIPT).stdout
    seen = json.loads(out)
    assert seen["kept"] >= len(seen["before"]["routes"]) > 0, seen
    assert "10.77.0.0/24 eth7" in seen["plugged"]["routes"], seen
    assert "10.77.0.5/24 eth7" in seen["plugged"]["addrs"], seen
    routes = json.loads(sh("ip", "-n", vm.ns, "-j", "-4", "route", "show", "table", "main").stdout)
    dst = {"default": "0.0.0.0/0"}
    expected = sorted(
        f"{dst.get(r['dst'], r['dst'] if '/' in r['dst'] else r['dst'] + '/32')} {r['dev']}"
        for r in routes
    )
    assert seen["renamed"]["routes"] == expected, (seen, routes)
    assert any(a.endswith(" eth9") for a in seen["renamed"]["addrs"]), seen
    assert not any(a.endswith(" eth1") for a in seen["renamed"]["addrs"]), seen


EXPECT_SCRIPT = """
import ipaddress, json, subprocess
from multihome.backend.netlink import NetlinkBackend
from multihome.model import Rule, Sysctl
from multihome.plan import Change

def ip(*args):
    subprocess.run(["ip", *args], check=True)

backend = NetlinkBackend()
backend.read()
seen = {}
ip("route", "add", "10.9.0.0/24", "via", "192.168.0.1", "dev", "eth1")
dumps = []
sock = backend.sock
dump_bodies = sock.dump_bodies  # what a read dumps with (each message's body as it comes)
sock.dump_bodies = lambda kind, *rest, **named: dumps.append(kind) or dump_bodies(
    kind, *rest, **named
)
backend.expect({"route"})
state = backend.read()
seen["foreign route"] = any(str(r.dst) == "10.9.0.0/24" for r in state.routes)
seen["dumped"] = sorted(set(dumps))
rule = Rule(4, 10050, 10050, src=ipaddress.ip_network("192.168.0.112/32"), proto=222)
sysctl = Sysctl("net.ipv4.conf.eth1.arp_ignore", "2")
backend.apply([Change("add", rule), Change("set", sysctl, "0")])
backend.expect({"route"})
state = backend.read()
seen["own rule"] = rule in state.rules
seen["own sysctl"] = state.sysctls.get(sysctl.name)
ip("link", "set", "eth1", "down")
backend.expect({"link"})
state = backend.read()
seen["down"] = not state.link("eth1").up
seen["flushed"] = not any(r.ifname == "eth1" and r.family == 4 for r in state.routes_in(254))
print(json.dumps(seen))
"""


def test_a_read_told_what_changed_still_sees_every_change(vm: HowtoVM) -> None:
    """`expect` (the agent's events) lets a read keep the other kinds' dumps, and still the
    read shows what the hint names (a foreign route), this backend's own changes whatever
    the hint (a rule, a sysctl), and after a link event everything the link took with it
    (its IPv4 routes, dropped by the kernel without a notification)."""
    out = sh("ip", "netns", "exec", vm.ns, sys.executable, "-c", EXPECT_SCRIPT).stdout
    seen = json.loads(out)
    assert seen == {
        "foreign route": True,
        "dumped": [26],  # RTM_GETROUTE alone: links, addresses, rules kept
        "own rule": True,
        "own sysctl": "2",
        "down": True,
        "flushed": True,
    }, seen


LOCAL_SCRIPT = """
import json
from multihome import kerneldigest
from multihome.backend.netlink import NetlinkBackend

full = NetlinkBackend().read()
lean = NetlinkBackend(local_table=False).read()
digest = kerneldigest.current()  # its route dumps drop the local table's as they arrive
print(json.dumps({
    "digests": [
        NetlinkBackend().fingerprint().digest == digest,  # every route dumped
        NetlinkBackend(local_table=False).fingerprint().digest == digest,
    ],
    "local": sorted(r.describe() for r in full.routes if r.table == 255),
    "lean_local": [r.describe() for r in lean.routes if r.table == 255],
    "same_otherwise": [r for r in full.routes if r.table != 255] == list(lean.routes),
    "same_rest": (full.links, full.addresses, full.rules, dict(full.sysctls))
    == (lean.links, lean.addresses, lean.rules, dict(lean.sysctls)),
}))
"""


def test_read_without_the_local_table(vm: HowtoVM) -> None:
    """``NetlinkBackend(local_table=False)`` (what apply reads with) leaves out exactly the
    local table's routes, which the kernel has (``ip -j route show table local``), and
    nothing else. The no-op's digest (``kerneldigest.current``, which drops them from the
    dump as it receives it) equals the fingerprint of the full and of the lean backend."""
    out = sh("ip", "netns", "exec", vm.ns, sys.executable, "-c", LOCAL_SCRIPT).stdout
    done = json.loads(out)
    kernel = json.loads(sh("ip", "-n", vm.ns, "-j", "-4", "route", "show", "table", "local").stdout)
    assert kernel and len(done["local"]) >= len(kernel), (done["local"], kernel)
    assert done["lean_local"] == []
    assert done["same_otherwise"] is True and done["same_rest"] is True
    assert done["digests"] == [True, True]
