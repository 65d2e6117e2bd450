"""The pure plan: warnings the how-to would give, conflicts, nothing to do when in sync."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from multihome.cloud.plan import make_plan
from multihome.cloud.state import CloudState, FoundNetwork, FoundSubnet, marker
from multihome.cloud.topology import parse_topology
from multihome.errors import CloudConflictError

BASE = """\
name: w
networks:
  - name: net
    subnets: [{name: sub, cidr: 192.168.0.0/24}]
security_groups:
  - name: closed
    rules: [{direction: egress, protocol: tcp, port: 443}]
servers:
  - name: vm
    image: img
    flavor: small
    ports:
      - {name: p0, network: net, security_groups: [closed], floating_ip: public}
      - {name: p1, network: net, security_groups: [closed]}
"""
PUBLIC = FoundNetwork(
    id="ext", name="public", tags=(), description="", port_security=True, external=True
)


def _state(**kw: object) -> CloudState:
    return CloudState(tag="multihome:w", ext_networks=MappingProxyType({"public": PUBLIC}), **kw)  # type: ignore[arg-type]


def test_warnings_of_the_howto() -> None:
    """No ingress behind a floating IP, several ports without config drive, and a floating
    IP on a subnet without a router each give a warning that says the fix."""
    plan = make_plan(parse_topology(BASE, "t"), _state())
    text = "\n".join(plan.warnings)
    assert "port p0: gets a floating IP but its security groups (closed) admit no ingress" in (text)
    assert "server vm: 2 ports and no config drive" in text and "config_drive: true" in text
    assert "subnet sub has no router interface towards it" in text
    assert "external_network: public, subnets: [sub]" in text
    fixed = BASE.replace(
        "rules: [{direction: egress, protocol: tcp, port: 443}]",
        "rules: [{protocol: tcp, port: 22}]",
    ).replace("    flavor: small\n", "    flavor: small\n    config_drive: true\n") + (
        "routers:\n  - {name: r, external_network: public, subnets: [sub]}\n"
    )
    assert make_plan(parse_topology(fixed, "t"), _state()).warnings == ()


def test_plan_orders_creation_by_dependency() -> None:
    """Networks before subnets before ports before servers before floating IPs."""
    plan = make_plan(parse_topology(BASE, "t"), _state())
    kinds = [a.kind for a in plan.actions]
    order = ["network", "subnet", "security-group", "rule", "port", "server", "floating-ip"]
    assert [k for k in order if k in kinds] == sorted(set(kinds), key=order.index)
    assert kinds.index("port") > kinds.index("subnet")
    assert kinds.index("floating-ip") > kinds.index("server")


def test_changed_cidr_is_a_conflict_and_gateway_an_update() -> None:
    """A found subnet with another CIDR cannot be changed in place: the plan refuses;
    a different gateway is an update."""
    topo = parse_topology(BASE, "t")
    net = FoundNetwork(
        id="n",
        name="net",
        tags=("multihome:w",),
        description=marker("multihome:w"),
        port_security=True,
        external=False,
    )
    sub = FoundSubnet(
        id="s",
        name="sub",
        tags=("multihome:w",),
        description="",
        network_id="n",
        cidr="10.0.0.0/24",
        gateway_ip="10.0.0.1",
        dhcp=True,
        dns_nameservers=(),
    )
    with pytest.raises(CloudConflictError) as err:
        make_plan(topo, _state(networks=(net,), subnets=(sub,)))
    assert "subnet sub: CIDR is 10.0.0.0/24" in str(err.value) and "destroy" in str(err.value)
    moved = FoundSubnet(
        id="s",
        name="sub",
        tags=("multihome:w",),
        description="",
        network_id="n",
        cidr="192.168.0.0/24",
        gateway_ip="192.168.0.254",
        dhcp=True,
        dns_nameservers=(),
    )
    plan = make_plan(topo, _state(networks=(net,), subnets=(moved,)))
    update = next(a for a in plan.actions if a.kind == "subnet")
    assert update.verb == "update"
    assert update.changes == ("gateway_ip: 192.168.0.254 -> 192.168.0.1",)
    assert next(a for a in plan.kept if a.kind == "network").verb == "keep"


def test_server_in_error_is_replaced() -> None:
    """A server of ours that Nova left in ERROR is deleted and booted again (in that order);
    an ACTIVE one is kept."""
    from multihome.cloud.state import FoundServer

    topo = parse_topology(BASE, "t")

    def server(status: str) -> FoundServer:
        return FoundServer(
            id="s1",
            name="vm",
            tags=("multihome:w",),
            status=status,
            image_id="img",
            flavor_name="huge",
            key_name=None,
            config_drive=False,
        )

    plan = make_plan(topo, _state(servers=(server("ERROR"),)))
    steps = [(a.verb, a.kind, a.id) for a in plan.actions if a.kind == "server"]
    assert steps == [("delete", "server", "s1"), ("create", "server", None)]
    assert not any("runs with flavor huge" in w for w in plan.warnings)
    plan = make_plan(topo, _state(servers=(server("ACTIVE"),)))
    assert not [a for a in plan.actions if a.kind == "server"]
    assert any("runs with flavor huge" in w for w in plan.warnings)
