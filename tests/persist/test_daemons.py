"""Real daemons apply the rendered files: systemd-networkd and NetworkManager in a namespace,
their ports served by dnsmasq. Checked with ``ip -j``, never with multihome's own code."""

from __future__ import annotations

import ipaddress
import json
import time
from pathlib import Path
from typing import Any

import pytest
from persist_util import (
    Lab,
    Networkd,
    NetworkManager,
    desired_rule_tuple,
    multihome,
    need,
    ns_routes,
    ns_rules,
    rule_tuple,
    run,
    wait_for,
)

from multihome.model import Rule
from multihome.render.systemd import networkd_conf

BASE_NETWORK = "[Match]\nName={name}\n\n[Network]\nDHCP=ipv4\n\n[DHCPv4]\nRouteMetric={metric}\n"


def band_rules(ns: str) -> list[tuple[object, ...]]:
    return sorted(rule_tuple(r) for r in ns_rules(ns) if 10000 <= int(r["priority"]) <= 10099)


def desired(ns: str) -> tuple[list[tuple[object, ...]], dict[str, int]]:
    """The policy's rules and tables for the namespace, from `multihome plan --json`."""
    proc = multihome(ns, "plan", "--json", check=True)
    data: dict[str, Any] = json.loads(proc.stdout)
    rules = []
    for change in data["changes"]:
        # A fresh namespace has no multihome rules: every rule change is an addition. (The
        # rule's own "action" field, FR_ACT_TO_TBL, overwrites the change's "action" in
        # plan --json: reported to the core.)
        if change["kind"] == "rule":
            rules.append(
                desired_rule_tuple(
                    Rule(
                        family=change["family"],
                        priority=change["priority"],
                        table=change["table"],
                        src=None if change["src"] is None else _net(change["src"]),
                        dst=None if change["dst"] is None else _net(change["dst"]),
                        iifname=change["iif"],
                        oifname=change["oif"],
                        suppress_prefixlength=change["suppress_prefixlength"],
                    )
                )
            )
    tables = {i["name"]: i["table"]["id"] for i in data["interfaces"] if i["table"]}
    return sorted(rules), tables


def _net(text: str) -> Any:
    return ipaddress.ip_network(text)


def defaults(ns: str, table: int | str) -> list[tuple[object, object]]:
    return sorted(
        (r.get("gateway"), r.get("dev")) for r in ns_routes(ns, table) if r["dst"] == "default"
    )


def policy_in_place(
    ns: str, rules: list[tuple[object, ...]], tables: dict[str, int], gateway: str = "192.168.0.1"
) -> bool:
    return band_rules(ns) == rules and all(
        defaults(ns, t) == [(gateway, ifname)] for ifname, t in tables.items()
    )


@pytest.fixture
def networkd_lab(make_lab: Any, tmp_path: Path) -> tuple[Lab, Networkd]:
    need("/lib/systemd/systemd-networkd", "networkctl", "dbus-daemon")
    lab = make_lab(2)
    root = tmp_path / "root"
    conf = root / "etc/systemd/network"
    conf.mkdir(parents=True)
    for i, name in enumerate(lab.ports):
        (conf / f"10-{name}.network").write_text(BASE_NETWORK.format(name=name, metric=100 + i))
    nd = Networkd(lab, root, tmp_path / "networkd.log")
    nd.start()
    wait_for(lambda: len(defaults(lab.vm, "main")) == 2, 20, "DHCP defaults of eth0 and eth1")
    return lab, nd


def test_networkd_applies_the_rendered_policy_and_keeps_it(
    networkd_lab: tuple[Lab, Networkd], tmp_path: Path
) -> None:
    """networkd with multihome's drop-ins: the policy's rules and tables; after a renew with a
    new router the default in eth1's table follows it and main is untouched; after eth1 goes
    down and up the policy is back."""
    lab, nd = networkd_lab
    rules, tables = desired(lab.vm)
    assert len(rules) == 7 and set(tables) == {"eth0", "eth1"}  # 3 per port, suppress
    (nd.root / "lib/systemd").mkdir(parents=True)
    (nd.root / "lib/systemd/systemd-networkd").write_text("")
    proc = multihome(lab.vm, "persist", "--backend", "networkd", "--root", str(nd.root))
    assert proc.returncode == 0, proc.stderr
    nd.stop()
    nd.start()
    wait_for(
        lambda: policy_in_place(lab.vm, rules, tables), 30, "networkd to put the policy in place"
    )
    main_before = defaults(lab.vm, "main")
    assert main_before == [("192.168.0.1", "eth0")]  # eth1's default lives in its table only
    log = nd.log.read_text()
    assert "Unknown key" not in log and "Failed to parse" not in log and "ignoring" not in log

    lab.router("192.168.0.2")
    nd.networkctl("renew", "eth1")
    wait_for(
        lambda: defaults(lab.vm, tables["eth1"]) == [("192.168.0.2", "eth1")],
        20,
        "the renewed lease's router in eth1's table",
    )
    assert defaults(lab.vm, "main") == main_before
    assert band_rules(lab.vm) == rules

    lab.router("192.168.0.1")
    run("ip", "-n", lab.vm, "link", "set", "eth1", "down")
    wait_for(lambda: defaults(lab.vm, tables["eth1"]) == [], 10, "eth1's table to empty")
    run("ip", "-n", lab.vm, "link", "set", "eth1", "up")
    wait_for(lambda: policy_in_place(lab.vm, rules, tables), 30, "the policy after eth1 down/up")
    assert defaults(lab.vm, "main") == main_before


def test_networkd_keeps_multihome_rules_only_with_the_drop_in(
    networkd_lab: tuple[Lab, Networkd],
) -> None:
    """The trap: networkd deletes rules it did not make when it reconfigures a link; the
    systemd backend's networkd.conf.d drop-in (ManageForeignRoutingPolicyRules=no) keeps the
    rules `multihome apply` made."""
    lab, nd = networkd_lab
    apply = ("--root", str(nd.root), "apply")  # table names go under --root, not /etc
    assert multihome(lab.vm, *apply, check=True).returncode == 0
    applied = band_rules(lab.vm)
    assert len(applied) == 7
    nd.networkctl("reconfigure", "eth0", "eth1")
    wait_for(lambda: band_rules(lab.vm) == [], 15, "networkd to delete the foreign rules")

    conf = nd.root / "etc/systemd/networkd.conf.d"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "50-multihome.conf").write_text(networkd_conf())
    nd.stop()
    nd.start()
    wait_for(lambda: len(defaults(lab.vm, "main")) == 2, 20, "DHCP after the restart")
    assert multihome(lab.vm, *apply, check=True).returncode == 0
    assert band_rules(lab.vm) == applied
    nd.networkctl("reconfigure", "eth0", "eth1")
    wait_for(lambda: len(defaults(lab.vm, "main")) >= 1, 20, "networkd to reconfigure")
    time.sleep(2)
    assert band_rules(lab.vm) == applied


def doctor_codes(ns: str, root: Path) -> set[str]:
    """The codes ``multihome doctor --json`` reports in the namespace."""
    proc = multihome(ns, "--root", str(root), "doctor", "--json")
    assert proc.returncode in (0, 1), proc.stderr
    return {p["code"] for p in json.loads(proc.stdout)["problems"]}


def test_doctor_after_networkd_persist(networkd_lab: tuple[Lab, Networkd]) -> None:
    """With a real networkd managing the ports: after ``apply`` alone doctor reports
    not-persisted and dhcp-will-undo (networkd removes foreign rules); after ``persist
    --backend networkd`` (drop-ins beside the distribution's .network files) it reports
    neither, because it reads persist's manifest."""
    lab, nd = networkd_lab
    assert multihome(lab.vm, "--root", str(nd.root), "apply", check=True).returncode == 0
    before = doctor_codes(lab.vm, nd.root)
    assert {"not-persisted", "dhcp-will-undo"} <= before
    (nd.root / "lib/systemd").mkdir(parents=True)
    (nd.root / "lib/systemd/systemd-networkd").write_text("")
    proc = multihome(lab.vm, "persist", "--backend", "networkd", "--root", str(nd.root))
    assert proc.returncode == 0, proc.stderr
    assert list(nd.root.glob("etc/systemd/network/10-eth1.network.d/*multihome*"))
    after = doctor_codes(lab.vm, nd.root)
    assert not {"not-persisted", "dhcp-will-undo"} & after, after


@pytest.fixture
def plain_networkd_lab(make_lab: Any, tmp_path: Path) -> tuple[Lab, Networkd]:
    """Issue 17's guest: networkd configures eth0 and eth1 from plain 50-dhcp-eth*.network
    files; netplan is installed on the target but none of its YAML names a port."""
    need("/lib/systemd/systemd-networkd", "networkctl", "dbus-daemon")
    lab = make_lab(2)
    root = tmp_path / "root"
    conf = root / "etc/systemd/network"
    conf.mkdir(parents=True)
    for i, name in enumerate(lab.ports):
        (conf / f"50-dhcp-{name}.network").write_text(
            BASE_NETWORK.format(name=name, metric=100 + i)
        )
    for program in ("lib/systemd/systemd-networkd", "usr/sbin/netplan"):
        (root / program).parent.mkdir(parents=True, exist_ok=True)
        (root / program).write_text("")
    nd = Networkd(lab, root, tmp_path / "networkd.log")
    nd.start()
    wait_for(lambda: len(defaults(lab.vm, "main")) == 2, 20, "DHCP defaults of eth0 and eth1")
    return lab, nd


def test_persist_refuses_netplan_where_plain_networkd_files_configure_the_ports(
    plain_networkd_lab: tuple[Lab, Networkd],
) -> None:
    """``persist --backend netplan`` on ports of 50-dhcp-eth*.network files: exit 2, naming
    each port's networkd file and --backend networkd, nothing written. With --force-backend
    it writes and warns, and doctor reports persisted-unused per port. ``--backend
    networkd`` passes: after a networkd restart the real daemon puts the policy in place and
    doctor reports neither persisted-unused nor not-persisted."""
    lab, nd = plain_networkd_lab
    rules, tables = desired(lab.vm)
    root = ("--root", str(nd.root))
    before = sorted(str(p) for p in nd.root.rglob("*"))
    proc = multihome(lab.vm, "persist", "--backend", "netplan", *root)
    assert proc.returncode == 2, proc.stderr
    for name in lab.ports:
        assert f"{name}: no netplan file names it" in proc.stderr
        assert f"/etc/systemd/network/50-dhcp-{name}.network" in proc.stderr
    assert "use --backend networkd" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(str(p) for p in nd.root.rglob("*")) == before

    proc = multihome(lab.vm, "persist", "--backend", "netplan", "--force-backend", *root)
    assert proc.returncode == 0, proc.stderr
    assert (nd.root / "etc/netplan/90-multihome.yaml").exists()
    assert proc.stderr.count("(written anyway: --force-backend)") == 2
    report = json.loads(multihome(lab.vm, *root, "doctor", "--json").stdout)
    unused = [p for p in report["problems"] if p["code"] == "persisted-unused"]
    assert sorted(p["interface"] for p in unused) == ["eth0", "eth1"]
    assert "use --backend networkd" in unused[0]["fix"]

    # unpersist regenerates netplan's networkd files (the forced persist's are gone), so the
    # plain 50-dhcp-eth* files configure the ports again, and reloads networkd
    undone = multihome(lab.vm, "unpersist", *root)
    assert undone.returncode == 0 and "effective now" in undone.stdout, undone.stdout
    assert not list((nd.root / "run/systemd/network").glob("10-netplan-*"))
    proc = multihome(lab.vm, "persist", "--backend", "networkd", *root)
    assert proc.returncode == 0, proc.stderr
    dropin = nd.root / "etc/systemd/network/50-dhcp-eth1.network.d/50-multihome.conf"
    assert dropin.exists(), proc.stdout
    nd.stop()
    nd.start()
    wait_for(lambda: policy_in_place(lab.vm, rules, tables), 30, "networkd's policy")
    assert not {"persisted-unused", "not-persisted"} & doctor_codes(lab.vm, nd.root)


USER_PROFILE = """[connection]
id=cloud-{name}
uuid=00000000-0000-4000-8000-00000000000{index}
type=ethernet
interface-name={name}

[ipv4]
method=auto
route-metric={metric}
"""


@pytest.fixture
def nm_lab(make_lab: Any, tmp_path: Path) -> tuple[Lab, NetworkManager]:
    need("NetworkManager", "nmcli", "dbus-daemon")
    lab = make_lab(2)
    nm = NetworkManager(lab, tmp_path / "root", tmp_path / "nm.log")
    nm.keyfiles.mkdir(parents=True)
    for i, name in enumerate(lab.ports):
        profile = nm.keyfiles / f"cloud-{name}.nmconnection"
        profile.write_text(USER_PROFILE.format(name=name, index=i, metric=100 + i))
        profile.chmod(0o600)
    nm.start()
    wait_for(lambda: len(defaults(lab.vm, "main")) == 2, 30, "DHCP defaults of eth0 and eth1")
    return lab, nm


def test_networkmanager_applies_the_rendered_policy_and_keeps_it(
    nm_lab: tuple[Lab, NetworkManager],
) -> None:
    """NetworkManager activates multihome's keyfiles over the distribution's profiles: the
    policy's rules and tables; after eth1 goes down and up the policy is back; after a real
    DHCP renew (T1 of a 2-minute lease) with a new router eth1's table follows it and main
    gets none of eth1's routes."""
    lab, nm = nm_lab
    rules, tables = desired(lab.vm)
    assert set(tables) == {"eth0", "eth1"}
    (nm.root / "usr/sbin").mkdir(parents=True)
    (nm.root / "usr/sbin/NetworkManager").write_text("")
    proc = multihome(lab.vm, "persist", "--backend", "networkmanager", "--root", str(nm.root))
    assert proc.returncode == 0, proc.stderr
    assert (nm.keyfiles / "cloud-eth1.nmconnection").read_text().startswith("[connection]")
    nm.stop()
    for port in lab.ports:  # as after a reboot: NetworkManager would assume live devices
        run("ip", "-n", lab.vm, "addr", "flush", "dev", port)
        run("ip", "-n", lab.vm, "link", "set", port, "down")
    nm.start()
    wait_for(
        lambda: policy_in_place(lab.vm, rules, tables),
        40,
        "NetworkManager to put the policy in place",
    )
    active = nm.nmcli("-t", "-f", "NAME", "connection", "show", "--active")
    assert sorted(n for n in active.split() if n != "lo") == ["multihome-eth0", "multihome-eth1"]
    # The tables can be complete a moment before NetworkManager adds eth0's DHCP default
    # to main (seen once in a full run): wait for main to get a default, then it must be
    # eth0's alone.
    wait_for(lambda: defaults(lab.vm, "main") != [], 15, "eth0's default in main")
    main_before = defaults(lab.vm, "main")
    assert main_before == [("192.168.0.1", "eth0")]

    run("ip", "-n", lab.vm, "link", "set", "eth1", "down")
    wait_for(lambda: defaults(lab.vm, tables["eth1"]) == [], 15, "eth1's table to empty")
    run("ip", "-n", lab.vm, "link", "set", "eth1", "up")
    wait_for(lambda: policy_in_place(lab.vm, rules, tables), 40, "the policy after eth1 down/up")

    acks = (lab.workdir / "dnsmasq.log").read_text().count("DHCPACK(br0) 192.168.0.112")
    lab.router("192.168.0.2")
    wait_for(
        lambda: (
            (lab.workdir / "dnsmasq.log").read_text().count("DHCPACK(br0) 192.168.0.112") > acks
        ),
        150,
        "eth1's DHCP renew",
    )
    wait_for(
        lambda: defaults(lab.vm, tables["eth1"]) == [("192.168.0.2", "eth1")],
        15,
        "the renewed lease's router in eth1's table",
    )
    # eth0 (primary) may renew too and move main's default to the new router: that is right.
    assert [r for r in ns_routes(lab.vm, "main") if r.get("dev") == "eth1"] == []
    assert band_rules(lab.vm) == rules


def test_persist_refuses_networkmanager_when_a_profile_outranks_multihome(
    nm_lab: tuple[Lab, NetworkManager],
) -> None:
    """A user profile for eth1 with autoconnect-priority 100: ``persist --backend
    networkmanager`` exits 2 naming it, and writes nothing. Forced anyway, the real
    NetworkManager proves the refusal right: after a restart it activates cloud-eth1, not
    multihome-eth1, and eth1's table stays empty."""
    lab, nm = nm_lab
    _, tables = desired(lab.vm)
    (nm.root / "usr/sbin").mkdir(parents=True)
    (nm.root / "usr/sbin/NetworkManager").write_text("")
    user = nm.keyfiles / "cloud-eth1.nmconnection"
    user.write_text(
        user.read_text().replace(
            "interface-name=eth1\n", "interface-name=eth1\nautoconnect-priority=100\n"
        )
    )
    root = ("--root", str(nm.root))
    proc = multihome(lab.vm, "persist", "--backend", "networkmanager", *root)
    assert proc.returncode == 2, proc.stderr
    assert "NetworkManager would activate cloud-eth1" in proc.stderr
    assert "autoconnect-priority 100" in proc.stderr
    assert not (nm.keyfiles / "multihome-eth1.nmconnection").exists()

    proc = multihome(lab.vm, "persist", "--backend", "networkmanager", "--force-backend", *root)
    assert proc.returncode == 0, proc.stderr
    nm.stop()
    for port in lab.ports:  # as after a reboot
        run("ip", "-n", lab.vm, "addr", "flush", "dev", port)
        run("ip", "-n", lab.vm, "link", "set", port, "down")
    nm.start()
    assert nm.proc is not None

    def active() -> list[str]:
        """The active profiles and their devices (empty while NetworkManager starts)."""
        pid = str(nm.proc.pid) if nm.proc is not None else ""
        show = ("nmcli", "-t", "-f", "NAME,DEVICE", "connection", "show", "--active")
        return run("nsenter", "-t", pid, "-m", "-n", *show, check=False).stdout.split()

    wait_for(
        lambda: {"multihome-eth0:eth0", "cloud-eth1:eth1"} <= set(active()),
        40,
        "NetworkManager to activate multihome-eth0 and cloud-eth1",
    )
    wait_for(lambda: len(defaults(lab.vm, "main")) >= 1, 30, "a DHCP default")
    assert "multihome-eth1:eth1" not in active()
    assert defaults(lab.vm, tables["eth1"]) == []
