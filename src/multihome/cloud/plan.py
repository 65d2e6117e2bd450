"""The cloud plan: desired (topology) minus found (state), as ordered actions. Pure.

Actions come in dependency order (networks, subnets, security groups and rules, routers and
their interfaces, ports, servers, port attachments, floating IPs); ``destroy`` plans the
reverse. Differences Neutron cannot change in place (a subnet's CIDR, a port's network) are
conflicts: the plan refuses, naming the resource and the way out, and nothing is changed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from multihome.cloud.state import (
    CloudState,
    FoundPort,
    FoundRule,
    FoundSecurityGroup,
    marker,
)
from multihome.cloud.topology import PortSpec, SecurityRule, Topology, nd_note
from multihome.errors import CloudConflictError

#: Creation order; ``destroy`` walks it backwards.
KINDS = (
    "network",
    "subnet",
    "security-group",
    "rule",
    "router",
    "router-interface",
    "port",
    "server",
    "server-port",
    "floating-ip",
)
ROUTER_INTERFACE_OWNERS = (
    "network:router_interface",
    "network:router_interface_distributed",
    "network:ha_router_replicated_interface",
)


SIGNS = {
    "create": "+",
    "update": "~",
    "tag": "~",
    "attach": "+",
    "detach": "-",
    "delete": "-",
    "keep": "=",
}


@dataclass(frozen=True)
class Action:
    """One step of a plan."""

    verb: str
    """create, update, tag (finish an interrupted creation), attach, detach, delete, keep."""
    kind: str
    name: str
    """The resource's name (a floating IP: its port's name; a rule: its group's name)."""
    target: str | None = None
    """What a rule, router interface or attachment is about (rule text, subnet, port)."""
    id: str | None = None
    """The found resource's id (update, tag, delete, detach)."""
    changes: tuple[str, ...] = ()
    """Human-readable differences, e.g. ``gateway_ip: 192.168.0.1 -> none``."""

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}" + (f" {self.target}" if self.target else "")

    def line(self) -> str:
        extra = f" ({'; '.join(self.changes)})" if self.changes else ""
        return f"{SIGNS.get(self.verb, '?')} {self.verb} {self.label}{extra}"

    def to_json(self) -> dict[str, Any]:
        return {
            "verb": self.verb,
            "kind": self.kind,
            "name": self.name,
            "target": self.target,
            "id": self.id,
            "changes": list(self.changes),
        }


@dataclass(frozen=True)
class CloudPlan:
    """Ordered actions plus what the operator should know."""

    actions: tuple[Action, ...]
    warnings: tuple[str, ...] = ()
    kept: tuple[Action, ...] = field(default=())
    """Resources that already match (shown by ``plan``, skipped by ``apply``)."""

    @property
    def empty(self) -> bool:
        return not self.actions

    def lines(self) -> list[str]:
        return [a.line() for a in self.actions]

    def to_json(self) -> dict[str, Any]:
        return {
            "changes": [a.to_json() for a in self.actions],
            "unchanged": [a.to_json() for a in self.kept],
            "warnings": list(self.warnings),
        }


# -- helpers -------------------------------------------------------------------------------


def admits_ingress(
    rules: tuple[SecurityRule, ...] | tuple[FoundRule, ...], ethertype: str | None = None
) -> bool:
    """True when some ingress rule (of ``ethertype``, when given) admits traffic from an
    address range (not only a group)."""
    for rule in rules:
        if rule.direction != "ingress" or ethertype not in (None, rule.ethertype):
            continue
        group = rule.remote_group if isinstance(rule, SecurityRule) else rule.remote_group_id
        if group is None:
            return True
    return False


def rule_key(rule: SecurityRule) -> tuple[object, ...]:
    return (
        rule.direction,
        rule.ethertype,
        rule.protocol,
        rule.port_min,
        rule.port_max,
        rule.remote_ip_prefix,
        rule.remote_group,
    )


def found_rule_key(rule: FoundRule, state: CloudState) -> tuple[object, ...]:
    group = state.group_name(rule.remote_group_id) if rule.remote_group_id else None
    prefix = rule.remote_ip_prefix
    if prefix is not None:
        prefix = str(ipaddress.ip_network(prefix, strict=False))
    proto = rule.protocol
    if proto == "icmpv6":
        proto = "ipv6-icmp"
    return (
        rule.direction,
        rule.ethertype,
        proto,
        rule.port_min,
        rule.port_max,
        prefix,
        group or (rule.remote_group_id and f"id:{rule.remote_group_id}"),
    )


def _by_name(items: tuple[Any, ...], name: str) -> Any:
    return next((i for i in items if i.name == name), None)


def _fmt(value: object) -> str:
    if value is None or value == ():
        return "none"
    if isinstance(value, (list, tuple, set, frozenset)):
        return ",".join(str(v) for v in sorted(value, key=str)) or "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _diff(changes: list[str], key: str, found: object, want: object) -> None:
    if found != want:
        changes.append(f"{key}: {_fmt(found)} -> {_fmt(want)}")


# -- the plan ------------------------------------------------------------------------------


def make_plan(topology: Topology, state: CloudState, *, servers: bool = True) -> CloudPlan:
    """Diff ``topology`` against ``state``. Raises :class:`CloudConflictError` on conflicts."""
    builder = _Builder(topology, state, servers)
    builder.build()
    if builder.conflicts:
        raise CloudConflictError(
            "the cloud holds resources of this topology that cannot be changed in place:\n  "
            + "\n  ".join(builder.conflicts)
            + f"\nnothing was changed; run `multihome cloud destroy -f {topology.source}` and "
            "apply again, or give the resources new names"
        )
    return CloudPlan(
        actions=tuple(builder.actions), warnings=tuple(builder.warnings), kept=tuple(builder.kept)
    )


class _Builder:
    def __init__(self, topology: Topology, state: CloudState, servers: bool) -> None:
        self.topo = topology
        self.state = state
        self.servers = servers
        self.actions: list[Action] = []
        self.kept: list[Action] = []
        self.warnings: list[str] = []
        self.conflicts: list[str] = []
        self.untagged = {(u.kind, u.name): u for u in state.untagged}
        self.marker = marker(topology.tag)

    def add(self, action: Action) -> None:
        (self.kept if action.verb == "keep" else self.actions).append(action)

    def keep_or_update(self, kind: str, name: str, found_id: str, changes: list[str]) -> None:
        """An existing resource: kept as it is, or updated where ``changes`` say it differs."""
        self.add(
            Action("update" if changes else "keep", kind, name, id=found_id, changes=tuple(changes))
        )

    def missing(self, kind: str, name: str) -> None:
        """Create ``name``, or finish an interrupted creation of ours (tag it)."""
        other = self.untagged.get((kind, name))
        if other is not None and self.marker in other.description:
            self.add(
                Action(
                    "tag",
                    kind,
                    name,
                    id=other.id,
                    changes=("finish an interrupted creation: add the tag",),
                )
            )
            return
        if other is not None:
            self.warnings.append(
                f"{kind} {name}: an untagged {kind} with this name exists ({other.id}); "
                f"multihome leaves it alone and creates its own, tagged {self.topo.tag} "
                "(rename one of them to avoid confusion in other tools)"
            )
        self.add(Action("create", kind, name))

    def build(self) -> None:
        self.networks()
        self.subnets()
        self.groups()
        self.routers()
        self.ports()
        if self.servers:
            self.server_actions()
        self.floating_ips()
        self.advice()

    def networks(self) -> None:
        for net in self.topo.networks:
            found = _by_name(self.state.networks, net.name)
            if found is None:
                self.missing("network", net.name)
                continue
            changes: list[str] = []
            _diff(changes, "port_security", found.port_security, net.port_security)
            self.keep_or_update("network", net.name, found.id, changes)

    def subnets(self) -> None:
        for sub in self.topo.subnets:
            found = _by_name(self.state.subnets, sub.name)
            if found is None:
                self.missing("subnet", sub.name)
                continue
            if ipaddress.ip_network(found.cidr, strict=False) != sub.cidr:
                self.conflicts.append(
                    f"subnet {sub.name}: CIDR is {found.cidr}, the topology "
                    f"says {sub.cidr} (Neutron cannot change a CIDR)"
                )
                continue
            if self.state.network_name(found.network_id) != sub.network:
                self.conflicts.append(
                    f"subnet {sub.name}: belongs to another network than {sub.network}"
                )
                continue
            modes = (found.ipv6_ra_mode, found.ipv6_address_mode)
            if modes != (sub.ipv6_ra_mode, sub.ipv6_address_mode):
                self.conflicts.append(
                    f"subnet {sub.name}: ipv6_ra_mode/ipv6_address_mode are "
                    f"{_fmt(modes[0])}/{_fmt(modes[1])}, the topology says "
                    f"{_fmt(sub.ipv6_ra_mode)}/{_fmt(sub.ipv6_address_mode)} (Neutron cannot "
                    "change them)"
                )
                continue
            changes: list[str] = []
            gateway = None if found.gateway_ip is None else ipaddress.ip_address(found.gateway_ip)
            _diff(changes, "gateway_ip", gateway, sub.gateway)
            _diff(changes, "dhcp", found.dhcp, sub.dhcp)
            _diff(
                changes,
                "dns_nameservers",
                set(found.dns_nameservers),
                {str(d) for d in sub.dns_nameservers},
            )
            self.keep_or_update("subnet", sub.name, found.id, changes)

    def groups(self) -> None:
        for group in self.topo.security_groups:
            found: FoundSecurityGroup | None = _by_name(self.state.security_groups, group.name)
            if found is None:
                self.missing("security-group", group.name)
                for rule in group.all_rules:
                    self.add(
                        Action(
                            "create", "rule", group.name, target=rule.describe(), changes=_why(rule)
                        )
                    )
                continue
            want_description = f"{group.description} {self.marker}".strip()
            changes: list[str] = []
            _diff(changes, "description", found.description, want_description)
            self.keep_or_update("security-group", group.name, found.id, changes)
            have = {found_rule_key(r, self.state): r for r in found.rules}
            wanted = {rule_key(r): r for r in group.all_rules}
            manage_egress = any(r.direction == "egress" for r in group.all_rules)
            for key, rule in wanted.items():
                self.add(
                    Action(
                        "keep" if key in have else "create",
                        "rule",
                        group.name,
                        target=rule.describe(),
                        id=have[key].id if key in have else None,
                        changes=_why(rule),
                    )
                )
            for key, found_rule in have.items():
                if key in wanted or (found_rule.direction == "egress" and not manage_egress):
                    continue
                self.add(
                    Action(
                        "delete",
                        "rule",
                        group.name,
                        id=found_rule.id,
                        target=_describe_found(found_rule, self.state),
                    )
                )

    def routers(self) -> None:
        for router in self.topo.routers:
            found = _by_name(self.state.routers, router.name)
            interfaces: set[str] = set()
            if found is None:
                self.missing("router", router.name)
            else:
                changes: list[str] = []
                ext = (
                    self.state.network_name(found.external_network_id)
                    if found.external_network_id
                    else None
                )
                _diff(
                    changes,
                    "external_network",
                    ext or found.external_network_id,
                    router.external_network,
                )
                self.keep_or_update("router", router.name, found.id, changes)
                interfaces = {
                    self.state.subnet_name(s) or f"id:{s}" for s in found.interface_subnet_ids
                }
            for sub in router.subnets:
                verb = "keep" if sub in interfaces else "attach"
                self.add(Action(verb, "router-interface", router.name, target=sub))
            for extra in sorted(interfaces - set(router.subnets)):
                self.add(
                    Action(
                        "detach",
                        "router-interface",
                        router.name,
                        target=extra,
                        id=found.id if found else None,
                    )
                )

    def ports(self) -> None:
        for port in self.topo.ports:
            found: FoundPort | None = _by_name(self.state.ports, port.name)
            if found is None:
                self.add(Action("create", "port", port.name))
                continue
            if self.state.network_name(found.network_id) != port.network:
                self.conflicts.append(
                    f"port {port.name}: is on another network than "
                    f"{port.network} (a port cannot change network)"
                )
                continue
            self.add(self.port_update(port, found))

    def port_update(self, port: PortSpec, found: FoundPort) -> Action:
        changes: list[str] = []
        ips = {(self.state.subnet_name(s), ip) for s, ip in found.fixed_ips}
        for fixed in port.fixed_ips:  # addresses Neutron adds itself (SLAAC) are no change
            if fixed.ip is not None and not any(ip == str(fixed.ip) for _, ip in ips):
                changes.append(f"fixed_ip: {_fmt([ip for _, ip in ips])} -> {fixed.ip}")
            elif fixed.ip is None and not any(s == fixed.subnet for s, _ in ips):
                changes.append(f"subnet: {_fmt([s for s, _ in ips])} -> {fixed.subnet}")
        if port.security_groups is not None:
            have = {self.state.group_name(g) or f"id:{g}" for g in found.security_group_ids}
            _diff(changes, "security_groups", have, set(port.security_groups))
        if port.port_security is not None:
            _diff(changes, "port_security", found.port_security, port.port_security)
        have_pairs = {(ip, mac) for ip, mac in found.address_pairs}
        want_pairs = {(p.ip, p.mac or found.mac) for p in port.allowed_address_pairs}
        _diff(
            changes,
            "allowed_address_pairs",
            {ip for ip, _ in have_pairs},
            {ip for ip, _ in want_pairs},
        )
        if not changes and have_pairs != want_pairs:
            changes.append("allowed_address_pairs: MAC addresses differ")
        return Action(
            "update" if changes else "keep", "port", port.name, id=found.id, changes=tuple(changes)
        )

    def server_actions(self) -> None:
        for server in self.topo.servers:
            found = _by_name(self.state.servers, server.name)
            create = Action(
                "create",
                "server",
                server.name,
                changes=(
                    f"{server.image}, {server.flavor}, {len(server.ports)} port(s)"
                    + (", config drive" if server.config_drive else ""),
                ),
            )
            if found is None:
                self.add(create)
                continue
            if found.status.upper() == "ERROR":
                # Nova could not boot it (no valid host, a port it refused, ...): ours, and
                # useless; boot it again from the same ports
                self.add(
                    Action(
                        "delete",
                        "server",
                        server.name,
                        id=found.id,
                        changes=("status ERROR: replaced",),
                    )
                )
                self.add(create)
                continue
            drift: list[str] = []
            if found.flavor_name and found.flavor_name != server.flavor:
                drift.append(f"flavor {found.flavor_name} (topology: {server.flavor})")
            if found.key_name != server.key_name:
                drift.append(f"key pair {found.key_name} (topology: {server.key_name})")
            if found.config_drive != server.config_drive:
                drift.append(
                    f"config drive {str(found.config_drive).lower()} (topology: "
                    f"{str(server.config_drive).lower()})"
                )
            if drift:
                self.warnings.append(
                    f"server {server.name}: runs with {', '.join(drift)}; these cannot change "
                    "on a running server and are left as they are (rebuild: destroy it and "
                    "apply)"
                )
            self.add(Action("keep", "server", server.name, id=found.id))
            for port in server.ports:
                found_port = _by_name(self.state.ports, port.name)
                if found_port is not None and found_port.device_id == found.id:
                    self.add(Action("keep", "server-port", server.name, target=port.name))
                elif found_port is not None and found_port.device_id:
                    self.conflicts.append(
                        f"port {port.name}: is attached to device {found_port.device_id}, not "
                        f"to server {server.name}"
                    )
                else:
                    self.add(Action("attach", "server-port", server.name, target=port.name))

    def floating_ips(self) -> None:
        ours = {f.port_id: f for f in self.state.floating_ips if f.port_id}
        loose = [f for f in self.state.floating_ips if not f.port_id]
        theirs = {f.port_id: f for f in self.state.port_fips if f.port_id}
        for port in self.topo.ports:
            if port.floating_ip is None:
                continue
            found_port = _by_name(self.state.ports, port.name)
            fip = ours.get(found_port.id) if found_port else None
            ext = self.state.ext_networks.get(port.floating_ip)
            if fip is not None and ext is not None and fip.floating_network_id != ext.id:
                self.add(
                    Action(
                        "delete",
                        "floating-ip",
                        port.name,
                        id=fip.id,
                        changes=(f"{fip.address} is from another network than {port.floating_ip}",),
                    )
                )
                fip = None
            if fip is not None:
                self.add(
                    Action("keep", "floating-ip", port.name, id=fip.id, changes=(fip.address,))
                )
                continue
            other = theirs.get(found_port.id) if found_port else None
            if other is not None and self.marker in other.description:
                self.add(
                    Action(
                        "tag",
                        "floating-ip",
                        port.name,
                        id=other.id,
                        changes=(other.address, "finish an interrupted creation: add the tag"),
                    )
                )
                continue
            if other is not None:
                self.warnings.append(
                    f"port {port.name}: already has floating IP {other.address}, not managed "
                    "by multihome; it is left as it is and no other one is allocated"
                )
                continue
            spare = next(
                (
                    f
                    for f in loose
                    if self.marker + " " + port.name == f.description
                    and (ext is None or f.floating_network_id == ext.id)
                ),
                None,
            )
            if spare is not None:
                loose.remove(spare)
                self.add(
                    Action(
                        "update",
                        "floating-ip",
                        port.name,
                        id=spare.id,
                        changes=(f"associate {spare.address} with the port",),
                    )
                )
                continue
            self.add(
                Action("create", "floating-ip", port.name, changes=(f"from {port.floating_ip}",))
            )

    # -- what the how-to warns about -------------------------------------------------------
    def advice(self) -> None:
        for server in self.topo.servers:
            if len(server.ports) > 1 and not server.config_drive:
                self.warnings.append(
                    f"server {server.name}: {len(server.ports)} ports and no config drive: "
                    "with several ports cloud-init may not reach the metadata service and the "
                    "SSH key may not be injected; add 'config_drive: true'"
                )
        for port in self.topo.ports:
            if port.floating_ip is None:
                continue
            if not self.port_admits_ingress(port):
                groups = ", ".join(port.security_groups) if port.security_groups else "default"
                self.warnings.append(
                    f"port {port.name}: gets a floating IP but its security groups ({groups}) "
                    "admit no ingress from outside, so nothing will reach it; add a rule "
                    "such as '{protocol: tcp, port: 22}' to one of them"
                )
            if not self.subnet_has_router(port):
                subnet = port.floating_subnet or "(the port's subnet)"
                self.warnings.append(
                    f"port {port.name}: floating IP from {port.floating_ip} requested, but "
                    f"subnet {subnet} has no router interface towards it; Neutron will refuse "
                    f"(404). Add a router: '- {{name: ROUTER, external_network: "
                    f"{port.floating_ip}, subnets: [{subnet}]}}'"
                )
        self.ipv6_advice()
        if any(a.kind == "server" and a.verb == "create" for a in self.actions) and not (
            self.state.compute
        ):
            self.warnings.append(
                "the cloud offers no compute endpoint: servers cannot be "
                "created (use --network-only)"
            )

    def ipv6_advice(self) -> None:
        """IPv6 has no floating IPs: a routed global address is reached as it is, so the
        security groups must admit IPv6, and a subnet needs a router to advertise it."""
        routed = {s for r in self.topo.routers if r.external_network is not None for s in r.subnets}
        on_router = {s for r in self.topo.routers for s in r.subnets}
        for sub in self.topo.subnets:
            if sub.ipv6_ra_mode is not None and sub.name not in on_router:
                self.warnings.append(
                    f"subnet {sub.name}: ipv6_ra_mode {sub.ipv6_ra_mode}, but no router of "
                    "this topology has an interface on it, so nothing sends its router "
                    "advertisements and guests get no IPv6 default route (nor, with "
                    f"SLAAC, an address); add {sub.name} to a router's subnets"
                )
        for port in self.topo.ports:
            subnets = sorted(s for s in self.ipv6_subnets(port) if s in routed)
            if subnets and not self.port_admits_ingress(port, "IPv6"):
                groups = ", ".join(port.security_groups) if port.security_groups else "default"
                self.warnings.append(
                    f"port {port.name}: its IPv6 address on {', '.join(subnets)} is routed "
                    "and reached directly (IPv6 has no floating IPs), but its security "
                    f"groups ({groups}) admit no IPv6 ingress, so nothing reaches it; add "
                    "'ethertype: [IPv4, IPv6]' to a rule such as '{protocol: tcp, port: 22}'"
                )

    def ipv6_subnets(self, port: PortSpec) -> set[str]:
        """The declared IPv6 subnets ``port`` gets an address on: those it lists, and the
        network's SLAAC ones, which Neutron adds itself (all of them when it lists none)."""
        net = self.topo.network(port.network)
        listed = {f.subnet for f in port.fixed_ips if f.version == 6 and f.subnet}
        if net is None:
            return listed
        for sub in net.subnets:
            if sub.ip_version == 6 and (sub.auto_address or not port.fixed_ips):
                listed.add(sub.name)
        return listed

    def port_admits_ingress(self, port: PortSpec, ethertype: str | None = None) -> bool:
        net = self.topo.network(port.network)
        security = port.port_security
        if security is None and net is not None:
            security = net.port_security
        if security is False:
            return True
        names = port.security_groups if port.security_groups is not None else ("default",)
        for name in names:
            declared = self.topo.security_group(name)
            if declared is not None and admits_ingress(declared.rules, ethertype):
                return True
            found = self.state.ext_groups.get(name)
            if declared is None and (found is None or admits_ingress(found.rules, ethertype)):
                return True  # unknown group: give it the benefit of the doubt
        return False

    def subnet_has_router(self, port: PortSpec) -> bool:
        if port.floating_subnet is None:
            return True  # cannot tell
        subnet: str = port.floating_subnet
        for router in self.topo.routers:
            if subnet in router.subnets and router.external_network == port.floating_ip:
                return True
        found_subnet = _by_name(self.state.subnets, subnet) or self.state.ext_subnets.get(subnet)
        if found_subnet is None:
            return self.topo.subnet(subnet) is None  # undeclared and not found: cannot tell
        return bool(found_subnet.id in self.state.ext_router_subnet_ids)


def _why(rule: SecurityRule) -> tuple[str, ...]:
    note = nd_note(rule)
    return () if note is None else (note,)


def _describe_found(rule: FoundRule, state: CloudState) -> str:
    key = found_rule_key(rule, state)
    proto = key[2] or "any"
    if key[3] is not None and proto in ("icmp", "ipv6-icmp"):
        proto = f"{proto} type {key[3]}" + ("" if key[4] is None else f" code {key[4]}")
    elif key[3] is not None:
        proto = f"{proto}/{key[3]}" if key[3] == key[4] else f"{proto}/{key[3]}-{key[4]}"
    peer = key[5] or (f"group {key[6]}" if key[6] else "any")
    return f"{key[0]} {key[1]} {proto} {'from' if key[0] == 'ingress' else 'to'} {peer}"


def destroy_plan(state: CloudState) -> CloudPlan:
    """Delete every resource carrying the topology's tag, in reverse dependency order."""
    actions: list[Action] = []
    for fip in state.floating_ips:
        actions.append(
            Action(
                "delete",
                "floating-ip",
                fip.description.removeprefix(marker(state.tag)).strip() or fip.address,
                id=fip.id,
                changes=(fip.address,),
            )
        )
    for server in state.servers:
        actions.append(Action("delete", "server", server.name, id=server.id))
    for port in state.ports:
        actions.append(Action("delete", "port", port.name, id=port.id))
    subnet_names = {s.id: s.name for s in state.subnets}
    for router in state.routers:
        for subnet_id in router.interface_subnet_ids:
            actions.append(
                Action(
                    "detach",
                    "router-interface",
                    router.name,
                    target=subnet_names.get(subnet_id, f"id:{subnet_id}"),
                    id=router.id,
                )
            )
        actions.append(Action("delete", "router", router.name, id=router.id))
    for group in state.security_groups:
        actions.append(Action("delete", "security-group", group.name, id=group.id))
    for sub in state.subnets:
        actions.append(Action("delete", "subnet", sub.name, id=sub.id))
    for net in state.networks:
        actions.append(Action("delete", "network", net.name, id=net.id))
    return CloudPlan(actions=tuple(actions))
