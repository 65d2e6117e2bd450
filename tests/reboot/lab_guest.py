"""The reboot guest wired into a real lab: the booted Debian guest takes the place of the lab's
guest namespace, so that after a real reboot the lab's cloud (router with radvd and floating
IPs, dnsmasq with the DHCP/metadata port, port security in the switch, the internet host)
probes it as it probes the lab's own guest.

``multihome lab up`` builds the lab as always; then the lab's guest ports are unplugged (the
veth pairs deleted: the switch's ``tapN`` go with them) and at every boot the nspawn guest's
ports are plugged into the same switch ports: a veth with the scenario's MAC whose peer is
``tapN`` on the network's bridge, so the lab's dnsmasq (by MAC), its port security (by
``tapN``, MAC and addresses) and its router's SLAAC prefix treat it as the scenario's VM.
The guest runs the lab's HTTP echo (``multihome/lab/echo.py`` of the multihome under test) as
a unit on ``[::]:80`` at every boot.
"""

from __future__ import annotations

import contextlib
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from persist_util import Namespaces, need, need_root, run
from reboot_guest import Guest, safe_rmtree

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))

from labtools import Probes, force_remove, new_name, run_cli

from multihome.lab.scenario import load_scenario
from multihome.lab.topology import bridge, net_index, tap

ECHO_UNIT = """[Unit]
Description=The lab's HTTP echo (the caller's address), as the lab's guest runs it
After=network.target

[Service]
Type=forking
PIDFile=/run/lab-echo.pid
ExecStart=/usr/bin/python3 /opt/multihome/src/multihome/lab/echo.py --bind :: --port 80 \\
  --pid-file /run/lab-echo.pid

[Install]
WantedBy=multi-user.target
"""


@dataclass(frozen=True)
class LabGuest:
    """A guest plugged into a lab in place of the scenario's VM, with the lab's probes."""

    guest: Guest
    probes: Probes


@contextlib.contextmanager
def lab_guest_environment(tmp_path: Path, tarball: Path, number: str) -> Iterator[LabGuest]:
    """Lab scenario ``number`` up, its guest ports unplugged, and a prepared (not booted)
    guest with the scenario's ports and the echo unit; all of it removed afterwards."""
    need_root()
    need("systemd-nspawn", "nsenter", "unshare", "dnsmasq", "radvd", "nft", "curl")
    scenario = load_scenario(number)
    networks = {net_index(scenario, p.network) for p in scenario.ports}
    assert len(networks) == 1, "the guest's ports are plugged into one bridge"
    name = new_name()
    spaces = Namespaces(f"mhreboot-{secrets.token_hex(3)}")
    root = tmp_path / "root"
    guest: Guest | None = None
    try:
        up = run_cli("lab", "up", "--scenario", number, "--name", name)
        assert up.returncode == 0, up.stdout + up.stderr
        for port in scenario.ports:  # its peer, the switch's tapN, goes with it
            run("ip", "-n", f"{name}-vm", "link", "del", port.name)
        guest = Guest(
            root=root,
            spaces=spaces,
            switch=f"{name}-sw",
            logdir=tmp_path,
            ports=tuple(p.name for p in scenario.ports),
            macs={p.name: p.mac for p in scenario.ports},
            peers=tuple(tap(p) for p in scenario.ports),
            bridge=bridge(networks.pop()),
        )
        guest.unpack(tarball)
        guest.install_multihome()
        guest.write("/etc/systemd/system/lab-echo.service", ECHO_UNIT)
        guest.systemctl("enable", "lab-echo.service")
        yield LabGuest(guest, Probes(name, scenario))
    finally:
        try:
            if guest is not None:
                guest.destroy()
        finally:
            spaces.cleanup()
            force_remove(name)
            safe_rmtree(root)
