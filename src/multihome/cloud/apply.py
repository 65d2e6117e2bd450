"""Execute a cloud plan, step by step, and translate the cloud's refusals.

Every creation carries the topology's tag (added right after the creation, Neutron ignores
tags in the request; the description carries a marker in between), so a run that stops midway leaves
resources the next ``apply`` finds and completes. Steps dispatch through :data:`HANDLERS`,
keyed by (kind, verb).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from multihome.cloud import desired
from multihome.cloud.client import ComputeApi, NetworkApi, ServerBootError, to_fip, to_port
from multihome.cloud.plan import Action, CloudPlan
from multihome.cloud.state import CloudState, FoundFloatingIp, FoundPort, marker
from multihome.cloud.topology import PortSpec, Router, SecurityGroup, Topology
from multihome.errors import CloudError

#: progress(action, "start" | "done", seconds)
Progress = Callable[[Action, str, float], None]


@dataclass(frozen=True)
class PortResult:
    """One row of the result table."""

    server: str | None
    port: str
    fixed_ips: tuple[str, ...]
    floating_ip: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "port": self.port,
            "fixed_ips": list(self.fixed_ips),
            "floating_ip": self.floating_ip,
        }


@dataclass(frozen=True)
class ApplyResult:
    applied: int
    ports: tuple[PortResult, ...]


@dataclass
class Executor:
    """Runs the actions of one plan against the cloud."""

    topology: Topology | None
    state: CloudState
    net: NetworkApi
    compute: ComputeApi | None
    progress: Progress | None = None
    ids: dict[tuple[str, str], str] = field(default_factory=dict)
    ports: dict[str, FoundPort] = field(default_factory=dict)
    fips: dict[str, FoundFloatingIp] = field(default_factory=dict)

    def __post_init__(self) -> None:
        st = self.state
        for net in (*st.ext_networks.values(), *st.networks):
            self.ids[("network", net.name)] = net.id
        for sub in (*st.ext_subnets.values(), *st.subnets):
            self.ids[("subnet", sub.name)] = sub.id
        for group in (*st.ext_groups.values(), *st.security_groups):
            self.ids[("security-group", group.name)] = group.id
        for router in st.routers:
            self.ids[("router", router.name)] = router.id
        for port in st.ports:
            self.ids[("port", port.name)] = port.id
            self.ports[port.name] = port
        for server in st.servers:
            self.ids[("server", server.name)] = server.id
        names = {p.id: p.name for p in st.ports}
        for fip in st.floating_ips:
            if fip.port_id in names:
                self.fips[names[fip.port_id]] = fip

    @property
    def tag(self) -> str:
        return self.state.tag

    @property
    def marker(self) -> str:
        return marker(self.tag)

    def id_of(self, kind: str, name: str) -> str:
        try:
            return self.ids[(kind, name)]
        except KeyError:
            raise CloudError(
                f"{kind} {name}: not found in the cloud; it should have been "
                "created earlier in this run (run apply again)"
            ) from None

    def run(self, plan: CloudPlan) -> int:
        done = 0
        for action in plan.actions:
            handler = HANDLERS.get((action.kind, action.verb))
            if handler is None:
                raise CloudError(f"no way to {action.verb} a {action.kind} (internal error)")
            if self.progress is not None:
                self.progress(action, "start", 0.0)
            started = time.monotonic()
            try:
                handler(self, action)
            except CloudError:
                raise
            except Exception as exc:
                raise translate(exc, action, self, done, len(plan.actions)) from exc
            done += 1
            if self.progress is not None:
                self.progress(action, "done", time.monotonic() - started)
        return done

    def result(self) -> tuple[PortResult, ...]:
        rows = []
        if self.topology is None:
            return ()
        for port in self.topology.ports:
            found = self.ports.get(port.name)
            fip = self.fips.get(port.name)
            rows.append(
                PortResult(
                    server=port.server,
                    port=port.name,
                    fixed_ips=tuple(ip for _, ip in found.fixed_ips) if found else (),
                    floating_ip=fip.address if fip else None,
                )
            )
        return tuple(rows)

    # -- desired payloads ------------------------------------------------------------------
    def topo(self) -> Topology:
        assert self.topology is not None, "apply needs a topology"
        return self.topology

    def port_spec(self, name: str) -> PortSpec:
        return next(p for p in self.topo().ports if p.name == name)

    def port_attrs(self, port: PortSpec, *, create: bool) -> dict[str, Any]:
        return desired.port(port, self.tag, self.id_of, create=create)


# -- handlers ------------------------------------------------------------------------------


def _tag(ex: Executor, action: Action) -> None:
    assert action.id is not None
    ex.net.add_tag(action.kind, action.id, ex.tag)
    if action.kind in ("network", "subnet", "security-group", "router", "port"):
        ex.ids[(action.kind, action.name)] = action.id
    if action.kind == "floating-ip":
        found = ex.state.port_fips
        fip = next(f for f in found if f.id == action.id)
        ex.fips[action.name] = fip


def _create_then_tag(ex: Executor, kind: str, **attrs: Any) -> Any:
    res = ex.net.create(kind, **attrs)
    ex.net.add_tag(kind, res.id, ex.tag)
    ex.ids[(kind, attrs["name"])] = res.id
    return res


def _create_network(ex: Executor, action: Action) -> None:
    net = ex.topo().network(action.name)
    assert net is not None
    _create_then_tag(ex, "network", **desired.network(net, ex.tag))


def _update_network(ex: Executor, action: Action) -> None:
    net = ex.topo().network(action.name)
    assert net is not None and action.id is not None
    ex.net.update("network", action.id, port_security_enabled=net.port_security)


def _create_subnet(ex: Executor, action: Action) -> None:
    sub = ex.topo().subnet(action.name)
    assert sub is not None
    _create_then_tag(ex, "subnet", **desired.subnet(sub, ex.tag, ex.id_of))


def _update_subnet(ex: Executor, action: Action) -> None:
    assert action.id is not None
    sub = ex.topo().subnet(action.name)
    assert sub is not None
    ex.net.update("subnet", action.id, **desired.subnet_settings(sub))


def _group(ex: Executor, name: str) -> SecurityGroup:
    group = ex.topo().security_group(name)
    assert group is not None
    return group


def _create_group(ex: Executor, action: Action) -> None:
    attrs = desired.security_group(_group(ex, action.name), ex.tag)
    _create_then_tag(ex, "security-group", **attrs)


def _update_group(ex: Executor, action: Action) -> None:
    assert action.id is not None
    description = desired.group_description(_group(ex, action.name), ex.tag)
    ex.net.update("security-group", action.id, description=description)


def _create_rule(ex: Executor, action: Action) -> None:
    group = _group(ex, action.name)
    rule = next(r for r in group.all_rules if r.describe() == action.target)
    ex.net.create("rule", **desired.rule(group, rule, ex.id_of))


def _delete(ex: Executor, action: Action) -> None:
    assert action.id is not None
    ex.net.delete(action.kind, action.id)
    if action.kind == "floating-ip":
        ex.fips.pop(action.name, None)


def _router(ex: Executor, name: str) -> Router:
    return next(r for r in ex.topo().routers if r.name == name)


def _create_router(ex: Executor, action: Action) -> None:
    _create_then_tag(ex, "router", **desired.router(_router(ex, action.name), ex.tag, ex.id_of))


def _update_router(ex: Executor, action: Action) -> None:
    assert action.id is not None
    gateway = desired.router_gateway(_router(ex, action.name), ex.id_of)
    ex.net.update("router", action.id, external_gateway_info=gateway or {})


def _attach_interface(ex: Executor, action: Action) -> None:
    assert action.target is not None
    ex.net.add_router_interface(ex.id_of("router", action.name), ex.id_of("subnet", action.target))


def _detach_interface(ex: Executor, action: Action) -> None:
    assert action.target is not None
    router_id = action.id or ex.id_of("router", action.name)
    subnet_id = (
        action.target[3:]
        if action.target.startswith("id:")
        else ex.ids.get(("subnet", action.target))
        or next(s.id for s in ex.state.subnets if s.name == action.target)
    )
    ex.net.remove_router_interface(router_id, subnet_id)


def _create_port(ex: Executor, action: Action) -> None:
    res = _create_then_tag(ex, "port", **ex.port_attrs(ex.port_spec(action.name), create=True))
    ex.ports[action.name] = to_port(res)


def _update_port(ex: Executor, action: Action) -> None:
    assert action.id is not None
    res = ex.net.update("port", action.id, **ex.port_attrs(ex.port_spec(action.name), create=False))
    ex.ports[action.name] = to_port(res)


def _create_server(ex: Executor, action: Action) -> None:
    if ex.compute is None:
        raise CloudError(
            f"server {action.name}: the cloud offers no compute endpoint; check "
            "the cloud's catalogue, or apply with --network-only"
        )
    server = next(s for s in ex.topo().servers if s.name == action.name)
    attrs = desired.server(ex.topo(), server, ex.tag, ex.id_of)
    server_id = ex.compute.create_server(
        name=attrs["name"],
        image_id=ex.compute.image_id(attrs["image"]),
        flavor_id=ex.compute.flavor_id(attrs["flavor"]),
        port_ids=attrs["port_ids"],
        key_name=attrs["key_name"],
        config_drive=attrs["config_drive"],
        user_data=attrs["user_data"],
        tags=attrs["tags"],
    )
    ex.ids[("server", server.name)] = server_id


def _attach_port(ex: Executor, action: Action) -> None:
    if ex.compute is None:
        raise CloudError(f"server {action.name}: the cloud offers no compute endpoint")
    assert action.target is not None
    ex.compute.attach_port(ex.id_of("server", action.name), ex.id_of("port", action.target))


def _delete_server(ex: Executor, action: Action) -> None:
    if ex.compute is None:
        raise CloudError(f"server {action.name}: the cloud offers no compute endpoint")
    assert action.id is not None
    ex.compute.delete_server(action.id)


def _create_fip(ex: Executor, action: Action) -> None:
    port = ex.port_spec(action.name)
    res = ex.net.create("floating-ip", **desired.floating_ip(port, ex.tag, ex.id_of))
    ex.net.add_tag("floating-ip", res.id, ex.tag)
    ex.fips[port.name] = to_fip(res)


def _associate_fip(ex: Executor, action: Action) -> None:
    assert action.id is not None
    port = ex.port_spec(action.name)
    attrs: dict[str, Any] = {"port_id": ex.id_of("port", port.name)}
    if port.floating_fixed_ip is not None:
        attrs["fixed_ip_address"] = str(port.floating_fixed_ip)
    ex.fips[port.name] = to_fip(ex.net.update("floating-ip", action.id, **attrs))


Handler = Callable[[Executor, Action], None]
HANDLERS: dict[tuple[str, str], Handler] = {
    ("network", "create"): _create_network,
    ("network", "update"): _update_network,
    ("network", "tag"): _tag,
    ("network", "delete"): _delete,
    ("subnet", "create"): _create_subnet,
    ("subnet", "update"): _update_subnet,
    ("subnet", "tag"): _tag,
    ("subnet", "delete"): _delete,
    ("security-group", "create"): _create_group,
    ("security-group", "update"): _update_group,
    ("security-group", "tag"): _tag,
    ("security-group", "delete"): _delete,
    ("rule", "create"): _create_rule,
    ("rule", "delete"): _delete,
    ("router", "create"): _create_router,
    ("router", "update"): _update_router,
    ("router", "tag"): _tag,
    ("router", "delete"): _delete,
    ("router-interface", "attach"): _attach_interface,
    ("router-interface", "detach"): _detach_interface,
    ("port", "create"): _create_port,
    ("port", "update"): _update_port,
    ("port", "delete"): _delete,
    ("server", "create"): _create_server,
    ("server", "delete"): _delete_server,
    ("server-port", "attach"): _attach_port,
    ("floating-ip", "create"): _create_fip,
    ("floating-ip", "update"): _associate_fip,
    ("floating-ip", "tag"): _tag,
    ("floating-ip", "delete"): _delete,
}


def execute(
    plan: CloudPlan,
    state: CloudState,
    net: NetworkApi,
    compute: ComputeApi | None,
    topology: Topology | None,
    *,
    progress: Progress | None = None,
) -> ApplyResult:
    """Run ``plan``; raise :class:`CloudError` (translated) on the first refusal."""
    ex = Executor(topology=topology, state=state, net=net, compute=compute, progress=progress)
    applied = ex.run(plan)
    return ApplyResult(applied=applied, ports=ex.result())


# -- translation of the cloud's refusals ---------------------------------------------------


def _message(exc: BaseException) -> str:
    details = getattr(exc, "details", None)
    text = str(details or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def translate(
    exc: Exception, action: Action, ex: Executor | None, done: int, total: int
) -> CloudError:
    """A :class:`CloudError` that says what the cloud refused and what to do about it."""
    # openstacksdk's HTTP errors say status_code; keystoneauth's (Keystone answered) http_status
    status = getattr(exc, "status_code", None) or getattr(exc, "http_status", None)
    text = _message(exc)
    lower = text.lower()
    where = f"{action.verb} {action.label}"
    progress = (
        f"\n{done} of {total} step(s) were done; fix the cause and run apply again: "
        "it finds what was created (by its tag) and does only the rest"
        if total
        else ""
    )
    if status == 404 and ("not reachable" in lower or "external network" in lower):
        return CloudError(_no_router_message(action, ex, text) + progress)
    if status == 409 and "port security must be enabled" in lower:
        port = action.target if action.kind == "server-port" else action.name
        return CloudError(
            f"{where}: port {port} has port security disabled, and Neutron only accepts "
            "allowed address pairs on a port with port security (409). Enable it "
            f"(`port_security: true` in the topology, or `openstack port set "
            f"--enable-port-security {port}`), or drop the address pairs: with port security "
            f"off the port already passes any source address." + progress
        )
    if status == 409 and "in use" in lower:
        return CloudError(
            f"{where}: still in use by something multihome did not create ({text}); remove "
            "or move that (e.g. `openstack port list --network NAME`) and run the command "
            "again" + progress
        )
    if status == 409 and "floating ip" in lower and "already" in lower:
        return CloudError(
            f"{where}: {text}; the port already has a floating IP that is not "
            "managed by multihome: release it or drop floating_ip from the "
            "topology" + progress
        )
    if status == 400 and action.kind == "floating-ip" and "ipv4" in lower:
        return CloudError(
            f"{where}: Neutron's floating IPs are IPv4 only and the port has no IPv4 address "
            f"(400: {text}). IPv6 has no floating IPs: the port's global IPv6 address is "
            "reached directly through the router that has an interface on its subnet, once a "
            "security group admits it (ethertype IPv6); drop the floating IP, or give the port "
            "an IPv4 address too" + progress
        )
    if status in (403, 409, 413) and "quota" in lower:
        # Nova says 403 (older: 413), Neutron 409; neither is about the credentials
        return CloudError(
            f"{where}: the project's quota is used up ({status}: {text}); delete what is no "
            "longer needed or ask for a larger quota (`openstack quota show`), then run "
            "apply again" + progress
        )
    if status in (401, 403):
        return CloudError(
            f"{where}: the cloud refused the credentials or the permission "
            f"({status}); check the cloud entry (--os-cloud / OS_CLOUD) and "
            "the project's roles" + progress
        )
    if isinstance(exc, ServerBootError):
        return CloudError(
            f"{where}: Nova could not boot it: {exc.fault}. The server stays, in ERROR, and "
            "the next apply deletes it and boots it again from the same ports: fix the cause "
            f"first (see `openstack server show {action.name} -c fault`; 'No valid host' means "
            "no compute host has room for the flavor or the image)" + progress
        )
    if status == 400 and action.kind == "server" and "key_name" in lower:
        key = _server_key(ex, action.name)
        return CloudError(
            f"{where}: Nova has no key pair {key} in this project (400: {text}); create it "
            f"with `openstack keypair create --public-key ~/.ssh/id_ed25519.pub {key}`, or fix "
            "the server's 'key_name:'" + progress
        )
    if status is None and exc.__class__.__module__.startswith(
        ("keystoneauth1", "requests", "urllib3")
    ):
        kind = type(exc).__name__
        if "Unauthorized" in kind or "Auth" in kind:
            return CloudError(
                f"{where}: the cloud refused the credentials ({kind}); check "
                "the cloud entry (--os-cloud / OS_CLOUD)" + progress
            )
        return CloudError(
            f"{where}: cannot reach the cloud ({kind}); check the network and "
            "the auth_url / endpoint of the cloud entry" + progress
        )
    if status is None and exc.__class__.__module__.startswith("openstack"):
        return CloudError(f"{where}: {text}" + progress)
    if status is None:
        raise exc
    return CloudError(f"{where}: the cloud refused ({status}): {text}" + progress)


def _server_key(ex: Executor | None, name: str) -> str:
    if ex is not None and ex.topology is not None:
        for server in ex.topology.servers:
            if server.name == name and server.key_name:
                return server.key_name
    return "KEY"


def _no_router_message(action: Action, ex: Executor | None, text: str) -> str:
    port_name = action.target if action.kind == "server-port" else action.name
    spec = None
    if ex is not None and ex.topology is not None:
        spec = next((p for p in ex.topology.ports if p.name == port_name), None)
    subnet = spec.floating_subnet if spec is not None and spec.floating_subnet else "SUBNET"
    external = spec.floating_ip if spec is not None and spec.floating_ip else "EXTERNAL"
    router = None
    if ex is not None and ex.topology is not None:
        router = next((r.name for r in ex.topology.routers if r.external_network == external), None)
    fix = (
        f"add {subnet} to the subnets of router {router} in the topology"
        if router
        else f"add a router to the topology: '- {{name: ROUTER, external_network: {external}, "
        f"subnets: [{subnet}]}}'"
    )
    return (
        f"floating IP for port {port_name}: Neutron cannot reach external network "
        f"{external} from subnet {subnet}, because no router connects them (404: {text}). "
        f"Add a router interface on {subnet} to a router whose gateway is on {external}: "
        f"{fix}, or `openstack router add subnet {router or 'ROUTER'} {subnet}`."
    )
