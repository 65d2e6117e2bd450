"""IPv6 on the cloud side against the real Neutron: dual-stack subnets and ports, rules per
ethertype with the ND/RA ICMPv6 rules, router interfaces on IPv6 subnets, and the refusals
the topology file makes itself checked against the ones Neutron makes."""

from __future__ import annotations

import itertools
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from cloud_support import EXTERNAL, Neutron, eui64, run_cli

from multihome.cloud.apply import translate
from multihome.cloud.plan import Action
from multihome.cloud.topology import IPV6_MODES, parse_topology
from multihome.errors import InputError

DUAL = """\
name: {name}
networks:
  - name: {p}-net
    subnets:
      - {{name: {p}-v4, cidr: 192.168.60.0/24}}
      - {{name: {p}-slaac, cidr: '2001:db8:60:1::/64', ipv6_ra_mode: slaac,
          ipv6_address_mode: slaac}}
      - {{name: {p}-stateful, cidr: '2001:db8:60:2::/64', ipv6_ra_mode: dhcpv6-stateful,
          ipv6_address_mode: dhcpv6-stateful}}
security_groups:
  - name: {p}-ssh
    rules:
      - {{protocol: tcp, port: 22, ethertype: [IPv4, IPv6]}}
      - {{direction: egress, protocol: tcp, port: 443, ethertype: [IPv4, IPv6]}}
routers:
  - {{name: {p}-router, external_network: {ext}, subnets: [{p}-v4, {p}-slaac, {p}-stateful]}}
ports:
  - name: {p}-dual
    network: {p}-net
    fixed_ips: [192.168.60.10, {{subnet: {p}-slaac}}, '2001:db8:60:2::10']
    security_groups: [{p}-ssh]
    allowed_address_pairs: ['2001:db8:60:2::99']
    floating_ip: {ext}
  - name: {p}-only6
    network: {p}-net
    fixed_ips: [{{subnet: {p}-slaac}}]
    security_groups: [{p}-ssh]
"""


@pytest.fixture
def dual(tmp_path: Path) -> tuple[Path, str, str]:
    """A dual-stack topology file with fresh names: (path, name, prefix)."""
    suffix = uuid.uuid4().hex[:6]
    name, prefix = f"v6-{suffix}", f"v6{suffix}"
    path = tmp_path / "dual.yaml"
    path.write_text(DUAL.format(name=name, p=prefix, ext=EXTERNAL))
    return path, name, prefix


def test_dual_stack_applies_then_noop_then_destroys(
    cloud_env: Neutron, dual: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Apply creates IPv6 subnets with their modes, router interfaces on them, rules per
    ethertype plus the ND/RA ICMPv6 rules, a dual-stack port (its IPv4 address, its EUI-64
    SLAAC address, its DHCPv6 fixed address, an IPv6 address pair) whose floating IP maps to
    the IPv4 address, and an IPv6-only port; plan names the implied ND rules; a second apply
    only reads; destroy removes it all."""
    path, name, p = dual
    conn = cloud_env.connect()
    code, out, err = run_cli(["cloud", "plan", "-f", str(path), "--json"], capsys)
    assert code == 0, err
    planned = json.loads(out)
    nd = [c for c in planned["changes"] if c["kind"] == "rule" and "type 13" in c["target"]]
    assert sorted(c["target"] for c in nd) == [
        "egress IPv6 ipv6-icmp type 133 to ::/0",
        "egress IPv6 ipv6-icmp type 135 to ::/0",
        "egress IPv6 ipv6-icmp type 136 to ::/0",
        "ingress IPv6 ipv6-icmp type 134 from fe80::/10",
        "ingress IPv6 ipv6-icmp type 135 from ::/0",
        "ingress IPv6 ipv6-icmp type 136 from ::/0",
    ]
    assert all("added for IPv6" in c["changes"][0] for c in nd)
    assert planned["warnings"] == []

    code, out, err = run_cli(["cloud", "apply", "-f", str(path), "--json"], capsys)
    assert code == 0, err
    tag = f"multihome:{name}"
    subnets = {s.name: s for s in conn.network.subnets(tags=tag)}
    assert {n: (s.ip_version, s.ipv6_ra_mode, s.ipv6_address_mode) for n, s in subnets.items()} == {
        f"{p}-v4": (4, None, None),
        f"{p}-slaac": (6, "slaac", "slaac"),
        f"{p}-stateful": (6, "dhcpv6-stateful", "dhcpv6-stateful"),
    }
    (router,) = conn.network.routers(tags=tag)
    interfaces = {
        f["subnet_id"]
        for port in conn.network.ports(device_id=router.id, device_owner="network:router_interface")
        for f in port.fixed_ips
    }
    assert interfaces == {s.id for s in subnets.values()}
    (group,) = conn.network.security_groups(tags=tag)
    rules = {
        (r["direction"], r["ethertype"], r["protocol"], r["port_range_min"])
        for r in group.security_group_rules
    }
    assert {
        ("ingress", "IPv4", "tcp", 22),
        ("ingress", "IPv6", "tcp", 22),
        ("egress", "IPv6", "tcp", 443),
        ("ingress", "IPv6", "ipv6-icmp", 134),
        ("egress", "IPv6", "ipv6-icmp", 133),
    } <= rules
    assert ("egress", "IPv6", None, None) not in rules  # the group manages egress

    ports = {port.name: port for port in conn.network.ports(tags=tag)}
    dual_port, only6 = ports[f"{p}-dual"], ports[f"{p}-only6"]
    by_subnet = {subnets_id: ip for subnets_id, ip in _fixed(dual_port)}
    assert by_subnet == {
        subnets[f"{p}-v4"].id: "192.168.60.10",
        subnets[f"{p}-slaac"].id: eui64("2001:db8:60:1::/64", dual_port.mac_address),
        subnets[f"{p}-stateful"].id: "2001:db8:60:2::10",
    }
    assert _fixed(only6) == [
        (subnets[f"{p}-slaac"].id, eui64("2001:db8:60:1::/64", only6.mac_address))
    ]
    assert [a["ip_address"] for a in dual_port.allowed_address_pairs] == ["2001:db8:60:2::99"]
    (fip,) = conn.network.ips(tags=tag)
    assert fip.port_id == dual_port.id and fip.fixed_ip_address == "192.168.60.10"
    result = json.loads(out)
    row = next(r for r in result["ports"] if r["port"] == f"{p}-dual")
    assert row["floating_ip"] == fip.floating_ip_address and len(row["fixed_ips"]) == 3

    cloud_env.reset_stats()
    code, out, err = run_cli(["cloud", "apply", "-f", str(path), "--detailed-exit-codes"], capsys)
    assert code == 0, err
    assert "no changes" in out
    requests = cloud_env.stats()["requests"]
    assert requests and all(r.startswith("GET ") for r in requests), requests
    code, out, err = run_cli(["cloud", "plan", "-f", str(path)], capsys)
    assert code == 0, err
    assert (
        f"= keep rule {p}-ssh ingress IPv6 ipv6-icmp type 134 from fe80::/10 (added for IPv6: "
        "router advertisement (neighbour discovery); 'ipv6_nd: false' on the group leaves it "
        "out)" in out
    )

    code, out, err = run_cli(["cloud", "destroy", "-f", str(path)], capsys)
    assert code == 0, err
    assert not list(conn.network.ports(tags=tag))
    assert not list(conn.network.subnets(tags=tag))


def _fixed(port: Any) -> list[tuple[str, str]]:
    return sorted((f["subnet_id"], f["ip_address"]) for f in port.fixed_ips)


def _topology_accepts(ra: str | None, address: str | None, on_router: bool) -> str | None:
    """None when the topology file accepts an IPv6 /64 subnet with these modes (and, with
    ``on_router``, on a router), else the key its error names."""
    modes = "".join(
        f", {key}: {value}"
        for key, value in (("ipv6_ra_mode", ra), ("ipv6_address_mode", address))
        if value
    )
    router = "routers:\n  - {name: r, subnets: [s6]}\n" if on_router else ""
    text = (
        "name: modes\nnetworks:\n  - name: n\n    subnets:\n"
        f"      - {{name: s6, cidr: '2001:db8:61::/64'{modes}}}\n{router}"
    )
    try:
        parse_topology(text, "t.yaml")
    except InputError as exc:
        return exc.path
    return None


def test_ipv6_mode_refusals_match_neutron(cloud_env: Neutron) -> None:
    """Every ipv6_ra_mode x ipv6_address_mode combination, sent to the real Neutron as a
    subnet and then as a router interface: the topology file refuses exactly what Neutron
    refuses (400), at load, with the key to fix."""
    from openstack.exceptions import BadRequestException

    conn = cloud_env.connect()
    net = conn.network.create_network(name=f"modes-{uuid.uuid4().hex[:6]}")
    router = conn.network.create_router(name=f"{net.name}-r")
    choices = (None, *IPV6_MODES)
    checked = 0  # no clean-up: unique names, and the session's Neutron is thrown away
    for i, (ra, address) in enumerate(itertools.product(choices, choices)):
        attrs: dict[str, Any] = {
            "network_id": net.id,
            "ip_version": 6,
            "cidr": f"2001:db8:61:{i:x}::/64",
        }
        if ra:
            attrs["ipv6_ra_mode"] = ra
        if address:
            attrs["ipv6_address_mode"] = address
        try:
            subnet = conn.network.create_subnet(**attrs)
        except BadRequestException as exc:
            assert exc.status_code == 400, exc
            assert _topology_accepts(ra, address, False) == (
                "networks[0].subnets[0].ipv6_address_mode"
            ), (ra, address)
            checked += 1
            continue
        assert _topology_accepts(ra, address, False) is None, (ra, address)
        try:
            conn.network.add_interface_to_router(router, subnet=subnet.id)
        except BadRequestException as exc:
            assert exc.status_code == 400, exc
            assert "external router" in str(exc)
            assert _topology_accepts(ra, address, True) == "routers[0].subnets[0]", (
                ra,
                address,
            )
        else:
            assert _topology_accepts(ra, address, True) is None, (ra, address)
            conn.network.remove_interface_from_router(router, subnet=subnet.id)
        checked += 1
    assert checked == len(choices) ** 2


def test_neutron_refuses_what_the_file_refuses(
    cloud_env: Neutron, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A fixed address on a SLAAC subnet, a SLAAC /80, IPv6 modes without DHCP and a floating
    IP for an IPv6-only port: the real Neutron refuses each (so the file must; the last one,
    met on a port made elsewhere, is translated into what to do instead), and the file's
    refusal exits 2 naming file:line:col, the key, the problem and the fix, before any cloud
    is contacted."""
    from openstack.exceptions import BadRequestException

    conn = cloud_env.connect()
    net = conn.network.create_network(name=f"refuse-{uuid.uuid4().hex[:6]}")
    slaac = conn.network.create_subnet(
        network_id=net.id,
        ip_version=6,
        cidr="2001:db8:62::/64",
        ipv6_ra_mode="slaac",
        ipv6_address_mode="slaac",
    )
    refusals = {
        "fixed address on SLAAC": lambda: conn.network.create_port(
            network_id=net.id,
            fixed_ips=[{"subnet_id": slaac.id, "ip_address": "2001:db8:62::10"}],
        ),
        "SLAAC /80": lambda: conn.network.create_subnet(
            network_id=net.id, ip_version=6, cidr="2001:db8:63::/80", ipv6_address_mode="slaac"
        ),
        "modes without DHCP": lambda: conn.network.create_subnet(
            network_id=net.id,
            ip_version=6,
            cidr="2001:db8:64::/64",
            ipv6_address_mode="dhcpv6-stateful",
            is_dhcp_enabled=False,
        ),
    }
    only6 = conn.network.create_port(network_id=net.id)
    refusals["floating IP for an IPv6-only port"] = lambda: conn.network.create_ip(
        floating_network_id=conn.network.find_network(EXTERNAL, ignore_missing=False).id,
        port_id=only6.id,
    )
    for what, call in refusals.items():
        with pytest.raises(BadRequestException, match=r".") as refused:
            call()
        assert refused.value.status_code == 400, (what, refused.value)
    # the refusal as apply or attach-port would meet it (a port made elsewhere): translated
    message = str(translate(refused.value, Action("create", "floating-ip", "p"), None, 0, 0))
    assert "floating IPs are IPv4 only and the port has no IPv4 address (400: " in message
    assert "reached directly through the router" in message

    base = (
        "name: bad\nnetworks:\n  - name: n\n    subnets:\n"
        "      - {name: s6, cidr: '2001:db8:62::/64', ipv6_ra_mode: slaac, "
        "ipv6_address_mode: slaac}\n"
        "ports:\n  - {name: p, network: n, fixed_ips: [{subnet: s6}]}\n"
    )
    cases = [
        (
            ("fixed_ips: [{subnet: s6}]", "fixed_ips: ['2001:db8:62::10']"),
            "ports[0].fixed_ips[0]",
            "without an address",
        ),
        (("2001:db8:62::/64'", "2001:db8:62::/80'"), "networks[0].subnets[0].cidr", "a /64"),
        (
            ("ipv6_address_mode: slaac}", "ipv6_address_mode: slaac, dhcp: false}"),
            "networks[0].subnets[0].dhcp",
            "remove 'dhcp: false'",
        ),
        (
            ("fixed_ips: [{subnet: s6}]}", "fixed_ips: [{subnet: s6}], floating_ip: public}"),
            "ports[0].floating_ip",
            "IPv4 only",
        ),
        (
            ("ipv6_ra_mode: slaac", "ipv6_ra_mode: dhcpv6-stateless"),
            "networks[0].subnets[0].ipv6_address_mode",
            "set both to dhcpv6-stateless",
        ),
        (
            ("cidr: '2001:db8:62::/64'", "cidr: 10.0.0.0/24"),
            "networks[0].subnets[0].ipv6_ra_mode",
            "for IPv6 subnets",
        ),
    ]
    for (old, new), key, fix in cases:
        text = base.replace(old, new)
        assert text != base, old
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        code, _out, err = run_cli(["cloud", "plan", "-f", str(bad)], capsys)
        assert code == 2, (key, err)
        line = err.strip().splitlines()[-1]
        assert line.startswith(f"error: {bad}:") or f"{bad}:" in line, err
        assert f": {key}: " in err and fix in err, err
        assert "Traceback" not in err
