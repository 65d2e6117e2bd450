"""The guest's view of IPv6, end to end: a dual-stack server booted by the real Nova on ports
multihome created in the real Neutron; Nova's own code (``nova.virt.netutils``, what the
config drive and the metadata service serve) turns the server's network info cache into
``network_data.json``, and multihome parses it into the ports' IPv6 facts."""

from __future__ import annotations

import ipaddress
import json
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from cloud_support import HERE, NOVA_LOCK, Nova, build_venv, eui64, run_cli

from multihome.model import HostState, Link
from multihome.source import parse_network_data
from multihome.source.portfacts import gather

pytestmark = pytest.mark.xdist_group("nova")  # one worker starts Nova and runs these

#: The fixture the parser's unit tests use: exactly what this test gets from Nova, with ids,
#: MACs and the SLAAC addresses made from them replaced by stable ones.
FIXTURE = HERE.parent / "agent" / "network_data" / "nova-dual-stack.json"

TOPOLOGY = """\
name: {name}
networks:
  - name: {p}-a
    subnets:
      - {{name: {p}-a4, cidr: 192.168.70.0/24}}
      - {{name: {p}-a6, cidr: '2001:db8:70:1::/64', ipv6_ra_mode: slaac,
          ipv6_address_mode: slaac}}
  - name: {p}-b
    subnets:
      - {{name: {p}-b6, cidr: '2001:db8:70:2::/64', ipv6_ra_mode: dhcpv6-stateless,
          ipv6_address_mode: dhcpv6-stateless, dns_nameservers: ['2001:db8:70:2::53']}}
  - name: {p}-c
    subnets:
      - {{name: {p}-c4, cidr: 192.168.71.0/24, dhcp: false}}
      - {{name: {p}-c6, cidr: '2001:db8:70:3::/64', ipv6_ra_mode: dhcpv6-stateful,
          ipv6_address_mode: dhcpv6-stateful}}
  - name: {p}-d
    subnets:
      - {{name: {p}-d6, cidr: '2001:db8:70:4::/64', dhcp: false}}
servers:
  - name: {p}-vm
    image: ubuntu-24.04
    flavor: m1.tiny
    config_drive: true
    ports:
      - {{name: {p}-eth0, network: {p}-a}}
      - {{name: {p}-eth1, network: {p}-b}}
      - {{name: {p}-eth2, network: {p}-c, fixed_ips: [192.168.71.20, '2001:db8:70:3::20']}}
      - {{name: {p}-eth3, network: {p}-d, fixed_ip: '2001:db8:70:4::30'}}
"""

#: ``network_data.json`` as Nova writes it, from the network info cache in Nova's database.
NOVA_NETWORK_DATA = """\
import json, sys
from nova.network import model
from nova.virt import netutils
info = model.NetworkInfo.hydrate(json.loads(sys.stdin.read()))
print(json.dumps(netutils.get_network_metadata(info), indent=2, sort_keys=True))
"""


def _info_cache(nova: Nova, server_id: str, ports: int) -> str:
    """The server's network info cache once it lists ``ports`` VIFs."""
    deadline = time.monotonic() + 60
    while True:
        con = sqlite3.connect(f"file:{nova.state / 'nova_cell1.sqlite'}?mode=ro", uri=True)
        try:
            row = con.execute(
                "SELECT network_info FROM instance_info_caches WHERE instance_uuid = ?",
                (server_id,),
            ).fetchone()
        finally:
            con.close()
        if row and row[0] and len(json.loads(row[0])) == ports:
            return str(row[0])
        assert time.monotonic() < deadline, f"no info cache with {ports} VIFs: {row}"
        time.sleep(0.5)


def _stable(doc: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """``doc`` with uuids and tap names replaced by stable names (for the fixture)."""
    text = json.dumps(doc, indent=2, sort_keys=True)
    for old, new in names.items():
        text = text.replace(old, new)
    result: dict[str, Any] = json.loads(text)
    return result


def test_nova_network_data_gives_ipv6_facts(
    nova_env: Nova, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nova writes ``ipv4_dhcp``+``ipv6_slaac``, ``ipv6_dhcpv6-stateless``, static ``ipv4``
    +``ipv6_dhcpv6-stateful`` and static ``ipv6`` networks, each IPv6 one with its address and
    default route; multihome parses every one and declares each port's IPv6 address (the
    fixed IP Neutron gave the port) and its default via the subnet's gateway, and the
    committed fixture has the same shape (types and keys) as what Nova writes today."""
    suffix = uuid.uuid4().hex[:6]
    p = f"md{suffix}"
    path = tmp_path / "t.yaml"
    path.write_text(TOPOLOGY.format(name=f"md-{suffix}", p=p))
    code, _out, err = run_cli(["cloud", "apply", "-f", str(path)], capsys)
    assert code == 0, err
    conn = nova_env.connect()
    tag = f"multihome:md-{suffix}"
    (server,) = conn.compute.servers(tags=tag)
    ports = [next(conn.network.ports(name=f"{p}-eth{i}", tags=tag)) for i in range(4)]
    venv = build_venv(NOVA_LOCK, "nova-venv")
    done = subprocess.run(
        [str(venv / "bin/python"), "-c", NOVA_NETWORK_DATA],
        input=_info_cache(nova_env, server.id, 4),
        capture_output=True,
        text=True,
        check=True,
    )
    raw = done.stdout
    data = parse_network_data(raw.encode(), "network_data.json")

    types = {link.mac: sorted(n.type for n in data.networks_of(link.id)) for link in data.links}
    assert types == {
        ports[0].mac_address: ["ipv4_dhcp", "ipv6_slaac"],
        ports[1].mac_address: ["ipv6_dhcpv6-stateless"],
        ports[2].mac_address: ["ipv4", "ipv6_dhcpv6-stateful"],
        ports[3].mac_address: ["ipv6"],
    }
    links = [Link(f"eth{i}", i + 2, port.mac_address, up=True) for i, port in enumerate(ports)]
    facts = gather(HostState.build(links, [], [], [], []), None, data, "config drive")
    for i, port in enumerate(ports):
        declared = facts.declared6[f"eth{i}"]
        (address,) = [f["ip_address"] for f in port.fixed_ips if ":" in f["ip_address"]]
        assert str(declared.address) == address
        subnet = ipaddress.ip_network(f"{address}/64", strict=False)
        assert declared.gateway == subnet.network_address + 1  # the subnet's gateway
    assert str(facts.declared["eth2"].address) == "192.168.71.20"  # the static IPv4 one
    assert "eth0" not in facts.declared  # DHCP: its lease declares it, not the metadata

    names = {port.id: f"port-eth{i}" for i, port in enumerate(ports)}
    for net in conn.network.networks(tags=tag):
        names[net.id] = f"network-{net.name.removeprefix(p + '-')}"
    for i, port in enumerate(ports):
        mac = f"fa:16:3e:00:70:0{i}"
        names[port.mac_address] = mac
        names[f"tap{port.id[:11]}"] = f"tap-eth{i}"
        for prefix in ("2001:db8:70:1::/64", "2001:db8:70:2::/64"):  # the SLAAC addresses
            names[eui64(prefix, port.mac_address)] = eui64(prefix, mac)
    assert _stable(json.loads(raw), names) == json.loads(FIXTURE.read_text())
    assert run_cli(["cloud", "destroy", "-f", str(path)], capsys)[0] == 0
