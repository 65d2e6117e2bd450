"""DHCPv6 leases for real: the agent's `dhclient -6` against dnsmasq (DHCPv6, as Neutron runs
it: a ``static`` range, one fixed address per port by MAC) behind radvd's managed-flag
advertisements, in namespaces this test creates and removes by name.

dnsmasq's shortest lease is 2 minutes (it raises anything shorter), so the client renews at
T1 = 60 s: the one wait of this test. Two ports on two subnets: eth0's lease is renewed (the
kernel's lifetimes of its address go back up), eth1's subnet is renumbered meanwhile (dnsmasq
restarted with the new range, its lease database kept), so the server answers eth1's renewal
with lifetimes 0 for the old address: the old address goes and its rule with it (eth1 is
dual-stack and keeps its IPv4 side), the client solicits and, once the server has an address
for it, gets the new one, which the agent routes. Checked with `ip -j`, not with the code
under test.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from agent_util import MAC, Lab, sh, wait_until, write_drive
from radvd import radvd_conf, start_radvd

OLD = {"eth0": "2001:db8:5::70", "eth1": "2001:db8:6::70"}
NEW1 = "2001:db8:7::70"  # eth1's address once its subnet is renumbered
ROUTER = {"eth0": "2001:db8:5::1", "eth1": "2001:db8:6::1"}
LEASE = 120  # dnsmasq's minimum
IPV4 = "10.1.0.12"  # eth1 is dual-stack: a DHCP-disabled IPv4 network beside its DHCPv6 one


@dataclass
class Dhcpv6Lab:
    """The guest (eth0, eth1: IPv6 only), the router namespace (r0, r1) and its daemons."""

    lab: Lab
    drive: Path

    @property
    def router(self) -> str:
        return self.lab.peer

    def dnsmasq(self, ranges: tuple[str, ...], hosts: dict[str, str]) -> None:
        """(Re)start dnsmasq serving DHCPv6 ``ranges`` (prefixes) with 2-minute leases and one
        fixed address per MAC; the lease database stays across restarts."""
        tmp = self.lab.tmp
        for process in [p for p in self.lab.processes if "dnsmasq" in p.args]:
            self.lab.stop(process)
            self.lab.processes.remove(process)
        (tmp / "hosts").write_text("".join(f"{MAC[i]},[{a}]\n" for i, a in hosts.items()))
        argv = [
            *("ip", "netns", "exec", self.router, "dnsmasq", "--keep-in-foreground"),
            *("--conf-file=/dev/null", "--port=0", "--bind-interfaces", "--no-resolv"),
            *("--no-hosts", "--user=root", "--group=root", "--log-dhcp"),
            *("--interface=r0", "--interface=r1", "--except-interface=lo"),
            f"--log-facility={tmp / 'dnsmasq.log'}",
            f"--dhcp-leasefile={tmp / 'dnsmasq.leases'}",
            f"--dhcp-hostsfile={tmp / 'hosts'}",
            *(f"--dhcp-range={prefix},static,64,{LEASE}" for prefix in ranges),
        ]
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.lab.processes.append(process)

    def globals6(self, ifname: str) -> dict[str, dict[str, Any]]:
        """The interface's global IPv6 addresses as `ip -j` shows them, by address."""
        data = self.lab.json("-6", "addr", "show", "dev", ifname, "scope", "global")
        found = [a for entry in data for a in entry.get("addr_info", []) if "local" in a]
        return {a["local"]: a for a in found}

    def rules4(self) -> list[dict[str, Any]]:
        """The band's IPv4 rules."""
        return [r for r in self.lab.json("-4", "rule") if 10000 <= r.get("priority", 0) <= 10099]

    def from_rules(self) -> set[str]:
        """The sources of the band's IPv6 ``from`` rules."""
        return {
            r["src"]
            for r in self.lab.json("-6", "rule")
            if 10000 <= r.get("priority", 0) <= 10099 and r.get("src", "all") != "all"
        }


def _network_data() -> dict[str, Any]:
    """Nova's network_data.json for two ports on ``ipv6_dhcpv6-stateful`` subnets, eth1
    also on a DHCP-disabled IPv4 subnet."""
    ports = ("eth0", "eth1")
    return {
        "links": [
            {"id": f"tap{i}", "type": "ovs", "ethernet_mac_address": MAC[i], "vif_id": f"p-{i}"}
            for i in ports
        ],
        "networks": [
            {
                "id": "network4",
                "type": "ipv4",
                "link": "tapeth1",
                "ip_address": IPV4,
                "netmask": "255.255.255.0",
                "network_id": "net-4",
                "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.1.0.1"}],
                "services": [],
            },
            *(
                {
                    "id": f"network{n}",
                    "type": "ipv6_dhcpv6-stateful",
                    "link": f"tap{i}",
                    "ip_address": OLD[i],
                    "netmask": "ffff:ffff:ffff:ffff::",
                    "network_id": f"net-{n}",
                    "routes": [{"network": "::", "netmask": "::", "gateway": ROUTER[i]}],
                    "services": [],
                }
                for n, i in enumerate(ports)
            ),
        ],
        "services": [],
    }


@pytest.fixture
def dhcpv6_lab(tmp_path: Path) -> Iterator[Dhcpv6Lab]:
    """A guest whose two ports each face a router leg with its own subnet, radvd (managed
    flag) and dnsmasq (DHCPv6) on the router; everything started is stopped by its pid and
    both namespaces are deleted by name, also on failure."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    suffix = secrets.token_hex(3)
    lab = Lab(guest=f"mhd6l-{suffix}-g", peer=f"mhd6l-{suffix}-r", tmp=tmp_path)
    try:
        for namespace in (lab.guest, lab.peer):
            sh("ip", "netns", "add", namespace)
            sh("ip", "-n", namespace, "link", "set", "lo", "up")
        # A guest: no forwarding, advertisements accepted, no privacy addresses.
        for knob in ("forwarding=0", "accept_ra=1", "use_tempaddr=0"):
            sh("ip", "netns", "exec", lab.guest, "sysctl", "-qw", f"net.ipv6.conf.default.{knob}")
        sh("ip", "netns", "exec", lab.peer, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        for n, ifname in enumerate(("eth0", "eth1")):
            sh(
                *f"ip link add {ifname} netns {lab.guest} address {MAC[ifname]} type veth"
                f" peer r{n} netns {lab.peer}".split()
            )
            lab.peer_ip("addr", "add", f"{ROUTER[ifname]}/64", "dev", f"r{n}", "nodad")
            if ifname == "eth1":
                lab.peer_ip("addr", "add", "10.1.0.1/24", "dev", "r1")
            lab.peer_ip("link", "set", f"r{n}", "up")
            lab.ip("link", "set", ifname, "up")
        # r1 announces its subnet's next prefix too (on-link, as after a renumbering).
        conf = radvd_conf(
            [("r0", "2001:db8:5::/64"), ("r1", "2001:db8:6::/64"), ("r1", "2001:db8:7::/64")],
            managed=True,
        )
        lab.processes.append(start_radvd(lab.peer, tmp_path / "radvd.conf", conf))
        built = Dhcpv6Lab(lab, write_drive(tmp_path / "drive", _network_data()))
        built.dnsmasq(("2001:db8:5::", "2001:db8:6::"), OLD)
        yield built
    finally:
        for process in reversed(lab.processes):
            lab.stop(process)
        for namespace in (lab.guest, lab.peer):
            # The agent's dhclients (its children, left by a failed stop) by pid.
            for pid in sh("ip", "netns", "pids", namespace, check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            sh("ip", "netns", "del", namespace, check=False)


def test_dhcpv6_renewal_refreshes_lifetimes_and_an_address_no_longer_leased_goes(
    dhcpv6_lab: Dhcpv6Lab,
) -> None:
    """The agent's `dhclient -6` binds both ports: each address has the lease's lifetimes in
    the kernel (``dynamic``, valid and preferred at most 120 s), ``noprefixroute`` (no host
    route in main), and its ``from`` rule. eth1's subnet is then renumbered on the server. At
    T1 (60 s) eth0's renewal brings its lifetimes back up (the kernel's figures before and
    after are in the assertion message); dnsmasq answers eth1's renewal with lifetimes 0 for
    2001:db8:6::70: the hook removes it, the agent removes its rule at once (eth1's IPv4
    rules stay) and does not restart the client, which solicits; once the server has an
    address for eth1, 2001:db8:7::70 gets its lifetimes and a rule that routes it through
    eth1."""
    built = dhcpv6_lab
    lab = built.lab
    start = time.monotonic()
    lab.start_agent("--source", "openstack", "--metadata", str(built.drive))

    def bound() -> bool:
        return (
            all((a := built.globals6(i).get(OLD[i])) and not a.get("tentative") for i in OLD)
            and set(OLD.values()) <= built.from_rules()
        )

    wait_until(bound, 30, "both DHCPv6 addresses and their rules\n" + lab.agent_log())
    bound_after = time.monotonic() - start
    for ifname, address in OLD.items():
        found = built.globals6(ifname)[address]
        assert found["prefixlen"] == 128 and found.get("dynamic") and found.get("noprefixroute")
        assert 0 < found["preferred_life_time"] <= found["valid_life_time"] <= LEASE
        assert not [r for r in lab.routes("main") if r["dst"] in (address, f"{address}/128")]

    # Renumber eth1's subnet: the server no longer leases 2001:db8:6::70, and has no address
    # for eth1 yet.
    lab.peer_ip("addr", "add", "2001:db8:7::1/64", "dev", "r1", "nodad")
    lab.peer_ip("addr", "del", "2001:db8:6::1/64", "dev", "r1")
    built.dnsmasq(("2001:db8:5::", "2001:db8:7::"), {"eth0": OLD["eth0"]})
    ipv4_rules = built.rules4()
    assert IPV4 in str(ipv4_rules)  # the IPv4 side of eth1: its table and rules

    # Until T1: the kernel's valid lifetime of eth0's address counts down, then RENEW6
    # brings it back up (twice a second: this wait is a minute).
    seen: list[int] = []
    deadline = time.monotonic() + LEASE / 2 + 20
    while not (len(seen) > 1 and seen[-1] > min(seen) + 30):
        assert time.monotonic() < deadline, f"no renewal of eth0: {seen}\n{lab.agent_log()}"
        seen.append(int(built.globals6("eth0")[OLD["eth0"]]["valid_life_time"]))
        time.sleep(0.5)
    figures = f"eth0's valid_lft: {max(seen[:-1])} s at bind, {min(seen)} s before T1, "
    figures += f"{seen[-1]} s after RENEW6 (bound {bound_after:.1f} s after the agent's start)"
    eth0 = built.globals6("eth0")[OLD["eth0"]]
    assert seen[-1] >= LEASE - 10 and eth0["preferred_life_time"] >= LEASE - 10, figures
    assert "DHCPRENEW(r0)" in (lab.tmp / "dnsmasq.log").read_text()

    # eth1's renewal got lifetimes 0: the address goes, and its rule with it at once (the
    # port keeps IPv4, its table and rules); its client solicits, not restarted by the agent.
    wait_until(
        lambda: not built.globals6("eth1") and OLD["eth1"] not in built.from_rules(),
        10,
        "eth1's old address and its rule gone\n" + lab.agent_log(),
    )
    assert OLD["eth0"] in built.from_rules() and built.rules4() == ipv4_rules
    assert "eth1: its DHCPv6 lease is over" in lab.agent_log()

    # The server gives eth1 its new address: routed through eth1 once bound.
    (lab.tmp / "hosts").write_text(f"{MAC['eth0']},[{OLD['eth0']}]\n{MAC['eth1']},[{NEW1}]\n")
    dnsmasq = next(p for p in lab.processes if "dnsmasq" in p.args)
    dnsmasq.send_signal(signal.SIGHUP)  # dnsmasq reads its hosts file again
    wait_until(lambda: NEW1 in built.from_rules(), 20, "eth1's new address routed")
    new = built.globals6("eth1")[NEW1]
    assert 0 < new["valid_life_time"] <= LEASE and new.get("noprefixroute")
    route = lab.json("-6", "route", "get", "2001:db8:ff::10", "from", NEW1)
    assert route[0]["dev"] == "eth1" and route[0]["gateway"].startswith("fe80:"), route
    assert "dhcpv6 client for eth1 again" not in lab.agent_log()
    print(figures, f"; the whole test {time.monotonic() - start:.1f} s")
    print("\n".join(line for line in lab.agent_log().splitlines() if "eth1" in line))
