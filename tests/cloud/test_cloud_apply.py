"""The example topologies against a real Nova (fake compute driver) and a real Neutron."""

from __future__ import annotations

from pathlib import Path

import pytest
from cloud_support import (
    REPO,
    Nova,
    check_found,
    check_network_side,
    check_server,
    run_cli,
    tagged,
)

pytestmark = pytest.mark.xdist_group("nova")  # one worker starts Nova and runs these

EXAMPLES = sorted((REPO / "examples").glob("scenario*.yaml"))


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
        check_found(tagged(conn, topo.tag), topo)
        check_network_side(conn, topo, topo.tag)
        for spec in topo.servers:
            check_server(conn, topo, spec, out)

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
        assert all(not names for names in tagged(conn, topo.tag).values()), tagged(conn, topo.tag)
        survivor = conn.compute.get_server(planted.id)
        assert survivor.status == "ACTIVE" and not survivor.tags
    finally:
        conn.compute.delete_server(planted.id, ignore_missing=True)
        conn.compute.wait_for_delete(planted, interval=0.5, wait=120)
