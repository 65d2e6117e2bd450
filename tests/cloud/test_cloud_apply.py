"""The example topologies against a real Neutron (servers through openstacksdk's fakes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cloud_support import REPO, Neutron, run_cli

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
    }


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_applies_then_noop_then_destroys(
    example: Path, fake_nova: Any, cloud_env: Neutron, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each example applies against the real Neutron; a second apply changes nothing and
    makes only read calls; destroy removes every tagged resource."""
    from multihome.cloud.topology import load_topology

    topo = load_topology(example)
    conn = cloud_env.connect()
    code, out, err = run_cli(["cloud", "apply", "-f", str(example)], capsys)
    assert code == 0, err
    assert "applied" in out
    found = _tagged(conn, topo.tag)
    assert found["networks"] == sorted(n.name for n in topo.networks)
    assert found["subnets"] == sorted(s.name for s in topo.subnets)
    assert found["security_groups"] == sorted(g.name for g in topo.security_groups)
    assert found["routers"] == sorted(r.name for r in topo.routers)
    assert found["ports"] == sorted(p.name for p in topo.ports)
    assert len(found["floating_ips"]) == sum(1 for p in topo.ports if p.floating_ip)
    # every port is bound to its server, with the requested fixed IP, in the table
    for port in topo.ports:
        real = next(conn.network.ports(name=port.name, tags=topo.tag))
        assert real.device_owner == "compute:nova"
        assert real.status == "ACTIVE"
        if port.fixed_ip is not None:
            assert [f["ip_address"] for f in real.fixed_ips] == [str(port.fixed_ip)]
            assert str(port.fixed_ip) in out
    servers = [c for c in fake_nova.calls if c[0] == "create_server"]
    assert sorted(c[1]["name"] for c in servers) == sorted(s.name for s in topo.servers)

    cloud_env.reset_stats()
    code, out, err = run_cli(
        ["cloud", "apply", "-f", str(example), "--detailed-exit-codes"], capsys
    )
    assert code == 0, err
    assert "no changes" in out
    requests = cloud_env.stats()["requests"]
    assert requests and all(r.startswith("GET ") for r in requests), requests
    assert len([c for c in fake_nova.calls if c[0] == "create_server"]) == len(servers)

    code, out, err = run_cli(["cloud", "destroy", "-f", str(example)], capsys)
    assert code == 0, err
    assert all(not names for names in _tagged(conn, topo.tag).values()), _tagged(conn, topo.tag)
    assert not fake_nova.servers
