"""A real reboot probed through the lab: the dual-stack networkd guest plugged into lab
scenario 6 (tests/reboot/lab_guest.py) is probed from the lab's internet host as a cloud user
would, before `multihome persist` and after a poweroff and boot.

Which port a reply leaves through is counted in the lab's switch, per switch port and source
address (labtools.watch, hooked before port security); port security's own drop counters say
what it dropped. Nothing here asks multihome whether it worked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dualstack_guest import addresses6, configure, expected6, ipv6_problems, routers
from lab_guest import lab_guest_environment
from labtools import counters, http, watch
from reboot_guest import expected_from_plan, wait_for_policy, wait_until

pytestmark = pytest.mark.slow

INTERNET4 = "198.51.100.10"
INTERNET6 = "2001:db8:ffff::10"
DROPS = ("_ip", "_ip6", "_nd")


def test_networkd_guest_answers_on_every_address_through_its_port_after_a_reboot(
    rootfs: Path, tmp_path: Path
) -> None:
    """Scenario 6's VM as a booted networkd guest (DHCPv4 from the lab's dnsmasq, SLAAC and
    RA defaults from the lab's radvd). Before persist: eth1's IPv6 address and floating IP do
    not answer, their replies leave through eth0 and port security drops and counts them.
    After `multihome persist --backend networkd`, poweroff and boot: every floating IP and
    every IPv6 global address answers the internet host, each reply counted on its own
    switch port only, and port security drops nothing."""
    with lab_guest_environment(tmp_path, rootfs, "6") as lab:
        guest, scenario = lab.guest, lab.scenario
        sw, inet = lab.switch, lab.internet
        v6 = {p.name: str(p.ips6[0]) for p in scenario.ports}
        fixed = {p.name: str(p.ips[0]) for p in scenario.ports}
        floating = {p.name: str(p.floating_ips[p.ips[0]]) for p in scenario.ports}
        configure(guest, "networkd")
        guest.boot()
        wait_until(
            lambda: (
                addresses6(guest) == v6
                and set(routers(guest)) == set(guest.ports)
                and len(guest.defaults("main")) == 2
            ),
            40,
            "the scenario's SLAAC addresses, RA defaults and DHCP defaults",
            guest,
        )
        plan = json.loads(guest.sh("multihome", "plan", "--source", "kernel", "--json").stdout)
        # policy_problems reads IPv4 (``ip -j rule``); the IPv6 half is ipv6_problems'.
        plan4 = {**plan, "changes": [c for c in plan["changes"] if c.get("family") != 6]}
        expected, rules6 = expected_from_plan(plan4), expected6(plan)
        sources = [*fixed.values(), *v6.values()]
        taps = [f"tap{n}" for n in range(len(scenario.ports))]
        watch(sw, taps, sources)

        def replies() -> dict[tuple[str, str], int]:
            got = counters(sw, "watch")
            return {
                (tap, source): got[f"r_{t}_{s}"]
                for t, tap in enumerate(taps)
                for s, source in enumerate(sources)
            }

        # Before: eth0 answers in both families; eth1 in neither, its replies leave by eth0.
        assert http(inet, v6["eth0"]) == INTERNET6
        assert http(inet, floating["eth0"]) == INTERNET4
        drops = counters(sw, "portsec")
        assert http(inet, v6["eth1"]) is None
        assert http(inet, floating["eth1"]) is None
        now = counters(sw, "portsec")
        assert now["eth0_ip6"] > drops["eth0_ip6"] and now["eth0_ip"] > drops["eth0_ip"], now
        seen = replies()
        assert seen[("tap0", v6["eth1"])] > 0 and seen[("tap1", v6["eth1"])] == 0, seen

        out = guest.sh("multihome", "persist", "--backend", "networkd").stdout
        assert out.startswith("backend: networkd ("), out
        guest.poweroff()
        guest.boot()
        wait_for_policy(guest, expected)
        tables = {i["name"]: i["table"]["id"] for i in plan["interfaces"] if i["table"]}
        wait_until(lambda: not ipv6_problems(guest, rules6, tables), 60, "IPv6 policy", guest)

        # After the reboot: every address answers, each reply through its own port only.
        portsec, before = counters(sw, "portsec"), replies()
        for port in guest.ports:
            assert http(inet, floating[port]) == INTERNET4, port
            assert http(inet, v6[port]) == INTERNET6, port
        after = replies()
        for tap, port in zip(taps, guest.ports, strict=True):
            for source in (fixed[port], v6[port]):
                for other in taps:
                    grew = after[(other, source)] > before[(other, source)]
                    assert grew == (other == tap), (port, source, other, after)
        dropped = {k: v for k, v in counters(sw, "portsec").items() if k.endswith(DROPS)}
        assert dropped == {k: v for k, v in portsec.items() if k.endswith(DROPS)}
