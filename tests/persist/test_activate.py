"""persist makes the running systemd-networkd load what it wrote (``networkctl reload``), so a
DHCP renew before the next boot keeps the policy; doctor finds files networkd has not loaded.
Real networkd in a namespace, its ports served by dnsmasq; checked with ``ip -j``."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import persist_util
import pytest
from persist_util import Lab, Networkd, multihome, need, run, wait_for
from test_daemons import defaults, desired, doctor_codes, networkd_lab, policy_in_place

__all__ = ["networkd_lab"]  # the fixture, shared with test_daemons


def acks(lab: Lab, address: str) -> int:
    """How many DHCPACKs dnsmasq sent for ``address``."""
    return (lab.workdir / "dnsmasq.log").read_text().count(f"DHCPACK(br0) {address}")


def persist_json(lab: Lab, root: Path, *args: str) -> dict[str, Any]:
    proc = multihome(
        lab.vm, "persist", "--backend", "networkd", "--root", str(root), "--json", *args
    )
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def test_networkd_persist_reloads_networkd_and_a_renew_keeps_the_policy(
    networkd_lab: tuple[Lab, Networkd], tmp_path: Path
) -> None:
    """The first boot's sequence (apply, then persist) without a reboot. A --root networkd does
    not read never reloads it; with --no-activate networkd keeps its old configuration: doctor
    says persist-not-loaded and a renew puts eth1's default back into main (the defect). A
    plain persist reloads networkd (the links stay up), doctor is content, and renews of both
    ports keep the policy and main's single default."""
    lab, nd = networkd_lab
    rules, tables = desired(lab.vm)
    apply = ("--root", str(nd.root), "apply")
    assert multihome(lab.vm, *apply, check=True).returncode == 0
    (nd.root / "lib/systemd").mkdir(parents=True)
    (nd.root / "lib/systemd/systemd-networkd").write_text("")

    image = tmp_path / "image"  # another root: networkd does not read it, so no reload
    (image / "lib/systemd").mkdir(parents=True)
    (image / "lib/systemd/systemd-networkd").write_text("")
    assert persist_json(lab, image)["activation"]["state"] == "next-boot"
    assert "Reconfiguring" not in nd.log.read_text()

    skipped = persist_json(lab, nd.root, "--no-activate")
    assert skipped["activation"]["state"] == "skipped"
    assert "Reconfiguring" not in nd.log.read_text()
    assert "persist-not-loaded" in doctor_codes(lab.vm, nd.root)
    before = acks(lab, "192.168.0.112")
    nd.networkctl("renew", "eth1")
    wait_for(lambda: acks(lab, "192.168.0.112") > before, 10, "the renew's DHCPACK")
    wait_for(lambda: ("192.168.0.1", "eth1") in defaults(lab.vm, "main"), 10, "the defect")

    monitor = subprocess.Popen(
        ["ip", "-n", lab.vm, "monitor", "link"], stdout=subprocess.PIPE, text=True
    )
    try:
        done = persist_json(lab, nd.root)  # files unchanged, but not loaded: it reloads
    finally:
        monitor.terminate()
    events = monitor.communicate(timeout=5)[0]
    assert done["activation"]["state"] == "activated", done
    assert done["activation"]["commands"] == ["networkctl reload"]
    assert "Reconfiguring with /etc/systemd/network/10-eth1.network" in nd.log.read_text()
    assert "state DOWN" not in events and "NO-CARRIER" not in events, events
    assert policy_in_place(lab.vm, rules, tables)
    assert defaults(lab.vm, "main") == [("192.168.0.1", "eth0")]
    assert "persist-not-loaded" not in doctor_codes(lab.vm, nd.root)

    for port, address in (("eth1", "192.168.0.112"), ("eth0", "192.168.0.107")):
        before = acks(lab, address)
        nd.networkctl("renew", port)
        wait_for(lambda a=address, b=before: acks(lab, a) > b, 10, f"{port}'s DHCPACK")
    deadline = time.monotonic() + 2  # the defect showed within this, the renew's routes too
    while time.monotonic() < deadline:
        assert policy_in_place(lab.vm, rules, tables)
        assert defaults(lab.vm, "main") == [("192.168.0.1", "eth0")]
        time.sleep(0.1)
    again = persist_json(lab, nd.root)
    assert again["activation"]["state"] == "already", again


NETPLAN_BASE = """network:
  version: 2
  ethernets:
    eth0: {dhcp4: true, dhcp4-overrides: {route-metric: 100}}
    eth1: {dhcp4: true, dhcp4-overrides: {route-metric: 101}}
"""


def test_netplan_persist_generates_reloads_and_a_renew_keeps_the_policy(
    make_lab: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ubuntu's stack: netplan's networkd renderer (its output in /run/systemd/network, which
    this networkd reads from the root). After apply and ``persist --backend netplan`` persist
    ran ``netplan generate`` and ``networkctl reload`` (never ``netplan apply``), and a renew
    of eth1 keeps its default in its table and out of main."""
    need("/lib/systemd/systemd-networkd", "networkctl", "dbus-daemon", "netplan")
    script = persist_util.NETWORKD_SCRIPT.replace(
        "mount --bind /run/mh-empty /lib/systemd/network",
        "mount --bind /run/mh-empty /lib/systemd/network\n"
        'mkdir -p /run/systemd/network "$1/run/systemd/network"\n'
        'mount --bind "$1/run/systemd/network" /run/systemd/network',
    )
    monkeypatch.setattr(persist_util, "NETWORKD_SCRIPT", script)
    lab = make_lab(2)
    root = tmp_path / "root"
    (root / "etc/netplan").mkdir(parents=True)
    (root / "etc/netplan/50-cloud-init.yaml").write_text(NETPLAN_BASE)
    (root / "etc/netplan/50-cloud-init.yaml").chmod(0o600)
    for program in ("usr/sbin/netplan", "lib/systemd/systemd-networkd"):
        (root / program).parent.mkdir(parents=True, exist_ok=True)
        (root / program).write_text("")
    run("netplan", "generate", "--root-dir", str(root))
    nd = Networkd(lab, root, tmp_path / "networkd.log")
    nd.start()
    wait_for(lambda: len(defaults(lab.vm, "main")) == 2, 20, "DHCP defaults of eth0 and eth1")
    rules, tables = desired(lab.vm)
    assert multihome(lab.vm, "--root", str(root), "apply", check=True).returncode == 0

    done = multihome(lab.vm, "persist", "--backend", "netplan", "--root", str(root), "--json")
    assert done.returncode == 0, done.stderr
    activation = json.loads(done.stdout)["activation"]
    assert activation["state"] == "activated", activation
    assert activation["commands"] == [f"netplan generate --root-dir {root}", "networkctl reload"]
    assert "Reconfiguring with /run/systemd/network/10-netplan-eth1.network" in nd.log.read_text()
    assert policy_in_place(lab.vm, rules, tables)
    assert "persist-not-loaded" not in doctor_codes(lab.vm, root)

    before = acks(lab, "192.168.0.112")
    nd.networkctl("renew", "eth1")
    wait_for(lambda: acks(lab, "192.168.0.112") > before, 10, "eth1's DHCPACK")
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        assert policy_in_place(lab.vm, rules, tables)
        assert defaults(lab.vm, "main") == [("192.168.0.1", "eth0")]
        time.sleep(0.1)
