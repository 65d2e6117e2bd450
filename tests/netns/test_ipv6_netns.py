"""IPv6 against the real kernel, with real router advertisements (radvd, as Neutron's L3 agent
sends them): a VM namespace whose ports take SLAAC addresses and ``proto ra`` defaults, a
router namespace with a bridge per network, radvd and port security (an nft bridge table that
drops what a port sends from another port's address, as Neutron's anti-spoofing does), and
an "internet" namespace that connects (TCP) to each address. Asserted with ``ip -6 rule``,
``ip -6 route show table``, ``ip -6 route get ... from ...`` and the port-security counters.
TCP, not ping: the kernel sends an ICMPv6 echo reply out of the interface the request came
in on (``icmp6_iif``), whatever the routing, so ping cannot show the failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from netns_util import multihome, namespaces, sh, unique
from radvd import radvd_conf, start_radvd, stop, wait_for_slaac

INTERNET6 = "2001:db8:ff::10"
INTERNET4 = "203.0.113.10"
PREFIXES = ("2001:db8:1::", "2001:db8:2::")
#: The routers' IPv4 networks per bridge (None: an IPv6-only network).
NETS4 = ("192.168.0", "192.168.1")
SERVICE = 8080
#: A TCP service on every address of the VM (one dual-stack socket): says "ok" and closes.
SERVER = f"""
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", {SERVICE}))
s.listen(64)
while True:
    c, _ = s.accept()
    c.sendall(b"ok")
    c.close()
"""
#: ``CLIENT ADDRESS COUNT``: how many of COUNT connections to the service got its answer.
CLIENT = f"""
import socket, sys
answered = 0
for _ in range(int(sys.argv[2])):
    try:
        with socket.create_connection((sys.argv[1], {SERVICE}), timeout=2) as c:
            answered += c.recv(2) == b"ok"
    except OSError:
        pass
print(answered)
"""


@dataclass(frozen=True)
class Port:
    """A VM port: the bridge (network) it is plugged into and its IPv4 host part, if any."""

    name: str
    bridge: int
    host4: int | None = None


@dataclass
class Lab:
    """The namespaces, the ports' addresses as SLAAC gave them, and the --root."""

    vm: str
    router: str
    inet: str
    root: Path
    ports: tuple[Port, ...]
    v6: dict[str, str] = field(default_factory=dict)
    """Per port, its global IPv6 address."""
    macs: dict[str, str] = field(default_factory=dict)
    radvd: subprocess.Popen[bytes] | None = None

    def v4(self, port: Port) -> str | None:
        return None if port.host4 is None else f"{NETS4[port.bridge]}.{port.host4}"


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    return sh("ip", *args)


def ipj(ns: str, *args: str) -> list[dict[str, object]]:
    out: list[dict[str, object]] = json.loads(ip("-n", ns, "-j", *args).stdout or "[]")
    return out


@contextmanager
def lab(tmp_path: Path, ports: Sequence[Port]) -> Iterator[Lab]:
    """Build the three namespaces and start radvd; stop radvd (by its pid) and delete the
    namespaces by name on the way out, also on failure."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    vm = unique("mh6vm")
    router, inet = f"{vm}-r", f"{vm}-i"
    with namespaces(vm, router, inet):
        started = [_build(tmp_path, vm, router, inet, ports)]
        try:
            built = Lab(vm, router, inet, tmp_path / "root", tuple(ports), radvd=started[0])
            _wait_for_slaac(built)
            _port_security(built)
            started.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", vm, sys.executable, "-c", SERVER],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            _wait_for_service(vm)
            yield built
        finally:
            for process in started:  # radvd and the service, by their own pids
                process.terminate()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _build(
    tmp_path: Path, vm: str, router: str, inet: str, ports: Sequence[Port]
) -> subprocess.Popen[bytes]:
    bridges = sorted({p.bridge for p in ports})
    for b in bridges:
        ip("-n", router, "link", "add", f"br{b}", "type", "bridge")
        ip("-n", router, "link", "set", f"br{b}", "up")
        ip("-n", router, "addr", "add", f"{PREFIXES[b]}1/64", "dev", f"br{b}", "nodad")
        if any(p.bridge == b and p.host4 is not None for p in ports):
            ip("-n", router, "addr", "add", f"{NETS4[b]}.1/24", "dev", f"br{b}")
    for i, p in enumerate(ports):
        mac = f"02:00:00:00:01:{i:02x}"
        veth = f"link add {p.name} netns {vm} address {mac} type veth peer p{i} netns {router}"
        ip(*veth.split())
        ip("-n", router, "link", "set", f"p{i}", "master", f"br{p.bridge}", "up")
    ip(*f"link add up0 netns {router} type veth peer w0 netns {inet}".split())
    for ns, cmds in (
        (router, ["link set lo up", "link set up0 up", "addr add 2001:db8:ff::1/64 dev up0 nodad"]),
        (router, ["addr add 203.0.113.1/24 dev up0"]),
        (inet, ["link set lo up", "link set w0 up", f"addr add {INTERNET6}/64 dev w0 nodad"]),
        (inet, [f"addr add {INTERNET4}/24 dev w0", "route add default via 203.0.113.1"]),
        (inet, ["-6 route add default via 2001:db8:ff::1"]),
    ):
        for cmd in cmds:
            ip("-n", ns, *cmd.split())
    for knob in ("net.ipv6.conf.all.forwarding=1", "net.ipv4.ip_forward=1"):
        sh("ip", "netns", "exec", router, "sysctl", "-qw", knob)
    ip("-n", vm, "link", "set", "lo", "up")
    # A guest: no forwarding, router advertisements accepted, addresses from the MAC (EUI-64).
    for knob in ("forwarding=0", "accept_ra=1", "use_tempaddr=0", "addr_gen_mode=0"):
        sh("ip", "netns", "exec", vm, "sysctl", "-qw", f"net.ipv6.conf.default.{knob}")
    for i, p in enumerate(ports):
        ip("-n", vm, "link", "set", p.name, "up")
        if p.host4 is not None:
            addr = f"{NETS4[p.bridge]}.{p.host4}"
            ip("-n", vm, "addr", "add", f"{addr}/24", "dev", p.name)
            route = f"route add default via {NETS4[p.bridge]}.1 dev {p.name} proto dhcp"
            ip("-n", vm, *route.split(), "src", addr, "metric", str(100 + i))
    conf = radvd_conf((f"br{b}", f"{PREFIXES[b]}/64") for b in bridges)
    return start_radvd(router, tmp_path / "radvd.conf", conf)


def _wait_for_slaac(built: Lab, timeout: float = 20.0) -> None:
    """Until every port has a global address past DAD and its router-advertised default."""
    built.v6.update(wait_for_slaac(built.vm, [p.name for p in built.ports], timeout))
    for entry in ipj(built.vm, "link"):
        built.macs[str(entry["ifname"])] = str(entry.get("address"))


def _wait_for_service(vm: str, timeout: float = 10.0) -> None:
    """Until the service answers inside the VM (on ::1)."""
    deadline = time.monotonic() + timeout
    while sh("ip", "netns", "exec", vm, sys.executable, "-c", CLIENT, "::1", "1").stdout != "1\n":
        if time.monotonic() > deadline:
            raise AssertionError("the VM's TCP service never answered")
        time.sleep(0.1)


def _port_security(built: Lab) -> None:
    """Neutron's anti-spoofing, in the router's bridges: what port pN sends from another
    port's address is dropped and counted (``drops``); the service's packets from the port's
    own IPv6 address are counted per port (``replies_pN``)."""
    ns = built.router
    lines = ["table bridge portsec {", "  counter drops { }"]
    lines += [f"  counter replies_p{i} {{ }}" for i in range(len(built.ports))]
    lines += ["  chain pre {", "    type filter hook prerouting priority 0; policy accept;"]
    for i, p in enumerate(built.ports):
        others6 = [built.v6[o.name] for o in built.ports if o is not p]
        others4 = [a for o in built.ports if o is not p and (a := built.v4(o)) is not None]
        lines.append(
            f'    iifname "p{i}" ip6 saddr {{ {", ".join(others6)} }} counter name drops drop'
        )
        if others4:
            lines.append(
                f'    iifname "p{i}" ip saddr {{ {", ".join(others4)} }} counter name drops drop'
            )
        lines.append(
            f'    iifname "p{i}" ip6 saddr {built.v6[p.name]} tcp sport {SERVICE}'
            f" counter name replies_p{i}"
        )
    lines += ["  }", "}"]
    subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "-f", "-"],
        input="\n".join(lines) + "\n",
        text=True,
        check=True,
        capture_output=True,
    )


def counter(built: Lab, name: str) -> int:
    """The packets a named counter of the port-security table has counted."""
    out = sh(*f"ip netns exec {built.router} nft -j list counter bridge portsec {name}".split())
    for item in json.loads(out.stdout)["nftables"]:
        if "counter" in item:
            return int(item["counter"]["packets"])
    raise AssertionError(f"no counter {name}: {out.stdout}")


def connect(built: Lab, address: str, count: int = 3) -> int:
    """How many of ``count`` TCP connections from the internet namespace to ``address`` got
    the service's answer."""
    done = sh("ip", "netns", "exec", built.inet, sys.executable, "-c", CLIENT, address, str(count))
    return int(done.stdout)


def route_get(built: Lab, source: str, dst: str = INTERNET6) -> dict[str, object]:
    family = "-6" if ":" in dst else "-4"
    got: list[dict[str, object]] = json.loads(
        ip("-n", built.vm, family, "-j", "route", "get", dst, "from", source).stdout
    )
    return got[0]


def table_of(built: Lab, ifname: str) -> str:
    for rule in ipj(built.vm, "-6", "rule"):
        if rule.get("oif") == ifname and rule.get("protocol") == "222":
            return str(rule["table"])
    raise AssertionError(f"no IPv6 oif rule for {ifname}: {ipj(built.vm, '-6', 'rule')}")


def assert_fixed(built: Lab) -> None:
    """Each port's IPv6 table and rules as designed, each address's lookup and each ping
    reply through its own port, nothing dropped by port security."""
    rules = {
        (r["priority"], r.get("src"), r.get("dst"), r.get("oif"), r.get("iif"), r["table"])
        for r in ipj(built.vm, "-6", "rule")
        if r.get("protocol") == "222"
    }
    assert (10001, "all", None, None, None, "main") in rules
    for p in built.ports:
        table = table_of(built, p.name)
        addr = built.v6[p.name]
        prefix = PREFIXES[p.bridge] + "/64"
        assert {
            (10000, addr, None, None, None, table),  # the table first
            (10003, "all", None, p.name, None, table),
            (10004, "all", None, None, p.name, table),
        } <= rules, rules
        routes = {
            (r["dst"], r.get("gateway"), r["dev"], r["protocol"])
            for r in ipj(built.vm, "-6", "route", "show", "table", table)
        }
        router = next(
            str(r["gateway"])
            for r in ipj(built.vm, "-6", "route", "show", "default", "dev", p.name, "proto", "ra")
        )
        assert router.startswith("fe80:")
        assert routes == {
            (prefix, None, p.name, "222"),
            ("default", router, p.name, "222"),
            ("fe80::/64", None, "lo", "222"),  # throw: link-local is main's (ip shows dev lo)
        }
        got = route_get(built, addr)
        assert (got["dev"], got.get("gateway"), got.get("prefsrc")) == (p.name, router, addr)
        if (v4 := built.v4(p)) is not None:
            assert route_get(built, v4, INTERNET4)["dev"] == p.name
    # The kernel's own RA defaults are still in main, one per port.
    main = ipj(built.vm, "-6", "route", "show", "default", "proto", "ra")
    assert sorted(str(r["dev"]) for r in main) == sorted(p.name for p in built.ports)
    drops = counter(built, "drops")
    for i, p in enumerate(built.ports):
        before = counter(built, f"replies_p{i}")
        assert connect(built, built.v6[p.name]) == 3, f"{p.name} {built.v6[p.name]} is dead"
        assert counter(built, f"replies_p{i}") > before  # the answers left through p{i}
        if (v4 := built.v4(p)) is not None:
            assert connect(built, v4) == 3, f"{p.name} {v4} does not answer"
    assert counter(built, "drops") == drops


def apply(built: Lab) -> subprocess.CompletedProcess[str]:
    result = multihome(built.vm, "apply", root=built.root)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_two_ports_on_one_prefix(tmp_path: Path) -> None:
    """The how-to's failure in IPv6: two ports on one prefix, two equal RA defaults. Before
    apply one address's replies leave through the other port and port security drops them;
    after it every address answers through its own port, verify proves it, a second apply
    changes nothing, and the router's stale neighbour entries are corrected by the
    unsolicited neighbour advertisements; an address still in DAD is left out until DAD
    has passed."""
    with lab(tmp_path, [Port("eth0", 0), Port("eth1", 0)]) as built:
        wrong = [p.name for p in built.ports if route_get(built, built.v6[p.name])["dev"] != p.name]
        assert len(wrong) == 1, wrong
        right = next(p.name for p in built.ports if p.name not in wrong)
        assert connect(built, built.v6[right], count=1) == 1
        assert connect(built, built.v6[wrong[0]], count=1) == 0
        assert counter(built, "drops") > 0
        # The router's cache learnt the addresses; point them at a wrong MAC.
        for p in built.ports:
            ip("-n", built.router, "neigh", "replace", built.v6[p.name], "lladdr",
               "02:00:00:00:99:99", "dev", "br0", "nud", "stale")  # fmt: skip
        result = apply(built)
        assert "2 address(es) announced" in result.stdout, result.stdout
        assert_fixed(built)
        neigh = {
            str(n["dst"]): str(n.get("lladdr"))
            for n in ipj(built.router, "-6", "neigh", "show", "dev", "br0")
        }
        for p in built.ports:
            assert neigh[built.v6[p.name]] == built.macs[p.name]
        verify = multihome(built.vm, "verify", "--json", root=built.root)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        checks = json.loads(verify.stdout)["checks"]
        assert {(c["interface"], c["address"], c["check"]) for c in checks if c["ok"]} >= {
            (p.name, built.v6[p.name], name) for p in built.ports for name in ("egress", "gateway")
        }
        again = multihome(built.vm, "apply", "--detailed-exit-codes", root=built.root)
        assert again.returncode == 0, again.stdout + again.stderr
        assert_dad_is_waited_for(built)


def assert_dad_is_waited_for(built: Lab) -> None:
    """An address whose DAD is still running gets no rule; once DAD has passed, the next
    apply adds it (a no-op apply's fingerprint must not hide the end of DAD)."""
    extra = "2001:db8:1::99"
    sysctl = "net.ipv6.neigh.eth1.retrans_time_ms=4000"  # DAD takes 4 s or more
    sh("ip", "netns", "exec", built.vm, "sysctl", "-qw", sysctl)
    ip("-n", built.vm, "addr", "add", f"{extra}/64", "dev", "eth1")
    apply(built)
    tentative = ipj(built.vm, "-6", "addr", "show", "dev", "eth1", "tentative")
    assert extra in json.dumps(tentative), "DAD ended before the apply could be checked"
    assert extra not in json.dumps(ipj(built.vm, "-6", "rule"))
    deadline = time.monotonic() + 20
    while extra in json.dumps(ipj(built.vm, "-6", "addr", "show", "dev", "eth1", "tentative")):
        assert time.monotonic() < deadline, "DAD never ended"
        time.sleep(0.2)
    result = apply(built)
    assert "no changes" not in result.stdout, result.stdout
    sources = {r.get("src") for r in ipj(built.vm, "-6", "rule") if r.get("priority") == 10000}
    assert extra in sources, sources


def test_dual_stack_on_two_prefixes(tmp_path: Path) -> None:
    """Two networks, each dual-stack with its own router: IPv4 and IPv6 share each port's
    table; the secondary's IPv4 default leaves main, the RA defaults stay; every IPv4 and
    IPv6 address answers through its own port; reset removes every IPv6 rule and copy."""
    with lab(tmp_path, [Port("eth0", 0, 107), Port("eth1", 1, 112)]) as built:
        apply(built)
        assert_fixed(built)
        t1 = table_of(built, "eth1")
        families = {
            "-4": ipj(built.vm, "-4", "route", "show", "table", t1),
            "-6": ipj(built.vm, "-6", "route", "show", "table", t1),
        }
        assert all(families.values()), families
        main4 = ipj(built.vm, "-4", "route", "show", "default")
        assert [r["dev"] for r in main4] == ["eth0"]
        reset = multihome(built.vm, "reset", root=built.root)
        assert reset.returncode == 0, reset.stdout + reset.stderr
        assert not [r for r in ipj(built.vm, "-6", "rule") if r.get("protocol") == "222"]
        assert not ipj(built.vm, "-6", "route", "show", "table", t1)


def test_an_ipv6_only_port_beside_a_dual_stack_one(tmp_path: Path) -> None:
    """eth1 has no IPv4 address at all: it is managed for IPv6 (table, family-6 rules), has
    no IPv4 rule, and its address answers through it; `--check gateways` proves that each
    port's IPv6 router answers neighbour discovery on the port."""
    with lab(tmp_path, [Port("eth0", 0, 107), Port("eth1", 1)]) as built:
        result = multihome(built.vm, "apply", "--check", "gateways", root=built.root)
        assert result.returncode == 0, result.stdout + result.stderr
        routers = [line for line in result.stderr.splitlines() if "gateway fe80:" in line]
        assert len(routers) == 2, result.stderr
        assert all(line.startswith("check ok:") for line in routers), result.stderr
        assert_fixed(built)
        t1 = table_of(built, "eth1")
        assert not [r for r in ipj(built.vm, "-4", "rule") if str(r["table"]) == t1]
        status = json.loads(multihome(built.vm, "status", "--json", root=built.root).stdout)
        eth1 = next(i for i in status["interfaces"] if i["name"] == "eth1")
        assert eth1["addresses"] == [built.v6["eth1"] + "/64"]
        assert eth1["gateway"] is None and str(eth1["gateway6"]).startswith("fe80:")


def test_the_agent_restores_ipv6_after_a_flap_and_is_quiet_between_advertisements(
    tmp_path: Path,
) -> None:
    """`multihome agent` in the VM: it sets IPv6 up at start; a flap of eth1 flushes the
    port's routes (its table's copies too) and removes its SLAAC address, and the agent
    puts the table back once the address and the advertisement are back, without ever
    taking eth1's family-6 rules away meanwhile (the link came back up before the router
    answered: missing data, not an address gone); the advertisements that follow (every
    few seconds here) make it change nothing."""
    ports = [Port("eth0", 0), Port("eth1", 1, 112)]  # eth1 dual-stack: IPv4 stays managed
    with lab(tmp_path, ports) as built, running_agent(built, tmp_path):
        if True:
            wait_for(lambda: _has_table(built, "eth0") and _has_table(built, "eth1"), "start")
            t1 = table_of(built, "eth1")
            rules = ipj(built.vm, "-6", "rule", "show", "table", t1)
            ip("-n", built.vm, "link", "set", "eth1", "down")
            wait_for(lambda: not _copies(built, t1), "flush")  # the throw has no device
            ip("-n", built.vm, "link", "set", "eth1", "up")
            wait_for(lambda: _has_table(built, "eth1"), "eth1's IPv6 table back", timeout=30)
            assert_fixed(built)
            log_text = (tmp_path / "agent.log").read_text()
            assert "- rule -6" not in log_text, log_text
            assert ipj(built.vm, "-6", "rule", "show", "table", t1) == rules
            repairs = (tmp_path / "agent.log").read_text().count("change(s) in")
            time.sleep(5)  # MaxRtrAdvInterval 4: at least one advertisement per port
            log_text = (tmp_path / "agent.log").read_text()
            assert log_text.count("change(s) in") == repairs, log_text


def _copies(built: Lab, table: str) -> list[dict[str, object]]:
    """The IPv6 routes of ``table`` that go through a device (not its throws)."""
    return [
        r for r in ipj(built.vm, "-6", "route", "show", "table", table) if r.get("type") != "throw"
    ]


@contextmanager
def running_agent(built: Lab, tmp_path: Path) -> Iterator[None]:
    """`multihome agent` in the VM, its output in agent.log; stopped by its pid, and it must
    still be running then."""
    log = (tmp_path / "agent.log").open("w")
    agent = subprocess.Popen(
        [
            *f"ip netns exec {built.vm} {sys.executable} -m multihome".split(),
            *f"--root {built.root} agent --source kernel --no-address".split(),
        ],
        stdout=log,
        stderr=log,
        env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src")),
    )
    try:
        yield
        assert agent.poll() is None, (tmp_path / "agent.log").read_text()
    finally:
        stop(agent)
        log.close()


def defaults6(built: Lab, table: str) -> list[str]:
    """The gateways of the IPv6 defaults in ``table``."""
    routes = ipj(built.vm, "-6", "route", "show", "table", table)
    return [str(r.get("gateway")) for r in routes if r["dst"] == "default"]


def test_the_agent_follows_the_routers_advertisements(tmp_path: Path) -> None:
    """The agent follows RAs: when the routers leave (radvd's last advertisement has router
    lifetime 0, the kernel drops its RA defaults but not the prefixes) the tables' defaults
    go and their prefixes and rules stay; a router with a new link-local address that also
    advertises a new prefix on eth1 gives eth1's table the new default, the new prefix and
    the rules of the new address; the old address keeps its rules."""
    ports = [Port("eth0", 0), Port("eth1", 1)]
    with lab(tmp_path, ports) as built, running_agent(built, tmp_path):
        wait_for(lambda: _has_table(built, "eth0") and _has_table(built, "eth1"), "start")
        tables = {p.name: table_of(built, p.name) for p in ports}
        before = {
            r["priority"]: r for r in ipj(built.vm, "-6", "rule") if r.get("protocol") == "222"
        }
        assert built.radvd is not None
        stop(built.radvd)
        wait_for(
            lambda: not any(defaults6(built, t) for t in tables.values()), "the defaults to go"
        )
        assert not ipj(built.vm, "-6", "route", "show", "default", "proto", "ra")
        for p in ports:
            routes = ipj(built.vm, "-6", "route", "show", "table", tables[p.name])
            kept = [r["dst"] for r in routes if r.get("type") != "throw"]
            assert kept == [PREFIXES[p.bridge] + "/64"], routes
        after = {
            r["priority"]: r for r in ipj(built.vm, "-6", "rule") if r.get("protocol") == "222"
        }
        assert after.keys() == before.keys()

        sh(*f"ip -n {built.router} -6 addr flush dev br1 scope link".split())
        ip("-n", built.router, "addr", "add", "fe80::2/64", "dev", "br1", "nodad")
        conf = radvd_conf([("br0", PREFIXES[0] + "/64"), ("br1", PREFIXES[1] + "/64"),
                           ("br1", "2001:db8:3::/64")])  # fmt: skip
        radvd = start_radvd(built.router, tmp_path / "radvd2.conf", conf)
        try:
            wait_for(lambda: defaults6(built, tables["eth1"]) == ["fe80::2"], "the new router")
            wait_for(lambda: bool(defaults6(built, tables["eth0"])), "eth0's router back")
            new = wait_for_address(built, "eth1", "2001:db8:3:")
            wait_for(
                lambda: any(r.get("src") == new for r in ipj(built.vm, "-6", "rule")),
                "the new address's rules",
            )
            routes = {str(r["dst"]) for r in _copies(built, tables["eth1"])}
            assert routes == {"default", PREFIXES[1] + "/64", "2001:db8:3::/64"}, routes
            sources = {
                r.get("src") for r in ipj(built.vm, "-6", "rule") if r.get("priority") == 10000
            }
            assert {built.v6["eth1"], new} <= sources
            got = route_get(built, new)
            assert (got["dev"], got.get("gateway")) == ("eth1", "fe80::2")
        finally:
            stop(radvd)


def wait_for_address(built: Lab, ifname: str, prefix: str) -> str:
    """Until ``ifname`` has a global address past DAD that starts with ``prefix``."""
    found: list[str] = []

    def check() -> bool:
        for entry in ipj(built.vm, "-6", "addr", "show", "dev", ifname, "scope", "global"):
            for a in entry["addr_info"]:  # type: ignore[attr-defined]
                local = str(a.get("local", ""))
                if local.startswith(prefix) and not a.get("tentative"):
                    found.append(local)
                    return True
        return False

    wait_for(check, f"an address in {prefix} on {ifname}")
    return found[0]


def _has_table(built: Lab, ifname: str) -> bool:
    """The port's IPv6 table holds a default and its rules exist."""
    try:
        table = table_of(built, ifname)
    except AssertionError:
        return False
    routes = ipj(built.vm, "-6", "route", "show", "table", table)
    return any(r["dst"] == "default" for r in routes) and len(routes) >= 2


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        time.sleep(0.05)
