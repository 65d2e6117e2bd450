"""multihome doctor in namespaces: every seeded fault is reported with its code, a healthy
setup yields nothing (exit 0)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from safety_util import Lab, ns_sh

from multihome.render import REGISTRY

#: The how-to's commands (table 1 stands for its "port2").
HOWTO = (
    "ip route add default via 192.168.0.1 dev eth1 proto dhcp src 192.168.0.112 metric 101 table 1",
    "ip route add 169.254.169.254 via 192.168.0.100 dev eth1 proto dhcp src 192.168.0.112"
    " metric 101 table 1",
    "ip route add 192.168.0.0/24 dev eth1 proto kernel scope link src 192.168.0.112"
    " metric 101 table 1",
    "ip route del default via 192.168.0.1 dev eth1 proto dhcp src 192.168.0.112 metric 101",
    "ip route del 169.254.169.254 via 192.168.0.100 dev eth1 proto dhcp src 192.168.0.112"
    " metric 101",
    "ip route del 192.168.0.0/24 dev eth1 proto kernel scope link src 192.168.0.112 metric 101",
    "ip rule add from 192.168.0.112/32 lookup 1",
    "ip rule add oif eth1 table 1",
    "ip rule add iif eth1 table 1",
)


def _doctor(lab: Lab, rc: int) -> dict[str, list[dict[str, str]]]:
    done = lab.mh("doctor", "--json", check_rc=rc)
    data: dict[str, list[dict[str, str]]] = json.loads(done.stdout)
    return data


def _codes(data: dict[str, list[dict[str, str]]]) -> dict[str, set[str | None]]:
    found: dict[str, set[str | None]] = {}
    for problem in data["problems"]:
        found.setdefault(problem["code"], set()).add(problem["interface"])
        assert problem["message"] and problem["fix"]
    return found


#: The distribution's own configuration of the ports, as a cloud image has it: networkd and
#: netplan then extend it (networkd: ``<file>.network.d/50-multihome.conf`` drop-ins).
DISTRIBUTION = {
    "networkd": {
        f"etc/systemd/network/10-{name}.network": f"[Match]\nName={name}\n\n[Network]\nDHCP=ipv4\n"
        for name in ("eth0", "eth1")
    },
    "netplan": {
        "etc/netplan/50-cloud-init.yaml": "network:\n  version: 2\n  ethernets:\n"
        "    eth0:\n      dhcp4: true\n    eth1:\n      dhcp4: true\n"
    },
}


def _install_program(lab: Lab, path: str = "/usr/bin/multihome") -> None:
    """An executable where a package installs multihome, below the lab's root."""
    program = lab.root / path.lstrip("/")
    program.parent.mkdir(parents=True, exist_ok=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)


def _persist(lab: Lab, backend: str = "systemd") -> None:
    """``multihome persist --backend BACKEND`` for real, under the lab's --root, after giving
    the root what the backend needs to count as installed (its programs, ifcfg's folder),
    multihome's program, and the distribution's own port configuration where the backend
    extends it."""
    _install_program(lab)
    for rel, text in DISTRIBUTION.get(backend, {}).items():
        (lab.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (lab.root / rel).write_text(text)
    for group in REGISTRY[backend].requires:
        marker = lab.root / group[0].lstrip("/")
        if marker.name == "network-scripts":
            marker.mkdir(parents=True, exist_ok=True)
        else:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
    lab.mh("persist", "--backend", backend, check_rc=0)


def test_howto_vm_before_the_fix(lab: Lab) -> None:
    """The how-to's starting point: two defaults and no rules, replies of eth1 leaving via
    eth0, ARP flux between the same-subnet ports, changes pending."""
    found = _codes(_doctor(lab, 1))
    assert "several-defaults-no-policy" in found
    assert found["reply-wrong-interface"] == {"eth1"}
    assert found["arp-flux"] == {"eth0", "eth1"}
    assert "pending-changes" in found
    assert "rp-filter-strict" not in found


def test_wrong_path_shows_the_decisive_rule(lab: Lab) -> None:
    """The wrong-path finding names the rule and route that decide it (main's, from the
    kernel and the DHCP client) and points at ``multihome explain``."""
    data = _doctor(lab, 1)
    message = next(p["message"] for p in data["problems"] if p["code"] == "reply-wrong-interface")
    assert "decided by rule `32766 from all lookup main` [kernel]" in message
    assert "dev eth0 table main" in message and "multihome explain 192.168.0.112" in message


def test_strict_rp_filter(lab: Lab) -> None:
    """rp_filter=1 on eth1 before the fix: the reverse path of its address is eth0."""
    ns_sh(lab.vm, "sysctl -qw net.ipv4.conf.eth1.rp_filter=1")
    found = _codes(_doctor(lab, 1))
    assert found["rp-filter-strict"] == {"eth1"}


def test_howto_script_run_twice_leaves_duplicate_rules(lab: Lab) -> None:
    """The how-to's script, run twice (its second run fails on the routes but adds every
    rule again): three duplicated rules; its first run alone is not flagged."""
    ns_sh(lab.vm, "\n".join(HOWTO))
    once = _codes(_doctor(lab, 1))
    assert "duplicate-rules" not in once
    assert "several-defaults-no-policy" not in once
    assert "reply-wrong-interface" not in once
    ns_sh(lab.vm, "\n".join(f"{line} || true" for line in HOWTO))
    data = _doctor(lab, 1)
    dups = [p for p in data["problems"] if p["code"] == "duplicate-rules"]
    assert len(dups) == 3
    assert any("from 192.168.0.112 lookup 1" in p["message"] for p in dups)
    assert all("ip rule del priority" in p["fix"] for p in dups)


def test_orphan_table_after_the_interface_vanished(lab: Lab) -> None:
    """apply, then eth1 disappears: its rules still point into its table."""
    lab.mh("apply", check_rc=0)
    ns_sh(lab.vm, "ip link del eth1")
    found = _codes(_doctor(lab, 1))
    assert found["orphan-table"] == {"eth1"}


@pytest.mark.parametrize("backend", sorted(REGISTRY))
def test_not_persisted_until_persist_wrote_it(lab: Lab, backend: str) -> None:
    """Applied but not persisted: not-persisted; after a real ``multihome persist`` with the
    backend (doctor reads persist's manifest, whatever file names the backend uses, the
    networkd drop-ins included): neither not-persisted nor dhcp-will-undo; after
    ``unpersist``: not-persisted again."""
    lab.mh("apply", check_rc=0)
    before = _codes(_doctor(lab, 1))
    assert "not-persisted" in before
    _persist(lab, backend)
    manifest = json.loads((lab.root / "var/lib/multihome/persist.json").read_text())
    assert manifest["backend"] == backend and manifest["files"]
    if backend == "networkd":  # the files the old glob etc/systemd/network/*multihome* missed
        assert "/etc/systemd/network/10-eth1.network.d/50-multihome.conf" in manifest["files"]
    after = _codes(_doctor_any(lab))
    assert "not-persisted" not in after
    assert "dhcp-will-undo" not in after
    lab.mh("unpersist", check_rc=0)
    assert "not-persisted" in _codes(_doctor(lab, 1))


def test_unit_program_missing(lab: Lab) -> None:
    """persist's unit on a target without multihome's program: persist warns and names
    /usr/local/bin/multihome, doctor reports unit-program-missing; once the package's
    /usr/bin/multihome is there, persist again writes that path and doctor is content.
    A masked agent unit is not checked; the package's agent unit naming a missing program
    is."""
    lab.mh("apply", check_rc=0)
    (lab.root / "bin").mkdir()
    (lab.root / "bin/systemctl").touch()
    done = lab.mh("persist", "--backend", "systemd", check_rc=0)
    assert "no multihome program found on the target" in done.stdout + done.stderr
    unit = lab.root / "etc/systemd/system/multihome@.service"
    assert "ExecStart=/usr/local/bin/multihome apply" in unit.read_text()
    found = [p for p in _doctor(lab, 1)["problems"] if p["code"] == "unit-program-missing"]
    assert [p["message"].split(":")[0] for p in found] == ["/etc/systemd/system/multihome@.service"]
    assert "/usr/local/bin/multihome" in found[0]["message"]
    _install_program(lab)
    agent = lab.root / "lib/systemd/system/multihome-agent.service"
    agent.parent.mkdir(parents=True)
    agent.write_text("[Service]\nExecStart=/usr/sbin/multihome agent\n")
    lab.mh("persist", "--backend", "systemd", check_rc=0)
    assert "ExecStart=/usr/bin/multihome apply" in unit.read_text()
    found = [p for p in _doctor_any(lab)["problems"] if p["code"] == "unit-program-missing"]
    assert len(found) == 1 and "/usr/sbin/multihome" in found[0]["message"]
    masked = lab.root / "etc/systemd/system/multihome-agent.service"
    masked.symlink_to("/dev/null")
    assert "unit-program-missing" not in _codes(_doctor_any(lab))


def _doctor_any(lab: Lab) -> dict[str, list[dict[str, str]]]:
    done = lab.mh("doctor", "--json")
    data: dict[str, list[dict[str, str]]] = json.loads(done.stdout)
    return data


@pytest.mark.skipif(shutil.which("dhclient") is None, reason="needs isc-dhcp-client")
def test_dhcp_client_will_undo(lab: Lab, tmp_path: Path) -> None:
    """A real dhclient serving eth1 (whose default multihome moved out of main) and no agent:
    the next renew puts the default back."""
    lab.mh("apply", check_rc=0)
    _persist(lab)
    client = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            lab.vm,
            "dhclient",
            "-d",
            "-4",
            "-sf",
            "/bin/true",
            "-lf",
            str(tmp_path / "lease"),
            "-pf",
            str(tmp_path / "pid"),
            "eth1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        found = _codes(_doctor(lab, 1))
        assert found["dhcp-will-undo"] == {"eth1"}
    finally:
        client.kill()
        client.wait()


def test_netplan_networkmanager_renderer_drops_routing_policy(lab: Lab) -> None:
    """netplan YAML with routing-policy under the NetworkManager renderer: flagged while the
    netplan version is unknown or before 1.2, not with 1.2."""
    netplan = lab.root / "etc/netplan/50-cloud-init.yaml"
    netplan.parent.mkdir(parents=True)
    netplan.write_text("""network:
  version: 2
  renderer: NetworkManager
  ethernets:
    eth1:
      dhcp4: true
      routing-policy:
        - from: 192.168.0.112
          table: 101
""")
    found = _codes(_doctor(lab, 1))
    assert found["netplan-nm-drops-policy"] == {"eth1"}
    status = lab.root / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True)
    status.write_text(
        "Package: netplan.io\nStatus: install ok installed\nVersion: 0.106-2+deb12u1\n\n"
    )
    assert "netplan-nm-drops-policy" in _codes(_doctor(lab, 1))
    status.write_text("Package: netplan.io\nStatus: install ok installed\nVersion: 1.2-1\n")
    assert "netplan-nm-drops-policy" not in _codes(_doctor_any(lab))


def test_healthy_setup_reports_nothing(lab: Lab) -> None:
    """After apply, with the configuration persisted and no DHCP client: exit 0, nothing."""
    lab.mh("apply", check_rc=0)
    _persist(lab)
    data = _doctor(lab, 0)
    assert data["problems"] == []
    text = lab.mh("doctor", check_rc=0)
    assert text.stdout.startswith("healthy")
