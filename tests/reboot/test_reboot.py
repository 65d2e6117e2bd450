"""Real reboots: `multihome persist` in a booted Debian 12 guest, power off, boot again (fresh
namespaces, as a real reboot gives a fresh kernel), three times: the rules and tables are back
and right, with no duplicates. Checked with the host's ``ip -j`` in the guest's namespace."""

from __future__ import annotations

import json
import time

import pytest
from reboot_guest import (
    GATEWAY,
    Expected,
    Guest,
    expected_from_plan,
    policy_problems,
    wait_for_policy,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.netns]

BOOTS_AFTER_PERSIST = 3


def first_boot(guest: Guest) -> Expected:
    """Boot with the distribution's configuration only and let DHCP configure both ports."""
    guest.boot()
    wait_until(
        lambda: guest.defaults("main") == [(GATEWAY, "eth0"), (GATEWAY, "eth1")],
        30,
        "DHCP defaults of eth0 and eth1 in main",
        guest,
    )
    assert guest.band_rules() == []  # what follows comes from multihome's files
    plan = guest.sh("multihome", "plan", "--source", "kernel", "--json")
    expected = expected_from_plan(json.loads(plan.stdout))
    assert set(expected.tables) == {"eth0", "eth1"}
    assert len(expected.rules) >= 7  # suppress + from/oif/iif per port, at least
    return expected


def persist(guest: Guest, backend: str, chosen: str) -> str:
    proc = guest.sh("multihome", "persist", "--backend", backend)
    assert proc.stdout.startswith(f"backend: {chosen} ("), proc.stdout
    return proc.stdout


def reboot_and_check(guest: Guest, expected: Expected, backend: str) -> None:
    """Power off, then boot and check, BOOTS_AFTER_PERSIST times; report the times."""
    guest.poweroff()
    for n in range(BOOTS_AFTER_PERSIST):
        guest.boot()
        wait_for_policy(guest, expected)
        if n == BOOTS_AFTER_PERSIST - 1:
            time.sleep(2)  # nothing late in start-up (a reconfigure, a renew) undoes it
            assert policy_problems(guest, expected) == []
        guest.poweroff()
    summary = "; ".join(
        f"boot {t.boot:.2f}s"
        + (f" policy {t.policy:.2f}s" if t.policy is not None else "")
        + (f" poweroff {t.poweroff:.2f}s" if t.poweroff is not None else "")
        for t in guest.times
    )
    print(f"\nreboot[{backend}]: {summary}")
    (guest.logdir / "times.json").write_text(json.dumps([vars(t) for t in guest.times]))


def test_systemd_unit_brings_the_policy_back_at_every_boot(guest: Guest) -> None:
    """The systemd backend on a networkd guest: multihome@eth0/eth1.service run `multihome
    apply --interface` at boot, and networkd (told by the networkd.conf.d drop-in to leave
    foreign rules and routes alone) does not wipe them; eth1's default leaves main."""
    guest.configure_networkd()
    expected = first_boot(guest)
    out = persist(guest, "systemd", "systemd")
    assert "multihome@.service" in out
    reboot_and_check(guest, expected, "systemd")


def test_networkd_drop_ins_bring_the_policy_back_at_every_boot(guest: Guest) -> None:
    """networkd (auto-detected): the drop-ins make networkd itself put eth1's DHCP routes into
    eth1's table and add every rule, at every boot."""
    guest.configure_networkd()
    expected = first_boot(guest)
    persist(guest, "auto", "networkd")
    reboot_and_check(guest, expected, "networkd")


def test_netplan_brings_the_policy_back_at_every_boot(guest: Guest) -> None:
    """netplan with the networkd renderer (auto-detected from cloud-init's 50-cloud-init.yaml):
    90-multihome.yaml plus the drop-ins for what netplan 0.106 cannot say are rendered by
    netplan's generator at every boot and applied by networkd."""
    guest.configure_netplan()
    expected = first_boot(guest)
    persist(guest, "auto", "netplan")
    reboot_and_check(guest, expected, "netplan")


def test_networkmanager_brings_the_policy_back_at_every_boot(guest: Guest) -> None:
    """NetworkManager (auto-detected): multihome's keyfiles outrank cloud-init's profiles at
    every boot and carry the route tables and routing rules."""
    guest.configure_networkmanager()
    expected = first_boot(guest)
    persist(guest, "auto", "networkmanager")
    reboot_and_check(guest, expected, "networkmanager")
    active = guest.root / "etc/NetworkManager/system-connections/multihome-eth1.nmconnection"
    assert active.stat().st_mode & 0o777 == 0o600
