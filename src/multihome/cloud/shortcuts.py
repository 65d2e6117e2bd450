"""The how-to's one-off steps as commands: attach a port to a running server, allow
address pairs on a port. Errors from the cloud are translated like ``apply``'s.

``attach-port`` on a dual-stack network: ``--fixed-ip`` once per family (or
``SUBNET=ADDRESS`` for each, and ``--subnet`` for a subnet without a chosen address) becomes
the port's ``fixed_ips``, every address checked against its subnet (family, CIDR, an
address mode that lets it be chosen) before anything is created; without either, Neutron
gives the port an address on one IPv4 subnet, one DHCPv6-stateful subnet and every SLAAC /
DHCPv6-stateless subnet of the network, and it adds those automatic ones to any list given
(Neutron 29, ``neutron/db/ipam_pluggable_backend.py``, ``_allocate_ips_for_port``).
The floating IP maps to the port's IPv4 address: Neutron has none for IPv6."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from multihome.cloud.apply import PortResult, translate
from multihome.cloud.client import ComputeApi, NetworkApi, to_fip, to_port
from multihome.cloud.plan import Action
from multihome.cloud.state import FoundSubnet, marker
from multihome.cloud.topology import AUTO_ADDRESS_MODES, TAG_PREFIX
from multihome.errors import CloudError, InputError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: What the output says about a port's IPv6 addresses.
NO_IPV6_FLOATING = (
    "IPv6 has no floating IPs in Neutron: {addresses} {verb} reached directly through the "
    "router (its subnet needs a router interface, the upstream network a route to it, and a "
    "security group must admit ethertype IPv6)"
)


@dataclass(frozen=True)
class FixedIpRequest:
    """One ``--fixed-ip`` (``ADDRESS`` or ``SUBNET=ADDRESS``) or ``--subnet`` of attach-port."""

    text: str
    """The option as given, for messages (``--fixed-ip private-v6=2001:db8::10``)."""
    address: IPAddress | None
    subnet: str | None


def parse_fixed_ips(fixed_ips: Sequence[str], subnets: Sequence[str]) -> list[FixedIpRequest]:
    """The ``--fixed-ip`` and ``--subnet`` values of attach-port, checked without a cloud:
    addresses of either family, at most one address without a subnet per family (a port
    gets one address per subnet; two of a family need their subnets named), none twice."""
    requests: list[FixedIpRequest] = []
    plain: dict[int, str] = {}
    for value in fixed_ips:
        subnet, sep, text = value.rpartition("=")
        try:
            address = ipaddress.ip_address(text.strip())
        except ValueError:
            raise InputError(
                f"--fixed-ip {value}: not an IPv4 or IPv6 address; write e.g. 192.168.0.112, "
                "2001:db8:0:2::10 or SUBNET=ADDRESS"
            ) from None
        if sep and not subnet.strip():
            raise InputError(f"--fixed-ip {value}: the subnet is empty; write SUBNET=ADDRESS")
        if any(r.address == address for r in requests):
            raise InputError(f"--fixed-ip {value}: {address} is given twice; give it once")
        if not sep:
            if address.version in plain:
                raise InputError(
                    f"--fixed-ip {plain[address.version]} and --fixed-ip {value}: two "
                    f"IPv{address.version} addresses; give --fixed-ip once per family, or name "
                    "each one's subnet: --fixed-ip SUBNET=ADDRESS"
                )
            plain[address.version] = value
        requests.append(
            FixedIpRequest(f"--fixed-ip {value}", address, subnet.strip() if sep else None)
        )
    requests += [FixedIpRequest(f"--subnet {name}", None, name) for name in subnets]
    return requests


@dataclass(frozen=True)
class FixedAddress:
    """One fixed IP of the attached port, as Neutron gave it."""

    address: str
    family: int
    subnet: str
    """The subnet's name (its id when it has none)."""
    ipv6_address_mode: str | None
    """``slaac``, ``dhcpv6-stateful``, ``dhcpv6-stateless`` or None (IPv4, or not set)."""
    floating_ip: str | None
    """The floating IP mapped to this address (IPv4 only), or None."""

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "family": self.family,
            "subnet": self.subnet,
            "ipv6_address_mode": self.ipv6_address_mode,
            "floating_ip": self.floating_ip,
        }


@dataclass(frozen=True)
class AttachResult:
    """What ``cloud attach-port`` did: the row (as ``apply``'s) and every fixed IP."""

    row: PortResult
    addresses: tuple[FixedAddress, ...]

    @property
    def notes(self) -> tuple[str, ...]:
        six = [a.address for a in self.addresses if a.family == 6]
        if not six:
            return ()
        verb = "is" if len(six) == 1 else "are"
        return (NO_IPV6_FLOATING.format(addresses=", ".join(six), verb=verb),)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.row.to_json(),
            "addresses": [a.to_json() for a in self.addresses],
            "notes": list(self.notes),
        }


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
    fixed_ips: Sequence[FixedIpRequest],
    security_groups: tuple[str, ...],
    floating_ip: str | None,
    port_name: str | None,
    tag_name: str,
) -> AttachResult:
    """Create a port, attach it to ``server``, associate a floating IP with its IPv4
    address; return the row and the port's fixed IPs. Bad input (a server, network, subnet
    or group not found, an address its subnet cannot take, a floating IP for a port without
    IPv4) is refused before anything is created."""
    tag = f"{TAG_PREFIX}{tag_name}"
    step = Action("attach", "server-port", server, target=port_name or "(new port)")
    subnet_hint = next((r.subnet for r in fixed_ips if r.subnet), None)
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
        on_network = net.subnets(network_id=net_found.id)
        fixed = _fixed_ips(net, network, on_network, fixed_ips)
        families = (
            {_version(s) for s in on_network}
            if not fixed
            else {_version(next(s for s in on_network if s.id == f["subnet_id"])) for f in fixed}
        )
        if floating_ip is not None and 4 not in families:
            given = " ".join(r.text for r in fixed_ips) or f"network {network}"
            raise InputError(
                f"--floating-ip {floating_ip}: the port would have no IPv4 address ({given}: "
                "IPv6 only), and Neutron's floating IPs are IPv4 only; drop --floating-ip "
                "(the IPv6 address is reached directly through the router, once a security "
                "group admits ethertype IPv6) or add an IPv4 --fixed-ip or --subnet"
            )
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
            attrs["fixed_ips"] = fixed
        if group_ids:
            attrs["security_group_ids"] = group_ids
        step = Action("create", "port", port_name)
        port = to_port(net.create("port", **attrs))
        net.add_tag("port", port.id, tag)
        step = Action("attach", "server-port", server, target=port_name)
        compute.attach_port(target.id, port.id)
        address = mapped = None
        if ext_id is not None:
            step = Action("create", "floating-ip", port_name)
            sid, mapped = next(
                (sid, ip) for sid, ip in port.fixed_ips if ipaddress.ip_address(ip).version == 4
            )
            subnet_hint = next((x.name for x in on_network if x.id == sid), sid)
            fip = net.create(
                "floating-ip",
                floating_network_id=ext_id,
                port_id=port.id,
                fixed_ip_address=mapped,
                description=f"{marker(tag)} {port_name}",
            )
            net.add_tag("floating-ip", fip.id, tag)
            address = to_fip(fip).address
    except (InputError, CloudError):
        raise
    except Exception as exc:
        raise _translated(exc, step, port_name, subnet_hint, floating_ip) from exc
    by_id = {s.id: s for s in on_network}
    return AttachResult(
        PortResult(
            server=server,
            port=port_name,
            fixed_ips=tuple(ip for _, ip in port.fixed_ips),
            floating_ip=address,
        ),
        tuple(
            FixedAddress(
                address=ip,
                family=ipaddress.ip_address(ip).version,
                subnet=(by_id[sid].name or sid) if sid in by_id else sid,
                ipv6_address_mode=by_id[sid].ipv6_address_mode if sid in by_id else None,
                floating_ip=address if ip == mapped else None,
            )
            for sid, ip in port.fixed_ips
        ),
    )


def _version(subnet: FoundSubnet) -> int:
    return ipaddress.ip_network(subnet.cidr, strict=False).version


def _fixed_ips(
    net: NetworkApi,
    network: str,
    on_network: Sequence[FoundSubnet],
    requests: Sequence[FixedIpRequest],
) -> list[dict[str, str]]:
    """The port's ``fixed_ips`` for ``requests``: each address on its subnet (named, or the
    network's subnet whose CIDR holds it; a ``--subnet`` of that subnet joins it), each
    ``--subnet`` left alone as an entry of its own. Refused (InputError) before anything
    exists: a subnet not on the network, an address of the other family or outside the
    CIDR, the subnet's gateway or network address, an address on a SLAAC or
    DHCPv6-stateless subnet (Neutron forms it from the MAC)."""
    named: dict[str, FoundSubnet] = {}
    for request in requests:
        if request.subnet is not None and request.subnet not in named:
            found = _by_name_or_id(
                net.subnets, "subnet", request.subnet, "list them with `openstack subnet list`"
            )
            if found.id not in {s.id for s in on_network}:
                raise InputError(
                    f"{request.text}: subnet {request.subnet} is not on network {network}; "
                    f"its subnets: {_listing(on_network)}"
                )
            named[request.subnet] = found
    entries: list[dict[str, str]] = []
    bare = {named[r.subnet].id for r in requests if r.address is None and r.subnet}
    for request in requests:
        if request.address is None:
            continue
        if request.subnet is not None:
            subnet = named[request.subnet]
        else:
            subnet = _holding(network, on_network, request)
            bare.discard(subnet.id)
        _check_address(request, subnet)
        entries.append({"subnet_id": subnet.id, "ip_address": str(request.address)})
    entries += [{"subnet_id": sid} for sid in bare]
    return entries


def _holding(
    network: str, on_network: Sequence[FoundSubnet], request: FixedIpRequest
) -> FoundSubnet:
    """The network's subnet whose CIDR holds the request's address."""
    assert request.address is not None
    family = request.address.version
    same = [s for s in on_network if _version(s) == family]
    for subnet in same:
        if request.address in ipaddress.ip_network(subnet.cidr, strict=False):
            return subnet
    if not same:
        raise InputError(
            f"{request.text}: network {network} has no IPv{family} subnet (its subnets: "
            f"{_listing(on_network)}); give an address of one of them, or add an "
            f"IPv{family} subnet to the network"
        )
    raise InputError(
        f"{request.text}: not in any IPv{family} subnet of network {network} "
        f"({_listing(same)}); give an address inside one, or leave --fixed-ip out "
        "for one address per subnet"
    )


def _check_address(request: FixedIpRequest, subnet: FoundSubnet) -> None:
    """The address fits ``subnet``: family, CIDR, a host address but not the gateway, a
    subnet whose address mode lets the port's address be chosen."""
    address = request.address
    assert address is not None
    cidr = ipaddress.ip_network(subnet.cidr, strict=False)
    name = subnet.name or subnet.id
    if address.version != cidr.version:
        raise InputError(
            f"{request.text}: subnet {name} is IPv{cidr.version} ({cidr}) and {address} is "
            f"IPv{address.version}; pair the address with a subnet of its family"
        )
    if address not in cidr:
        raise InputError(
            f"{request.text}: {address} is not in subnet {name} ({cidr}); give an address inside it"
        )
    edges = {cidr.network_address} | ({cidr.broadcast_address} if cidr.version == 4 else set())
    if address in edges or str(address) == subnet.gateway_ip:
        what = "the gateway" if str(address) == subnet.gateway_ip else "not a host address"
        raise InputError(
            f"{request.text}: {address} is {what} of subnet {name} ({cidr}); choose another address"
        )
    mode = subnet.ipv6_address_mode or subnet.ipv6_ra_mode
    if cidr.version == 6 and mode in AUTO_ADDRESS_MODES:
        raise InputError(
            f"{request.text}: subnet {name} is {mode}: the port forms its address there from "
            "its MAC (EUI-64) and Neutron refuses a chosen one; leave this --fixed-ip out "
            f"(Neutron gives the port its {mode} address on {name} by itself, also next to "
            "other --fixed-ip), or choose addresses on a dhcpv6-stateful subnet"
        )


def _listing(subnets: Sequence[FoundSubnet]) -> str:
    return ", ".join(f"{s.name or s.id} {s.cidr}" for s in subnets) or "none"


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
