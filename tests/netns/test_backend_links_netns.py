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


LOCAL_SCRIPT = """
import json
from multihome.backend.netlink import NetlinkBackend

full = NetlinkBackend().read()
lean = NetlinkBackend(local_table=False).read()
print(json.dumps({
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
    nothing else."""
    out = sh("ip", "netns", "exec", vm.ns, sys.executable, "-c", LOCAL_SCRIPT).stdout
    done = json.loads(out)
    kernel = json.loads(sh("ip", "-n", vm.ns, "-j", "-4", "route", "show", "table", "local").stdout)
    assert kernel and len(done["local"]) >= len(kernel), (done["local"], kernel)
    assert done["lean_local"] == []
    assert done["same_otherwise"] is True and done["same_rest"] is True
