"""The lab's pure parts: scenario files, their checks, and the configuration texts rendered
from them (nftables, dnsmasq, the DHCP client script, network_data.json)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from labtools import run_cli

from multihome.errors import InputError
from multihome.lab import topology as topo
from multihome.lab.probe import parse_counters
from multihome.lab.scenario import Outcome, builtin_scenarios, load_scenario, parse_scenario

#: The how-to's `ip route` on the two-port VM, verbatim.
HOWTO_ROUTES = [
    "default via 192.168.0.1 dev eth0 proto dhcp src 192.168.0.107 metric 100",
    "default via 192.168.0.1 dev eth1 proto dhcp src 192.168.0.112 metric 101",
    "169.254.169.254 via 192.168.0.100 dev eth0 proto dhcp src 192.168.0.107 metric 100",
    "169.254.169.254 via 192.168.0.100 dev eth1 proto dhcp src 192.168.0.112 metric 101",
    "192.168.0.0/24 dev eth0 proto kernel scope link src 192.168.0.107 metric 100",
    "192.168.0.0/24 dev eth1 proto kernel scope link src 192.168.0.112 metric 101",
]

MINIMAL = """
number: 9
name: minimal
title: t
howto: h
story: s
networks:
  private: {cidr: 192.168.0.0/24, gateway: 192.168.0.1}
ports:
  - {name: eth0, network: private, ips: [192.168.0.10], floating_ips: {192.168.0.10: 203.0.113.10}}
expect:
  before: {spoof_drops: false}
  after: {spoof_drops: false}
"""


def test_builtin_scenarios_are_the_sections_of_the_howto_and_four_in_ipv6() -> None:
    """Nine scenarios: the how-to's five (IPv4), then scenario 4 dual-stack (SLAAC), one
    with an IPv6-only port, and scenario 4 with DHCPv6-stateful and -stateless; each expects
    every public address (floating IPs, IPv6 global addresses) before and after apply."""
    scenarios = builtin_scenarios()
    assert [s.number for s in scenarios] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert len({s.name for s in scenarios}) == 9
    assert [s.number for s in scenarios if s.ipv6] == [6, 7, 8, 9]
    for scenario in scenarios:
        assert set(scenario.expect) == {"before", "after"}
        publics = {
            str(scenario.public_address(p, ip))
            for p in scenario.ports
            for ip in p.addresses
            if scenario.public_address(p, ip) is not None
        }
        assert set(scenario.expect["after"].reachable) == publics


def test_scenario4_is_the_howto_and_expects_the_failure_then_the_fix() -> None:
    """Scenario 4: the how-to's table; .112 dead before, alive after; own egress address."""
    scenario = load_scenario("two-ports-one-subnet")
    assert list(scenario.guest_routes) == HOWTO_ROUTES
    before, after = scenario.expect["before"], scenario.expect["after"]
    assert before.reachable == {"203.0.113.107": True, "203.0.113.112": False}
    assert after.reachable == {"203.0.113.107": True, "203.0.113.112": True}
    assert after.egress == {"192.168.0.107": "203.0.113.107", "192.168.0.112": "203.0.113.112"}
    assert before.spoof_drops and not after.spoof_drops


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("number: 9", "number: nine", "number: 'nine' is not a positive integer"),
        ("story: s", "story: s\ncolour: red", "unknown key 'colour'"),
        ("ips: [192.168.0.10]", "ips: [10.0.0.1]", "ports[0].ips[0]: 10.0.0.1 is outside"),
        ("203.0.113.10}", "198.51.100.7}", "is not a free floating IP"),
        ("network: private", "network: public", "ports[0].network: 'public' is not defined"),
        ("name: eth0", "name: eth5", "ports[0].name: 'eth5' is not eth0"),
        (
            "gateway: 192.168.0.1}",
            'gateway: 192.168.0.1, ipv6: {cidr: "2001:db8:1::/56"}}',
            "networks.private.ipv6.cidr: 2001:db8:1::/56 is not a /64 in 2001:db8::/32",
        ),
        (
            "gateway: 192.168.0.1}",
            'ipv6: {cidr: "2001:db8:1::/64"}}',
            "an IPv6 subnet needs the tenant router",
        ),
        ("ips: [192.168.0.10]", "ips: []", "an IPv6-only port, ips: [], needs a network"),
        (
            "gateway: 192.168.0.1}",
            'gateway: 192.168.0.1, ipv6: {cidr: "2001:db8:1::/64", mode: dhcp}}',
            "networks.private.ipv6.mode: 'dhcp' is not an IPv6 mode",
        ),
        (
            "gateway: 192.168.0.1}",
            'gateway: 192.168.0.1, dhcp: false, ipv6: {cidr: "2001:db8:1::/64", '
            "mode: dhcpv6-stateful}}",
            "DHCPv6 needs the network's DHCP",
        ),
        ("gateway: 192.168.0.1", "gateway: 10.0.0.1", "gateway: 10.0.0.1 is outside"),
        (
            "before: {spoof_drops: false}",
            "before: {spoof_drops: maybe}",
            "expect.before.spoof_drops",
        ),
    ],
)
def test_scenario_errors_name_the_file_the_key_and_the_fix(
    old: str, new: str, message: str
) -> None:
    """A broken scenario file is refused with a message naming file, line:column and key."""
    assert parse_scenario(MINIMAL, "x.yaml").number == 9
    with pytest.raises(InputError) as caught:
        parse_scenario(MINIMAL.replace(old, new), "x.yaml")
    assert re.match(rf"x\.yaml:{caught.value.line}:{caught.value.column}: ", str(caught.value))
    assert caught.value.line is not None
    assert message in str(caught.value)


def test_unknown_scenario_lists_the_choices() -> None:
    """--scenario with an unknown name says which ones exist."""
    with pytest.raises(InputError, match=r"choose one of 1 \(single-port\)"):
        load_scenario("42")


def test_port_security_allows_own_pairs_and_counts_every_drop() -> None:
    """Allowed address pairs join the port's set; each IPv4 port has 4 named drop
    counters and no IPv6 rule (IPv6 counts as other)."""
    scenario = load_scenario("3")
    rules = topo.render_portsec(scenario)
    eth0, eth1 = scenario.ports
    assert f"elements = {{ 192.168.0.107 . {eth0.mac}, 192.168.0.112 . {eth0.mac} }}" in rules
    assert f"elements = {{ 192.168.0.112 . {eth1.mac} }}" in rules
    assert "ip6" not in rules and "icmpv6" not in rules
    for port in ("eth0", "eth1"):
        assert topo.drop_reasons(scenario.ports[0]) == ("mac", "ip", "arp", "other")
        for reason in topo.drop_reasons(scenario.ports[0]):
            assert f"counter {port}_{reason} {{ }}" in rules
            assert f'counter name "{port}_{reason}" drop' in rules
    assert '"tap1" : jump port_eth1' in rules
    assert "iifname vmap @ports" in rules


def test_ipv6_port_security_allows_own_addresses_and_link_local_and_checks_nd() -> None:
    """A port with IPv6: its set holds its SLAAC address and its MAC-derived link-local
    (both EUI-64 of its MAC, as Neutron computes them); DAD and MLD from :: pass; router
    advertisements and neighbour advertisements for another address are dropped (``nd``);
    other IPv6 sources are dropped (``ip6``); an IPv6-only port's IPv4 set is empty."""
    scenario = load_scenario("6")
    eth0, eth1 = scenario.ports
    assert eth0.mac == "fa:16:3e:a8:00:6b"
    assert [str(a) for a in eth0.ips6] == ["2001:db8:1:0:f816:3eff:fea8:6b"]
    assert str(eth0.link_local) == "fe80::f816:3eff:fea8:6b"
    rules = topo.render_portsec(scenario)
    assert (
        f"elements = {{ fe80::f816:3eff:fea8:6b . {eth0.mac}, "
        f"2001:db8:1:0:f816:3eff:fea8:6b . {eth0.mac} }}" in rules
    )
    assert "ip6 saddr :: icmpv6 type { nd-neighbor-solicit, mld2-listener-report } accept" in rules
    assert 'icmpv6 type nd-router-advert counter name "eth1_nd" drop' in rules
    target = f"0x{int(eth1.ips6[0]):032x}"
    assert target == "0x20010db800010000f8163efffea80070"
    assert f"@th,64,128 != {{ 0x{int(eth1.link_local):032x}, {target} }}" in rules
    assert 'ether type ip6 counter name "eth1_ip6" drop' in rules
    # The checks come before the port's own sources are accepted.
    chain = rules[rules.index("chain port_eth1") :]
    assert chain.index("nd-neighbor-advert") < chain.index("@eth1_allowed6 accept")
    removal = topo.render_portsec_remove(eth1)
    assert "delete set bridge portsec eth1_allowed6" in removal
    assert "delete counter bridge portsec eth1_nd" in removal
    only6 = load_scenario("7").ports[1]
    assert only6.ips == () and only6.mac == "fa:16:3e:66:00:01"
    text = topo.render_portsec(load_scenario("7"))
    assert "set eth1_allowed {\n\t\ttype ipv4_addr . ether_addr\n\t}" in text


def test_radvd_advertises_each_ipv6_subnet_on_its_router_leg() -> None:
    """radvd: a stanza per tenant leg with an IPv6 subnet (SLAAC: on-link, autonomous);
    none for an IPv4-only network; the router's global address is the subnet's ::1."""
    scenario = load_scenario("7")
    legs = topo.router_advertised(scenario)
    assert [(leg, str(prefix)) for leg, prefix in legs] == [
        ("qr-0", "2001:db8:1::/64"),
        ("qr-1", "2001:db8:2::/64"),
    ]
    conf = topo.radvd_conf(legs)
    assert conf.count("AdvSendAdvert on;") == 2 and "qr-2" not in conf
    assert "prefix 2001:db8:2::/64 {\n\t\tAdvOnLink on;\n\t\tAdvAutonomous on;" in conf
    assert str(scenario.networks[1].gateway6) == "2001:db8:2::1"
    assert scenario.networks[2].gateway6 is None
    assert not scenario.port_dhcp(scenario.ports[1])  # IPv6-only: no DHCPv4 lease
    assert "fa:16:3e:66:00:01" not in topo.dhcp_hosts(scenario)


def test_dhcpv6_subnet_sets_the_managed_flag_and_dnsmasq_serves_fixed_addresses() -> None:
    """A DHCPv6-stateful subnet (scenario 8): radvd sets the managed and other-config flags
    and advertises the prefix on-link but not autonomous; dnsmasq gets a static DHCPv6 range
    and each port's host line its IPv6 address beside its IPv4 one; the DHCP port's IPv6
    address is the subnet's ::2; the guest runs dhclient -6 on each port."""
    scenario = load_scenario("8")
    network = scenario.networks[0]
    assert network.dhcpv6 and str(network.dhcp_server6) == "2001:db8:3::2"
    assert [str(p.ips6[0]) for p in scenario.ports] == ["2001:db8:3::6b", "2001:db8:3::70"]
    conf = topo.radvd_conf(topo.router_advertised(scenario), managed=topo.managed_legs(scenario))
    assert "AdvManagedFlag on;" in conf and "AdvAutonomous off;" in conf
    slaac = topo.radvd_conf(topo.router_advertised(load_scenario("6")))
    assert "AdvManagedFlag" not in slaac and "AdvAutonomous on;" in slaac
    args = topo.dnsmasq_args(scenario, Path("/run/x"))
    assert "--dhcp-range=set:net0v6,2001:db8:3::,static,64,12h" in args
    hosts = topo.dhcp_hosts(scenario)
    assert f"{scenario.ports[1].mac},set:eth1,192.168.0.112,[2001:db8:3::70]\n" in hosts
    assert [p.name for p in topo.lab_clients6(scenario)] == ["eth0", "eth1"]
    assert topo.lab_clients6(load_scenario("6")) == []


def dhclient_script_logging_ip(tmp_path: Path, log: Path) -> Path:
    """The guest's dhclient script, its ``ip`` a stand-in that appends its arguments to
    ``log``."""
    fake_ip = tmp_path / "ip"
    fake_ip.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    fake_ip.chmod(0o755)
    script = tmp_path / "script"
    script.write_text(topo.dhclient_script(str(fake_ip)))
    script.chmod(0o755)
    return script


def test_dhclient_script_configures_the_dhcpv6_address(tmp_path: Path) -> None:
    """The guest's script under `dhclient -6`: BOUND6 replaces the address (with its /128),
    a changed address replaces the old one, EXPIRE6 removes it."""
    log = tmp_path / "ip.log"
    script = dhclient_script_logging_ip(tmp_path, log)
    env = {"interface": "eth1", "new_ip6_address": "2001:db8:3::70", "new_ip6_prefixlen": "128"}
    for reason, extra in (
        ("BOUND6", {}),
        ("RENEW6", {"old_ip6_address": "2001:db8:3::71", "old_ip6_prefixlen": "128"}),
        ("EXPIRE6", {"old_ip6_address": "2001:db8:3::70", "old_ip6_prefixlen": "128"}),
    ):
        done = subprocess.run(
            [str(script)], env={**env, **extra, "reason": reason}, check=False, timeout=10
        )
        assert done.returncode == 0
    assert log.read_text().splitlines() == [
        "-6 addr replace 2001:db8:3::70/128 dev eth1",
        "-6 addr del 2001:db8:3::71/128 dev eth1",
        "-6 addr replace 2001:db8:3::70/128 dev eth1",
        "-6 addr del 2001:db8:3::70/128 dev eth1",
    ]


def test_dhcpv6_stateless_subnet_sets_the_other_flag_and_dnsmasq_answers_information() -> None:
    """A DHCPv6-stateless subnet (scenario 9): radvd sets only the other-config flag and the
    prefix stays autonomous (SLAAC's EUI-64 addresses); dnsmasq gets the static DHCPv6 range
    Neutron gives stateless subnets too, with the DNS server (itself) and search domain, and
    no host an IPv6 address; the guest runs dhclient -6 -S (information only) per port, which
    the lab does not count as a daemon; the metadata says ipv6_dhcpv6-stateless."""
    scenario = load_scenario("9")
    network = scenario.networks[0]
    assert network.stateless and not network.dhcpv6 and str(network.dhcp_server6) == "2001:db8:4::2"
    assert [str(p.ips6[0]) for p in scenario.ports] == [
        "2001:db8:4:0:f816:3eff:fea8:6b",
        "2001:db8:4:0:f816:3eff:fea8:70",
    ]
    conf = topo.radvd_conf(
        topo.router_advertised(scenario),
        managed=topo.managed_legs(scenario),
        other=topo.other_legs(scenario),
    )
    assert "AdvOtherConfigFlag on;" in conf and "AdvAutonomous on;" in conf
    assert "AdvManagedFlag" not in conf
    args = topo.dnsmasq_args(scenario, Path("/run/x"))
    assert "--dhcp-range=set:net0v6,2001:db8:4::,static,64,12h" in args
    assert "--dhcp-option=tag:net0v6,option6:dns-server,[::]" in args
    assert "--dhcp-option=tag:net0v6,option6:domain-search,openstacklocal" in args
    assert "[" not in topo.dhcp_hosts(scenario)
    assert [p.name for p in topo.lab_clients6(scenario)] == ["eth0", "eth1"]
    dhcpv6 = topo.network_data(scenario)["networks"]
    assert [n["type"] for n in dhcpv6] == ["ipv4_dhcp", "ipv6_dhcpv6-stateless"] * 2


def test_dhclient_script_keeps_the_stateless_information(tmp_path: Path) -> None:
    """`dhclient -6 -S` calls the script with RENEW6 and no address: no address is touched,
    and the DNS servers and search domain go into IF_INFO as resolv.conf lines."""
    log, info = tmp_path / "ip.log", tmp_path / "info"
    script = dhclient_script_logging_ip(tmp_path, log)
    env = {
        "reason": "RENEW6",
        "interface": "eth1",
        "new_dhcp6_name_servers": "2001:db8:4::2",
        "new_dhcp6_domain_search": "openstacklocal.",
        "IF_INFO": str(info),
    }
    done = subprocess.run([str(script)], env=env, check=False, timeout=10)
    assert done.returncode == 0
    assert not log.exists()
    assert info.read_text() == "nameserver 2001:db8:4::2\nsearch openstacklocal.\n"


def test_router_nat_maps_each_floating_ip_both_ways_and_snats_the_rest() -> None:
    """1:1 DNAT and SNAT per floating IP, default SNAT for the tenant subnet."""
    rules = topo.render_router_nat(load_scenario("5"))
    assert "203.0.113.121 : 192.168.1.21" in rules
    assert "192.168.1.21 : 203.0.113.121" in rules
    assert "dnat to ip daddr map @floating_dnat" in rules
    assert 'oifname { "up0" } snat to ip saddr map @floating_snat' in rules
    assert "ip saddr 192.168.1.0/24 snat to 203.0.113.2" in rules
    assert rules.index("map @floating_snat") < rules.index("192.168.1.0/24 snat")


def test_dnsmasq_sends_option_121_with_metadata_route_and_default() -> None:
    """Option 121 (and 249) carry the metadata host route and the default, like Neutron."""
    args = topo.dnsmasq_args(load_scenario("4"), Path("/run/x"))
    routes = "169.254.169.254/32,192.168.0.100,0.0.0.0/0,192.168.0.1"
    assert f"--dhcp-option=tag:net0,option:classless-static-route,{routes}" in args
    assert f"--dhcp-option=tag:net0,249,{routes}" in args
    assert "--no-ping" in args and "--port=0" in args
    assert "--dhcp-hostsfile=/run/x/dhcp-hosts" in args
    scenario = load_scenario("4")
    assert topo.dhcp_hosts(scenario) == "".join(
        f"{p.mac},set:{p.name},{p.ips[0]}\n" for p in scenario.ports
    )
    assert "--dhcp-optsfile=/run/x/dhcp-opts" in args
    assert topo.dhcp_opts(scenario) == ""
    isolated = topo.dnsmasq_args(load_scenario("2"), Path("/run/x"))
    assert not any("192.168.10." in a for a in isolated)


def _run_dhclient_script(tmp_path: Path, env: dict[str, str]) -> list[str]:
    log = tmp_path / "ip.log"
    stub = tmp_path / "ip"
    stub.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    stub.chmod(0o755)
    script = tmp_path / "dhclient-script"
    script.write_text(topo.dhclient_script(str(stub)))
    script.chmod(0o755)
    done = subprocess.run(
        [str(script)],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return log.read_text().splitlines() if log.exists() else []


def test_dhclient_script_gives_every_lease_route_the_nics_metric(tmp_path: Path) -> None:
    """BOUND with option 121: address and both routes with the NIC's metric (the how-to's)."""
    calls = _run_dhclient_script(
        tmp_path,
        {
            "reason": "BOUND",
            "interface": "eth1",
            "IF_METRIC": "101",
            "new_ip_address": "192.168.0.112",
            "new_subnet_mask": "255.255.255.0",
            "new_routers": "192.168.0.1",
            "new_rfc3442_classless_static_routes": "32 169 254 169 254 192 168 0 100 0 192 168 0 1",
        },
    )
    assert calls == [
        "-4 addr replace 192.168.0.112/255.255.255.0 dev eth1 metric 101",
        "-4 route replace 169.254.169.254/32 via 192.168.0.100 dev eth1 proto dhcp "
        "src 192.168.0.112 metric 101",
        "-4 route replace default via 192.168.0.1 dev eth1 proto dhcp src 192.168.0.112 metric 101",
    ]


def test_dhclient_script_without_121_uses_the_router_option(tmp_path: Path) -> None:
    """Without option 121 the first router becomes the default, with the metric."""
    calls = _run_dhclient_script(
        tmp_path,
        {
            "reason": "REBOOT",
            "interface": "eth0",
            "IF_METRIC": "100",
            "new_ip_address": "10.0.0.5",
            "new_subnet_mask": "255.255.0.0",
            "new_routers": "10.0.0.1 10.0.0.2",
        },
    )
    assert (
        calls[-1] == "-4 route replace default via 10.0.0.1 dev eth0 proto dhcp src 10.0.0.5 "
        "metric 100"
    )
    assert (
        _run_dhclient_script(tmp_path, {"reason": "EXPIRE", "interface": "eth0"})[-1]
        == "-4 addr flush dev eth0"
    )


def test_outcome_mismatches_say_what_differs() -> None:
    """Comparing a probe with an expectation names each difference."""
    expected = Outcome(
        {"203.0.113.112": True}, {"192.168.0.112": "203.0.113.112"}, {"eth1": True}, False
    )
    observed = Outcome({"203.0.113.112": False}, {"192.168.0.112": None}, {"eth1": True}, True)
    problems = expected.mismatches(observed)
    assert problems == [
        "203.0.113.112: expected reachable, got unreachable",
        "egress from 192.168.0.112: expected 203.0.113.112, got no answer",
        "port security: expected no drops, got drops",
    ]
    assert expected.mismatches(expected) == []


def test_counters_are_parsed_from_nft_json() -> None:
    """`nft -j list counters` -> (port, reason) -> packets."""
    text = json.dumps(
        {
            "nftables": [
                {"metainfo": {"version": "1.0.6"}},
                {
                    "counter": {
                        "family": "bridge",
                        "name": "eth0_ip",
                        "table": "portsec",
                        "packets": 7,
                        "bytes": 462,
                    }
                },
                {
                    "counter": {
                        "family": "bridge",
                        "name": "eth10_arp",
                        "table": "portsec",
                        "packets": 1,
                        "bytes": 28,
                    }
                },
            ]
        }
    )
    assert parse_counters(text) == {("eth0", "ip"): 7, ("eth10", "arp"): 1}
    assert parse_counters("not json") == {}


def test_lab_names_carry_the_prefix_and_refuse_bad_ones() -> None:
    """Every namespace and path carries the prefix; unusable prefixes are refused."""
    names = topo.LabNames.checked("lab2")
    assert names.namespaces == ("lab2-vm", "lab2-sw", "lab2-rtr", "lab2-dhcp", "lab2-inet")
    assert str(names.state_dir) == "/run/multihome-lab/lab2"
    assert str(names.guest_etc) == "/etc/netns/lab2-vm"
    for bad in ("", "Lab", "a/b", "x" * 21, "-lab"):
        with pytest.raises(InputError, match="--name"):
            topo.LabNames.checked(bad)


def test_network_data_describes_every_port_and_address() -> None:
    """The metadata host's network_data.json: a link per port, a network per address."""
    data = topo.network_data(load_scenario("5"))
    assert [link["ethernet_mac_address"] for link in data["links"]] == [
        p.mac for p in load_scenario("5").ports
    ]
    assert [n["ip_address"] for n in data["networks"]] == [
        "192.168.0.107",
        "192.168.0.112",
        "192.168.1.20",
        "192.168.1.21",
    ]
    assert [n["type"] for n in data["networks"]] == ["ipv4_dhcp"] * 3 + ["ipv4"]


def test_network_data_lists_ipv6_addresses_as_nova_writes_them() -> None:
    """An IPv6 subnet with an address mode: a network of type ipv6_slaac (or
    ipv6_dhcpv6-stateful) per IPv6 address, with its /64 netmask and the default via the
    subnet's gateway; an IPv6-only port has only that one."""
    data = topo.network_data(load_scenario("7"))
    six = [n for n in data["networks"] if str(n["type"]).startswith("ipv6")]
    assert [(n["type"], n["ip_address"], n["link"]) for n in six] == [
        ("ipv6_slaac", "2001:db8:1:0:f816:3eff:fea8:6b", data["links"][0]["id"]),
        ("ipv6_slaac", "2001:db8:2:0:f816:3eff:fe66:1", data["links"][1]["id"]),
    ]
    assert six[1]["netmask"] == "ffff:ffff:ffff:ffff::"
    assert six[1]["routes"] == [{"network": "::", "netmask": "::", "gateway": "2001:db8:2::1"}]
    assert [n["link"] for n in data["networks"]].count(data["links"][1]["id"]) == 1
    dhcpv6 = topo.network_data(load_scenario("8"))["networks"]
    assert [n["type"] for n in dhcpv6] == ["ipv4_dhcp", "ipv6_dhcpv6-stateful"] * 2


def test_lab_list_shows_every_scenario() -> None:
    """`multihome lab list --json` lists the nine scenarios with their expectations."""
    done = run_cli("lab", "list", "--json")
    assert done.returncode == 0
    listed = json.loads(done.stdout)["scenarios"]
    assert [s["number"] for s in listed] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert listed[7]["networks"][0]["ipv6_mode"] == "dhcpv6-stateful"
    assert listed[8]["networks"][0]["ipv6_mode"] == "dhcpv6-stateless"
    assert listed[5]["networks"][0]["cidr6"] == "2001:db8:1::/64"
    assert listed[5]["ports"][1]["ips6"] == ["2001:db8:1:0:f816:3eff:fea8:70"]
    assert listed[3]["expect"]["before"]["reachable"]["203.0.113.112"] is False
