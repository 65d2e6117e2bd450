"""The only module that talks to the cloud: openstacksdk, imported lazily.

:func:`connect` finds credentials the OpenStack way (``--os-cloud``, ``OS_CLOUD``,
``clouds.yaml``, ``OS_*`` variables) and never prints or logs a secret. :class:`NetworkApi`
and :class:`ComputeApi` turn openstacksdk resources into the frozen values of
:mod:`multihome.cloud.state` and perform the plan's steps; :func:`read_state` reads what one
topology needs with one list call per resource type.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from multihome.cloud.plan import ROUTER_INTERFACE_OWNERS
from multihome.cloud.state import (
    CloudState,
    FoundFloatingIp,
    FoundNetwork,
    FoundPort,
    FoundRouter,
    FoundRule,
    FoundSecurityGroup,
    FoundServer,
    FoundSubnet,
    Untagged,
)
from multihome.cloud.topology import Topology
from multihome.errors import CloudError, EnvironmentMissingError, InputError


class ServerBootError(Exception):
    """Nova accepted a server but could not boot it (status ERROR); the text is its fault."""

    def __init__(self, server_id: str, fault: str) -> None:
        super().__init__(fault)
        self.server_id = server_id
        self.fault = fault


@dataclass
class CallCounter:
    """Counts the HTTP requests made through a connection (shown after apply)."""

    count: int = 0
    started: float = field(default_factory=time.monotonic)


#: The oldest openstacksdk `multihome cloud` works with (pyproject.toml's `cloud` extra).
MIN_SDK = (4, 0)


def check_sdk_version() -> None:
    """Refuse an openstacksdk older than :data:`MIN_SDK` (Debian 12 ships 0.101), naming it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("openstacksdk")
    except PackageNotFoundError:  # importable but not a distribution: nothing to compare
        return
    numbers = tuple(int(n) for n in found.split(".")[:2] if n.isdigit())
    if numbers < MIN_SDK:
        raise EnvironmentMissingError(
            f"multihome cloud needs openstacksdk 4.0 or newer, found {found}; install a newer "
            "one with `pip install 'multihome[cloud]'` (the guest commands do not need it)"
        )


def connect(os_cloud: str | None, counter: CallCounter | None = None) -> Any:
    """An openstacksdk Connection for ``os_cloud`` (or OS_CLOUD / OS_* variables)."""
    try:
        import openstack
        import openstack.config
        import openstack.exceptions
    except ImportError as exc:
        raise EnvironmentMissingError(
            "multihome cloud needs openstacksdk 4.0 or newer; install it with `pip install "
            "'multihome[cloud]'` (Debian 12's python3-openstacksdk 0.101 is too old)"
        ) from exc
    check_sdk_version()
    from keystoneauth1.exceptions.auth_plugins import MissingRequiredOptions

    try:
        conn = openstack.connect(cloud=os_cloud, load_envvars=True, load_yaml_config=True)
    except openstack.exceptions.ConfigException as exc:
        # the message names the cloud and the files searched, never a secret
        from multihome.cloud.secrets import check_clouds_yaml

        broken = "".join(f"; {problem}" for problem in check_clouds_yaml())
        raise InputError(
            f"no usable OpenStack credentials ({_first_line(exc)}{broken}); pass --os-cloud "
            f"NAME for an entry of clouds.yaml ({', '.join(clouds_yaml_paths())}), set OS_CLOUD, "
            "or source an openrc file (OS_AUTH_URL, OS_USERNAME, ...)"
        ) from exc
    except MissingRequiredOptions as exc:  # names options, never their values
        raise InputError(not_configured(os_cloud, exc)) from exc
    if counter is not None:
        session = conn.session
        request = session.request

        def counted(*args: Any, **kwargs: Any) -> Any:
            counter.count += 1
            return request(*args, **kwargs)

        session.request = counted  # type: ignore[method-assign]  # count every request
    return conn


def clouds_yaml_paths() -> list[str]:
    """Where openstacksdk looks for clouds.yaml, in its order (``OS_CLIENT_CONFIG_FILE``
    first); the files that exist are marked."""
    import os

    import openstack.config.loader

    override = os.environ.get("OS_CLIENT_CONFIG_FILE")
    found = [override] if override else []
    paths = list(dict.fromkeys([*found, *openstack.config.loader.CONFIG_FILES]))
    return [f"{p} (exists)" if os.path.isfile(p) else p for p in paths]


def not_configured(os_cloud: str | None, exc: BaseException) -> str:
    """Why no cloud could be used: which cloud entry (or none), and where clouds.yaml was
    looked for. ``exc`` is keystoneauth's MissingRequiredOptions (option names only)."""
    import os

    options = ", ".join(getattr(o, "dest", str(o)) for o in getattr(exc, "options", ()))
    looked = "; ".join(clouds_yaml_paths())
    if os_cloud is None and os.environ.get("OS_AUTH_URL"):
        return (
            f"the OS_* variables lack {options or 'an auth option'} (no --os-cloud or "
            "OS_CLOUD given); source a complete openrc file, or pass --os-cloud NAME for an "
            f"entry of a clouds.yaml in: {looked}"
        )
    if os_cloud is None:
        return (
            "no cloud is configured: no --os-cloud, no OS_CLOUD and no OS_AUTH_URL "
            f"(openstacksdk is missing {options or 'auth_url'}); clouds.yaml was looked "
            f"for in: {looked}. Pass --os-cloud NAME for an entry of a clouds.yaml there, "
            "set OS_CLOUD, or source an openrc file; `multihome cloud validate -f FILE` "
            "checks a topology without a cloud"
        )
    where = "OS_CLOUD" if os.environ.get("OS_CLOUD") == os_cloud else "--os-cloud"
    return (
        f"{where} {os_cloud}: the cloud entry lacks {options or 'auth_url'} (clouds.yaml "
        f"looked for in: {looked}); add it to the entry's auth: section"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def has_compute(conn: Any) -> bool:
    """Whether the cloud's catalogue (or an override) offers a compute endpoint."""
    try:
        return bool(conn.endpoint_for("compute"))
    except Exception:  # any failure means "no compute to talk to"
        return False


# -- conversion ----------------------------------------------------------------------------


def _tags(res: Any) -> tuple[str, ...]:
    return tuple(sorted(getattr(res, "tags", None) or ()))


def to_network(res: Any) -> FoundNetwork:
    return FoundNetwork(
        id=res.id,
        name=res.name or "",
        tags=_tags(res),
        description=res.description or "",
        port_security=bool(
            res.is_port_security_enabled if res.is_port_security_enabled is not None else True
        ),
        external=bool(res.is_router_external),
    )


def to_subnet(res: Any) -> FoundSubnet:
    return FoundSubnet(
        id=res.id,
        name=res.name or "",
        tags=_tags(res),
        description=res.description or "",
        network_id=res.network_id,
        cidr=res.cidr,
        gateway_ip=res.gateway_ip or None,
        dhcp=bool(res.is_dhcp_enabled),
        dns_nameservers=tuple(res.dns_nameservers or ()),
        ipv6_ra_mode=res.ipv6_ra_mode or None,
        ipv6_address_mode=res.ipv6_address_mode or None,
    )


def to_rule(raw: Any) -> FoundRule:
    data: dict[str, Any] = raw if isinstance(raw, dict) else raw.to_dict()
    return FoundRule(
        id=str(data["id"]),
        direction=str(data["direction"]),
        ethertype=str(data["ethertype"]),
        protocol=data.get("protocol"),
        port_min=data.get("port_range_min"),
        port_max=data.get("port_range_max"),
        remote_ip_prefix=data.get("remote_ip_prefix"),
        remote_group_id=data.get("remote_group_id"),
    )


def to_group(res: Any) -> FoundSecurityGroup:
    return FoundSecurityGroup(
        id=res.id,
        name=res.name or "",
        tags=_tags(res),
        description=res.description or "",
        rules=tuple(to_rule(r) for r in res.security_group_rules or ()),
    )


def to_router(res: Any, interfaces: Iterable[str] = ()) -> FoundRouter:
    gw = res.external_gateway_info or {}
    return FoundRouter(
        id=res.id,
        name=res.name or "",
        tags=_tags(res),
        description=res.description or "",
        external_network_id=gw.get("network_id"),
        interface_subnet_ids=tuple(sorted(interfaces)),
    )


def to_port(res: Any) -> FoundPort:
    return FoundPort(
        id=res.id,
        name=res.name or "",
        tags=_tags(res),
        network_id=res.network_id,
        fixed_ips=tuple((f["subnet_id"], f["ip_address"]) for f in res.fixed_ips or ()),
        security_group_ids=tuple(sorted(res.security_group_ids or ())),
        address_pairs=tuple(
            sorted(
                (p["ip_address"], p.get("mac_address") or res.mac_address)
                for p in res.allowed_address_pairs or ()
            )
        ),
        port_security=bool(
            res.is_port_security_enabled if res.is_port_security_enabled is not None else True
        ),
        mac=res.mac_address or "",
        device_id=res.device_id or "",
        device_owner=res.device_owner or "",
    )


def to_fip(res: Any) -> FoundFloatingIp:
    return FoundFloatingIp(
        id=res.id,
        tags=_tags(res),
        description=res.description or "",
        floating_network_id=res.floating_network_id,
        address=res.floating_ip_address,
        port_id=res.port_id or None,
        fixed_ip=res.fixed_ip_address or None,
    )


def to_server(res: Any) -> FoundServer:
    flavor = res.flavor or {}
    image = res.image or {}
    flavor_name = (
        flavor.get("original_name") or flavor.get("name")
        if isinstance(flavor, dict)
        else getattr(flavor, "name", None)
    )
    image_id = image.get("id") if isinstance(image, dict) else getattr(image, "id", None)
    drive = res.has_config_drive
    return FoundServer(
        id=res.id,
        name=res.name or "",
        tags=_tags(res),
        status=str(res.status or ""),
        image_id=image_id,
        flavor_name=flavor_name,
        key_name=res.key_name or None,
        config_drive=drive in (True, "True", "true", "1"),
    )


# -- network -------------------------------------------------------------------------------


class NetworkApi:
    """Neutron through an openstacksdk network proxy (``conn.network``)."""

    def __init__(self, proxy: Any) -> None:
        self.proxy = proxy

    # reads: one list call each
    def networks(self, **query: Any) -> list[FoundNetwork]:
        return [to_network(r) for r in self.proxy.networks(**query)]

    def subnets(self, **query: Any) -> list[FoundSubnet]:
        return [to_subnet(r) for r in self.proxy.subnets(**query)]

    def security_groups(self, **query: Any) -> list[FoundSecurityGroup]:
        return [to_group(r) for r in self.proxy.security_groups(**query)]

    def routers(self, **query: Any) -> list[Any]:
        return list(self.proxy.routers(**query))

    def ports(self, **query: Any) -> list[FoundPort]:
        return [to_port(r) for r in self.proxy.ports(**query)]

    def floating_ips(self, **query: Any) -> list[FoundFloatingIp]:
        return [to_fip(r) for r in self.proxy.ips(**query)]

    # writes
    def create(self, kind: str, **attrs: Any) -> Any:
        """Create and return the openstacksdk resource (convert it with ``to_*``)."""
        return getattr(self.proxy, CREATE[kind])(**attrs)

    def update(self, kind: str, res_id: str, **attrs: Any) -> Any:
        return getattr(self.proxy, UPDATE[kind])(res_id, **attrs)

    def delete(self, kind: str, res_id: str) -> None:
        getattr(self.proxy, DELETE[kind])(res_id, ignore_missing=True)

    def add_tag(self, kind: str, res_id: str, tag: str) -> None:
        res = RESOURCE[kind](self.proxy)(id=res_id)
        self.proxy.add_tag(res, tag)

    def add_router_interface(self, router_id: str, subnet_id: str) -> None:
        self.proxy.add_interface_to_router(router_id, subnet=subnet_id)

    def remove_router_interface(self, router_id: str, subnet_id: str) -> None:
        self.proxy.remove_interface_from_router(router_id, subnet=subnet_id)


CREATE = {
    "network": "create_network",
    "subnet": "create_subnet",
    "security-group": "create_security_group",
    "rule": "create_security_group_rule",
    "router": "create_router",
    "port": "create_port",
    "floating-ip": "create_ip",
}
UPDATE = {
    "network": "update_network",
    "subnet": "update_subnet",
    "security-group": "update_security_group",
    "router": "update_router",
    "port": "update_port",
    "floating-ip": "update_ip",
}
DELETE = {
    "network": "delete_network",
    "subnet": "delete_subnet",
    "security-group": "delete_security_group",
    "rule": "delete_security_group_rule",
    "router": "delete_router",
    "port": "delete_port",
    "floating-ip": "delete_ip",
}


def _resource_class(module: str, name: str) -> Callable[[Any], Any]:
    def get(_proxy: Any) -> Any:
        import importlib

        return getattr(importlib.import_module(f"openstack.network.v2.{module}"), name)

    return get


RESOURCE: dict[str, Callable[[Any], Any]] = {
    "network": _resource_class("network", "Network"),
    "subnet": _resource_class("subnet", "Subnet"),
    "security-group": _resource_class("security_group", "SecurityGroup"),
    "router": _resource_class("router", "Router"),
    "port": _resource_class("port", "Port"),
    "floating-ip": _resource_class("floating_ip", "FloatingIP"),
}


# -- compute -------------------------------------------------------------------------------


class ComputeApi:
    """Nova (and Glance for image names) through openstacksdk proxies."""

    def __init__(
        self, compute: Any, image: Any, *, poll: float = 1.0, timeout: float = 600.0
    ) -> None:
        self.compute = compute
        self.image = image
        self.poll = poll
        self.timeout = timeout

    def servers(self, tag: str) -> list[FoundServer]:
        return [to_server(s) for s in self.compute.servers(details=True, tags=tag)]

    def image_id(self, name: str) -> str:
        """The image named (or with the id) ``name``. Not ``find_image``: openstacksdk's
        Image.find looks the name up with the deprecated ``ignore_missing=True`` whatever it
        is given; a list by name, then a get by id, as the deprecation asks."""
        import openstack.exceptions

        named = list(self.image.images(name=name))
        if len(named) > 1:
            raise CloudError(
                f"image {name!r}: {len(named)} images have this name; give the server's "
                "'image:' as an id (`openstack image list --name NAME`)"
            )
        if named:
            return str(named[0].id)
        return _found_id(
            lambda ident, ignore_missing: self.image.get_image(ident),
            name,
            f"image {name!r} not found; list them with `openstack image list` and fix the "
            "server's 'image:'",
            (openstack.exceptions.BadRequestException,),
        )

    def flavor_id(self, name: str) -> str:
        return _found_id(
            self.compute.find_flavor,
            name,
            f"flavor {name!r} not found; list them with `openstack flavor list` and fix the "
            "server's 'flavor:'",
        )

    def create_server(
        self,
        *,
        name: str,
        image_id: str,
        flavor_id: str,
        port_ids: list[str],
        key_name: str | None,
        config_drive: bool,
        user_data: str | None,
        tags: list[str],
    ) -> str:
        attrs: dict[str, Any] = {
            "name": name,
            "image_id": image_id,
            "flavor_id": flavor_id,
            "networks": [{"port": p} for p in port_ids],
            "config_drive": config_drive,
            "tags": tags,
        }
        if key_name:
            attrs["key_name"] = key_name
        if user_data is not None:
            attrs["user_data"] = base64.b64encode(user_data.encode()).decode()
        server = self.compute.create_server(**attrs)
        try:
            self.compute.wait_for_server(
                server, status="ACTIVE", interval=self.poll, wait=self.timeout
            )
        except Exception as exc:
            if type(exc).__name__ != "ResourceFailure":
                raise
            raise ServerBootError(str(server.id), self._fault(server.id)) from exc
        return str(server.id)

    def _fault(self, server_id: str) -> str:
        """Nova's reason for a server in ERROR (its ``fault``), or a hint where to look."""
        try:
            fault = self.compute.get_server(server_id).fault or {}
        except Exception:  # the reason is a courtesy; the failure is reported anyway
            fault = {}
        message = str(fault.get("message") or "").strip() if isinstance(fault, dict) else ""
        if not message:
            return "no reason given"
        code = fault.get("code")
        return f"{message} ({code})" if code else message

    def attach_port(self, server_id: str, port_id: str) -> None:
        self.compute.create_server_interface(server_id, port_id=port_id)

    def delete_server(self, server_id: str) -> None:
        server = self.compute.get_server(server_id)
        self.compute.delete_server(server, ignore_missing=True)
        self.compute.wait_for_delete(server, interval=self.poll, wait=self.timeout)


def _found_id(
    find: Callable[..., Any],
    name: str,
    missing: str,
    also: tuple[type[Exception], ...] = (),
) -> str:
    """The id of what ``find`` (an openstacksdk ``find_*``) finds by name or id, or a
    CloudError saying ``missing``. ``ignore_missing=False`` and the exception, as
    openstacksdk asks (its default ``True`` is deprecated and becomes ``False`` in 6.0);
    ``also``: other exceptions that mean "not there"."""
    import openstack.exceptions

    absent: tuple[type[Exception], ...] = (openstack.exceptions.NotFoundException, *also)
    try:
        return str(find(name, ignore_missing=False).id)
    except absent as exc:
        raise CloudError(missing) from exc


# -- reading the state ---------------------------------------------------------------------


def read_state(net: NetworkApi, compute: ComputeApi | None, topology: Topology) -> CloudState:
    """What the cloud holds for ``topology``: one list call per resource type, plus name
    look-ups only for what is missing or undeclared."""
    tag = topology.tag
    networks = net.networks(tags=tag)
    subnets = net.subnets(tags=tag)
    groups = net.security_groups(tags=tag)
    routers_raw = net.routers(tags=tag)
    ports = net.ports(tags=tag)
    fips = net.floating_ips(tags=tag)
    untagged: list[Untagged] = []

    def look_for(
        kind: str, declared: Iterable[str], found: Iterable[Any], lister: Callable[..., list[Any]]
    ) -> None:
        missing = sorted(set(declared) - {f.name for f in found})
        if missing:
            for res in lister(name=missing if len(missing) > 1 else missing[0]):
                if tag not in res.tags and res.name in missing:
                    untagged.append(
                        Untagged(kind, res.name, res.id, getattr(res, "description", ""))
                    )

    look_for("network", (n.name for n in topology.networks), networks, net.networks)
    look_for("subnet", (s.name for s in topology.subnets), subnets, net.subnets)
    look_for(
        "security-group", (g.name for g in topology.security_groups), groups, net.security_groups
    )
    routers_found = [to_router(r) for r in routers_raw]
    look_for(
        "router",
        (r.name for r in topology.routers),
        routers_found,
        lambda **q: [to_router(r) for r in net.routers(**q)],
    )

    refs = topology.references()
    ext_networks = _find_undeclared(
        set(refs.networks),
        net.networks,
        topology.source,
        "network",
        "networks:",
        " (list them with `openstack network list`)",
    )
    ext_subnets = _find_undeclared(
        set(refs.subnets), net.subnets, topology.source, "subnet", "networks:"
    )
    ext_groups = _find_undeclared(
        set(refs.security_groups),
        net.security_groups,
        topology.source,
        "security group",
        "security_groups:",
        optional={"default"},
    )
    interfaces: dict[str, set[str]] = {}
    ext_router_subnets: set[str] = set()
    if topology.routers or any(p.floating_ip for p in topology.ports):
        for port in net.ports(device_owner=list(ROUTER_INTERFACE_OWNERS)):
            for subnet_id, _ip in port.fixed_ips:
                interfaces.setdefault(port.device_id, set()).add(subnet_id)
                ext_router_subnets.add(subnet_id)
    routers = [to_router(r, interfaces.get(r.id, ())) for r in routers_raw]
    port_fips: list[FoundFloatingIp] = []
    our_port_ids = {
        p.id for p in ports if any(tp.name == p.name and tp.floating_ip for tp in topology.ports)
    }
    have_fip = {f.port_id for f in fips}
    if our_port_ids - have_fip:
        port_fips = [
            f
            for f in net.floating_ips(port_id=sorted(our_port_ids - have_fip))
            if tag not in f.tags
        ]
    servers: list[FoundServer] = []
    if compute is not None and topology.servers:
        servers = compute.servers(tag)
    return CloudState(
        tag=tag,
        networks=tuple(networks),
        subnets=tuple(subnets),
        security_groups=tuple(groups),
        routers=tuple(routers),
        ports=tuple(ports),
        floating_ips=tuple(fips),
        servers=tuple(servers),
        untagged=tuple(untagged),
        ext_networks=ext_networks,
        ext_subnets=ext_subnets,
        ext_groups=ext_groups,
        ext_router_subnet_ids=frozenset(ext_router_subnets),
        port_fips=tuple(port_fips),
        compute=compute is not None,
    )


def read_owned(net: NetworkApi, compute: ComputeApi | None, tag: str) -> CloudState:
    """Every resource carrying ``tag`` (for ``destroy``)."""
    routers_raw = net.routers(tags=tag)
    interfaces: dict[str, set[str]] = {}
    if routers_raw:
        for port in net.ports(
            device_owner=list(ROUTER_INTERFACE_OWNERS), device_id=[r.id for r in routers_raw]
        ):
            for subnet_id, _ip in port.fixed_ips:
                interfaces.setdefault(port.device_id, set()).add(subnet_id)
    return CloudState(
        tag=tag,
        networks=tuple(net.networks(tags=tag)),
        subnets=tuple(net.subnets(tags=tag)),
        security_groups=tuple(net.security_groups(tags=tag)),
        routers=tuple(to_router(r, interfaces.get(r.id, ())) for r in routers_raw),
        ports=tuple(net.ports(tags=tag)),
        floating_ips=tuple(net.floating_ips(tags=tag)),
        servers=tuple(compute.servers(tag)) if compute is not None else (),
        compute=compute is not None,
    )


_Found = TypeVar("_Found", FoundNetwork, FoundSubnet, FoundSecurityGroup)


def _find_undeclared(
    names: set[str],
    lister: Callable[..., Iterable[_Found]],
    source: str,
    kind: str,
    section: str,
    hint: str = "",
    optional: frozenset[str] | set[str] = frozenset(),
) -> dict[str, _Found]:
    """Resources the topology names but does not declare, found in the cloud by name (first
    of each name); one that is missing (and not ``optional``) is bad input."""
    found: dict[str, _Found] = {}
    if not names:
        return found
    for item in lister(name=sorted(names)):
        found.setdefault(item.name, item)
    unknown = sorted(names - set(found) - set(optional))
    if unknown:
        raise InputError(
            f"{source}: {kind} {unknown[0]!r} is neither declared under {section} nor found "
            f"in the cloud; declare it, or fix the name{hint}"
        )
    return found
