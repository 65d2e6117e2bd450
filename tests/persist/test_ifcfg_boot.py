"""ifcfg, dual-stack, boot-like, through the lab: a guest namespace plugged into lab scenario
6's switch ports (the lab's radvd, dnsmasq's DHCP/metadata port, port security, internet
host) runs `multihome apply` and `persist` (auto: ifcfg on a RHEL image); then a fresh
namespace (a reboot: same MACs, same switch ports, same router) brings the ports up as ifup
does and replays multihome's files in ifup's order (tests/persist/ifcfg_replay.py cites what
RHEL reads and how). The policy equals apply's, and every floating IP and IPv6 address
answers the lab's internet host through its own port. There is no RHEL userspace here: the
ports' DHCP is the result dhclient (or NetworkManager's client, into IPV4_ROUTE_TABLE) leaves.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ifcfg_replay import (
    SCRIPTS,
    ifcfg_values,
    replay_routes,
    replay_rules,
    route_lines,
    routing_rules,
    rule_files,
)
from persist_util import (
    Namespaces,
    multihome,
    need,
    ns_routes,
    ns_rules,
    rule_tuple,
    run,
    wait_gone,
)
from radvd import wait_for_slaac

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))

from labtools import Probes, force_remove, new_name, run_cli

from multihome.lab.scenario import GuestPort, load_scenario
from multihome.lab.topology import HTTP_PORT, bridge, net_index, tap

PREFIX = "2001:db8:1::/64"
PROBE6 = "2001:db8:ffff::10"
BAND = range(10000, 10100)
ECHO = Path(__file__).resolve().parents[2] / "src/multihome/lab/echo.py"
#: A RHEL cloud image's IPv6 (IPV6INIT, IPV6_AUTOCONF, EUI-64, no privacy addresses), set
#: before the ports appear so that each port's own settings start from them.
GUEST_SYSCTLS = {
    "accept_ra": 1,
    "autoconf": 1,
    "forwarding": 0,
    "use_tempaddr": 0,
    "addr_gen_mode": 0,
}
#: cloud-init's ifcfg file of a dual-stack port on a RHEL image (sysconfig renderer).
CLOUD_INIT_IFCFG = """# Created by cloud-init automatically, do not edit.
#
BOOTPROTO=dhcp
DEVICE={name}
HWADDR={mac}
IPV6INIT=yes
IPV6_AUTOCONF=yes
ONBOOT=yes
TYPE=Ethernet
USERCTL=no
"""


def rhel_image(root: Path, ports: tuple[GuestPort, ...]) -> None:
    """What `persist --backend auto` finds on a RHEL 8 cloud image: NetworkManager enabled
    (the files only: nothing runs it here) and cloud-init's ifcfg files."""
    program = root / "usr/sbin/NetworkManager"
    program.parent.mkdir(parents=True)
    program.write_text("")
    program.chmod(0o755)
    wants = root / "etc/systemd/system/multi-user.target.wants/NetworkManager.service"
    wants.parent.mkdir(parents=True)
    wants.symlink_to("/usr/lib/systemd/system/NetworkManager.service")
    scripts = root / str(SCRIPTS).lstrip("/")
    scripts.mkdir(parents=True)
    for port in ports:
        text = CLOUD_INIT_IFCFG.format(name=port.name, mac=port.mac.upper())
        (scripts / f"ifcfg-{port.name}").write_text(text)


class Boots:
    """Guest namespaces plugged into lab ``name``'s switch in place of its VM, one per boot."""

    def __init__(self, spaces: Namespaces, name: str, tmp_path: Path) -> None:
        self.spaces, self.name, self.tmp_path = spaces, name, tmp_path
        self.scenario = load_scenario("6")
        self.switch = f"{name}-sw"
        self.current: str | None = None
        self.boots = 0

    def boot(self, tables: dict[str, str] | None = None) -> str:
        """A fresh namespace: the ports (the scenario's MACs) on the switch's tapN, brought
        up as ifup-eth and ifup-ipv6 leave them before ifup-post runs ifup-routes: DHCP's
        address and routes (each port's own metric; a port with IPV4_ROUTE_TABLE in
        ``tables`` gets them in that table, as NetworkManager's client puts them), SLAAC
        addresses past DAD and the routers' defaults (each port's metric, as NetworkManager's
        per-device metrics give them); and the HTTP echo."""
        self.poweroff()
        self.boots += 1
        ns = self.current = self.spaces.add(f"boot{self.boots}")
        run(
            "ip", "netns", "exec", ns, "sysctl", "-qw",
            *(f"net.ipv6.conf.{s}.{k}={v}" for s in ("all", "default")
              for k, v in GUEST_SYSCTLS.items()),
        )  # fmt: skip
        for port in self.scenario.ports:
            peer = tap(port)
            run("ip", "link", "add", port.name, "netns", ns, "address", port.mac,
                "type", "veth", "peer", peer, "netns", self.switch)  # fmt: skip
            br = bridge(net_index(self.scenario, port.network))
            run("ip", "-n", self.switch, "link", "set", peer, "master", br)
            run("ip", "-n", self.switch, "link", "set", peer, "up")
        for port in self.scenario.ports:
            network = self.scenario.network(port.network)
            ip, dev = str(port.ips[0]), port.name
            table = ["table", (tables or {}).get(dev, "main")]
            base = ["dev", dev, "src", ip, "metric", str(port.metric), *table]
            metric = f"net.ipv6.conf.{dev}.ra_defrtr_metric={port.metric}"  # NM: per device
            run("ip", "netns", "exec", ns, "sysctl", "-qw", metric)
            run("ip", "-n", ns, "link", "set", dev, "up")
            run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev, "noprefixroute")
            run("ip", "-n", ns, "route", "add", str(network.cidr), *base, "proto", "kernel",
                "scope", "link")  # fmt: skip
            hops = {"default": network.gateway, "169.254.169.254/32": network.dhcp_server}
            for dst, gateway in hops.items():
                run("ip", "-n", ns, "route", "add", dst, "via", str(gateway), *base,
                    "proto", "dhcp")  # fmt: skip
        wait_for_slaac(ns, [p.name for p in self.scenario.ports], timeout=30)
        run("ip", "netns", "exec", ns, sys.executable, str(ECHO), "--bind", "::", "--port",
            str(HTTP_PORT), "--pid-file", str(self.tmp_path / f"echo{self.boots}.pid"))  # fmt: skip
        return ns

    def poweroff(self) -> None:
        """The namespace and everything in it go (its veths, so the switch's tapN, too)."""
        if self.current is None:
            return
        for pid in run("ip", "netns", "pids", self.current, check=False).stdout.split():
            run("kill", "-9", pid, check=False)
        run("ip", "netns", "del", self.current)
        for port in self.scenario.ports:  # a deleted namespace's veths go a moment later
            wait_gone(self.switch, tap(port))
        self.current = None


@pytest.fixture
def boots(namespaces: Namespaces, tmp_path: Path) -> Iterator[Boots]:
    """Lab scenario 6 with its guest's ports unplugged, and the guest namespaces that take
    its place; all removed afterwards."""
    need("radvd", "nft", "curl", "dnsmasq")
    name = new_name()
    try:
        up = run_cli("lab", "up", "--scenario", "6", "--name", name)
        assert up.returncode == 0, up.stdout + up.stderr
        boots = Boots(namespaces, name, tmp_path)
        for port in boots.scenario.ports:
            run("ip", "-n", f"{name}-vm", "link", "del", port.name)
        yield boots
        boots.poweroff()
    finally:
        force_remove(name)


def band(ns: str, family: int) -> list[tuple[object, ...]]:
    return sorted(rule_tuple(r) for r in ns_rules(ns, family) if int(r["priority"]) in BAND)


def tables(ns: str, family: int) -> dict[str, set[tuple[object, ...]]]:
    """Each table a band rule points at: its routes as (dst, gateway, dev, metric)."""
    ids = {str(r[5]) for r in band(ns, family)} - {"main"}
    return {
        t: {
            (r["dst"], r.get("gateway"), r.get("dev"), r.get("metric"))
            for r in ns_routes(ns, t, family)
        }
        for t in sorted(ids)
    }


def policy(ns: str) -> dict[str, Any]:
    return {"rules4": band(ns, 4), "rules6": band(ns, 6), "tables6": tables(ns, 6),
            "tables4": tables(ns, 4)}  # fmt: skip


def test_ifcfg_files_replayed_at_boot_give_applys_dual_stack_policy(
    boots: Boots, tmp_path: Path
) -> None:
    """Boot 1: eth1's IPv6 address and floating IP do not answer (port security counts the
    drops); apply and persist (auto: ifcfg on a RHEL image). Boot 2, a fresh namespace on the
    same switch ports: the ports come up as ifup brings them (DHCP, SLAAC past DAD), then each
    port's route-/route6- files in ifup-routes' order and the ROUTING_RULE_N/ROUTING_RULE6_N
    keys as NetworkManager's ifcfg-rh reads them: the family-6 and family-4 rules, every IPv6
    table and the IPv4 tables the files carry equal apply's, each IPv6 address's lookup
    leaves through its own port via its router, and every floating IP and IPv6 address
    answers the lab's internet host through its own port."""
    probes = Probes(boots.name, boots.scenario)
    first = boots.boot()
    probes.check_second_port_dead()
    root = tmp_path / "root"
    applied = multihome(first, "--root", str(root), "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    want = policy(first)
    # 3 rules per port (from, oif, iif) and the suppress rule: the table-first band
    assert len(want["rules6"]) == 7 and set(want["tables6"]) == set(want["tables4"])
    for routes in want["tables6"].values():  # the router's default, the prefix, the throw
        assert {(r[0], str(r[1])[:5]) for r in routes} == {
            ("default", "fe80:"),
            (PREFIX, "None"),
            ("fe80::/64", "None"),
        }
    rhel_image(root, boots.scenario.ports)
    persisted = multihome(first, "--root", str(root), "persist")
    assert persisted.returncode == 0, persisted.stdout + persisted.stderr
    assert persisted.stdout.startswith("backend: ifcfg ("), persisted.stdout
    files = {SCRIPTS / p.name: p.read_text() for p in (root / str(SCRIPTS).lstrip("/")).iterdir()}
    assert rule_files(files) == []  # else ifcfg-rh would ignore every ROUTING_RULE key
    ifcfg = {p: ifcfg_values(files[SCRIPTS / f"ifcfg-multihome-{p}"]) for p in probes.ports}
    dhcp_tables = {p: v["IPV4_ROUTE_TABLE"] for p, v in ifcfg.items() if "IPV4_ROUTE_TABLE" in v}

    second = boots.boot(dhcp_tables)  # poweroff: the kernel's state is gone
    assert policy(second)["rules6"] == []  # nothing but the files brings the policy back
    for port in probes.ports:  # ifup per port in turn: ifup-post -> ifup-routes
        replay_routes(second, route_lines(files, port))
    installed: set[tuple[str, str]] = set()
    for port in probes.ports:
        rules = routing_rules(files[SCRIPTS / f"ifcfg-multihome-{port}"])
        replay_rules(second, rules, installed)
    got = policy(second)
    assert got["rules6"] == want["rules6"]
    assert got["rules4"] == want["rules4"]
    assert got["tables6"] == want["tables6"]
    for table, routes in want["tables4"].items():  # DHCP's tables: the client's routes
        if table not in dhcp_tables.values():
            assert got["tables4"][table] == routes, table
    for port in probes.ports:
        addr = probes.addresses(port)[2]
        hop = json.loads(
            run("ip", "-n", second, "-6", "-j", "route", "get", PROBE6, "from", addr).stdout
        )[0]
        assert hop["dev"] == port and hop["gateway"].startswith("fe80:"), (port, hop)
    probes.check_every_address_answers()
