"""``cloud attach-port`` against the real Neutron and Nova, on a dual-stack network: Nova's
own interface attach, the port's fixed IPs per family and subnet (Neutron's default,
``--fixed-ip`` once per family, ``SUBNET=ADDRESS``), the floating IP on the IPv4 address
only, the output about IPv6, and bad addresses refused before anything is created (as
Neutron itself would refuse them). (A floating IP without a router: test_cloud_refusals.)"""

from __future__ import annotations

import ipaddress
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cloud_support import COMPUTE_HOST, EXTERNAL, Nova, eui64, run_cli

TOPOLOGY = """\
name: {name}
networks:
  - name: {p}-net
    subnets:
      - {{name: {p}-v4, cidr: 192.168.61.0/24}}
      - {{name: {p}-slaac, cidr: '2001:db8:61:1::/64', ipv6_ra_mode: slaac,
          ipv6_address_mode: slaac}}
      - {{name: {p}-stateful, cidr: '2001:db8:61:2::/64', ipv6_ra_mode: dhcpv6-stateful,
          ipv6_address_mode: dhcpv6-stateful}}
security_groups:
  - name: {p}-ssh
    rules:
      - {{protocol: tcp, port: 22, ethertype: [IPv4, IPv6]}}
routers:
  - {{name: {p}-router, external_network: {ext}, subnets: [{p}-v4, {p}-slaac, {p}-stateful]}}
servers:
  - name: {p}-vm
    image: ubuntu-24.04
    flavor: m1.tiny
    config_drive: true
    ports:
      - {{name: {p}-vm-eth0, network: {p}-net, fixed_ip: 192.168.61.10,
          security_groups: [{p}-ssh]}}
guest:
  install: none
"""


@dataclass
class Attached:
    """The running server of the topology, and how to attach ports to it."""

    conn: Any
    server: Any
    p: str
    """The resource-name prefix."""
    adhoc: str
    """The tag name the attached ports carry."""
    capsys: pytest.CaptureFixture[str]

    def attach(self, *args: str) -> tuple[int, str, str]:
        base = ["cloud", "attach-port", f"{self.p}-vm", "--network", f"{self.p}-net"]
        return run_cli([*base, "--tag-as", self.adhoc, *args], self.capsys)

    def ports(self) -> list[Any]:
        return list(self.conn.network.ports(device_id=self.server.id))


@pytest.fixture
def running(
    nova_env: Nova, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[Attached]:
    """The dual-stack topology applied (its server ACTIVE); destroyed afterwards, with what
    attach-port added."""
    suffix = uuid.uuid4().hex[:6]
    name, p = f"att6-{suffix}", f"att6{suffix}"
    topo = tmp_path / "t.yaml"
    topo.write_text(TOPOLOGY.format(name=name, p=p, ext=EXTERNAL))
    code, _out, err = run_cli(["cloud", "apply", "-f", str(topo)], capsys)
    assert code == 0, err
    conn = nova_env.connect()
    server = next(conn.compute.servers(name=f"{p}-vm"))
    try:
        yield Attached(conn, server, p, f"{name}-adhoc", capsys)
    finally:
        assert run_cli(["cloud", "destroy", "--name", f"{name}-adhoc"], capsys)[0] == 0
        assert run_cli(["cloud", "destroy", "-f", str(topo)], capsys)[0] == 0


def refusals(vm: Attached) -> None:
    """Each bad input: exit 2, the value and the fix named, no port created."""
    p = vm.p
    refused = {
        (f"--fixed-ip={p}-slaac=2001:db8:61:1::10",): (
            f"--fixed-ip {p}-slaac=2001:db8:61:1::10: subnet {p}-slaac is slaac",
            "leave this --fixed-ip out",
        ),
        ("--fixed-ip=2001:db8:99::10",): (
            f"--fixed-ip 2001:db8:99::10: not in any IPv6 subnet of network {p}-net",
            "give an address inside one",
        ),
        (f"--fixed-ip={p}-v4=2001:db8:61:2::10",): (
            f"subnet {p}-v4 is IPv4 (192.168.61.0/24) and 2001:db8:61:2::10 is IPv6",
            "pair the address with a subnet of its family",
        ),
        (f"--subnet={p}-stateful", f"--floating-ip={EXTERNAL}"): (
            f"--floating-ip {EXTERNAL}: the port would have no IPv4 address",
            "drop --floating-ip",
        ),
    }
    for args, (what, fix) in refused.items():
        code, out, err = vm.attach(*args)
        assert code == 2, (args, out, err)
        assert what in err and fix in err and "Traceback" not in err, (args, err)
    assert len(vm.ports()) == 1
    assert not list(vm.conn.network.ports(tags=f"multihome:{vm.adhoc}"))
    slaac = next(vm.conn.network.subnets(name=f"{p}-slaac"))
    with pytest.raises(Exception, match="automatic addresses"):  # Neutron's own refusal
        vm.conn.network.create_port(
            network_id=slaac.network_id,
            fixed_ips=[{"subnet_id": slaac.id, "ip_address": "2001:db8:61:1::10"}],
        )


def plugged_by_nova(nova_env: Nova, vm: Attached, port: Any) -> None:
    """Nova's own interface-attach did it: the port is bound, among the server's
    interfaces and in its network info (what the guest sees as its next NIC)."""
    assert port.device_id == vm.server.id and port.status == "ACTIVE"
    assert port.binding_host_id == COMPUTE_HOST
    assert f"POST /v2.1/servers/{vm.server.id}/os-interface" in nova_env.stats()["requests"]
    assert port.id in {i.port_id for i in vm.conn.compute.server_interfaces(vm.server)}
    macs = {
        a["OS-EXT-IPS-MAC:mac_addr"]
        for addrs in vm.conn.compute.get_server(vm.server.id).addresses.values()
        for a in addrs
        if a["OS-EXT-IPS:type"] == "fixed"
    }
    assert port.mac_address in macs and len(macs) == 2


@pytest.mark.xdist_group("nova")
def test_attach_port_to_a_running_dual_stack_server(nova_env: Nova, running: Attached) -> None:
    """Bad addresses are refused with exit 2 naming the value and the fix, and nothing is
    created (a chosen address on a SLAAC subnet, which Neutron refuses too; one outside every
    IPv6 subnet; one paired with a subnet of the other family; a floating IP for a port that
    would have IPv6 only). Nova's interface attach plugs the port (bound in Neutron, among
    the server's interfaces and addresses). Without --fixed-ip the port gets an address on
    the IPv4 subnet, its EUI-64 address on the SLAAC subnet and one on the DHCPv6 subnet;
    the floating IP maps to the IPv4 address; --json lists each address with its family,
    subnet and mode, the floating IP on the IPv4 one only, and says IPv6 has none. With
    --fixed-ip once per family (plain, and SUBNET=ADDRESS) the port has exactly those and
    its SLAAC address; the text output says what to run in the guest, also about IPv6."""
    vm, p = running, running.p
    refusals(vm)

    nova_env.reset_stats()
    code, out, err = vm.attach("--floating-ip", EXTERNAL, "--security-group", f"{p}-ssh", "--json")
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    assert doc["port"] == f"{p}-vm-port2"
    port = vm.conn.network.get_port(next(vm.conn.network.ports(name=doc["port"])).id)
    plugged_by_nova(nova_env, vm, port)
    by_subnet = {a["subnet"]: a for a in doc["addresses"]}
    assert sorted(by_subnet) == sorted([f"{p}-v4", f"{p}-slaac", f"{p}-stateful"])
    assert all(
        a["family"] == ipaddress.ip_address(a["address"]).version for a in by_subnet.values()
    )
    assert by_subnet[f"{p}-slaac"]["address"] == eui64("2001:db8:61:1::", port.mac_address)
    assert by_subnet[f"{p}-slaac"]["ipv6_address_mode"] == "slaac"
    assert by_subnet[f"{p}-stateful"]["family"] == 6
    v4 = by_subnet[f"{p}-v4"]
    assert v4["family"] == 4 and v4["ipv6_address_mode"] is None
    fip = next(vm.conn.network.ips(port_id=port.id))
    assert fip.fixed_ip_address == v4["address"]
    assert doc["floating_ip"] == v4["floating_ip"] == fip.floating_ip_address
    assert [a["floating_ip"] for a in doc["addresses"] if a["family"] == 6] == [None, None]
    assert sorted(doc["fixed_ips"]) == sorted(f["ip_address"] for f in port.fixed_ips)
    (note,) = doc["notes"]
    assert note.startswith("IPv6 has no floating IPs in Neutron: ")
    assert by_subnet[f"{p}-slaac"]["address"] in note and "reached directly" in note

    code, out, err = vm.attach(
        "--fixed-ip", "2001:db8:61:2::50", "--fixed-ip", f"{p}-v4=192.168.61.50"
    )
    assert code == 0, err
    second = next(vm.conn.network.ports(name=f"{p}-vm-port3"))
    assert sorted(f["ip_address"] for f in second.fixed_ips) == sorted(
        ["192.168.61.50", "2001:db8:61:2::50", eui64("2001:db8:61:1::", second.mac_address)]
    )
    assert "192.168.61.50" in out and "2001:db8:61:2::50" in out
    assert "IPv6 has no floating IPs in Neutron" in out
    assert "DHCPv6" in out and "router advertisements (SLAAC)" in out
    assert "sudo multihome apply" in out
    assert len(vm.ports()) == 3
