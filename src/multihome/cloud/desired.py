"""What ``cloud apply`` creates for each resource of a topology, as attributes. Pure.

One description of the resources, two renderers: :mod:`multihome.cloud.apply` sends these
attributes (openstacksdk's names) to the cloud, with references resolved to the ids it found
or created; :mod:`multihome.cloud.heat` renames them into a HOT template's properties, with
references resolved to the template's resources and parameters. A reference is whatever
``ref(kind, name)`` returns for a network, subnet, security group, port or server.

``tag`` is the owner's tag: the topology's own (``multihome:NAME``) for ``apply``, the
stack's (``multihome-heat:NAME``) for the export, so that neither adopts the other's
resources. The description of what is created carries it as a marker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from multihome.cloud.state import marker
from multihome.cloud.topology import (
    Network,
    PortSpec,
    Router,
    SecurityGroup,
    SecurityRule,
    Server,
    Subnet,
    Topology,
)
from multihome.cloud.userdata import for_server

#: ``ref(kind, name)``: the id of a resource (apply) or a reference to it (export).
Ref = Callable[[str, str], Any]


def network(net: Network, tag: str) -> dict[str, Any]:
    return {
        "name": net.name,
        "description": marker(tag),
        "port_security_enabled": net.port_security,
    }


def subnet_settings(sub: Subnet) -> dict[str, Any]:
    """What an update of a subnet sets (the rest cannot change)."""
    return {
        "gateway_ip": None if sub.gateway is None else str(sub.gateway),
        "is_dhcp_enabled": sub.dhcp,
        "dns_nameservers": [str(d) for d in sub.dns_nameservers],
    }


def subnet(sub: Subnet, tag: str, ref: Ref) -> dict[str, Any]:
    return {
        "name": sub.name,
        "description": marker(tag),
        "network_id": ref("network", sub.network),
        "cidr": str(sub.cidr),
        "ip_version": sub.ip_version,
        **subnet_settings(sub),
        # fixed at creation: Neutron cannot change them
        **({"ipv6_ra_mode": sub.ipv6_ra_mode} if sub.ipv6_ra_mode else {}),
        **({"ipv6_address_mode": sub.ipv6_address_mode} if sub.ipv6_address_mode else {}),
    }


def group_description(group: SecurityGroup, tag: str) -> str:
    return f"{group.description} {marker(tag)}".strip()


def security_group(group: SecurityGroup, tag: str) -> dict[str, Any]:
    return {"name": group.name, "description": group_description(group, tag)}


def rule(group: SecurityGroup, rule: SecurityRule, ref: Ref) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "security_group_id": ref("security-group", group.name),
        "direction": rule.direction,
        "ethertype": rule.ethertype,
    }
    if rule.protocol is not None:
        attrs["protocol"] = rule.protocol
    if rule.port_min is not None:
        attrs["port_range_min"] = rule.port_min
    if rule.port_max is not None:  # for ICMP the code: none, any code
        attrs["port_range_max"] = rule.port_max
    if rule.remote_ip_prefix is not None:
        attrs["remote_ip_prefix"] = rule.remote_ip_prefix
    if rule.remote_group is not None:
        attrs["remote_group_id"] = ref("security-group", rule.remote_group)
    return attrs


def router_gateway(router: Router, ref: Ref) -> dict[str, Any] | None:
    if router.external_network is None:
        return None
    return {"network_id": ref("network", router.external_network)}


def router(router: Router, tag: str, ref: Ref) -> dict[str, Any]:
    attrs: dict[str, Any] = {"name": router.name, "description": marker(tag)}
    gateway = router_gateway(router, ref)
    if gateway is not None:
        attrs["external_gateway_info"] = gateway
    return attrs


def port(port: PortSpec, tag: str, ref: Ref, *, create: bool = True) -> dict[str, Any]:
    """A port's attributes; without ``create``, those an update sets."""
    attrs: dict[str, Any] = {}
    if create:
        attrs.update(
            name=port.name, network_id=ref("network", port.network), description=marker(tag)
        )
    if port.fixed_ips:
        attrs["fixed_ips"] = [
            {
                **({"subnet_id": ref("subnet", f.subnet)} if f.subnet else {}),
                **({"ip_address": str(f.ip)} if f.ip is not None else {}),
            }
            for f in port.fixed_ips
        ]
    if port.port_security is not None:
        attrs["port_security_enabled"] = port.port_security
    if port.security_groups is not None:
        attrs["security_group_ids"] = [ref("security-group", g) for g in port.security_groups]
    elif port.port_security is False:
        attrs["security_group_ids"] = []
    attrs["allowed_address_pairs"] = [
        {"ip_address": p.ip, **({"mac_address": p.mac} if p.mac else {})}
        for p in port.allowed_address_pairs
    ]
    return attrs


def floating_ip(port: PortSpec, tag: str, ref: Ref) -> dict[str, Any]:
    """The floating IP of a port that asks for one (``port.floating_ip`` is set)."""
    assert port.floating_ip is not None
    attrs: dict[str, Any] = {
        "floating_network_id": ref("network", port.floating_ip),
        "port_id": ref("port", port.name),
        "description": f"{marker(tag)} {port.name}",
    }
    if port.floating_fixed_ip is not None:  # floating IPs are IPv4: never an IPv6 address
        attrs["fixed_ip_address"] = str(port.floating_fixed_ip)
    return attrs


def server(topology: Topology, server: Server, tag: str, ref: Ref) -> dict[str, Any]:
    """A server: image and flavor by name, its ports in order (the first is eth0)."""
    return {
        "name": server.name,
        "image": server.image,
        "flavor": server.flavor,
        "port_ids": [ref("port", p.name) for p in server.ports],
        "key_name": server.key_name,
        "config_drive": server.config_drive,
        "user_data": for_server(topology, server),
        "tags": [tag],
    }
