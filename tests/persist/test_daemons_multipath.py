"""Stock systemd-networkd on two ports of one IPv6 network: its own router-advertisement client
adds each port's RA default at the same metric (no ``RouteMetric=``), so the kernel merges
them into ONE multipath route in main (``default proto ra metric 1024 nexthop via fe80::..
dev eth0 nexthop via fe80::.. dev eth1``), which the kernel hashes each flow over. radvd
sends the advertisements (as Neutron's L3 agent does), the switch drops what a port sends
from the other port's address (Neutron's anti-spoofing, counted), and an "internet"
namespace with several client addresses connects to each guest address over HTTP (different
clients hash to different next hops). Before ``multihome apply`` some replies leave through
the wrong port and are dropped; after it every address's replies leave their own port (the
kernel's ``ip -6 route get ... from ...`` and real connections), main keeps networkd's
multipath route; ``multihome persist`` for networkd keeps it so across a restart of networkd
with the ports flushed. The same before/after with NetworkManager, whose stock profiles give
the second device a higher metric (no multipath) but one metric set on both profiles merges
them too, and ``multihome persist`` for NetworkManager keeps it so across ``multihome reset``
and a restart of NetworkManager with the ports flushed, and a re-activation of its profiles.
Checked with ``ip -j`` and nft counters, never with multihome's code.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from persist_util import (
    Lab,
    Networkd,
    NetworkManager,
    multihome,
    need,
    ns_routes,
    ns_rules,
    rule_tuple,
    run,
    wait_for,
)
from radvd import global_address, radvd_conf, start_radvd, stop

PREFIX = "2001:db8:1::/64"
#: The "internet": clients on another network, reached through the router (the switch here).
CLIENTS = [f"2001:db8:ff::{n}" for n in range(10, 18)]
SERVICE = 8080
#: The distribution's own .network file: DHCPv4, router advertisements, no metric anywhere.
STOCK = "[Match]\nName={name}\n\n[Network]\nDHCP=ipv4\nIPv6AcceptRA=yes\n"


def multipath_default(ns: str) -> dict[str, Any] | None:
    """Main's IPv6 default when it is one route with a next hop per port, else None."""
    routes = [r for r in ns_routes(ns, "main", 6) if r["dst"] == "default"]
    if len(routes) == 1 and len(routes[0].get("nexthops", ())) == 2:  # type: ignore[arg-type]
        return routes[0]
    return None


def ready(lab: Lab) -> bool:
    return multipath_default(lab.vm) is not None and all(
        global_address(lab.vm, p) for p in lab.ports
    )


def port_security(lab: Lab, v6: dict[str, str]) -> None:
    """pN may not send from another port's IPv6 address (counted in ``drops``)."""
    lines = ["table bridge portsec {", "  counter drops { }", "  chain pre {",
             "    type filter hook prerouting priority 0; policy accept;"]  # fmt: skip
    for i, port in enumerate(lab.ports):
        others = ", ".join(a for p, a in v6.items() if p != port)
        lines.append(f'    iifname "p{i}" ip6 saddr {{ {others} }} counter name drops drop')
    lines += ["  }", "}"]
    subprocess.run(["ip", "netns", "exec", lab.switch, "nft", "-f", "-"],
                   input="\n".join(lines) + "\n", text=True, check=True)  # fmt: skip


def drops(lab: Lab) -> int:
    out = run("ip", "netns", "exec", lab.switch, "nft", "-j", "list", "counter", "bridge",
              "portsec", "drops").stdout  # fmt: skip
    return next(int(i["counter"]["packets"]) for i in json.loads(out)["nftables"] if "counter" in i)


def answered(lab: Lab, inet: str, address: str) -> list[str]:
    """The clients whose HTTP request to ``address`` got an answer (one try each, a second at
    most: on these veths an answer takes milliseconds)."""
    ok = []
    for client in CLIENTS:
        done = run("ip", "netns", "exec", inet, "curl", "-gs", "-o", "/dev/null", "-m", "1",
                   "--interface", client, "-w", "%{http_code}",
                   f"http://[{address}]:{SERVICE}/", check=False)  # fmt: skip
        if done.stdout == "200":
            ok.append(client)
    return ok


def lookups(lab: Lab, address: str) -> set[str]:
    """The devices the kernel's lookups from ``address`` to each client leave through."""
    devices = set()
    for client in CLIENTS:
        got = json.loads(run("ip", "-6", "-n", lab.vm, "-j", "route", "get", client, "from",
                             address).stdout)[0]  # fmt: skip
        devices.add(str(got["dev"]))
    return devices


def all_answered(lab: Lab, inet: str, v6: dict[str, str]) -> None:
    """Every client gets its answer from every address, and the switch drops nothing more
    (what it dropped before, e.g. while ports came back before the policy, is not counted)."""
    dropped = drops(lab)
    assert {p: answered(lab, inet, a) for p, a in v6.items()} == {p: CLIENTS for p in v6}
    assert drops(lab) == dropped


#: The processes a test started (radvd, the HTTP services): stopped by their pids at its end.
Started = list[subprocess.Popen[bytes]]


def serve(lab: Lab, log: Path, started: Started) -> None:
    """An HTTP service on every address of the VM (Networkd.stop ends every process there)."""
    started.append(lab.spaces.spawn(
        ["ip", "netns", "exec", lab.vm, sys.executable, "-m", "http.server", "--bind", "::",
         str(SERVICE)], log,
    ))  # fmt: skip


def tenant_network(lab: Lab, tmp_path: Path, started: Started) -> str:
    """radvd on the switch's bridge (the router), an internet namespace behind it, the HTTP
    service in the VM (both put in ``started``): the internet namespace."""
    need("radvd", "nft", "curl")
    inet = lab.spaces.add("inet")
    run(*f"ip link add up0 netns {lab.switch} type veth peer w0 netns {inet}".split())
    for ns, cmd in (
        (lab.switch, "addr add 2001:db8:1::1/64 dev br0 nodad"),
        (lab.switch, "link set up0 up"),
        (lab.switch, "addr add 2001:db8:ff::1/64 dev up0 nodad"),
        (inet, "link set w0 up"),
        *((inet, f"addr add {c}/64 dev w0 nodad") for c in CLIENTS),
        (inet, "-6 route add default via 2001:db8:ff::1"),
    ):
        run("ip", "-n", ns, *cmd.split())
    run("ip", "netns", "exec", lab.switch, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
    started.append(start_radvd(lab.switch, tmp_path / "radvd.conf", radvd_conf([("br0", PREFIX)])))
    serve(lab, tmp_path / "http.log", started)
    return inet


def secured(lab: Lab) -> dict[str, str]:
    """Once the daemon made main's multipath RA default and the SLAAC addresses: the ports'
    addresses, port security in place."""
    try:
        wait_for(lambda: ready(lab), 60, "the daemon's multipath RA default and SLAAC addresses")
    except AssertionError as exc:
        shown = run("ip", "-n", lab.vm, "-6", "route", "show", "table", "all").stdout
        raise AssertionError(f"{exc}; the VM's IPv6 routes:\n{shown}") from exc
    v6 = {p: str(global_address(lab.vm, p)) for p in lab.ports}
    port_security(lab, v6)
    return v6


def broken_then_fixed(lab: Lab, inet: str, v6: dict[str, str], root: Path) -> None:
    """Before apply some flows' replies leave through the other port and are dropped; after
    it every lookup and every client's request through the own port, each table's default
    via the router through its port, main's multipath route as the daemon made it, a second
    apply changes nothing."""
    before = multipath_default(lab.vm)
    assert before is not None
    router = str(before["nexthops"][0]["gateway"])
    assert router.startswith("fe80:")
    wrong = {p: lookups(lab, a) - {p} for p, a in v6.items()}
    assert any(wrong.values()), wrong  # some flows of some address hash to the other port
    reached = {p: answered(lab, inet, a) for p, a in v6.items()}
    assert sum(map(len, reached.values())) < len(CLIENTS) * 2, reached
    assert drops(lab) > 0
    plan = multihome(lab.vm, "--root", str(root), "plan")
    assert "multipath across eth0, eth1: it stays in main" in plan.stdout + plan.stderr, plan
    result = multihome(lab.vm, "--root", str(root), "apply")
    assert result.returncode == 0, result.stdout + result.stderr
    assert all(lookups(lab, a) == {p} for p, a in v6.items())
    tables = {
        str(r["oif"]): str(r["table"])
        for r in json.loads(run("ip", "-n", lab.vm, "-6", "-j", "rule").stdout)
        if r.get("oif") and r.get("protocol") == "222"
    }
    assert sorted(tables) == lab.ports
    for port, table in tables.items():
        defaults = [(r.get("gateway"), r.get("dev")) for r in ns_routes(lab.vm, table, 6)
                    if r["dst"] == "default"]  # fmt: skip
        assert defaults == [(router, port)], (port, defaults)
    after = multipath_default(lab.vm)  # main's route as the daemon made it
    assert after is not None and after["nexthops"] == before["nexthops"], after
    all_answered(lab, inet, v6)
    again = multihome(lab.vm, "--root", str(root), "apply", "--detailed-exit-codes")
    assert again.returncode == 0, again.stdout + again.stderr


@pytest.fixture
def stock_networkd(make_lab: Any, tmp_path: Path) -> Any:
    """The lab's two ports under stock networkd, on the tenant network."""
    need("/lib/systemd/systemd-networkd", "dbus-daemon")
    lab = make_lab(2)
    started: Started = []
    inet = tenant_network(lab, tmp_path, started)
    root = tmp_path / "root"
    conf = root / "etc/systemd/network"
    conf.mkdir(parents=True)
    for name in lab.ports:
        (conf / f"10-{name}.network").write_text(STOCK.format(name=name))
    nd = Networkd(lab, root, tmp_path / "networkd.log")
    nd.start()
    try:
        yield lab, nd, inet, secured(lab), started
    finally:
        nd.stop()
        for process in reversed(started):
            stop(process)


def test_stock_networkds_multipath_ra_default_then_apply_and_persist(
    stock_networkd: Any,
) -> None:
    """Before apply: main's IPv6 default is one multipath route over both ports, some
    clients' replies leave through the other port (the kernel's lookups say so) and port
    security drops them. After apply: each port's table holds its own path via the router's
    link-local address, every lookup from an address leaves its port, every client gets its
    answer from both addresses, nothing more is dropped, main's multipath route is as
    networkd made it, a second apply changes nothing. After persist and a restart of
    networkd with the ports flushed: the same, from networkd's own configuration."""
    lab, nd, inet, v6, started = stock_networkd
    assert multipath_default(lab.vm)["metric"] == 1024  # type: ignore[index]
    broken_then_fixed(lab, inet, v6, nd.root)

    (nd.root / "lib/systemd").mkdir(parents=True)
    (nd.root / "lib/systemd/systemd-networkd").write_text("")
    persisted = multihome(lab.vm, "persist", "--backend", "networkd", "--root", str(nd.root))
    assert persisted.returncode == 0, persisted.stderr
    multihome(lab.vm, "--root", str(nd.root), "reset", check=True)  # as after a reboot:
    nd.stop()  # nothing of apply's in the kernel, the ports unconfigured
    for port in lab.ports:
        run("ip", "-n", lab.vm, "addr", "flush", "dev", port)
        run("ip", "-n", lab.vm, "link", "set", port, "down")
    nd.start()
    serve(lab, nd.log.with_name("http2.log"), started)
    wait_for(lambda: all(global_address(lab.vm, p) for p in lab.ports), 40, "SLAAC again")
    wait_for(
        lambda: all(lookups(lab, a) == {p} for p, a in v6.items()),
        40,
        "networkd's persisted IPv6 policy",
    )
    # The drop-ins give both ports networkd's stock metric again: still one multipath route.
    assert "RouteMetric=1024" in (nd.root / "etc/systemd/network/10-eth1.network.d"
                                  / "50-multihome.conf").read_text()  # fmt: skip
    wait_for(lambda: multipath_default(lab.vm) is not None, 20, "the multipath default")
    assert not [r for r in json.loads(run("ip", "-n", lab.vm, "-6", "-j", "rule").stdout)
                if r.get("protocol") == "222"]  # fmt: skip  # networkd's rules, not apply's
    all_answered(lab, inet, v6)


#: A NetworkManager profile: DHCPv4 and SLAAC. Stock NetworkManager 1.42 gives the second
#: device's default metric + 1 (100, 101: it bumps equal default metrics of one device type),
#: so its RA defaults stay two routes; one metric set on both profiles (an admin's, or an
#: image's) makes them one multipath route, as networkd's stock ones.
NM_PROFILE = """[connection]
id=cloud-{name}
uuid=00000000-0000-4000-8000-00000000001{index}
type=ethernet
interface-name={name}

[ipv4]
method=auto

[ipv6]
method=auto
route-metric=100
"""


def band6(lab: Lab) -> list[tuple[object, ...]]:
    """The IPv6 rules of multihome's band (10000-10099), protocol left out."""
    return sorted(rule_tuple(r) for r in ns_rules(lab.vm, 6) if 10000 <= int(r["priority"]) < 10100)


def tables6(lab: Lab) -> dict[str, list[tuple[object, object]]]:
    """Each port's table (by its ``oif`` rule) and the table's IPv6 defaults (gateway, dev)."""
    rules = ns_rules(lab.vm, 6)
    tables = {str(r["oif"]): str(r["table"]) for r in rules if r.get("oif")}
    return {
        port: [
            (r.get("gateway"), r.get("dev"))
            for r in ns_routes(lab.vm, table, 6)
            if r["dst"] == "default"
        ]
        for port, table in sorted(tables.items())
    }


def hops(lab: Lab) -> list[tuple[object, object]]:
    """Main's multipath IPv6 default's next hops (gateway, dev), in either order."""
    path = multipath_default(lab.vm)
    return sorted((h["gateway"], h["dev"]) for h in path["nexthops"]) if path else []


def start_nm(lab: Lab, tmp_path: Path) -> NetworkManager:
    """NetworkManager in the VM with the distribution's profiles (one IPv6 metric)."""
    nm = NetworkManager(lab, tmp_path / "root", tmp_path / "nm.log")
    nm.keyfiles.mkdir(parents=True)
    for index, name in enumerate(lab.ports):
        profile = nm.keyfiles / f"cloud-{name}.nmconnection"
        profile.write_text(NM_PROFILE.format(name=name, index=index))
        profile.chmod(0o600)
    nm.start()
    return nm


def test_networkmanagers_multipath_ra_default_then_apply_and_persist(
    make_lab: Any, tmp_path: Path
) -> None:
    """NetworkManager (its own RA client) with one IPv6 route metric on both profiles:
    main's IPv6 default is one multipath route; before apply some replies leave through
    the other port and are dropped, after it every address's replies leave its own port
    (as with networkd). After ``persist --backend networkmanager``, ``multihome reset`` and
    a restart of NetworkManager with the ports flushed (multihome's profiles activated
    again), and again after ``nmcli connection up`` re-activates each profile: the same
    family-6 rules in the band, each port's table with its single-path default via the
    router through its own port, main's multipath route at the shared metric, every lookup
    and every client's request through the address's own port, nothing more dropped; an
    apply then changes no route or rule (NetworkManager's copies are apply's own)."""
    need("NetworkManager", "nmcli", "dbus-daemon")
    lab = make_lab(2)
    started: Started = []
    inet = tenant_network(lab, tmp_path, started)
    nm = start_nm(lab, tmp_path)
    try:
        v6 = secured(lab)
        assert multipath_default(lab.vm)["metric"] == 100  # type: ignore[index]
        broken_then_fixed(lab, inet, v6, nm.root)
        rules, tables = band6(lab), tables6(lab)
        assert len(rules) == 7 and all(len(d) == 1 for d in tables.values()), (rules, tables)
        nexthops = hops(lab)

        (nm.root / "usr/sbin").mkdir(parents=True)
        (nm.root / "usr/sbin/NetworkManager").write_text("")
        persisted = multihome(lab.vm, "persist", "--backend", "networkmanager",
                              "--root", str(nm.root))  # fmt: skip
        assert persisted.returncode == 0, persisted.stderr
        # eth1's IPv4 metric is NetworkManager's stock 101: its RA routes keep the shared 100
        keyfile = (nm.keyfiles / "multihome-eth1.nmconnection").read_text()
        assert "route-metric=101\n" in keyfile.split("[ipv6]")[0]
        assert "route-metric=100\n" in keyfile.split("[ipv6]")[1]
        multihome(lab.vm, "--root", str(nm.root), "reset", check=True)  # as after a reboot:
        assert band6(lab) == []  # nothing of apply's in the kernel, the ports unconfigured
        nm.stop()
        for port in lab.ports:
            run("ip", "-n", lab.vm, "addr", "flush", "dev", port)
            run("ip", "-n", lab.vm, "link", "set", port, "down")
        nm.start()
        serve(lab, nm.log.with_name("http2.log"), started)

        def restored() -> bool:
            path = multipath_default(lab.vm)
            return (
                band6(lab) == rules
                and tables6(lab) == tables
                and path is not None
                and path["metric"] == 100
                and hops(lab) == nexthops
                and all(global_address(lab.vm, p) == a for p, a in v6.items())
                and all(lookups(lab, a) == {p} for p, a in v6.items())
            )

        try:
            wait_for(restored, 60, "NetworkManager's persisted IPv6 policy and multipath default")
        except AssertionError as exc:
            shown = run("ip", "-n", lab.vm, "-6", "route", "show", "table", "all").stdout
            shown += run("ip", "-n", lab.vm, "-6", "rule").stdout
            raise AssertionError(f"{exc}: want {rules} {tables} {nexthops}; got {band6(lab)} "
                                 f"{tables6(lab)}\n{shown}") from exc  # fmt: skip
        active = nm.nmcli("-t", "-f", "NAME", "connection", "show", "--active")
        assert sorted(n for n in active.split() if n != "lo") == ["multihome-eth0",
                                                                  "multihome-eth1"]  # fmt: skip
        assert not [r for r in ns_rules(lab.vm, 6) if r.get("protocol") == "222"]  # NM's rules
        all_answered(lab, inet, v6)
        same = multihome(lab.vm, "--root", str(nm.root), "apply")  # (the sysctls: reset's)
        assert same.returncode == 0 and not re.search(r"^[-+~] (route|rule)", same.stdout, re.M)

        for port in lab.ports:  # reconnect: NetworkManager re-applies each profile
            nm.nmcli("connection", "up", f"multihome-{port}")
        wait_for(restored, 60, "the IPv6 policy after the profiles were re-activated")
        all_answered(lab, inet, v6)
    finally:
        nm.stop()
        for process in reversed(started):
            stop(process)
