"""IPv6 hot-plug in the dual-stack DHCPv6 lab (scenario 8: dnsmasq's DHCPv6, radvd with the
managed flag), with the real `multihome agent` in the guest: a dual-stack port and an
IPv6-only port get their IPv6 addresses from the agent's `dhclient -6`, a `--no-dhcp` port
(network_data.json types ``ipv4`` and ``ipv6``) from the metadata; each global address answers
the internet host and egresses as itself, also after a flap (which flushes IPv6 addresses);
a detach leaves nothing of the port.

Checked with `ip -j`, curl and /proc from outside the code under test. Bounds are generous
(the machine is shared).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from labhot_util import LiveLab, ns_run, wait_until

BOUND = 15.0  # seconds; DAD of the link-local address and DHCPv6 take ~3 s
INTERNET6 = "2001:db8:ffff::10"
PROTO_MULTIHOME = ("222", "multihome")


@pytest.fixture
def scenario8(live: LiveLab) -> LiveLab:
    """Scenario 8 up, fixed by `multihome apply`, the agent running in the guest."""
    live.ok("up", "--scenario", "8")
    applied = live.cli("exec", "--", "multihome", "--root", str(live.tmp / "root"), "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    live.start_agent()
    return live


def answers6(lab: LiveLab, address: str) -> bool:
    """The internet host reaches ``address`` over HTTP and the guest's reply came back."""
    return lab.http("inet", f"http://[{address}]/") == INTERNET6


def egress6(lab: LiveLab, source: str) -> str | None:
    """The address the internet host sees for traffic from ``source``."""
    return lab.http("vm", f"http://[{INTERNET6}]/", "--interface", source)


def globals6(lab: LiveLab, ifname: str) -> list[dict[str, Any]]:
    data = lab.ip_json("-6", "addr", "show", "dev", ifname, "scope", "global")
    # iproute2 leaves an empty object for each address the scope filter dropped
    return [a for entry in data for a in entry.get("addr_info", []) if "local" in a]


def dhclients(lab: LiveLab, ifname: str) -> list[list[str]]:
    return [argv for argv in lab.guest_processes("dhclient") if ifname in argv]


def attach(lab: LiveLab, *args: str) -> dict[str, Any]:
    return dict(json.loads(lab.ok("attach-port", *args, "--json"))["port"])


def works6(lab: LiveLab, address: str) -> bool:
    return answers6(lab, address) and egress6(lab, address) == address


def test_dhcpv6_ports_get_their_address_from_the_agents_dhclient_6(scenario8: LiveLab) -> None:
    """A dual-stack port (IPv4 and IPv6 fixed IPs): the agent runs `dhclient -4` and
    `dhclient -6` for it; its IPv6 address (a /128 with the lease's lifetimes) answers and
    egresses through it (route lookup from the address: its own port, via the router's
    link-local address from the port's own advertisement). An IPv6-only port gets
    `dhclient -6` only. A flap flushes eth2's
    IPv6 address: the agent's client asks again and it answers again. A detach stops the
    port's clients and leaves none of its rules."""
    lab = scenario8
    port = attach(lab, "--ip", "192.168.0.120", "--ip", "2001:db8:3::78", "--floating-ip", "auto")
    assert (port["name"], port["ips6"]) == ("eth2", ["2001:db8:3::78"])
    wait_until(
        lambda: works6(lab, "2001:db8:3::78") and lab.http("inet", "http://203.0.113.120/"),
        BOUND,
        "eth2's IPv6 address answers and egresses as itself\n" + lab.agent_log(),
    )
    assert sorted(argv[1] for argv in dhclients(lab, "eth2")) == ["-4", "-6"]
    # The lease's lifetimes (the lab's dnsmasq leases for 12 h), a /128 without a host route.
    (leased,) = globals6(lab, "eth2")
    assert (leased["local"], leased["prefixlen"], leased.get("noprefixroute")) == (
        "2001:db8:3::78",
        128,
        True,
    )
    assert leased.get("dynamic") and 0 < leased["valid_life_time"] <= 12 * 3600
    assert "lease6" in (lab.run_dir() / "dhclient6.eth2.leases").read_text()
    route = lab.ip_json("-6", "route", "get", INTERNET6, "from", "2001:db8:3::78")
    assert route[0]["dev"] == "eth2" and route[0]["gateway"].startswith("fe80:")
    ra = lab.ip_json("-6", "route", "show", "default", "dev", "eth2")
    assert [r["protocol"] for r in ra] == ["ra"]  # the hot-plugged NIC took the router's RA
    # It has the guest's IPv6 defaults, not the switch's where its veth was made: RAs
    # accepted, no privacy addresses, the MAC's link-local address (port security's).
    knobs = {
        knob: ns_run(f"{lab.name}-vm", "cat", f"/proc/sys/net/ipv6/conf/eth2/{knob}").stdout
        for knob in ("disable_ipv6", "accept_ra", "use_tempaddr", "addr_gen_mode")
    }
    assert {k: v.strip() for k, v in knobs.items()} == {
        "disable_ipv6": "0",
        "accept_ra": "1",
        "use_tempaddr": "0",
        "addr_gen_mode": "0",
    }
    status = json.loads((lab.run_dir() / "agent.json").read_text())
    assert status["configured6"]["eth2"].startswith("dhcpv6 (dhclient -6 pid ")

    only = attach(lab, "--ip", "2001:db8:3::90")
    assert (only["name"], only["ips"]) == ("eth3", [])
    wait_until(
        lambda: works6(lab, "2001:db8:3::90"),
        BOUND,
        "the IPv6-only eth3 answers and egresses as itself\n" + lab.agent_log(),
    )
    assert [argv[1] for argv in dhclients(lab, "eth3")] == ["-6"]

    lab.ok("flap", "eth2", "--down-for", "0.3")
    wait_until(
        lambda: works6(lab, "2001:db8:3::78"),
        BOUND,
        "eth2's IPv6 address is back after the flap\n" + lab.agent_log(),
    )
    assert "dhcpv6 client for eth2 again" in lab.agent_log()
    assert works6(lab, "2001:db8:3::90") and works6(lab, "2001:db8:3::70")

    lab.ok("detach-port", "eth2")

    def gone() -> bool:
        rules = lab.ip_json("-6", "rule")
        return not dhclients(lab, "eth2") and not [
            r
            for r in rules
            if str(r.get("protocol")) in PROTO_MULTIHOME
            and (r.get("src") == "2001:db8:3::78" or "eth2" in (r.get("oif"), r.get("iif")))
        ]

    wait_until(gone, BOUND, "nothing of eth2 is left\n" + lab.agent_log())
    assert "dhcpv6 client for eth2 (port removed)" in lab.agent_log()


def test_a_dhcp_disabled_dual_stack_port_is_addressed_from_the_metadata(
    scenario8: LiveLab,
) -> None:
    """`--no-dhcp` on the DHCPv6 network: network_data.json says ``ipv4`` and ``ipv6``; the
    agent gives the port both addresses (IPv6 ``noprefixroute``, its prefix and default via
    the subnet's gateway in main with a metric above the kernel's RA routes), starts no DHCP
    client, and both answer; after a flap (IPv6 addresses flushed) the metadata's IPv6
    address comes back and answers again."""
    lab = scenario8
    port = attach(lab, "--no-dhcp", "--ip", "192.168.0.130", "--ip", "2001:db8:3::82")
    assert port["dhcp"] is False
    wait_until(
        lambda: (
            works6(lab, "2001:db8:3::82")
            and lab.http("vm", "http://198.51.100.10/", "--interface", "192.168.0.130")
        ),
        BOUND,
        "the DHCP-disabled eth2 is addressed from the metadata and works\n" + lab.agent_log(),
    )
    addrs = globals6(lab, "eth2")
    assert [(a["local"], a["prefixlen"], a.get("noprefixroute")) for a in addrs] == [
        ("2001:db8:3::82", 64, True)
    ]
    main = lab.ip_json("-6", "route", "show", "table", "main", "dev", "eth2")
    static = {r["dst"]: r for r in main if r.get("protocol") == "static"}
    assert set(static) == {"default", "2001:db8:3::/64"}
    assert static["default"]["gateway"] == "2001:db8:3::1"
    assert static["default"]["metric"] > 1024  # never above the other ports' RA defaults
    assert not dhclients(lab, "eth2")
    assert "eth2: static 2001:db8:3::82/64 via 2001:db8:3::1 from metadata" in lab.agent_log()
    defaults = [r for r in lab.ip_json("-6", "route", "show", "default") if r.get("metric")]
    assert min(defaults, key=lambda r: r["metric"])["dev"] == "eth0"  # eth0 stays the primary

    lab.ok("flap", "eth2", "--down-for", "0.3")
    wait_until(
        lambda: works6(lab, "2001:db8:3::82"),
        BOUND,
        "eth2's static IPv6 address is back after the flap\n" + lab.agent_log(),
    )
    assert [a["local"] for a in globals6(lab, "eth2")] == ["2001:db8:3::82"]
