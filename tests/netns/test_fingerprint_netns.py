"""The fingerprint an apply records, taken after its own changes without dumping the links and
addresses again (``NetlinkBackend.fingerprint(since_read=True)``: its sysctl writes put into
the read's link messages), against the real kernel's digest (``kerneldigest.current``, what
the next no-op apply computes) in the how-to's VM namespace."""

from __future__ import annotations

import json
import sys

from netns_util import HowtoVM, sh

SCRIPT = """
import json, sys
from multihome import kerneldigest
from multihome.backend.netlink import NetlinkBackend
from multihome.config import Config
from multihome.engine import assess

backend = NetlinkBackend(local_table=False)
dumps = []
real = backend.sock.dump_bodies
backend.sock.dump_bodies = lambda kind, *a, **k: dumps.append(kind) or real(kind, *a, **k)
found = {}
plan = assess(backend, Config()).plan
found["sysctls"] = sum(c.kind == "sysctl" for c in plan.changes)
found["routes"] = sum(c.kind != "sysctl" for c in plan.changes)
backend.apply(plan.changes)
dumps.clear()
after = backend.fingerprint(since_read=True)
found["dumped"] = sorted(set(dumps))
found["equal"] = after.digest == kerneldigest.current()
found["matches"] = kerneldigest.matches(after.digest)
# Each part wrong in turn, and the one hash of everything an earlier version recorded.
parts = after.digest.split(" ")
found["parts"] = [p.partition(":")[0] for p in parts]
found["wrong_part"] = [
    kerneldigest.matches(" ".join(parts[:i] + [parts[i][:-1] + "x"] + parts[i + 1 :]))
    for i in range(len(parts))
]
found["old_format"] = kerneldigest.matches("0" * 40)
found["reordered"] = kerneldigest.matches(" ".join(parts[1:] + parts[:1]))
found["values"] = {k: v for k, v in after.sysctls.items() if ".eth1." in k}
# The undo of the sysctls (their prior values), then a write behind the backend's back.
backend.read()
undo = [c.inverse() for c in reversed(plan.changes) if c.kind == "sysctl"]
backend.apply(undo)
found["undone_equal"] = backend.fingerprint(since_read=True).digest == kerneldigest.current()
backend.read()
backend.apply(plan.changes[:1])
with open("/proc/sys/net/ipv4/conf/eth1/arp_ignore", "w") as f:
    f.write("1")  # it is 0 after the undo
found["foreign_equal"] = backend.fingerprint(since_read=True).digest == kerneldigest.current()
print(json.dumps(found))
"""


def test_the_fingerprint_after_an_apply_is_the_kernels_digest(vm: HowtoVM) -> None:
    """After an apply that set every port's sysctls and added the tables and rules, the
    fingerprint taken from the read's link and address messages (only routes and rules dumped
    again) equals the kernel's own digest; so does the one after the sysctls are undone to
    their prior values; a sysctl another writer changed after the read makes them differ (the
    recorded digest then never matches, and the next apply reads everything). The no-op's
    part-by-part comparison (``kerneldigest.matches``) agrees, and says no to a digest with
    any part wrong, its parts out of order, or an earlier version's one hash."""
    for ifname in ("eth0", "eth1"):
        for knob in ("rp_filter", "arp_ignore", "arp_announce", "arp_filter"):
            sh("ip", "netns", "exec", vm.ns, "sysctl", "-qw", f"net.ipv4.conf.{ifname}.{knob}=0")
    out = sh("ip", "netns", "exec", vm.ns, sys.executable, "-c", SCRIPT).stdout
    found = json.loads(out)
    assert found["sysctls"] == 8 and found["routes"] > 0, found
    assert found["dumped"] == [26, 34], found  # RTM_GETROUTE, RTM_GETRULE: no link dump
    assert found["equal"] is True
    assert found["matches"] is True
    assert found["parts"] == ["rules", "routes", "addresses", "links"], found
    assert found["wrong_part"] == [False] * 4, found
    assert found["old_format"] is False and found["reordered"] is False, found
    assert found["values"]["net.ipv4.conf.eth1.rp_filter"] == "2", found
    assert found["undone_equal"] is True
    assert found["foreign_equal"] is False
    knob = sh("ip", "netns", "exec", vm.ns, "sysctl", "-n", "net.ipv4.conf.eth0.arp_ignore")
    assert knob.stdout.strip() == "0"  # the undo's value, as the kernel has it


WATCH_SCRIPT = """
import json, subprocess
from multihome.backend.netlink import NetlinkBackend
from multihome.config import Config
from multihome.engine import assess

backend = NetlinkBackend(local_table=False)
backend.watch()
plan = assess(backend, Config()).plan
changes = [c for c in plan.changes if c.kind != "sysctl"]
backend.apply(changes)  # its routes and rules, IPv4's and IPv6's
for family, words in (("-4", "198.51.100.0/24 dev eth1"), ("-6", "2001:db8:77::/64 dev eth1")):
    subprocess.run(["ip", family, "route", "add", *words.split(), "table", "7"], check=True)
subprocess.run(["ip", "rule", "add", "priority", "77", "from", "203.0.113.7", "table", "7"],
               check=True)
for verb in ("add", "del"):  # the kernel's own routes of an address come with port id 0
    subprocess.run(["ip", "addr", verb, "192.0.2.77/24", "dev", "eth1"], check=True)
print(json.dumps({"made": len(changes), "seen": sorted(backend.notifications())}))
"""


def test_the_watch_shows_every_change_but_the_backends_own(vm: HowtoVM) -> None:
    """While an apply watches the namespace, the kernel drops the notifications of the
    route and rule changes the backend requested itself (a socket filter on the watching
    socket: ~3,000 of them at 256 dual-stack ports were each a ``recv``); another writer's
    routes and rules, of either family, still show, and so do address changes and the
    kernel's own routes that follow them (port id 0), so the fingerprint is not recorded
    then."""
    out = sh("ip", "netns", "exec", vm.ns, sys.executable, "-c", WATCH_SCRIPT).stdout
    found = json.loads(out)
    assert found["made"] > 0, found
    kernels = ["route new 2"] * 3 + ["route del 2"] * 3  # the address's prefix, local, broadcast
    assert found["seen"] == sorted(
        ["route new 10", "route new 2", "rule new 2", "addr", "addr", *kernels]
    ), found


REFUSED_SCRIPT = """
import json
from multihome.backend import rtnl
from multihome.backend.netlink import NetlinkBackend
from multihome.config import Config
from multihome.engine import assess

def refused(self, portid):
    raise OSError(1, "Operation not permitted")

rtnl.RtnlSocket.ignore_changes_of = refused
backend = NetlinkBackend(local_table=False)
backend.watch()
plan = assess(backend, Config()).plan
changes = [c for c in plan.changes if c.kind != "sysctl"]
backend.apply(changes)
print(json.dumps({"made": len(changes), "seen": len(backend.notifications() or ())}))
"""


def test_a_refused_filter_shows_the_backends_own_changes(vm: HowtoVM) -> None:
    """A kernel that refuses the socket filter: the apply goes on, and its own changes show
    as others' would (nothing is recorded then; the next apply reads everything), and a
    warning says so."""
    done = sh("ip", "netns", "exec", vm.ns, sys.executable, "-c", REFUSED_SCRIPT)
    found = json.loads(done.stdout)
    assert found["made"] > 0 and found["seen"] == found["made"], found
    assert "refused the socket filter" in done.stderr, done.stderr
