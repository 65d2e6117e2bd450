"""Ownership, the two real refusals of Neutron translated, failure midway, attach-port's
floating IP without a router (attach-port itself: test_cloud_attach_ipv6.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from cloud_support import EXTERNAL, REPO, Neutron, Nova, run_cli

SCENARIO4 = REPO / "examples" / "scenario4-two-ports-two-floating-ips.yaml"


def _unique(text: str, name: str) -> str:
    """The topology ``text`` with a fresh name and fresh resource-name prefix."""
    suffix = uuid.uuid4().hex[:6]
    return (
        text.replace("name: scenario4", f"name: {name}-{suffix}")
        .replace("s4-", f"s4{suffix}-")
        .replace("multiport-test", f"mpt{suffix}")
    )


@pytest.mark.xdist_group("nova")
def test_untagged_resources_are_never_touched(
    nova_env: Nova, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Resources planted without the tag, even with the topology's names, survive apply and
    destroy unchanged; apply warns about the same-named ones and creates its own."""
    conn = nova_env.connect()
    topo = tmp_path / "t.yaml"
    topo.write_text(_unique(SCENARIO4.read_text(), "plant"))
    from multihome.cloud.topology import load_topology

    t = load_topology(topo)
    planted_net = conn.network.create_network(name=t.networks[0].name)
    planted_sub = conn.network.create_subnet(
        name=t.subnets[0].name, network_id=planted_net.id, ip_version=4, cidr="10.99.0.0/24"
    )
    planted_sg = conn.network.create_security_group(name=t.security_groups[0].name)
    planted_port = conn.network.create_port(name=t.ports[0].name, network_id=planted_net.id)

    def revisions() -> dict[str, int]:
        return {
            r.id: r.revision_number
            for r in (
                conn.network.get_network(planted_net.id),
                conn.network.get_subnet(planted_sub.id),
                conn.network.get_security_group(planted_sg.id),
                conn.network.get_port(planted_port.id),
            )
        }

    before = revisions()
    code, _out, err = run_cli(["cloud", "apply", "-f", str(topo)], capsys)
    assert code == 0, err
    assert f"network {t.networks[0].name}: an untagged network with this name exists" in err
    code, _out, err = run_cli(["cloud", "destroy", "-f", str(topo)], capsys)
    assert code == 0, err
    assert revisions() == before
    assert not list(conn.network.ports(tags=t.tag))
    assert not list(conn.network.networks(tags=t.tag))


@pytest.mark.xdist_group("nova")
def test_floating_ip_without_router_is_translated_and_resumable(
    nova_env: Nova, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a router Neutron refuses the floating IP (404); the message names the router
    interface to add. After adding the router, the next apply completes the rest only."""
    text = _unique(SCENARIO4.read_text(), "norouter")
    no_router = text.split("routers:")[0] + "servers:" + text.split("servers:")[1]
    topo = tmp_path / "t.yaml"
    topo.write_text(no_router)
    code, out, err = run_cli(["cloud", "plan", "-f", str(topo)], capsys)
    assert code == 0, err
    assert "has no router interface towards it" in err
    code, out, err = run_cli(["cloud", "apply", "-f", str(topo)], capsys)
    assert code == 1
    assert "no router connects them (404" in err
    assert "add a router to the topology" in err and f"external_network: {EXTERNAL}" in err
    assert "run apply again" in err
    assert "Traceback" not in err
    # fix the topology: the next apply adds the router and the floating IPs, nothing else
    topo.write_text(text)
    code, out, err = run_cli(["cloud", "apply", "-f", str(topo)], capsys)
    assert code == 0, err
    creates = [line for line in err.splitlines() if "+ create" in line or "+ attach" in line]
    kinds = sorted({line.split("+ ")[1].split()[1] for line in creates})
    assert kinds == ["floating-ip", "router", "router-interface"], err
    assert out.count("203.0.113.") == 2
    assert run_cli(["cloud", "destroy", "-f", str(topo)], capsys)[0] == 0


def test_address_pairs_on_port_without_port_security(
    cloud_env: Neutron, capsys: pytest.CaptureFixture[str]
) -> None:
    """Neutron refuses address pairs on a port with port security off (409); the shortcut
    says so and how to fix it; with port security on, the pair is added (idempotently)."""
    conn = cloud_env.connect()
    net = conn.network.create_network(name=f"aap-{uuid.uuid4().hex[:6]}")
    conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.77.0.0/24")
    off = conn.network.create_port(
        name=f"{net.name}-off", network_id=net.id, port_security_enabled=False
    )
    on = conn.network.create_port(name=f"{net.name}-on", network_id=net.id)
    code, out, err = run_cli(["cloud", "allow-address-pairs", off.name, "10.77.0.50"], capsys)
    assert code == 1
    assert "port security disabled" in err and "(409)" in err
    assert "--enable-port-security" in err
    for _ in range(2):
        code, out, err = run_cli(["cloud", "allow-address-pairs", on.name, "10.77.0.50"], capsys)
        assert code == 0, err
        assert "10.77.0.50" in out
    pairs = conn.network.get_port(on.id).allowed_address_pairs
    assert [p["ip_address"] for p in pairs] == ["10.77.0.50"]


@pytest.mark.xdist_group("nova")
def test_attach_port_floating_ip_without_router(
    nova_env: Nova, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """attach-port on a subnet without a router: the 404 names the subnet and the fix."""
    text = _unique(SCENARIO4.read_text(), "attach404")
    body = text.split("routers:")[0] + "servers:" + text.split("servers:")[1]
    body = body.replace("        floating_ip: public\n", "")
    topo = tmp_path / "t.yaml"
    topo.write_text(body)
    assert run_cli(["cloud", "apply", "-f", str(topo)], capsys)[0] == 0
    from multihome.cloud.topology import load_topology

    t = load_topology(topo)
    code, _out, err = run_cli(
        [
            "cloud",
            "attach-port",
            t.servers[0].name,
            "--network",
            t.networks[0].name,
            "--subnet",
            t.subnets[0].name,
            "--floating-ip",
            EXTERNAL,
            "--tag-as",
            t.name,
        ],
        capsys,
    )
    assert code == 1
    assert f"from subnet {t.subnets[0].name}" in err and "no router connects them" in err
    assert f"openstack router add subnet ROUTER {t.subnets[0].name}" in err
    assert run_cli(["cloud", "destroy", "-f", str(topo)], capsys)[0] == 0


@pytest.mark.xdist_group("nova")
def test_server_nova_cannot_boot_is_translated_and_replaced(
    nova_env: Nova, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A flavor no host has room for: Nova puts the server in ERROR; apply says why (Nova's
    fault) and what the next apply does; with the flavor fixed, the next apply deletes the
    failed server and boots it again on the same ports."""
    text = _unique(SCENARIO4.read_text(), "noboot")
    topo = tmp_path / "t.yaml"
    topo.write_text(text.replace("flavor: m1.small", "flavor: m1.huge"))
    from multihome.cloud.topology import load_topology

    t = load_topology(topo)
    name = t.servers[0].name
    try:
        code, _out, err = run_cli(["cloud", "apply", "-f", str(topo)], capsys)
        assert code == 1
        assert f"create server {name}: Nova could not boot it: No valid host" in err, err
        assert "the next apply deletes it and boots it again" in err
        assert "run apply again" in err and "Traceback" not in err
        conn = nova_env.connect()
        (failed,) = conn.compute.servers(tags=t.tag)
        assert failed.status == "ERROR"

        topo.write_text(text)
        code, out, err = run_cli(["cloud", "plan", "-f", str(topo)], capsys)
        assert code == 0, err
        assert f"- delete server {name} (status ERROR: replaced)" in out
        assert f"+ create server {name}" in out
        code, out, err = run_cli(["cloud", "apply", "-f", str(topo)], capsys)
        assert code == 0, err
        (server,) = conn.compute.servers(tags=t.tag)
        assert server.id != failed.id and server.status == "ACTIVE"
        assert server.flavor["original_name"] == "m1.small"
        for port in t.ports:
            assert next(conn.network.ports(name=port.name)).device_id == server.id
        assert out.count("203.0.113.") == 2
    finally:
        assert run_cli(["cloud", "destroy", "-f", str(topo)], capsys)[0] == 0


@pytest.mark.xdist_group("nova")
def test_missing_key_pair_is_translated(
    nova_env: Nova, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nova refuses a server whose key pair does not exist (400); apply names the key pair
    and how to create it."""
    text = _unique(SCENARIO4.read_text(), "nokey").replace("key_name: mykey", "key_name: nokey")
    topo = tmp_path / "t.yaml"
    topo.write_text(text)
    try:
        code, _out, err = run_cli(["cloud", "apply", "-f", str(topo)], capsys)
        assert code == 1
        assert "Nova has no key pair nokey in this project (400" in err, err
        assert "openstack keypair create --public-key ~/.ssh/id_ed25519.pub nokey" in err
        assert "Traceback" not in err
    finally:
        assert run_cli(["cloud", "destroy", "-f", str(topo)], capsys)[0] == 0


@pytest.mark.xdist_group("nova")
def test_quota_refusal_is_not_called_a_credentials_problem(
    nova_env: Nova, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nova refuses a server over the project's quota with 403 (like a missing permission);
    apply says that the quota is used up, not that the credentials are wrong."""
    conn = nova_env.connect()
    # the default quota class (per-project quotas would need Keystone to check the project)
    quota_url = "/os-quota-class-sets/default"
    resp = conn.compute.put(quota_url, json={"quota_class_set": {"instances": 0}})
    assert resp.status_code == 200, resp.text
    topo = tmp_path / "t.yaml"
    topo.write_text(_unique(SCENARIO4.read_text(), "quota"))
    try:
        code, _out, err = run_cli(["cloud", "apply", "-f", str(topo)], capsys)
        assert code == 1
        assert "the project's quota is used up (403: Quota exceeded for instances" in err, err
        assert "credentials" not in err and "Traceback" not in err
    finally:
        resp = conn.compute.put(quota_url, json={"quota_class_set": {"instances": -1}})
        assert resp.status_code == 200, resp.text
        assert run_cli(["cloud", "destroy", "-f", str(topo)], capsys)[0] == 0
