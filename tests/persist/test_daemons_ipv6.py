"""Dual-stack persistence proven by the real daemons: systemd-networkd and NetworkManager in a
namespace, the ports served by dnsmasq (DHCPv4) and radvd (router advertisements, SLAAC) on
one bridge, as a Neutron tenant network with an IPv6 subnet. After ``multihome persist`` and a
restart of the daemon (the ports' state flushed, as after a reboot) the daemon alone puts
back every IPv6 rule of the band and each port's IPv6 table (default via the router's
link-local address, on-link prefix). Checked with ``ip -6 -j``, never with multihome's code.
"""

from __future__ import annotations

import json
import subprocess
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
from radvd import global_address, ra_router, radvd_conf, start_radvd, stop, wait_for_slaac

PREFIX = "2001:db8:1::/64"
ROUTER6 = "2001:db8:1::1/64"
#: Each port's RA default with its own metric (equal ones merge into one multipath route in
#: main: tests/persist/test_daemons_multipath.py).
NETWORKD_BASE = (
    "[Match]\nName={name}\n\n[Network]\nDHCP=ipv4\n\n[DHCPv4]\nRouteMetric={metric}\n\n"
    "[IPv6AcceptRA]\nRouteMetric={metric}\n"
)
NM_BASE = """[connection]
id=cloud-{name}
uuid=00000000-0000-4000-8000-00000000000{index}
type=ethernet
interface-name={name}

[ipv4]
method=auto
route-metric={metric}

[ipv6]
method=auto
addr-gen-mode=eui64
route-metric={metric}
"""


def start_ra(switch: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    """The tenant router's advertisements on br0 of the namespace ``switch`` (its global
    address, IPv6 forwarding on, radvd)."""
    need("radvd")
    run("ip", "-n", switch, "addr", "add", ROUTER6, "dev", "br0", "nodad")
    run("ip", "netns", "exec", switch, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
    return start_radvd(switch, tmp_path / "radvd.conf", radvd_conf([("br0", PREFIX)]))


def band6(ns: str) -> list[tuple[object, ...]]:
    return sorted(rule_tuple(r) for r in ns_rules(ns, 6) if 10000 <= int(r["priority"]) <= 10099)


def planned6(ns: str, root: Path) -> tuple[list[tuple[object, ...]], dict[str, int]]:
    """The IPv6 rules ``multihome plan --json`` adds (a fresh namespace: all additions), in
    ``ip -j rule``'s shape, and the ports' tables."""
    data: dict[str, Any] = json.loads(
        multihome(ns, "--root", str(root), "plan", "--json", check=True).stdout
    )
    rules = []
    for c in data["changes"]:
        if c["kind"] == "rule" and c["family"] == 6:
            table = "main" if c["table"] == 254 else str(c["table"])
            src = "all" if c["src"] is None else c["src"].removesuffix("/128")
            dst = c["dst"] and c["dst"].removesuffix("/128")
            rules.append((c["priority"], src, dst, c["iif"], c["oif"], table,
                          c["suppress_prefixlength"]))  # fmt: skip
    tables = {i["name"]: i["table"]["id"] for i in data["interfaces"] if i["table"]}
    return sorted(rules), tables


def table6(ns: str, table: int) -> set[tuple[object, ...]]:
    return {(r["dst"], r.get("gateway"), r.get("dev")) for r in ns_routes(ns, table, 6)}


def ipv6_in_place(
    lab: Lab, rules: list[tuple[object, ...]], tables: dict[str, int], router: str
) -> bool:
    """Every IPv6 rule of the plan in the band, each port's table holding the default via
    ``router`` and the on-link prefix, and each address's lookup leaving through its port."""
    if band6(lab.vm) != rules:
        return False
    for ifname, table in tables.items():
        want = {("default", router, ifname), (PREFIX, None, ifname)}
        if not want <= table6(lab.vm, table):
            return False
        addr = global_address(lab.vm, ifname)
        if addr is None:
            return False
        got = json.loads(
            run(
                "ip", "-6", "-n", lab.vm, "-j", "route", "get", "2001:db8:ff::10", "from", addr
            ).stdout
        )[0]
        if (got.get("dev"), got.get("gateway")) != (ifname, router):
            return False
    return True


def apply_adds_nothing(lab: Lab, root: Path) -> None:
    """``multihome apply`` after the daemon put the policy back: it succeeds, and the next
    apply changes nothing (no copy fighting the daemon's routes)."""
    first = multihome(lab.vm, "--root", str(root), "apply")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "route" not in first.stdout, first.stdout  # the daemon's routes stand for ours
    again = multihome(lab.vm, "--root", str(root), "apply", "--detailed-exit-codes")
    assert again.returncode == 0, again.stdout + again.stderr


def router_of(lab: Lab) -> str:
    router = ra_router(lab.vm, "eth0")
    assert router is not None and router.startswith("fe80:"), router
    return router


def flush_ports(lab: Lab) -> None:
    """As after a reboot: nothing of the ports' configuration survives the daemon's restart."""
    for port in lab.ports:
        run("ip", "-n", lab.vm, "addr", "flush", "dev", port)
        run("ip", "-n", lab.vm, "link", "set", port, "down")


@pytest.fixture
def dualstack_networkd(make_lab: Any, tmp_path: Path) -> Any:
    need("/lib/systemd/systemd-networkd", "networkctl", "dbus-daemon")
    lab = make_lab(2)
    radvd = start_ra(lab.switch, tmp_path)
    root = tmp_path / "root"
    conf = root / "etc/systemd/network"
    conf.mkdir(parents=True)
    for i, name in enumerate(lab.ports):
        (conf / f"10-{name}.network").write_text(NETWORKD_BASE.format(name=name, metric=100 + i))
    nd = Networkd(lab, root, tmp_path / "networkd.log")
    nd.start()
    wait_for_slaac(lab.vm, lab.ports, timeout=30)
    try:
        yield lab, nd, radvd
    finally:
        stop(radvd)


def test_networkd_puts_back_the_ipv6_policy_and_follows_the_router(
    dualstack_networkd: Any, tmp_path: Path
) -> None:
    """networkd with multihome's drop-ins, restarted with the ports flushed: every IPv6 rule
    and each port's IPv6 table (the default through ``Gateway=_ipv6ra``: the router networkd
    learnt from the advertisement) come back, main keeps networkd's RA defaults, and
    ``multihome apply`` takes networkd's routes for its copies (adds nothing); when the
    router leaves (radvd's final advertisement, router lifetime 0) networkd takes the tables'
    defaults away with main's; a router with a new link-local address is followed."""
    lab, nd, radvd = dualstack_networkd
    root = nd.root
    rules, tables = planned6(lab.vm, root)
    assert len(rules) == 7 and set(tables) == {"eth0", "eth1"}, rules  # 3 per port, suppress
    (root / "lib/systemd").mkdir(parents=True)
    (root / "lib/systemd/systemd-networkd").write_text("")
    router = router_of(lab)  # before persist: its reload makes networkd ask the router again
    proc = multihome(lab.vm, "persist", "--backend", "networkd", "--root", str(root))
    assert proc.returncode == 0, proc.stderr
    nd.stop()
    flush_ports(lab)
    nd.start()
    wait_for(lambda: ipv6_in_place(lab, rules, tables, router), 40, "networkd's IPv6 policy")
    main = {
        (r.get("dev"), r.get("gateway"))
        for r in ns_routes(lab.vm, "main", 6)
        if r["dst"] == "default"
    }
    assert main == {("eth0", router), ("eth1", router)}
    log = nd.log.read_text()
    assert "Unknown key" not in log and "Failed to parse" not in log, log
    apply_adds_nothing(lab, root)  # and networkd still owns the defaults it follows

    stop(radvd)  # a router that leaves announces router lifetime 0
    wait_for(
        lambda: (
            not any(r["dst"] == "default" for t in tables.values() for r in ns_routes(lab.vm, t, 6))
        ),
        20,
        "networkd to drop the tables' IPv6 defaults of the router that left",
    )
    assert ra_router(lab.vm, "eth0") is None and ra_router(lab.vm, "eth1") is None

    # A new router: the bridge answers from another link-local address only.
    run("ip", "-n", lab.switch, "-6", "addr", "flush", "dev", "br0", "scope", "link")
    run("ip", "-n", lab.switch, "addr", "add", "fe80::2/64", "dev", "br0", "nodad")
    radvd2 = start_radvd(lab.switch, tmp_path / "radvd2.conf", radvd_conf([("br0", PREFIX)]))
    try:
        wait_for(lambda: ipv6_in_place(lab, rules, tables, "fe80::2"), 30, "the new router")
    finally:
        stop(radvd2)


@pytest.fixture
def dualstack_nm(make_lab: Any, tmp_path: Path) -> Any:
    need("NetworkManager", "nmcli", "dbus-daemon")
    lab = make_lab(2)
    radvd = start_ra(lab.switch, tmp_path)
    nm = NetworkManager(lab, tmp_path / "root", tmp_path / "nm.log")
    nm.keyfiles.mkdir(parents=True)
    for i, name in enumerate(lab.ports):
        profile = nm.keyfiles / f"cloud-{name}.nmconnection"
        profile.write_text(NM_BASE.format(name=name, index=i, metric=100 + i))
        profile.chmod(0o600)
    nm.start()
    wait_for_slaac(lab.vm, lab.ports, timeout=40)
    try:
        yield lab, nm
    finally:
        stop(radvd)


def test_networkmanager_puts_back_the_ipv6_policy(dualstack_nm: Any) -> None:
    """NetworkManager activates multihome's keyfiles (``ipv6.routes`` with ``table=``,
    ``ipv6.routing-rules``, EUI-64 addresses) over the distribution's dual-stack profiles
    after a restart with the ports flushed: every IPv6 rule and each port's IPv6 table come
    back, and each address's lookup leaves through its own port; ``multihome apply`` then
    takes NetworkManager's routes for its copies; after eth1 goes down and up its table is
    back."""
    lab, nm = dualstack_nm
    rules, tables = planned6(lab.vm, nm.root)
    assert len(rules) == 7 and set(tables) == {"eth0", "eth1"}, rules  # 3 per port, suppress
    addresses = {p: global_address(lab.vm, p) for p in lab.ports}
    (nm.root / "usr/sbin").mkdir(parents=True)
    (nm.root / "usr/sbin/NetworkManager").write_text("")
    proc = multihome(lab.vm, "persist", "--backend", "networkmanager", "--root", str(nm.root))
    assert proc.returncode == 0, proc.stderr
    router = router_of(lab)
    nm.stop()
    flush_ports(lab)
    nm.start()
    wait_for(lambda: ipv6_in_place(lab, rules, tables, router), 60, "NetworkManager's IPv6")
    active = nm.nmcli("-t", "-f", "NAME", "connection", "show", "--active")
    assert sorted(n for n in active.split() if n != "lo") == ["multihome-eth0", "multihome-eth1"]
    assert {p: global_address(lab.vm, p) for p in lab.ports} == addresses  # EUI-64 again
    apply_adds_nothing(lab, nm.root)

    run("ip", "-n", lab.vm, "link", "set", "eth1", "down")
    wait_for(lambda: not table6(lab.vm, tables["eth1"]), 15, "eth1's IPv6 table to empty")
    run("ip", "-n", lab.vm, "link", "set", "eth1", "up")
    wait_for(lambda: ipv6_in_place(lab, rules, tables, router), 60, "IPv6 after eth1 down/up")
