"""The table-first band against the real kernel (docs/design.md, section 5, "Table first,
main's other specifics by throw"): a VM whose ports are on different subnets behind Neutron-
style port security, with a container bridge and a VPN-like tunnel beside them.

Namespaces: the VM (eth0 10.0.0.5/24, eth1 10.1.0.5/24, ``docker0`` 172.17.0.1/16 to a
container, ``tun0`` 10.8.0.2/24 to a VPN peer that routes 10.9.0.0/16), a switch with one
bridge per subnet and an nftables ``bridge`` table that drops what a port sends with another
source address (counted per port), the router (10.0.0.1, 10.1.0.1) and a peer on eth1's
subnet (10.1.0.7). Checked with ``ping`` from the other namespaces and ``ip -j``, never with
multihome's own code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from netns_util import multihome, namespaces, sh, unique

pytestmark = [pytest.mark.netns]

PORT_SECURITY = """
table bridge portsec {
    counter eth0_spoofed { }
    counter eth1_spoofed { }
    chain pre {
        type filter hook prerouting priority 0; policy accept;
        iifname "v0" ether type ip ip saddr != 10.0.0.5 counter name "eth0_spoofed" drop
        iifname "v1" ether type ip ip saddr != 10.1.0.5 counter name "eth1_spoofed" drop
    }
}
"""


@dataclass(frozen=True)
class Net:
    """The namespaces of one test module, and the VM's --root."""

    vm: str
    switch: str
    router: str
    peer: str
    container: str
    vpn: str
    root: Path
    before: bool
    """Whether the peer's ping to eth0's address worked before multihome applied."""

    def ip(self, ns: str, *argv: str) -> subprocess.CompletedProcess[str]:
        return sh("ip", "-n", ns, *argv)

    def ping(self, ns: str, dst: str, *, source: str | None = None) -> bool:
        extra = ["-I", source] if source else []
        done = sh("ip", "netns", "exec", ns, "ping", "-c1", "-W1", "-n", *extra, dst, check=False)
        return done.returncode == 0

    def spoofed(self, port: str) -> int:
        out = sh("ip", "netns", "exec", self.switch, "nft", "-j", "list", "counter", "bridge",
                 "portsec", f"{port}_spoofed").stdout  # fmt: skip
        for item in json.loads(out)["nftables"]:
            if "counter" in item:
                return int(item["counter"]["packets"])
        raise AssertionError(out)

    def throws(self) -> dict[str, set[str]]:
        """The VM's throw routes per table, as ``ip -j`` reports them."""
        found: dict[str, set[str]] = {}
        for family in ("-4", "-6"):
            text = sh("ip", family, "-n", self.vm, "-j", "route", "show", "table", "all").stdout
            for route in json.loads(text):
                if route.get("type") == "throw":
                    assert route.get("protocol") in ("222", "multihome"), route
                    found.setdefault(str(route["table"]), set()).add(route["dst"])
        return found


def _link(a: str, a_ns: str, b: str, b_ns: str) -> None:
    sh("ip", "link", "add", a, "netns", a_ns, "type", "veth", "peer", b, "netns", b_ns)


def _build(net: Net) -> None:
    vm, sw, rt = net.vm, net.switch, net.router
    for ns in (vm, sw, rt, net.peer, net.container, net.vpn):
        net.ip(ns, "link", "set", "lo", "up")
    for bridge in ("br0", "br1"):
        net.ip(sw, "link", "add", bridge, "type", "bridge")
        net.ip(sw, "link", "set", bridge, "up")
    for a, a_ns, b, bridge in (
        ("eth0", vm, "v0", "br0"),
        ("r0", rt, "s0", "br0"),
        ("eth1", vm, "v1", "br1"),
        ("r1", rt, "s1", "br1"),
        ("p0", net.peer, "s2", "br1"),
    ):
        _link(a, a_ns, b, sw)
        net.ip(sw, "link", "set", b, "master", bridge, "up")
    _link("docker0", vm, "c0", net.container)
    _link("tun0", vm, "t0", net.vpn)
    subprocess.run(["ip", "netns", "exec", sw, "nft", "-f", "-"], input=PORT_SECURITY,
                   text=True, check=True, capture_output=True)  # fmt: skip
    for knob in ("all", "default"):  # new namespaces copy the host's: be explicit
        sh("ip", "netns", "exec", vm, "sysctl", "-qw", f"net.ipv4.conf.{knob}.rp_filter=0")
    for ns, dev, addr in (
        (vm, "eth0", "10.0.0.5/24"),
        (vm, "eth1", "10.1.0.5/24"),
        (vm, "docker0", "172.17.0.1/16"),
        (vm, "tun0", "10.8.0.2/24"),
        (rt, "r0", "10.0.0.1/24"),
        (rt, "r1", "10.1.0.1/24"),
        (net.peer, "p0", "10.1.0.7/24"),
        (net.container, "c0", "172.17.0.2/16"),
        (net.vpn, "t0", "10.8.0.1/24"),
        (net.vpn, "lo", "10.9.0.9/32"),
    ):
        net.ip(ns, "addr", "add", addr, "dev", dev)
        net.ip(ns, "link", "set", dev, "up")
        if ns == vm and dev.startswith("eth"):
            sh("ip", "netns", "exec", vm, "sysctl", "-qw", f"net.ipv4.conf.{dev}.rp_filter=0")
    sh("ip", "netns", "exec", rt, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    for ns, route in (
        (vm, "default via 10.0.0.1 dev eth0 proto dhcp metric 100"),
        (vm, "default via 10.1.0.1 dev eth1 proto dhcp metric 101"),
        (vm, "10.9.0.0/16 via 10.8.0.1 dev tun0"),  # a route the VPN pushed
        (net.peer, "default via 10.1.0.1"),
        (net.container, "default via 172.17.0.1"),
        (net.vpn, "10.0.0.0/8 via 10.8.0.2"),
    ):
        net.ip(ns, "route", "add", *route.split())


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    """The two-subnet VM, measured once before multihome applies, then applied."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    vm = unique("mhthrow")
    names = [vm, *(f"{vm}-{n}" for n in ("sw", "rt", "peer", "ctr", "vpn"))]
    with namespaces(*names):
        draft = Net(*names, root=tmp_path_factory.mktemp("root"), before=False)
        _build(draft)
        before = draft.ping(draft.peer, "10.0.0.5")
        net = Net(*names, root=draft.root, before=before)
        applied = multihome(net.vm, "apply", root=net.root)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        yield net


def test_a_peer_on_eth1s_subnet_gets_eth0s_reply_through_eth0(net: Net) -> None:
    """The issue's case: before apply the reply from eth0's address left eth1 (main's link
    route) and port security dropped it; after apply it leaves eth0 through the router."""
    assert not net.before, "the failure did not show before apply: the test proves nothing"
    assert net.spoofed("eth1") >= 1  # the dropped reply of the ping before apply
    dropped = net.spoofed("eth1")
    assert net.ping(net.peer, "10.0.0.5")
    assert net.ping(net.peer, "10.1.0.5")  # eth1's own peer, on-link
    assert net.spoofed("eth1") == dropped and net.spoofed("eth0") == 0
    table = json.loads(
        sh("ip", "-n", net.vm, "-j", "route", "get", "10.1.0.7", "from", "10.0.0.5").stdout
    )[0]
    assert (table["dev"], table.get("gateway")) == ("eth0", "10.0.0.1")
    unsourced = json.loads(sh("ip", "-n", net.vm, "-j", "route", "get", "10.1.0.7").stdout)[0]
    assert unsourced["dev"] == "eth1" and "gateway" not in unsourced  # unchanged: main's


def test_the_bridge_and_the_tunnel_still_win_for_port_sources(net: Net) -> None:
    """Each port's table throws docker0's and tun0's routes: a container and a VPN peer that
    reach either port's address get their replies through the bridge and the tunnel."""
    tables = net.throws()
    v4 = {"172.17.0.0/16", "10.8.0.0/24", "10.9.0.0/16"}
    assert len(tables) == 2 and all(v4 <= dsts for dsts in tables.values()), tables
    for address in ("10.0.0.5", "10.1.0.5"):
        assert net.ping(net.container, address)
        assert net.ping(net.vpn, address, source="10.9.0.9")
    assert net.spoofed("eth0") == 0
    for src, dst in (
        ("10.0.0.5", "172.17.0.2"),
        ("10.1.0.5", "10.9.0.9"),
        ("10.0.0.5", "10.1.0.7"),
    ):
        said = multihome(net.vm, "explain", "--json", "--from", src, "--to", dst, root=net.root)
        assert said.returncode == 0, said.stdout + said.stderr  # 1: explain and kernel differ
    again = multihome(net.vm, "apply", "--detailed-exit-codes", root=net.root)  # 0: unchanged
    assert again.returncode == 0, again.stdout + again.stderr


def test_doctor_reports_onlink_off_and_nothing_with_the_default(net: Net) -> None:
    """``doctor`` on the applied VM finds nothing; with ``onlink`` left out of ``rules``
    (the ``from`` rule after main's specifics) it reports ``onlink-off`` with the fix."""
    config = net.root.parent / "no-onlink.yaml"
    config.write_text("rules: [from, oif, iif]\n")
    found = {}
    for args in ((), ("--config", str(config))):
        done = multihome(net.vm, *args, "doctor", "--json", root=net.root)
        found[args] = {p["code"]: p for p in json.loads(done.stdout)["problems"]}
    assert "onlink-off" not in found[()], found[()]
    off = found[("--config", str(config))]["onlink-off"]
    assert "add `onlink` to `rules`" in off["fix"], off


def test_the_agent_follows_a_foreign_route_in_and_out(net: Net) -> None:
    """A route appearing on docker0 gets a throw in every table within one repair, and
    loses it when the route goes; the foreign route itself is never touched."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    log = (net.root.parent / "agent.log").open("w")
    agent = subprocess.Popen(
        ["ip", "netns", "exec", net.vm, sys.executable, "-m", "multihome", "--root",
         str(net.root), "agent", "--log-level", "info", "--no-dhcp", "--no-address"],
        stdout=log, stderr=log, env=env,
    )  # fmt: skip
    try:
        _wait(lambda: "ready" in (net.root.parent / "agent.log").read_text().lower(), "agent")
        net.ip(net.vm, "route", "add", "10.77.0.0/16", "dev", "docker0")
        _wait(lambda: all("10.77.0.0/16" in d for d in net.throws().values()), "throws in")
        foreign = net.ip(net.vm, "-j", "route", "show", "10.77.0.0/16").stdout
        assert json.loads(foreign)[0]["dev"] == "docker0"
        net.ip(net.vm, "route", "del", "10.77.0.0/16", "dev", "docker0")
        _wait(lambda: not any("10.77.0.0/16" in d for d in net.throws().values()), "throws out")
    finally:
        agent.terminate()
        try:
            agent.wait(10)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait(5)
            raise AssertionError((net.root.parent / "agent.log").read_text()) from None
        finally:
            log.close()
    assert agent.returncode == 0, (net.root.parent / "agent.log").read_text()


def _wait(predicate: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_reset_removes_the_throws_and_leaves_the_foreign_routes(net: Net) -> None:
    """Throws are multihome's routes: ``reset`` removes every one; the bridge's and the
    tunnel's routes in main stay as they were."""
    main = {
        (r["dst"], r.get("dev"))
        for r in json.loads(net.ip(net.vm, "-j", "route", "show", "table", "main").stdout)
    }
    assert {("172.17.0.0/16", "docker0"), ("10.9.0.0/16", "tun0")} <= main
    done = multihome(net.vm, "reset", root=net.root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert net.throws() == {}
    after = {
        (r["dst"], r.get("dev"))
        for r in json.loads(net.ip(net.vm, "-j", "route", "show", "table", "main").stdout)
    }
    assert main <= after
