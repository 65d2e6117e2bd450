"""The exported template as a stack on a real Heat (heat-api, heat-engine) on the real Nova
and Neutron: created, checked with the `cloud apply` tests' assertions, updated after a
topology change, deleted back to the state before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cloud_support import (
    Heat,
    check_found,
    check_network_side,
    check_server,
    run_cli,
    tagged,
)

from multihome.cloud.heat import heat_tag
from multihome.cloud.topology import Topology, load_topology

pytestmark = pytest.mark.xdist_group("nova")  # the worker that runs Nova runs these

TOPOLOGY = """\
name: heatstack
networks:
  - name: hs-front
    subnets:
      - {name: hs-front-v4, cidr: 192.168.50.0/24}
  - name: hs-back
    port_security: false
    subnets:
      - {name: hs-back-v4, cidr: 10.50.0.0/24, gateway: none, dhcp: false}
security_groups:
  - name: hs-ssh
    rules:
      - {protocol: tcp, port: 22}
      - {protocol: icmp}
      - {protocol: any, remote_group: hs-ssh}
routers:
  - {name: hs-router, external_network: public, subnets: [hs-front-v4]}
servers:
  - name: hs-vm
    image: ubuntu-24.04
    flavor: m1.tiny
    key_name: mykey
    config_drive: true
    user_data: multihome
    ports:
      - name: hs-vm-eth0
        network: hs-front
        fixed_ip: 192.168.50.10
        security_groups: [hs-ssh]
        floating_ip: public
        allowed_address_pairs: [192.168.50.11]
      - {name: hs-vm-eth1, network: hs-front, fixed_ip: 192.168.50.11,
         security_groups: [hs-ssh], floating_ip: public}
      - {name: hs-vm-eth2, network: hs-back, fixed_ip: 10.50.0.10}
ports:
  - {name: hs-spare, network: hs-front, fixed_ip: 192.168.50.99, port_security: false}
"""

#: The change: DNS servers on a subnet, one more rule, one more address pair, a fourth port.
CHANGES = [
    (
        "{name: hs-front-v4, cidr: 192.168.50.0/24}",
        "{name: hs-front-v4, cidr: 192.168.50.0/24, dns_nameservers: [192.0.2.53]}",
    ),
    (
        "      - {protocol: icmp}\n",
        "      - {protocol: icmp}\n      - {protocol: tcp, port: 443}\n",
    ),
    ("pairs: [192.168.50.11]", "pairs: [192.168.50.11, 192.168.50.12]"),
    (
        "      - {name: hs-vm-eth2, network: hs-back, fixed_ip: 10.50.0.10}\n",
        "      - {name: hs-vm-eth2, network: hs-back, fixed_ip: 10.50.0.10}\n"
        "      - {name: hs-vm-eth3, network: hs-back, fixed_ip: 10.50.0.11}\n",
    ),
]

#: Heat resource type -> the kind of :func:`cloud_support.tagged`.
KINDS = {
    "OS::Neutron::Net": "networks",
    "OS::Neutron::Subnet": "subnets",
    "OS::Neutron::SecurityGroup": "security_groups",
    "OS::Neutron::Router": "routers",
    "OS::Neutron::Port": "ports",
    "OS::Neutron::FloatingIP": "floating_ips",
    "OS::Nova::Server": "servers",
}


def _in_stack(heat: Heat, conn: Any, name: str, stack_id: str) -> dict[str, list[str]]:
    """The stack's resources, by kind, named as the cloud names them (floating IPs: by
    description), as :func:`cloud_support.tagged` lists what carries a tag."""
    net = conn.network
    get = {
        "networks": net.get_network,
        "subnets": net.get_subnet,
        "security_groups": net.get_security_group,
        "routers": net.get_router,
        "ports": net.get_port,
        "floating_ips": net.get_ip,
        "servers": conn.compute.get_server,
    }
    found: dict[str, list[str]] = {kind: [] for kind in get}
    for res in heat.resources(name, stack_id):
        assert res["resource_status"].endswith("_COMPLETE"), res
        kind = KINDS.get(res["resource_type"])
        if kind is None:
            continue
        obj = get[kind](res["physical_resource_id"])
        found[kind].append(obj.description if kind == "floating_ips" else obj.name)
    return {kind: sorted(names) for kind, names in found.items()}


def _inventory(conn: Any) -> dict[str, set[str]]:
    """The ids of everything in the cloud (the base state to come back to)."""
    net = conn.network
    return {
        "networks": {n.id for n in net.networks()},
        "subnets": {s.id for s in net.subnets()},
        "security_groups": {g.id for g in net.security_groups()},
        "rules": {r.id for r in net.security_group_rules()},
        "routers": {r.id for r in net.routers()},
        "ports": {p.id for p in net.ports()},
        "floating_ips": {f.id for f in net.ips()},
        "servers": {s.id for s in conn.compute.servers()},
    }


def _export(topo_file: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    target = topo_file.with_suffix(".heat.yaml")
    code, _out, err = run_cli(
        ["cloud", "export", "--format", "heat", "-f", str(topo_file), "-o", str(target)], capsys
    )
    assert code == 0, err
    return target


def _check(heat: Heat, conn: Any, topo: Topology, stack_id: str) -> dict[str, Any]:
    """The `cloud apply` tests' assertions on the stack's resources; the servers by id."""
    tag = heat_tag(topo)
    in_stack = _in_stack(heat, conn, topo.name, stack_id)
    check_found(in_stack, topo)
    check_network_side(conn, topo, tag, groups_tagged=False)
    servers = {spec.name: check_server(conn, topo, spec, tag=tag) for spec in topo.servers}
    # what Heat can tag carries the stack's tag; nothing carries multihome's own
    found = tagged(conn, tag)
    for kind in ("networks", "subnets", "routers", "ports", "servers"):
        assert found[kind] == in_stack[kind]
    assert all(not names for names in tagged(conn, topo.tag).values())
    return servers


def test_heat_creates_updates_and_deletes_the_topology(
    heat: Heat, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The exported template creates a stack on the real Heat whose resources pass the
    `cloud apply` tests' assertions (names, subnets with and without gateway and DHCP,
    rules, router and interface, ports with fixed IPs and address pairs, a loose port with
    port security off, floating IPs, the server ACTIVE on its ports in order with config
    drive, key and multihome's user-data);
    after a topology change the re-exported template updates the stack in place (same
    server, one more port); deleting the stack restores the cloud as it was."""
    conn = heat.connect()
    before = _inventory(conn)
    topo_file = tmp_path / "topology.yaml"
    topo_file.write_text(TOPOLOGY)
    topo = load_topology(topo_file)
    stack_id = heat.create(topo.name, _export(topo_file, capsys))
    try:
        servers = _check(heat, conn, topo, stack_id)

        changed = TOPOLOGY
        for old, new in CHANGES:
            assert old in changed
            changed = changed.replace(old, new)
        topo_file.write_text(changed)
        topo2 = load_topology(topo_file)
        heat.update(topo2.name, _export(topo_file, capsys))
        servers2 = _check(heat, conn, topo2, stack_id)
        assert servers2["hs-vm"].id == servers["hs-vm"].id  # updated, not replaced
        assert len(servers2["hs-vm"].addresses["hs-back"]) == 2
    finally:
        heat.delete(topo.name)
    assert _inventory(conn) == before
