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
from dataclasses import dataclass, field
from pathlib import Path

from persist_util import Namespaces, need, need_root, run
from reboot_guest import Guest, safe_rmtree

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))

from labtools import counters, force_remove, http, new_name, run_cli, watch

from multihome.lab.scenario import Scenario, load_scenario
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


INTERNET4 = "198.51.100.10"
INTERNET6 = "2001:db8:ffff::10"
#: Port security's counters of dropped IPv4, IPv6 and neighbour discovery (per port).
DROPS = ("_ip", "_ip6", "_nd")


@dataclass
class LabGuest:
    """A guest plugged into lab ``name`` in place of the scenario's VM, and the probes a
    cloud user makes from the lab's internet host. Which switch port a reply leaves the guest
    through is counted per source address (labtools.watch, before port security); port
    security's own counters say what it dropped. Nothing asks multihome whether it worked."""

    guest: Guest
    scenario: Scenario
    name: str
    watching: bool = field(default=False)

    @property
    def switch(self) -> str:
        return f"{self.name}-sw"

    @property
    def internet(self) -> str:
        return f"{self.name}-inet"

    @property
    def taps(self) -> list[str]:
        return [tap(p) for p in self.scenario.ports]

    def addresses(self, port: str) -> tuple[str, str, str]:
        """``port``'s fixed IPv4 address, its floating IP and its IPv6 global address."""
        spec = next(p for p in self.scenario.ports if p.name == port)
        ip = spec.ips[0]
        return str(ip), str(spec.floating_ips[ip]), str(spec.ips6[0])

    @property
    def sources(self) -> list[str]:
        """The guest's addresses its replies come from (IPv4 fixed, IPv6 global)."""
        return [a for p in self.guest.ports for a in self.addresses(p)[::2]]

    def replies(self) -> dict[tuple[str, str], int]:
        """Replies (TCP from port 80) seen per (switch port, source address)."""
        if not self.watching:
            watch(self.switch, self.taps, self.sources)
            self.watching = True
        got = counters(self.switch, "watch")
        return {
            (t, source): got[f"r_{i}_{s}"]
            for i, t in enumerate(self.taps)
            for s, source in enumerate(self.sources)
        }

    def drops(self) -> dict[str, int]:
        """Port security's drop counters of IPv4, IPv6 and ND, per port."""
        return {k: v for k, v in counters(self.switch, "portsec").items() if k.endswith(DROPS)}

    def check_second_port_dead(self) -> None:
        """Before the fix: the first port answers in both families; the second neither, its
        replies leave by the first port's switch port, where port security drops them."""
        first, second = self.guest.ports[:2]
        _, floating0, v6_0 = self.addresses(first)
        _, floating1, v6_1 = self.addresses(second)
        seen, dropped = self.replies(), self.drops()
        assert http(self.internet, v6_0) == INTERNET6
        assert http(self.internet, floating0) == INTERNET4
        assert http(self.internet, v6_1) is None
        assert http(self.internet, floating1) is None
        now, after = self.replies(), self.drops()
        for kind in ("_ip", "_ip6"):
            assert after[first + kind] > dropped[first + kind], (kind, dropped, after)
        tap0, tap1 = self.taps[:2]
        assert now[(tap0, v6_1)] > seen[(tap0, v6_1)] and now[(tap1, v6_1)] == seen[(tap1, v6_1)]

    def check_every_address_answers(self) -> None:
        """After the fix: every floating IP and every IPv6 global address answers the
        internet host, each reply counted on its own switch port only, and port security
        drops nothing."""
        seen, dropped = self.replies(), self.drops()
        for port in self.guest.ports:
            _, floating, v6 = self.addresses(port)
            assert http(self.internet, floating) == INTERNET4, port
            assert http(self.internet, v6) == INTERNET6, port
        now = self.replies()
        for own, port in zip(self.taps, self.guest.ports, strict=True):
            for source in self.addresses(port)[::2]:
                for other in self.taps:
                    grew = now[(other, source)] > seen[(other, source)]
                    assert grew == (other == own), (port, source, other, now)
        assert self.drops() == dropped


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
        yield LabGuest(guest, scenario, name)
    finally:
        try:
            if guest is not None:
                guest.destroy()
        finally:
            spaces.cleanup()
            force_remove(name)
            safe_rmtree(root)
