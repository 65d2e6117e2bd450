"""The how-to's one-off steps as commands: attach a port to a running server, allow
address pairs on a port. Errors from the cloud are translated like ``apply``'s."""

from __future__ import annotations

import ipaddress
from typing import Any

from multihome.cloud.apply import PortResult, translate
from multihome.cloud.client import ComputeApi, NetworkApi, to_fip, to_port
from multihome.cloud.plan import Action
from multihome.cloud.state import marker
from multihome.cloud.topology import TAG_PREFIX
from multihome.errors import CloudError, InputError


def _one(items: list[Any], kind: str, name: str, hint: str) -> Any:
    if not items:
        raise InputError(f"{kind} {name!r} not found; {hint}")
    if len(items) > 1:
        raise InputError(
            f"{kind} name {name!r} is ambiguous ({len(items)} match); give its id instead"
        )
    return items[0]


def _by_name_or_id(lister: Any, kind: str, name: str, hint: str) -> Any:
    found = lister(name=name) or lister(id=name)
    return _one(found, kind, name, hint)


def attach_port(
    net: NetworkApi,
    compute: ComputeApi,
    *,
    server: str,
    network: str,
    subnet: str | None,
    fixed_ip: str | None,
    security_groups: tuple[str, ...],
    floating_ip: str | None,
    port_name: str | None,
    tag_name: str,
) -> PortResult:
    """Create a port, attach it to ``server``, associate a floating IP; return the row."""
    tag = f"{TAG_PREFIX}{tag_name}"
    step = Action("attach", "server-port", server, target=port_name or "(new port)")
    try:
        servers = [
            s
            for s in compute.compute.servers(details=False, name=f"^{server}$")
            if s.name == server
        ]
        target = _one(servers, "server", server, "list them with `openstack server list`")
        net_found = _by_name_or_id(
            net.networks, "network", network, "list them with `openstack network list`"
        )
        fixed: dict[str, str] = {}
        if subnet is not None:
            sub = _by_name_or_id(
                net.subnets, "subnet", subnet, "list them with `openstack subnet list`"
            )
            fixed["subnet_id"] = sub.id
        if fixed_ip is not None:
            fixed["ip_address"] = str(ipaddress.ip_address(fixed_ip))
        group_ids = [
            _by_name_or_id(
                net.security_groups,
                "security group",
                g,
                "list them with `openstack security group list`",
            ).id
            for g in security_groups
        ]
        ext_id = None
        if floating_ip is not None:
            ext_id = _by_name_or_id(
                net.networks,
                "network",
                floating_ip,
                "list external networks with `openstack network list --external`",
            ).id
        if port_name is None:
            existing = {p.name for p in net.ports(device_id=target.id)}
            n = len(existing) + 1  # the server's Nth port, like the how-to's "port2"
            while f"{server}-port{n}" in existing:
                n += 1
            port_name = f"{server}-port{n}"
        attrs: dict[str, Any] = {
            "name": port_name,
            "network_id": net_found.id,
            "description": marker(tag),
        }
        if fixed:
            attrs["fixed_ips"] = [fixed]
        if group_ids:
            attrs["security_group_ids"] = group_ids
        step = Action("create", "port", port_name)
        port = net.create("port", **attrs)
        net.add_tag("port", port.id, tag)
        step = Action("attach", "server-port", server, target=port_name)
        compute.attach_port(target.id, port.id)
        address = None
        if ext_id is not None:
            step = Action("create", "floating-ip", port_name)
            fip = net.create(
                "floating-ip",
                floating_network_id=ext_id,
                port_id=port.id,
                description=f"{marker(tag)} {port_name}",
            )
            net.add_tag("floating-ip", fip.id, tag)
            address = to_fip(fip).address
    except (InputError, CloudError):
        raise
    except Exception as exc:
        raise _translated(exc, step, port_name, subnet, floating_ip) from exc
    return PortResult(
        server=server,
        port=port_name,
        fixed_ips=tuple(ip for _, ip in to_port(port).fixed_ips),
        floating_ip=address,
    )


def _translated(
    exc: Exception, step: Action, port: str | None, subnet: str | None, external: str | None
) -> CloudError:
    error = translate(exc, step, None, 0, 0)
    text = str(error)
    if step.kind == "floating-ip" and "no router connects" in text:
        text = text.replace("SUBNET", subnet or "the port's subnet").replace(
            "EXTERNAL", external or "the external network"
        )
        text += (
            f" The port {port} was created and attached; after adding the interface, "
            f"associate it with `openstack floating ip create --port {port} {external}`."
        )
    return CloudError(text)


def allow_address_pairs(
    net: NetworkApi, *, port: str, addresses: tuple[str, ...], replace: bool
) -> list[str]:
    """Add (or set) allowed address pairs on ``port``; return the resulting addresses."""
    found = _by_name_or_id(net.ports, "port", port, "list them with `openstack port list`")
    wanted = []
    for address in addresses:
        network = ipaddress.ip_network(address, strict=False)
        wanted.append(
            str(network.network_address)
            if network.prefixlen == network.max_prefixlen
            else str(network)
        )
    current = [] if replace else [ip for ip, _mac in found.address_pairs]
    pairs = list(dict.fromkeys([*current, *wanted]))
    if not replace and set(wanted) <= set(current):
        return sorted(current)
    step = Action("update", "port", found.name or port)
    try:
        res = net.update(
            "port", found.id, allowed_address_pairs=[{"ip_address": ip} for ip in pairs]
        )
    except Exception as exc:
        raise translate(exc, step, None, 0, 0) from exc
    return sorted(ip for ip, _mac in to_port(res).address_pairs)
