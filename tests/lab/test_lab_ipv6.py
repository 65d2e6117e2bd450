"""The lab dual-stack (scenarios 6, 8 and 9: the how-to's scenario 4 with an IPv6 subnet,
SLAAC, DHCPv6-stateful or -stateless), checked with curl, nft and ip directly, not with the
code under test.

Which port a reply leaves through is counted by a table of the test's own in the switch
(``bridge watch``, hooked before port security): per switch port and source address, the
guest's HTTP replies (TCP source port 80). HTTP, not ping, for IPv6: the kernel answers an
ICMPv6 echo out of the interface the request came in on, whatever the routing.
"""

from __future__ import annotations

import json

import pytest
from labtools import STATE_ROOT, counters, http, leftovers, ns_run, run_cli, watch

from multihome.lab.scenario import load_scenario

INTERNET4 = "198.51.100.10"
INTERNET6 = "2001:db8:ffff::10"


@pytest.mark.parametrize("number", ["6", "8"])  # SLAAC, DHCPv6-stateful
def test_dual_stack_second_port_dead_before_apply_and_every_address_after(
    number: str, lab_name: str
) -> None:
    """Scenario 6 (SLAAC) and 8 (DHCPv6): before `multihome apply`, eth1's IPv6 global
    address and its floating IP do not answer, their replies leave through eth0 and port
    security drops and counts them. After it: every floating IP and every global address
    answers, each reply leaves through its own port, nothing is dropped, and each address's
    egress leaves with its own address; `lab probe --format dot` draws the IPv6 probes
    green. `lab down` then leaves nothing (radvd, the DHCPv6 clients, the IPv6 echo)."""
    scenario = load_scenario(number)
    up = run_cli("lab", "up", "--scenario", number, "--name", lab_name)
    assert up.returncode == 0, up.stderr
    vm, sw, inet = f"{lab_name}-vm", f"{lab_name}-sw", f"{lab_name}-inet"
    v6 = {p.name: str(p.ips6[0]) for p in scenario.ports}
    fixed = {p.name: str(p.ips[0]) for p in scenario.ports}
    floating = {p.name: str(p.floating_ips[p.ips[0]]) for p in scenario.ports}
    # SLAAC (DHCPv6) gave each port the address Neutron computed (allocated), past DAD,
    # and the router's advertisement a default.
    for port in scenario.ports:
        addrs = json.loads(ns_run(vm, "ip", "-j", "-6", "addr", "show", "dev", port.name).stdout)
        infos = [a for entry in addrs for a in entry["addr_info"] if a["scope"] == "global"]
        assert [(a["local"], a.get("tentative", False)) for a in infos] == [(v6[port.name], False)]
        ra = json.loads(ns_run(vm, "ip", "-j", "-6", "route", "show", "default").stdout)
        assert {r["dev"] for r in ra if r["protocol"] == "ra"} == {"eth0", "eth1"}

    sources = [fixed["eth0"], fixed["eth1"], v6["eth0"], v6["eth1"]]
    watch(sw, ["tap0", "tap1"], sources)

    def replies(tap: int, source: str) -> int:
        return counters(sw, "watch")[f"r_{tap}_{sources.index(source)}"]

    # Before: eth0 answers in both families, eth1 in neither; eth1's IPv6 replies leave
    # through eth0 (the lower RA metric), where port security counts them as ip6 drops.
    assert http(inet, v6["eth0"]) == INTERNET6
    assert http(inet, floating["eth0"]) == INTERNET4
    drops_before = counters(sw, "portsec")["eth0_ip6"]
    assert http(inet, v6["eth1"]) is None
    assert http(inet, floating["eth1"]) is None
    assert counters(sw, "portsec")["eth0_ip6"] > drops_before
    assert replies(0, v6["eth1"]) > 0 and replies(1, v6["eth1"]) == 0
    assert http(vm, INTERNET6, "--interface", v6["eth1"]) is None

    applied = run_cli("lab", "exec", "--name", lab_name, "--", "multihome", "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    route = json.loads(
        ns_run(vm, "ip", "-j", "-6", "route", "get", INTERNET6, "from", v6["eth1"]).stdout
    )
    assert route[0]["dev"] == "eth1" and route[0]["gateway"].startswith("fe80:")

    # After: every address answers, each reply through its own port, nothing dropped.
    portsec = counters(sw, "portsec")
    before = counters(sw, "watch")
    for tap, port in enumerate(scenario.ports):
        assert http(inet, floating[port.name]) == INTERNET4, port.name
        assert http(inet, v6[port.name]) == INTERNET6, port.name
        assert http(vm, INTERNET6, "--interface", v6[port.name]) == v6[port.name]
        assert http(vm, INTERNET4, "--interface", fixed[port.name]) == floating[port.name]
        for source in (fixed[port.name], v6[port.name]):
            assert replies(tap, source) > before[f"r_{tap}_{sources.index(source)}"], source
            assert replies(1 - tap, source) == before[f"r_{1 - tap}_{sources.index(source)}"]
    after = counters(sw, "portsec")
    assert {k: v for k, v in after.items() if k.endswith(("_ip", "_ip6", "_nd"))} == {
        k: v for k, v in portsec.items() if k.endswith(("_ip", "_ip6", "_nd"))
    }
    # `lab probe --format dot` draws the IPv6 probes too: nothing red now.
    dot = run_cli("lab", "probe", "--name", lab_name, "--format", "dot")
    assert dot.returncode == 0, dot.stderr
    assert f'"internet 198.51.100.10" -> "{v6["eth1"]}" [label="to {v6["eth1"]}: http ok"' in (
        dot.stdout
    )
    assert 'color="red"' not in dot.stdout, dot.stdout
    assert run_cli("lab", "down", "--name", lab_name).returncode == 0
    assert leftovers(lab_name) == []


def test_dhcpv6_stateless_gives_slaac_addresses_and_dhcpv6_information(lab_name: str) -> None:
    """Scenario 9 (Neutron's dhcpv6-stateless): each port has exactly one global address,
    SLAAC's EUI-64 one, past DAD (DHCPv6 hands out none); the lab's DHCPv6 server answered an
    information request from each port (its log) with the DNS server and search domain, which
    the guest's client kept (dhcp6-info.<port>); `lab status` finds nothing wrong (the
    one-shot `dhclient -6 -S` is not a daemon)."""
    scenario = load_scenario("9")
    up = run_cli("lab", "up", "--scenario", "9", "--name", lab_name)
    assert up.returncode == 0, up.stderr
    state = STATE_ROOT / lab_name
    log = (state / "dnsmasq.log").read_text()
    for port in scenario.ports:
        addrs = json.loads(
            ns_run(f"{lab_name}-vm", "ip", "-j", "-6", "addr", "show", "dev", port.name).stdout
        )
        infos = [a for entry in addrs for a in entry["addr_info"] if a["scope"] == "global"]
        assert [(a["local"], a.get("tentative", False)) for a in infos] == [
            (str(port.ips6[0]), False)
        ]
        assert int(infos[0].get("valid_life_time", 0)) > 0  # from the advertisement (SLAAC)
        duid = "00:03:00:01:" + port.mac  # dhclient's DUID-LL
        assert f"DHCPINFORMATION-REQUEST(ns-0) {duid}" in log, log[-2000:]
        assert (state / f"dhcp6-info.{port.name}").read_text() == (
            "nameserver 2001:db8:4::2\nsearch openstacklocal.\n"
        )
    assert "option: 23 dns-server  2001:db8:4::2" in log
    assert "DHCPSOLICIT" not in log  # no client asked for an address
    status = run_cli("lab", "status", "--name", lab_name, "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    assert json.loads(status.stdout)["problems"] == []
