"""A static IPv6 port persisted, proven by the real daemons and iproute2 replays: eth0 is
dual-stack (DHCPv4 from dnsmasq, SLAAC from radvd on br0), eth1 is IPv6-only on its own link
(br1: no router advertisement) with a DHCP-disabled IPv6 network (``network_data.json`` type
``ipv6``) that the agent's own code configured from the metadata (address, prefix and
gateway at metric 2048 + ifindex). After ``multihome persist`` and a restart of the daemon
with the ports flushed (a reboot, as far as the ports know), the daemon alone puts back
eth1's address, its gateway in main (at the agent's metric), its table (the metadata's
gateway as default, the prefix), every family-6 rule of the plan, and each port's global
address answers the "internet" (2001:db8:ff::10, on the switch) through its own port: the
switch drops a port's source arriving from the other port's link, and counts it.

networkd, netplan (``netplan generate``, its files read by networkd) and NetworkManager run
for real; ifcfg (as network-scripts' ``ifup-ipv6``/``ifup-routes`` and NetworkManager's
ifcfg-rh read it, tests/persist/ifcfg_replay.py) and the systemd unit (its drop-in's
``ExecStartPre=`` lines, then its ``ExecStart=``) are replayed in a fresh namespace.
Checked with ``ip -j``, never with multihome's code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ifcfg_replay import SCRIPTS, ifcfg_values, replay_routes, replay_rules, route_lines
from ifcfg_replay import routing_rules as ifcfg_rules
from persist_util import (
    MACS,
    MULTIHOME,
    Lab,
    Networkd,
    NetworkManager,
    multihome,
    need,
    ns_routes,
    run,
    wait_for,
)
from radvd import global_address, stop, wait_for_slaac
from test_daemons_ipv6 import NM_BASE, band6, planned6, start_ra

STATIC6 = "2001:db8:2::5"
GATEWAY6 = "2001:db8:2::1"
PREFIX6 = "2001:db8:2::/64"
FAR6 = "2001:db8:ff::10"
NETWORK_DATA = {
    "links": [
        {"ethernet_mac_address": MACS["eth1"], "id": "tap-eth1", "type": "ovs", "vif_id": "p1"}
    ],
    "networks": [
        {
            "id": "network1",
            "link": "tap-eth1",
            "type": "ipv6",
            "ip_address": STATIC6,
            "netmask": "ffff:ffff:ffff:ffff::",
            "routes": [{"network": "::", "netmask": "::", "gateway": GATEWAY6}],
            "network_id": "net-static6",
            "services": [],
        }
    ],
    "services": [],
}
#: The agent's own code (multihome.agent.addressing) configures eth1 from the metadata.
AGENT_ADDRESSES = """
import sys
from pathlib import Path
from multihome.agent.addressing import configure_static
from multihome.backend.netlink import NetlinkBackend
from multihome.source import parse_network_data
from multihome.source.ports import pending_static
backend = NetlinkBackend()
data = parse_network_data(Path(sys.argv[1]).read_bytes(), "network_data.json")
configs = pending_static(backend.read(), data)
assert [c.ifname for c in configs] == ["eth1"] and configs[0].refused is None, configs
configure_static(backend, configs[0])
"""
NETWORKD_ETH0 = (
    "[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\n\n[DHCPv4]\nRouteMetric=100\n\n"
    "[IPv6AcceptRA]\nRouteMetric=100\n"
)
CLOUD_INIT_NETPLAN = """network:
  version: 2
  ethernets:
    eth0:
      match: {macaddress: "fa:16:3e:00:00:01"}
      dhcp4: true
      dhcp4-overrides: {route-metric: 100}
      accept-ra: true
      ipv6-address-generation: eui64
"""


@dataclass
class Static6:
    """The lab: eth0 on br0 (dnsmasq, radvd), eth1 alone on br1 with its gateway."""

    lab: Lab
    radvd: subprocess.Popen[bytes]
    ifindex: int
    metadata: Path

    def agent_addresses_eth1(self) -> None:
        run("ip", "netns", "exec", self.lab.vm, str(Path(MULTIHOME).parent / "python"), "-c",
            AGENT_ADDRESSES, str(self.metadata))  # fmt: skip


@pytest.fixture
def static6(make_lab: Any, tmp_path: Path) -> Iterator[Static6]:
    need("nft")
    lab = make_lab(1)
    radvd = start_ra(lab.switch, tmp_path)
    try:
        yield _static6_lab(lab, radvd, tmp_path)
    finally:
        stop(radvd)


def static6_link(sw: str) -> None:
    """In the switch namespace ``sw`` (br0 the other port's link): the static port's link
    br1 with its gateway (no router advertisement), the far host, and the guard."""
    run("ip", "-n", sw, "link", "add", "br1", "type", "bridge")
    run("ip", "-n", sw, "link", "set", "br1", "up")
    run("ip", "-n", sw, "addr", "add", f"{GATEWAY6}/64", "dev", "br1", "nodad")
    run("ip", "-n", sw, "addr", "add", f"{FAR6}/128", "dev", "lo")
    # A port's source arriving from the other port's link is dropped (and counted): a reply
    # that leaves through the wrong port never comes back, as behind Neutron's port security.
    run("ip", "netns", "exec", sw, "nft", "-f", "-", input=(
        "table inet guard { chain input { type filter hook input priority 0;"
        f' iifname "br0" ip6 saddr {PREFIX6} counter drop;'
        ' iifname "br1" ip6 saddr 2001:db8:1::/64 counter drop; }\n}\n'
    ))  # fmt: skip


def _static6_lab(lab: Lab, radvd: subprocess.Popen[bytes], tmp_path: Path) -> Static6:
    """eth1 alone on br1 with its gateway, the far host, the switch's guard, the metadata."""
    sw = lab.switch
    static6_link(sw)
    run("ip", "link", "add", "eth1", "netns", lab.vm, "address", MACS["eth1"], "type", "veth",
        "peer", "p1", "netns", sw)  # fmt: skip
    run("ip", "-n", sw, "link", "set", "p1", "master", "br1")
    run("ip", "-n", sw, "link", "set", "p1", "up")
    lab.ports.append("eth1")
    link = json.loads(run("ip", "-n", lab.vm, "-j", "link", "show", "eth1").stdout)[0]
    metadata = tmp_path / "network_data.json"
    metadata.write_text(json.dumps(NETWORK_DATA))
    return Static6(lab, radvd, int(link["ifindex"]), metadata)


def static_in_place(lab: Lab, table: int, metric: int) -> bool:
    """eth1 has its address past DAD, its gateway in main at ``metric``, and its table the
    gateway as default and its prefix."""
    if global_address(lab.vm, "eth1") != STATIC6:
        return False
    main = {
        (r["dst"], r.get("gateway"), r.get("metric"))
        for r in ns_routes(lab.vm, "main", 6)
        if r.get("dev") == "eth1"
    }
    own = {(r["dst"], r.get("gateway")) for r in ns_routes(lab.vm, table, 6)}
    return ("default", GATEWAY6, metric) in main and {
        ("default", GATEWAY6),
        (PREFIX6, None),
    } <= own


def policy_in_place(lab: Lab, rules: list[tuple[object, ...]], tables: dict[str, int]) -> bool:
    """The plan's family-6 rules in the band, each address's lookup through its own port."""
    if band6(lab.vm) != rules:
        return False
    for ifname in tables:
        addr = global_address(lab.vm, ifname)
        if addr is None:
            return False
        got = json.loads(
            run("ip", "-6", "-n", lab.vm, "-j", "route", "get", FAR6, "from", addr).stdout
        )[0]
        if got.get("dev") != ifname:
            return False
    return True


#: A TCP service on every address of a guest namespace: says "ok" and closes.
SERVER = """
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", 8080))
s.listen(16)
while True:
    c, _ = s.accept()
    c.sendall(b"ok")
    c.close()
"""
#: ``CLIENT ADDRESS``: a connection from the far host to the guest's service, answered or not
#: (TCP, not ping: the kernel sends an ICMPv6 echo reply out of the interface the request
#: came in on, whatever the routing; a SYN-ACK follows the routing).
CLIENT = """
import socket, sys, time
for attempt in range(10):  # the service may still be starting
    try:
        with socket.create_connection((sys.argv[1], 8080), 2, (sys.argv[2], 0)) as c:
            sys.exit(0 if c.recv(2) == b"ok" else 1)
    except ConnectionRefusedError:
        time.sleep(0.2)
    except OSError:
        sys.exit(1)
sys.exit(1)
"""


def serve(lab: Lab, ns: str, log: Path) -> None:
    """The TCP service in ``ns`` (stopped with the namespaces)."""
    lab.spaces.spawn(["ip", "netns", "exec", ns, sys.executable, "-c", SERVER], log)


def answers(lab: Lab, address: str) -> bool:
    """A TCP connection from the far host to ``address`` is answered: the SYN-ACK came back
    through the port the SYN went in by (the switch drops it from the other port's link)."""
    done = run("ip", "netns", "exec", lab.switch, sys.executable, "-c", CLIENT, address, FAR6,
               check=False)  # fmt: skip
    return done.returncode == 0


def drops(lab: Lab) -> int:
    """The packets the switch dropped: a port's source from the other port's link."""
    return guard_drops(lab.switch)


def guard_drops(sw: str) -> int:
    """The packets :func:`static6_link`'s guard in ``sw`` dropped."""
    listed = run("ip", "netns", "exec", sw, "nft", "-j", "list", "table", "inet", "guard")
    return sum(
        int(expr["counter"]["packets"])
        for item in json.loads(listed.stdout)["nftables"]
        if "rule" in item
        for expr in item["rule"]["expr"]
        if "counter" in expr
    )


def answers_through_own_ports(lab: Lab) -> None:
    """Each port's global address answers the far host over TCP; the switch dropped
    nothing meanwhile."""
    before = drops(lab)
    for ifname in ("eth0", "eth1"):
        addr = global_address(lab.vm, ifname)
        assert addr is not None, ifname
        assert answers(lab, addr), f"{ifname} {addr}: no answer through its own port"
    assert drops(lab) == before


def plan_then_persist(lab: Lab, root: Path, backend: str) -> tuple[list[Any], dict[str, int]]:
    """The plan's family-6 rules and tables (from the kernel state before persist), then
    ``persist --backend``; the plan shows eth1's gateway as its table's default."""
    rules, tables = planned6(lab.vm, root)
    assert set(tables) == {"eth0", "eth1"} and len(rules) == 7, rules
    # netplan's own activation would load its generated files with PermanentMACAddress=,
    # which no veth matches (netplan_to_networkd): the restart below is the test.
    activate = ["--no-activate"] if backend == "netplan" else []
    proc = multihome(lab.vm, "persist", "--backend", backend, "--root", str(root), *activate)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return rules, tables


def flush(lab: Lab) -> None:
    """As after a reboot: the ports lose every address and route, the band its rules."""
    for port in lab.ports:
        run("ip", "-n", lab.vm, "addr", "flush", "dev", port)
        run("ip", "-n", lab.vm, "link", "set", port, "down")
    for rule in band6(lab.vm):
        run("ip", "-6", "-n", lab.vm, "rule", "del", "priority", str(rule[0]))


def netplan_to_networkd(root: Path) -> None:
    """``netplan generate`` under ``root``; its networkd files where the test's networkd
    reads them (it has /etc/systemd/network only). netplan 0.106 matches ``macaddress`` as
    ``PermanentMACAddress=``, which veths lack (a VM's virtio NIC has one): ``MACAddress=``."""
    shutil.rmtree(root / "run/systemd/network", ignore_errors=True)
    run("netplan", "generate", "--root-dir", str(root))
    for generated in (root / "run/systemd/network").glob("*.network"):
        text = generated.read_text().replace("PermanentMACAddress=", "MACAddress=")
        (root / "etc/systemd/network" / generated.name).write_text(text)


@pytest.mark.parametrize("backend", ["networkd", "netplan"])
def test_networkd_and_netplan_put_back_the_static_ipv6_port(
    static6: Static6, tmp_path: Path, backend: str
) -> None:
    """networkd (with multihome's own ``50-multihome-eth1.network``, or netplan's file from
    multihome's definition) restarted with the ports flushed: eth1's address, its gateway in
    main at the agent's metric, its table and every family-6 rule come back; each port's
    address answers through its own port; ``multihome apply`` then adds no route."""
    need("/lib/systemd/systemd-networkd", "networkctl", "dbus-daemon")
    lab = static6.lab
    root = tmp_path / "root"
    (root / "etc/systemd/network").mkdir(parents=True)
    (root / "lib/systemd").mkdir(parents=True)
    (root / "lib/systemd/systemd-networkd").write_text("")
    if backend == "netplan":
        need("netplan")
        (root / "usr/sbin").mkdir(parents=True)
        (root / "usr/sbin/netplan").write_text("")
        (root / "etc/netplan").mkdir(parents=True)
        (root / "etc/netplan/50-cloud-init.yaml").write_text(CLOUD_INIT_NETPLAN)
        (root / "etc/netplan/50-cloud-init.yaml").chmod(0o600)
        netplan_to_networkd(root)
    else:
        (root / "etc/systemd/network/10-eth0.network").write_text(NETWORKD_ETH0)
    nd = Networkd(lab, root, tmp_path / "networkd.log")
    nd.start()
    wait_for_slaac(lab.vm, ["eth0"], timeout=30)
    static6.agent_addresses_eth1()
    metric = 2048 + static6.ifindex
    wait_for(lambda: global_address(lab.vm, "eth1") == STATIC6, 10, "the agent's address")
    serve(lab, lab.vm, tmp_path / "service.log")
    before = drops(lab)
    assert not answers(lab, STATIC6)  # the bug: its reply leaves by eth0's RA default
    assert drops(lab) > before
    rules, tables = plan_then_persist(lab, root, backend)
    if backend == "netplan":
        netplan_to_networkd(root)
    nd.stop()
    flush(lab)
    nd.start()
    wait_for(lambda: static_in_place(lab, tables["eth1"], metric), 40, "eth1's static IPv6")
    wait_for(lambda: policy_in_place(lab, rules, tables), 40, "the family-6 policy")
    log = nd.log.read_text()
    assert "Unknown key" not in log and "Failed to parse" not in log, log
    serve(lab, lab.vm, tmp_path / "service.log")  # the restart stopped every process
    answers_through_own_ports(lab)
    applied = multihome(lab.vm, "--root", str(root), "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "route" not in applied.stdout, applied.stdout  # networkd's routes stand for ours


def test_networkmanager_puts_back_the_static_ipv6_port(static6: Static6, tmp_path: Path) -> None:
    """NetworkManager activates multihome's ``multihome-eth1`` (``ipv4.method=disabled``,
    ``ipv6.method=manual`` with the address, the gateway as a route of main at the agent's
    metric) after a restart with the ports flushed: address, main's route, table and rules
    back, each address answering through its own port."""
    need("NetworkManager", "nmcli", "dbus-daemon")
    lab = static6.lab
    nm = NetworkManager(lab, tmp_path / "root", tmp_path / "nm.log")
    nm.keyfiles.mkdir(parents=True)
    profile = nm.keyfiles / "cloud-eth0.nmconnection"
    profile.write_text(NM_BASE.format(name="eth0", index=0, metric=100))
    profile.chmod(0o600)
    (nm.root / "usr/sbin").mkdir(parents=True)
    (nm.root / "usr/sbin/NetworkManager").write_text("")
    nm.start()
    wait_for_slaac(lab.vm, ["eth0"], timeout=40)
    static6.agent_addresses_eth1()
    wait_for(lambda: global_address(lab.vm, "eth1") == STATIC6, 10, "the agent's address")
    rules, tables = plan_then_persist(lab, nm.root, "networkmanager")
    nm.stop()
    flush(lab)
    nm.start()
    metric = 2048 + static6.ifindex
    wait_for(lambda: static_in_place(lab, tables["eth1"], metric), 60, "eth1's static IPv6")
    wait_for(lambda: policy_in_place(lab, rules, tables), 60, "the family-6 policy")
    active = nm.nmcli("-t", "-f", "NAME", "connection", "show", "--active")
    assert "multihome-eth1" in active.split(), active
    serve(lab, lab.vm, tmp_path / "service.log")  # the restart stopped every process
    answers_through_own_ports(lab)


def _fresh_guest(static6: Static6, *ports: str) -> str:
    """A fresh guest namespace (a reboot: same MACs, same switch ports and links) holding
    ``ports``; eth0 comes up and takes SLAAC from the router as a guest's kernel does."""
    lab = static6.lab
    ns = lab.spaces.add("boot")
    for port in ports:
        peer, bridge = ("p1", "br1") if port == "eth1" else ("p0", "br0")
        run("ip", "-n", lab.switch, "link", "del", peer)
        run("ip", "link", "add", port, "netns", ns, "address", MACS[port], "type", "veth",
            "peer", peer, "netns", lab.switch)  # fmt: skip
        run("ip", "-n", lab.switch, "link", "set", peer, "master", bridge)
        run("ip", "-n", lab.switch, "link", "set", peer, "up")
    if "eth0" in ports:
        run("ip", "-n", ns, "link", "set", "eth0", "up")
        wait_for_slaac(ns, ["eth0"], timeout=30)
    return ns


def _persisted(static6: Static6, tmp_path: Path, backend: str, *installed: str) -> tuple[Path, Any]:
    """The agent addresses eth1 in the lab's guest (eth0 has SLAAC only), ``persist
    --backend`` writes the files under a root where ``installed`` paths exist."""
    lab = static6.lab
    run("ip", "-n", lab.vm, "link", "set", "eth0", "up")
    wait_for_slaac(lab.vm, ["eth0"], timeout=30)
    static6.agent_addresses_eth1()
    wait_for(lambda: global_address(lab.vm, "eth1") == STATIC6, 10, "the agent's address")
    root = tmp_path / "root"
    for path in installed:
        target = root / path.strip("/")
        if path.endswith("/"):
            target.mkdir(parents=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("")
    plan = planned6(lab.vm, root)
    proc = multihome(lab.vm, "persist", "--backend", backend, "--root", str(root))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root, plan


def _eth1_in_place(ns: str, rules: list[Any], table: int, metric: int) -> None:
    """In the booted namespace: eth1's address, main's gateway route, its table, its rules,
    and its address answering the far host through br1."""
    lab_rules = [r for r in rules if r[3] in (None, "eth1") and r[4] in (None, "eth1")]
    eth1_rules = [r for r in lab_rules if r[1] in ("all", STATIC6)]
    assert band6(ns) == eth1_rules
    main = {(r["dst"], r.get("gateway"), r.get("metric")) for r in ns_routes(ns, "main", 6)}
    assert ("default", GATEWAY6, metric) in main, main
    own = {(r["dst"], r.get("gateway")) for r in ns_routes(ns, table, 6)}
    assert {("default", GATEWAY6), (PREFIX6, None)} <= own, own
    got = json.loads(run("ip", "-6", "-n", ns, "-j", "route", "get", FAR6, "from", STATIC6).stdout)
    assert (got[0].get("dev"), got[0].get("gateway")) == ("eth1", GATEWAY6), got


def _answers(static6: Static6, ns: str, log: Path) -> None:
    """eth1's address answers the far host over TCP through br1 (nothing dropped)."""
    serve(static6.lab, ns, log)
    before = drops(static6.lab)
    assert answers(static6.lab, STATIC6)
    assert drops(static6.lab) == before


def test_ifcfg_replayed_as_rhel_reads_it_puts_back_the_static_ipv6_port(
    static6: Static6, tmp_path: Path
) -> None:
    """A fresh namespace replays eth1's ifcfg files as RHEL does: ``ifup-ipv6`` sets
    ``accept_ra``/``autoconf`` from ``IPV6_AUTOCONF=no`` and adds ``IPV6ADDR`` (then waits
    for DAD), ``ifup-routes`` adds the ``route6-`` lines (main's gateway, the table's
    routes), and the ``ROUTING_RULE6_N`` keys as ifcfg-rh reads them: eth1's address, main's
    route at the agent's metric, its table and rules are back and it answers through br1."""
    root, (rules, tables) = _persisted(
        static6, tmp_path, "ifcfg", "/usr/sbin/NetworkManager", "/etc/sysconfig/network-scripts/"
    )
    ns = _fresh_guest(static6, "eth1")
    files = {
        p.relative_to(root).as_posix(): p.read_text()
        for p in (root / "etc/sysconfig/network-scripts").iterdir()
    }
    texts = {SCRIPTS / Path(k).name: v for k, v in files.items()}
    values = ifcfg_values(texts[SCRIPTS / "ifcfg-multihome-eth1"])
    assert values["IPV6_AUTOCONF"] == "no" and "IPV6_DEFAULTGW" not in values
    auto = "0" if values["IPV6_AUTOCONF"] == "no" else "1"
    for knob in ("accept_ra", "autoconf"):
        run("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.eth1.{knob}={auto}")
    run("ip", "-n", ns, "link", "set", "eth1", "up")
    for address in [values["IPV6ADDR"], *values.get("IPV6ADDR_SECONDARIES", "").split()]:
        run("ip", "-n", ns, "-6", "addr", "add", address, "dev", "eth1")
    wait_for(lambda: global_address(ns, "eth1") == STATIC6, 10, "DAD (ipv6_wait_tentative)")
    replay_routes(ns, route_lines(texts, "eth1"))
    replay_rules(ns, ifcfg_rules(texts[SCRIPTS / "ifcfg-multihome-eth1"]), set())
    _eth1_in_place(ns, rules, tables["eth1"], 2048 + static6.ifindex)
    _answers(static6, ns, tmp_path / "service.log")


def test_systemd_unit_instance_puts_back_the_static_ipv6_port(
    static6: Static6, tmp_path: Path
) -> None:
    """A fresh namespace runs eth1's instance as systemd would: the drop-in's
    ``ExecStartPre=`` lines (link up, address, main's gateway route; the wait), then
    ``ExecStart=`` (``multihome apply --interface eth1``): eth1's address, main's route, its
    table and rules are back and it answers through br1; the instance and its drop-in pass
    ``systemd-analyze verify`` without a word."""
    need("systemd-analyze")
    root, (rules, tables) = _persisted(static6, tmp_path, "systemd", "/usr/bin/systemctl")
    units = root / "etc/systemd/system"
    dropin = (units / "multihome@eth1.service.d/50-multihome.conf").read_text()
    pre = [
        line.removeprefix("ExecStartPre=")
        for line in dropin.splitlines()
        if line.startswith("ExecStartPre=")
    ]
    assert pre[0] == "" and pre[-1].startswith("/bin/sh -c"), pre  # reset, ..., the wait
    instance = tmp_path / "verify/multihome@eth1.service"
    (instance.parent / "multihome@eth1.service.d").mkdir(parents=True)
    unit = (units / "multihome@.service").read_text()
    program = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    program = program.removeprefix("ExecStart=").split()[0]  # not installed on this host
    instance.write_text(unit.replace(program, MULTIHOME))
    (instance.parent / "multihome@eth1.service.d/50-multihome.conf").write_text(dropin)
    verified = run("systemd-analyze", "verify", str(instance), check=False)
    assert (verified.returncode, verified.stderr) == (0, ""), verified.stderr
    ns = _fresh_guest(static6, "eth0", "eth1")
    env = {"MULTIHOME_WAIT_FAMILIES": "6", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    for command in pre[1:]:
        argv = command.lstrip("-").replace("%I", "eth1").replace("$$", "$")
        if argv.startswith("/bin/sh -c"):  # the wait: systemd unquotes its one argument
            script = argv.split("'")[1]
            proc = run("ip", "netns", "exec", ns, "sh", "-c", script, "sh", "eth1", env=env,
                       timeout=40)  # fmt: skip
        else:
            proc = run("ip", "netns", "exec", ns, *argv.split(), check=not command.startswith("-"))
        assert proc.returncode == 0, (command, proc.stderr)
    assert global_address(ns, "eth1") == STATIC6  # the wait returned only after DAD
    applied = multihome(ns, "--root", str(root), "apply", "--quiet", "--interface", "eth1")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    _eth1_in_place(ns, rules, tables["eth1"], 2048 + static6.ifindex)
    _answers(static6, ns, tmp_path / "service.log")
