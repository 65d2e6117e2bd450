"""IPv6 in the topology file and the pure plan: rules per ethertype, the ND/RA rules,
fixed IPs per family, and the warnings that say IPv6 has no floating IPs."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from multihome.cloud.plan import make_plan
from multihome.cloud.state import CloudState, FoundNetwork, FoundPort, FoundSubnet, marker
from multihome.cloud.topology import parse_topology
from multihome.errors import CloudConflictError, InputError

TOPO = """\
name: six
networks:
  - name: net
    subnets:
      - {name: v4, cidr: 192.168.0.0/24}
      - {name: v6, cidr: '2001:db8:1::/64', ipv6_ra_mode: slaac, ipv6_address_mode: slaac}
security_groups:
  - name: ssh
    rules:
      - {protocol: tcp, port: 22}
routers:
  - {name: r, external_network: public, subnets: [v4, v6]}
ports:
  - {name: p0, network: net, fixed_ip: 192.168.0.10, security_groups: [ssh]}
"""
PUBLIC = FoundNetwork(
    id="ext", name="public", tags=(), description="", port_security=True, external=True
)
TAG = "multihome:six"


def _state(**kw: object) -> CloudState:
    return CloudState(tag=TAG, ext_networks=MappingProxyType({"public": PUBLIC}), **kw)  # type: ignore[arg-type]


def test_ethertypes_and_nd_rules() -> None:
    """A rule lists one or both ethertypes (remote ::/0 by default for IPv6); a topology with
    IPv6 adds ingress RA/NS/NA to each group (egress RS/NS/NA only where the group manages
    egress); ``ipv6_nd: false`` leaves them out; an IPv4-only topology gets none."""
    text = TOPO.replace(
        "{protocol: tcp, port: 22}",
        "{protocol: tcp, port: 22, ethertype: [IPv4, IPv6]}\n"
        "      - {protocol: icmp, ethertype: IPv6, remote: '2001:db8::/32'}",
    )
    group = parse_topology(text, "t").security_groups[0]
    assert [r.describe() for r in group.rules] == [
        "ingress IPv4 tcp/22 from 0.0.0.0/0",
        "ingress IPv6 tcp/22 from ::/0",
        "ingress IPv6 ipv6-icmp from 2001:db8::/32",
    ]
    assert [r.describe() for r in group.nd_rules] == [
        "ingress IPv6 ipv6-icmp type 134 from fe80::/10",
        "ingress IPv6 ipv6-icmp type 135 from ::/0",
        "ingress IPv6 ipv6-icmp type 136 from ::/0",
    ]
    egress = parse_topology(
        text.replace("rules:\n", "rules:\n      - {direction: egress, protocol: udp, port: 53}\n"),
        "t",
    ).security_groups[0]
    assert [r.port_min for r in egress.nd_rules if r.direction == "egress"] == [133, 135, 136]
    off = parse_topology(
        text.replace("  - name: ssh\n", "  - name: ssh\n    ipv6_nd: false\n"), "t"
    )
    assert off.security_groups[0].nd_rules == ()
    v4 = TOPO.replace(
        "      - {name: v6, cidr: '2001:db8:1::/64', ipv6_ra_mode: slaac, "
        "ipv6_address_mode: slaac}\n",
        "",
    ).replace("subnets: [v4, v6]", "subnets: [v4]")
    assert parse_topology(v4, "t").security_groups[0].nd_rules == ()


@pytest.mark.parametrize(
    ("old", "new", "key", "fix"),
    [
        (
            "{protocol: tcp, port: 22}",
            "{protocol: tcp, port: 22, ethertype: IPv6, remote: 10.0.0.0/8}",
            "security_groups[0].rules[0].ethertype",
            "use IPv4 (the family of 'remote')",
        ),
        (
            "{protocol: tcp, port: 22}",
            "{protocol: tcp, port: 22, ethertype: [IPv6, IPv6]}",
            "security_groups[0].rules[0].ethertype[1]",
            "list each ethertype once",
        ),
        (
            "cidr: '2001:db8:1::/64'",
            "cidr: '2001:db8:1::/64', ip_version: 4",
            "networks[0].subnets[1].ip_version",
            "ip_version: 6",
        ),
        (
            "ipv6_address_mode: slaac}",
            "ipv6_address_mode: dhcpv6}",
            "networks[0].subnets[1].ipv6_address_mode",
            "use one of slaac, dhcpv6-stateful, dhcpv6-stateless",
        ),
        (
            "ipv6_ra_mode: slaac, ",
            "",
            "routers[0].subnets[1]",
            "set 'ipv6_ra_mode: slaac' on v6",
        ),
        (
            "fixed_ip: 192.168.0.10,",
            "fixed_ip: 192.168.0.10, fixed_ips: ['2001:db8:1::5'],",
            "ports[0].fixed_ip",
            "list every address under fixed_ips",
        ),
        (
            "fixed_ip: 192.168.0.10,",
            "fixed_ips: [192.168.0.10, '2001:db8:9::5'],",
            "ports[0].fixed_ips[1]",
            "choose an address inside one of them",
        ),
        (
            "fixed_ip: 192.168.0.10,",
            "fixed_ips: [{subnet: v6}], floating_ip: public,",
            "ports[0].floating_ip",
            "remove floating_ip",
        ),
    ],
)
def test_ipv6_mistakes_name_key_and_fix(old: str, new: str, key: str, fix: str) -> None:
    """Each IPv6 mistake is refused at load: the key path and the fix."""
    text = TOPO.replace(old, new)
    assert text != TOPO
    with pytest.raises(InputError) as err:
        parse_topology(text, "t.yaml")
    assert err.value.path == key, str(err.value)
    assert fix in str(err.value)


def test_dual_stack_port_fixed_ips() -> None:
    """``fixed_ips`` keeps every entry with its family; the floating IP maps to the IPv4
    address even when an IPv6 address comes first; a network with one IPv6 subnet gives an
    IPv6 port."""
    text = TOPO.replace(
        "fixed_ip: 192.168.0.10,", "fixed_ips: [{subnet: v6}, 192.168.0.10], floating_ip: public,"
    )
    (port,) = parse_topology(text, "t").ports
    assert [(f.subnet, str(f.ip), f.version) for f in port.fixed_ips] == [
        ("v6", "None", 6),
        ("v4", "192.168.0.10", 4),
    ]
    assert str(port.floating_fixed_ip) == "192.168.0.10"
    assert port.subnet == "v6" and port.fixed_ip is None


def _found(ra: str | None = "slaac", ips: tuple[tuple[str, str], ...] = ()) -> dict[str, object]:
    net = FoundNetwork("n", "net", (TAG,), marker(TAG), True, False)
    subs = (
        FoundSubnet("s4", "v4", (TAG,), "", "n", "192.168.0.0/24", "192.168.0.1", True, ()),
        FoundSubnet(
            "s6", "v6", (TAG,), "", "n", "2001:db8:1::/64", "2001:db8:1::1", True, (), ra, "slaac"
        ),
    )
    port = FoundPort("p", "p0", (TAG,), "n", ips, (), (), True, "fa:16:3e:00:00:01", "", "")
    return {"networks": (net,), "subnets": subs, "ports": (port,)}


def test_modes_cannot_change_and_slaac_addresses_are_no_change() -> None:
    """Found IPv6 modes that differ are a conflict (Neutron cannot change them); the SLAAC
    address Neutron adds to a port that asks for an IPv4 address only is no change, while a
    missing dual-stack entry is."""
    topo = parse_topology(TOPO, "t")
    with pytest.raises(CloudConflictError) as err:
        make_plan(topo, _state(**_found(ra=None)))
    assert "subnet v6: ipv6_ra_mode/ipv6_address_mode are none/slaac" in str(err.value)
    ips = (("s4", "192.168.0.10"), ("s6", "2001:db8:1:0:f816:3eff:fe00:1"))
    plan = make_plan(topo, _state(**_found(ips=ips)))
    port = next(a for a in (*plan.actions, *plan.kept) if a.kind == "port")
    assert port.changes == ("security_groups: none -> ssh",)
    dual = parse_topology(
        TOPO.replace("fixed_ip: 192.168.0.10,", "fixed_ips: [192.168.0.10, {subnet: v6}],"), "t"
    )
    plan = make_plan(dual, _state(**_found(ips=ips[:1])))
    update = next(a for a in plan.actions if a.kind == "port")
    assert update.changes == ("subnet: v4 -> v6", "security_groups: none -> ssh")


def test_ipv6_warnings() -> None:
    """A routed IPv6 address behind groups without IPv6 ingress is named (no floating IPs:
    the address itself must be admitted), and so is an ipv6_ra_mode subnet no router
    advertises; with the fixes there are no warnings."""
    text = TOPO.replace("subnets: [v4, v6]", "subnets: [v4]")
    plan = make_plan(
        parse_topology(text.replace("subnets: [v4]", "subnets: [v4, v6]"), "t"), _state()
    )
    assert any(
        "port p0: its IPv6 address on v6 is routed and reached directly (IPv6 has no floating IPs)"
        in w
        and "ethertype: [IPv4, IPv6]" in w
        for w in plan.warnings
    ), plan.warnings
    plan = make_plan(parse_topology(text, "t"), _state())
    assert any("subnet v6: ipv6_ra_mode slaac, but no router" in w for w in plan.warnings)
    fixed = TOPO.replace(
        "{protocol: tcp, port: 22}", "{protocol: tcp, port: 22, ethertype: [IPv4, IPv6]}"
    )
    assert make_plan(parse_topology(fixed, "t"), _state()).warnings == ()


def test_nd_rules_a_wider_rule_covers_are_left_out() -> None:
    """A declared rule that admits all ICMPv6 from ::/0 already admits ND and RA: no rule is
    added for them; one from a narrower prefix does not, and they are added."""
    wide = TOPO.replace(
        "{protocol: tcp, port: 22}", "{protocol: icmp, ethertype: IPv6, remote: '::/0'}"
    )
    assert parse_topology(wide, "t").security_groups[0].nd_rules == ()
    narrow = wide.replace("remote: '::/0'", "remote: '2001:db8::/32'")
    assert len(parse_topology(narrow, "t").security_groups[0].nd_rules) == 3


def test_dual_stack_example_and_user_data() -> None:
    """examples/dual-stack.yaml plans without a warning (IPv6 admitted, the IPv6 subnet on
    the router), floating IPs map to the IPv4 addresses, and its user-data says plainly
    that IPv6 has no floating IPs and what to do instead; an IPv4-only topology's does not."""
    from cloud_support import REPO

    from multihome.cloud.topology import load_topology
    from multihome.cloud.userdata import render

    topo = load_topology(REPO / "examples" / "dual-stack.yaml")
    plan = make_plan(topo, _state())
    assert plan.warnings == ()
    assert [str(p.floating_fixed_ip) for p in topo.ports] == ["192.168.0.107", "192.168.0.112"]
    text = render(topo, topo.servers[0])
    assert "# IPv6 (ds-private-v6): Neutron has no floating IPs for IPv6." in text
    assert "reached directly" in text and "ethertype IPv6" in text
    v4 = load_topology(REPO / "examples" / "scenario4-two-ports-two-floating-ips.yaml")
    assert "IPv6" not in render(v4, v4.servers[0])


def test_floating_ip_subnet_is_the_ipv4_one(capsys: pytest.CaptureFixture[str]) -> None:
    """A dual-stack port listing its IPv6 subnet first: the floating IP's router check is
    about its IPv4 subnet; attach-port refuses an IPv6 --fixed-ip with --floating-ip (exit 2,
    before any cloud is contacted)."""
    from cloud_support import run_cli

    text = TOPO.replace(
        "fixed_ip: 192.168.0.10,", "fixed_ips: [{subnet: v6}, 192.168.0.10], floating_ip: public,"
    ).replace("subnets: [v4, v6]", "subnets: [v6]")
    plan = make_plan(parse_topology(text, "t"), _state())
    assert any("subnet v4 has no router interface towards it" in w for w in plan.warnings)
    code, _out, err = run_cli(
        [
            "cloud",
            "attach-port",
            "vm",
            "--network",
            "net",
            "--fixed-ip",
            "2001:db8::5",
            "--floating-ip",
            "public",
            "--os-cloud",
            "does-not-exist",
        ],
        capsys,
    )
    assert code == 2, err
    assert "floating IPs are IPv4 only" in err and "drop --floating-ip" in err


def test_attach_port_fixed_ip_values_refused_without_a_cloud(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """attach-port's --fixed-ip values that are bad by themselves: exit 2 naming the value
    and the fix, before any cloud is contacted (the cloud entry does not exist)."""
    from cloud_support import run_cli

    cases = {
        ("--fixed-ip", "192.168.0.300"): "--fixed-ip 192.168.0.300: not an IPv4 or IPv6 address",
        ("--fixed-ip", "=2001:db8::5"): "the subnet is empty; write SUBNET=ADDRESS",
        ("--fixed-ip", "2001:db8::5", "--fixed-ip", "2001:db8:1::5"): (
            "--fixed-ip 2001:db8::5 and --fixed-ip 2001:db8:1::5: two IPv6 addresses; give "
            "--fixed-ip once per family, or name each one's subnet: --fixed-ip SUBNET=ADDRESS"
        ),
        ("--fixed-ip", "10.0.0.5", "--fixed-ip", "v4=10.0.0.5"): "10.0.0.5 is given twice",
    }
    for args, message in cases.items():
        code, _out, err = run_cli(
            ["cloud", "attach-port", "vm", "--network", "net", *args, "--os-cloud", "nowhere"],
            capsys,
        )
        assert code == 2 and message in err and "Traceback" not in err, (args, err)
