"""The example topologies against a real Nova (fake compute driver) and a real Neutron."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from cloud_support import COMPUTE_HOST, REPO, Nova, run_cli

pytestmark = pytest.mark.xdist_group("nova")  # one worker starts Nova and runs these

EXAMPLES = sorted((REPO / "examples").glob("scenario*.yaml"))


def _tagged(conn: Any, tag: str) -> dict[str, list[str]]:
    net = conn.network
    return {
        "networks": sorted(n.name for n in net.networks(tags=tag)),
        "subnets": sorted(s.name for s in net.subnets(tags=tag)),
        "security_groups": sorted(g.name for g in net.security_groups(tags=tag)),
        "routers": sorted(r.name for r in net.routers(tags=tag)),
        "ports": sorted(p.name for p in net.ports(tags=tag)),
        "floating_ips": sorted(f.description for f in net.ips(tags=tag)),
        "servers": sorted(s.name for s in conn.compute.servers(tags=tag)),
    }


def _macs_in_boot_order(server: Any) -> list[str]:
    """The MACs of the server's interfaces in the order Nova plugs them (eth0, eth1, ...):
    Nova's network info cache, which ``addresses`` lists network by network, in order
    (floating IPs, once Nova has seen them, repeat the MAC of their port: left out)."""
    return [
        a["OS-EXT-IPS-MAC:mac_addr"]
        for addrs in server.addresses.values()
        for a in addrs
        if a["OS-EXT-IPS:type"] == "fixed"
    ]


def _check_server(conn: Any, topo: Any, spec: Any, out: str) -> None:
    """The server of ``spec`` runs as the topology says, on its ports, in order."""
    from multihome.cloud.userdata import for_server

    (server,) = [
        s for s in conn.compute.servers(details=True, tags=topo.tag) if s.name == spec.name
    ]
    server = conn.compute.get_server(server.id)  # user_data: admin, microversion 2.3+
    assert server.status == "ACTIVE"
    # Nova says "True" or "" (not False): the drive is there exactly when asked for
    assert (server.has_config_drive in (True, "True")) is spec.config_drive
    assert server.key_name == spec.key_name
    assert server.flavor["original_name"] == spec.flavor
    assert server.tags == [topo.tag]
    stored = server.user_data
    assert (base64.b64decode(stored).decode() if stored else None) == for_server(topo, spec)
    ports = [next(conn.network.ports(name=p.name, tags=topo.tag)) for p in spec.ports]
    for port, port_spec in zip(ports, spec.ports, strict=True):
        assert port.device_id == server.id
        assert port.device_owner.startswith("compute:")
        assert port.binding_host_id == COMPUTE_HOST
        assert port.status == "ACTIVE"
        if port_spec.fixed_ip is not None:
            assert [f["ip_address"] for f in port.fixed_ips] == [str(port_spec.fixed_ip)]
            assert str(port_spec.fixed_ip) in out
    assert _macs_in_boot_order(server) == [p.mac_address for p in ports]
    assert {i.port_id for i in conn.compute.server_interfaces(server)} == {p.id for p in ports}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_applies_then_noop_then_destroys(
    example: Path, nova_env: Nova, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each example applies against the real Nova and Neutron: servers ACTIVE with their
    pre-created ports in order, a config drive, the tag, the key pair and multihome's
    user-data; a second apply only reads; destroy removes every tagged resource and leaves a
    same-named untagged server alone."""
    from multihome.cloud.topology import load_topology

    topo = load_topology(example)
    assert topo.servers, f"{example} declares no server"
    conn = nova_env.connect()
    planted = conn.compute.create_server(
        name=topo.servers[0].name,
        image_id=next(conn.image.images(name="ubuntu-24.04")).id,
        flavor_id=conn.compute.find_flavor("m1.tiny", ignore_missing=False).id,
        networks="none",
    )
    conn.compute.wait_for_server(planted, status="ACTIVE", interval=0.5, wait=120)
    try:
        code, out, err = run_cli(["cloud", "apply", "-f", str(example)], capsys)
        assert code == 0, err
        assert "applied" in out
        found = _tagged(conn, topo.tag)
        assert found["networks"] == sorted(n.name for n in topo.networks)
        assert found["subnets"] == sorted(s.name for s in topo.subnets)
        assert found["security_groups"] == sorted(g.name for g in topo.security_groups)
        assert found["routers"] == sorted(r.name for r in topo.routers)
        assert found["ports"] == sorted(p.name for p in topo.ports)
        assert found["servers"] == sorted(s.name for s in topo.servers)
        assert len(found["floating_ips"]) == sum(1 for p in topo.ports if p.floating_ip)
        for spec in topo.servers:
            _check_server(conn, topo, spec, out)

        nova_env.reset_stats()
        code, out, err = run_cli(
            ["cloud", "apply", "-f", str(example), "--detailed-exit-codes"], capsys
        )
        assert code == 0, err
        assert "no changes" in out
        network_requests = nova_env.neutron.stats()["requests"]
        compute_requests = nova_env.stats()["requests"]
        assert compute_requests, "the second apply did not look at the servers"
        for request in (*network_requests, *compute_requests):
            assert request.startswith("GET "), (network_requests, compute_requests)

        code, out, err = run_cli(["cloud", "destroy", "-f", str(example)], capsys)
        assert code == 0, err
        assert all(not names for names in _tagged(conn, topo.tag).values()), _tagged(conn, topo.tag)
        survivor = conn.compute.get_server(planted.id)
        assert survivor.status == "ACTIVE" and not survivor.tags
    finally:
        conn.compute.delete_server(planted.id, ignore_missing=True)
        conn.compute.wait_for_delete(planted, interval=0.5, wait=120)
