"""Real reboots of a dual-stack guest, probed through the lab: the guest is plugged into lab
scenario 6's switch ports (tests/reboot/lab_guest.py), so the lab's router advertises (radvd,
SLAAC), its dnsmasq serves DHCPv4, its switch enforces port security and its internet host
probes every floating IP and IPv6 global address. After `multihome persist` and every boot
(networkd, NetworkManager, the systemd unit, netplan) the IPv6 rules and each port's IPv6
table are back, each address's lookup leaves through its own port, each address answers
through its own port, and multihome's plan is empty. Checked with the host's ``ip -j`` in the
guest's namespace and the lab's counters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from dualstack_guest import addresses6, configure, expected6, ipv6_problems, routers
from lab_guest import LabGuest, lab_guest_environment
from reboot_guest import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def lab(rootfs: Path, tmp_path: Path) -> Iterator[LabGuest]:
    """Lab scenario 6 with the booted guest in place of its VM; all removed afterwards."""
    with lab_guest_environment(tmp_path, rootfs, "6") as lab:
        yield lab


@pytest.mark.parametrize(
    ("backend", "stack"),
    [
        ("networkd", "networkd"),
        ("networkmanager", "networkmanager"),
        ("systemd", "networkd"),
        ("netplan", "netplan"),
    ],
)
def test_the_ipv6_policy_comes_back_at_every_boot(lab: LabGuest, backend: str, stack: str) -> None:
    """A dual-stack network: before persist eth1's IPv6 address and floating IP do not answer
    (their replies leave by eth0's switch port, port security counts the drops);
    after `multihome persist --backend BACKEND` and each of two reboots the family-6 rules
    and both IPv6 tables are back (networkd: its drop-ins; NetworkManager: its keyfiles; the
    systemd unit: its apply once the RA default is there; netplan: 90-multihome.yaml and
    the drop-ins for netplan's own .network files, generated at boot), each address's lookup leaves
    through its port, every floating IP and IPv6 address answers the lab's internet host
    through its own port, multihome's plan is empty and the IPv4 rules are there too."""
    guest = lab.guest
    configure(guest, stack)
    guest.boot()
    wait_until(
        lambda: (
            set(addresses6(guest)) == set(guest.ports)
            and set(routers(guest)) == set(guest.ports)
            and len(guest.defaults("main")) == 2
        ),
        40,
        "SLAAC addresses, RA defaults and DHCP defaults on both ports",
        guest,
    )
    plan = json.loads(guest.sh("multihome", "plan", "--source", "kernel", "--json").stdout)
    rules = expected6(plan)
    tables = {i["name"]: i["table"]["id"] for i in plan["interfaces"] if i["table"]}
    # the table-first band: from, oif, iif per port and the suppress rule
    assert len(rules) == 7 and set(tables) == {"eth0", "eth1"}, rules
    rules4 = len([c for c in plan["changes"] if c["kind"] == "rule" and c["family"] == 4])
    assert ipv6_problems(guest, rules, tables)  # the bug is there before persist
    lab.probes.check_second_port_dead()
    out = guest.sh("multihome", "persist", "--backend", backend).stdout
    assert out.startswith(f"backend: {backend} ("), out
    guest.poweroff()
    for boot in range(2):
        guest.boot()
        try:
            wait_until(lambda: not ipv6_problems(guest, rules, tables), 60, "IPv6", guest)
        except AssertionError as exc:
            units = guest.sh("systemctl", "status", "multihome@eth0", "multihome@eth1", check=False)
            raise AssertionError(
                f"{exc}: {ipv6_problems(guest, rules, tables)}\n{units.stdout}"
            ) from None
        assert len([r for r in guest.ip("rule") if 10000 <= int(r["priority"]) <= 10099]) == rules4
        lab.probes.check_every_address_answers()
        if boot == 1:
            again = json.loads(guest.sh("multihome", "plan", "--source", "kernel", "--json").stdout)
            assert [c for c in again["changes"] if c["kind"] != "sysctl"] == [], again["changes"]
        guest.poweroff()
