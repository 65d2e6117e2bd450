"""Real reboots of a dual-stack guest: the tenant network also sends router advertisements
(radvd), the guest's ports take SLAAC addresses; after `multihome persist` and every boot the
IPv6 rules and each port's IPv6 table are back (networkd, NetworkManager, the systemd unit,
netplan),
each address's lookup leaves through its own port, and multihome's plan
is empty. Checked with the host's ``ip -6 -j`` in the guest's namespace."""

from __future__ import annotations

import json

import pytest
from dualstack_guest import PREFIX, addresses6, configure, expected6, ipv6_problems, routers
from reboot_guest import Guest, advertise_ipv6, wait_until

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("backend", "stack"),
    [
        ("networkd", "networkd"),
        ("networkmanager", "networkmanager"),
        ("systemd", "networkd"),
        ("netplan", "netplan"),
    ],
)
def test_the_ipv6_policy_comes_back_at_every_boot(guest: Guest, backend: str, stack: str) -> None:
    """A dual-stack network: before persist eth1's IPv6 replies would leave by eth0's router;
    after `multihome persist --backend BACKEND` and each of two reboots the family-6 rules
    and both IPv6 tables are back (networkd: its drop-ins; NetworkManager: its keyfiles; the
    systemd unit: its apply once the RA default is there; netplan: 90-multihome.yaml and
    the drop-ins for netplan's own .network files, generated at boot), each address's lookup leaves
    through its port, multihome's plan is empty and the IPv4 rules are there too."""
    advertise_ipv6(guest, PREFIX)
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
    assert len(rules) == 9 and set(tables) == {"eth0", "eth1"}, rules
    rules4 = len([c for c in plan["changes"] if c["kind"] == "rule" and c["family"] == 4])
    assert ipv6_problems(guest, rules, tables)  # the bug is there before persist
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
        if boot == 1:
            again = json.loads(guest.sh("multihome", "plan", "--source", "kernel", "--json").stdout)
            assert [c for c in again["changes"] if c["kind"] != "sysctl"] == [], again["changes"]
        guest.poweroff()
