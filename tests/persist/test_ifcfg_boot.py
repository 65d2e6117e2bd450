"""ifcfg, dual-stack, boot-like: `multihome apply` and `persist --backend ifcfg` in a guest
namespace whose ports take SLAAC addresses and RA defaults from radvd; then a fresh namespace
(a reboot: same MACs, same bridge, same router) brings the ports up as ifup does and replays
multihome's files in ifup's order (tests/persist/ifcfg_replay.py cites what RHEL reads and
how). The IPv6 policy, and the IPv4 rules, equal apply's. Checked with ``ip -j``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
    LEASES,
    MACS,
    Lab,
    Namespaces,
    multihome,
    need,
    ns_routes,
    ns_rules,
    rule_tuple,
    run,
)
from radvd import radvd_conf, start_radvd, stop, wait_for_slaac

PREFIX = "2001:db8:1::/64"
ROUTER6 = "2001:db8:1::1/64"
PROBE6 = "2001:db8:ff::10"
BAND = range(10000, 10100)
#: A RHEL cloud image's IPv6 (IPV6INIT, IPV6_AUTOCONF, EUI-64, no privacy addresses), set
#: before the ports appear so that each port's own settings start from them.
GUEST_SYSCTLS = {
    "accept_ra": 1,
    "autoconf": 1,
    "forwarding": 0,
    "use_tempaddr": 0,
    "addr_gen_mode": 0,
}


def plug(spaces: Namespaces, lab: Lab, boot: int) -> str:
    """A fresh guest namespace for ``boot``, its ports (the same MACs) on the lab's bridge."""
    ns = spaces.add(f"boot{boot}")
    run(
        "ip",
        "netns",
        "exec",
        ns,
        "sysctl",
        "-qw",
        *(
            f"net.ipv6.conf.{s}.{k}={v}"
            for s in ("all", "default")
            for k, v in GUEST_SYSCTLS.items()
        ),
    )
    for i, port in enumerate(lab.ports):
        peer = f"b{boot}p{i}"
        run(
            "ip",
            "link",
            "add",
            port,
            "netns",
            ns,
            "address",
            MACS[port],
            "type",
            "veth",
            "peer",
            peer,
            "netns",
            lab.switch,
        )
        run("ip", "-n", lab.switch, "link", "set", peer, "master", "br0")
        run("ip", "-n", lab.switch, "link", "set", peer, "up")
    return ns


def bring_up(ns: str, lab: Lab) -> None:
    """What ifup-eth and ifup-ipv6 leave before ifup-post runs ifup-routes: each port up with
    DHCP's address and routes (dhclient's, each port's own metric, as the image's
    IPV4_ROUTE_METRIC says), SLAAC addresses past DAD and the routers' defaults."""
    for i, port in enumerate(lab.ports):
        run("ip", "-n", ns, "link", "set", port, "up")
        base = ["dev", port, "src", LEASES[port], "metric", str(100 + i)]
        run("ip", "-n", ns, "addr", "add", f"{LEASES[port]}/24", "dev", port, "noprefixroute")
        run(
            "ip",
            "-n",
            ns,
            "route",
            "add",
            "192.168.0.0/24",
            *base,
            "proto",
            "kernel",
            "scope",
            "link",
        )
        run("ip", "-n", ns, "route", "add", "default", "via", "192.168.0.1", *base, "proto", "dhcp")
    wait_for_slaac(ns, lab.ports, timeout=30)  # ifup-ipv6's ipv6_wait_tentative


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


def rhel_image(root: Path, ports: list[str]) -> None:
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
        text = CLOUD_INIT_IFCFG.format(name=port, mac=MACS[port].upper())
        (scripts / f"ifcfg-{port}").write_text(text)


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
    return {
        "rules4": band(ns, 4),
        "rules6": band(ns, 6),
        "tables6": tables(ns, 6),
        "tables4": tables(ns, 4),
    }


def test_ifcfg_files_replayed_at_boot_give_applys_dual_stack_policy(
    make_lab: Any, namespaces: Namespaces, tmp_path: Path
) -> None:
    """Boot 1: apply and persist (auto: ifcfg on a RHEL image). Boot 2 (a fresh namespace
    on the same tenant network): the ports come up as ifup brings them (DHCP, SLAAC past
    DAD), then each port's route-/route6- files in ifup-routes' order and the
    ROUTING_RULE_N/ROUTING_RULE6_N keys as NetworkManager's ifcfg-rh reads them: the family-6
    and family-4 rules, every IPv6 table and the IPv4 tables the files carry equal apply's,
    and each IPv6 address's lookup leaves through its own port via its router."""
    need("radvd")
    lab = make_lab(2)
    for port in lab.ports:  # make_lab's guest namespace: replaced by a booted one per boot
        run("ip", "-n", lab.vm, "link", "del", port)
    run("ip", "-n", lab.switch, "addr", "add", ROUTER6, "dev", "br0", "nodad")
    run("ip", "netns", "exec", lab.switch, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
    radvd = start_radvd(lab.switch, tmp_path / "radvd.conf", radvd_conf([("br0", PREFIX)]))
    try:
        first = plug(namespaces, lab, 1)
        bring_up(first, lab)
        root = tmp_path / "root"
        applied = multihome(first, "--root", str(root), "apply")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        want = policy(first)
        assert len(want["rules6"]) == 9 and set(want["tables6"]) == set(want["tables4"])
        for routes in want["tables6"].values():  # the router's default and the prefix
            assert {(r[0], str(r[1])[:5]) for r in routes} == {
                ("default", "fe80:"),
                (PREFIX, "None"),
            }
        rhel_image(root, lab.ports)
        persisted = multihome(first, "--root", str(root), "persist")
        assert persisted.returncode == 0, persisted.stdout + persisted.stderr
        assert persisted.stdout.startswith("backend: ifcfg ("), persisted.stdout
        run("ip", "netns", "del", first)  # poweroff: the kernel's state is gone

        files = {
            SCRIPTS / p.name: p.read_text() for p in (root / str(SCRIPTS).lstrip("/")).iterdir()
        }
        assert rule_files(files) == []  # else ifcfg-rh would ignore every ROUTING_RULE key
        second = plug(namespaces, lab, 2)
        bring_up(second, lab)
        assert policy(second)["rules6"] == []  # nothing but the files brings the policy back
        installed: set[tuple[str, str]] = set()
        for port in lab.ports:  # ifup per port in turn: ifup-post -> ifup-routes
            replay_routes(second, route_lines(files, port))
        for port in lab.ports:
            replay_rules(
                second, routing_rules(files[SCRIPTS / f"ifcfg-multihome-{port}"]), installed
            )
        got = policy(second)
        assert got["rules6"] == want["rules6"]
        assert got["rules4"] == want["rules4"]
        assert got["tables6"] == want["tables6"]
        # IPv4: a port with IPV4_ROUTE_TABLE gets its table from NetworkManager's DHCP client
        # (tests/persist/test_daemons.py); the others' tables come from their route- file.
        dhcp_tables = {
            ifcfg_values(files[SCRIPTS / f"ifcfg-multihome-{p}"]).get("IPV4_ROUTE_TABLE")
            for p in lab.ports
        }
        for table, routes in want["tables4"].items():
            if table not in dhcp_tables:
                assert got["tables4"][table] == routes, table
        for port in lab.ports:
            addr = json.loads(
                run(
                    "ip", "-n", second, "-6", "-j", "addr", "show", "dev", port, "scope", "global"
                ).stdout
            )[0]["addr_info"][0]["local"]
            hop = json.loads(
                run("ip", "-n", second, "-6", "-j", "route", "get", PROBE6, "from", addr).stdout
            )[0]
            assert hop["dev"] == port and hop["gateway"].startswith("fe80:"), (port, hop)
    finally:
        stop(radvd)
