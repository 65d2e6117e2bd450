"""``cloud export --format heat``: the topology as a HOT template (OpenStack Heat). Pure.

The template holds the resources ``cloud apply`` would create, built from the same
attributes (:mod:`multihome.cloud.desired`), renamed into Heat's properties: networks,
subnets (with or without gateway and DHCP), security groups and their rules, routers and
their interfaces, ports with fixed IPs and allowed address pairs, floating IPs, and servers
booted from their ports in order, with the config drive and multihome's user-data (RAW, as
``apply`` passes it). Image, flavor, key pair and external network are parameters whose
defaults are the topology's values.

A stack belongs to Heat: its resources carry the tag ``multihome-heat:NAME`` (where Heat
can set tags: networks, subnets, routers, ports, servers) and that marker in their
descriptions, never multihome's own tag, so ``cloud apply`` and ``cloud destroy`` never
touch them. Heat resolves names of undeclared networks, subnets and security groups itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from multihome.cloud import desired
from multihome.cloud.topology import PortSpec, SecurityGroup, SecurityRule, Server, Topology
from multihome.errors import InputError

#: The template format: Heat 16 (Wallaby) and later read it.
HOT_VERSION = "2021-04-16"
#: Tags of a stack's resources: ``multihome-heat:<topology name>``.
HEAT_TAG_PREFIX = "multihome-heat:"

#: Logical resource names: a prefix per kind (names are unique within a kind).
PREFIX = {
    "network": "net",
    "subnet": "subnet",
    "security-group": "sg",
    "router": "router",
    "port": "port",
    "server": "server",
}


def heat_tag(topology: Topology) -> str:
    """The tag of a stack's resources (not multihome's: Heat owns them)."""
    return f"{HEAT_TAG_PREFIX}{topology.name}"


def logical(kind: str, name: str) -> str:
    """The template's name of a declared resource."""
    return f"{PREFIX[kind]}_{name}"


def _ident(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def _distinct(pairs: Iterable[tuple[str, str]], base: str) -> dict[str, str]:
    """Parameter names for the distinct values of ``(owner, value)`` pairs: the first value
    is ``base``, the others ``base_<first owner>``."""
    names: dict[str, str] = {}
    for owner, value in pairs:
        if value not in names:
            names[value] = base if not names else f"{base}_{_ident(owner)}"
    return names


class _Template:
    def __init__(self, topology: Topology) -> None:
        self.topo = topology
        self.tag = heat_tag(topology)
        self.parameters: dict[str, dict[str, Any]] = {}
        self.resources: dict[str, dict[str, Any]] = {}
        servers = topology.servers
        self.images = _distinct(((s.name, s.image) for s in servers), "image")
        self.flavors = _distinct(((s.name, s.flavor) for s in servers), "flavor")
        self.keys = _distinct(((s.name, s.key_name) for s in servers if s.key_name), "key_name")
        external = [r.external_network for r in topology.routers if r.external_network]
        external += [p.floating_ip for p in topology.ports if p.floating_ip]
        undeclared = [n for n in external if topology.network(n) is None]
        self.externals = _distinct(((n, n) for n in undeclared), "external_network")

    # -- references ------------------------------------------------------------------------
    def declared(self, kind: str, name: str) -> bool:
        find: dict[str, Callable[[str], object]] = {
            "network": self.topo.network,
            "subnet": self.topo.subnet,
            "security-group": self.topo.security_group,
        }
        lookup = find.get(kind)
        return True if lookup is None else lookup(name) is not None

    def ref(self, kind: str, name: str) -> Any:
        """A declared resource: ``get_resource``; an external network: its parameter;
        another undeclared one (an existing network, subnet or group): its name."""
        if self.declared(kind, name):
            return {"get_resource": logical(kind, name)}
        if kind == "network" and name in self.externals:
            return {"get_param": self.externals[name]}
        return name

    # -- parameters ------------------------------------------------------------------------
    def parameter(self, name: str, default: str, what: str, constraint: str) -> None:
        self.parameters[name] = {
            "type": "string",
            "label": what,
            "description": f"{what} (the topology says {default})",
            "default": default,
            "constraints": [{"custom_constraint": constraint}],
        }

    def add_parameters(self) -> None:
        for value, name in self.images.items():
            self.parameter(name, value, "Image of the servers", "glance.image")
        for value, name in self.flavors.items():
            self.parameter(name, value, "Flavor of the servers", "nova.flavor")
        for value, name in self.keys.items():
            self.parameter(name, value, "Key pair of the servers", "nova.keypair")
        for value, name in self.externals.items():
            self.parameter(
                name, value, "External network (router gateways, floating IPs)", "neutron.network"
            )

    # -- resources -------------------------------------------------------------------------
    def add(
        self, name: str, kind: str, properties: dict[str, Any], depends: Iterable[str] = ()
    ) -> None:
        resource: dict[str, Any] = {"type": kind, "properties": properties}
        after = sorted(set(depends))
        if after:
            resource["depends_on"] = after
        self.resources[name] = resource

    def owned(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Move the description into ``value_specs`` (these types have no such property)
        and add the stack's tag."""
        props = dict(attrs)
        props["value_specs"] = {"description": props.pop("description")}
        props["tags"] = [self.tag]
        return props

    def check_groups(self) -> None:
        """Groups whose rules name each other would depend on each other in Heat."""
        names = {
            g.name: {r.remote_group for r in g.rules if r.remote_group not in (None, g.name)}
            for g in self.topo.security_groups
        }
        done: set[str] = set()

        def visit(name: str, path: tuple[str, ...]) -> None:
            if name in path:
                cycle = " -> ".join((*path[path.index(name) :], name))
                raise InputError(
                    f"{self.topo.source}: security groups {cycle} name each other in "
                    "remote_group rules, which Heat cannot create (each group's rules are "
                    "created with the group); drop one of these rules from the topology, or "
                    "provision it with `multihome cloud apply`"
                )
            if name in done:
                return
            for other in sorted(names.get(name, ())):
                visit(other, (*path, name))
            done.add(name)

        for name in names:
            visit(name, ())

    def add_resources(self) -> None:
        self.check_groups()
        topo, tag, ref = self.topo, self.tag, self.ref
        for net in topo.networks:
            self.add(
                logical("network", net.name),
                "OS::Neutron::Net",
                self.owned(desired.network(net, tag)),
            )
        for sub in topo.subnets:
            attrs = desired.subnet(sub, tag, ref)
            attrs["network"] = attrs.pop("network_id")
            attrs["enable_dhcp"] = attrs.pop("is_dhcp_enabled")
            if attrs["gateway_ip"] is None:
                attrs["gateway_ip"] = ""  # Heat: '' is "no gateway", null is "the default"
            self.add(logical("subnet", sub.name), "OS::Neutron::Subnet", self.owned(attrs))
        for group in topo.security_groups:
            props = desired.security_group(group, tag)
            props["rules"] = [self.rule(group, rule) for rule in group.all_rules]
            self.add(logical("security-group", group.name), "OS::Neutron::SecurityGroup", props)
        for router in topo.routers:
            attrs = desired.router(router, tag, ref)
            if "external_gateway_info" in attrs:
                attrs["external_gateway_info"] = {
                    "network": attrs["external_gateway_info"]["network_id"]
                }
            self.add(logical("router", router.name), "OS::Neutron::Router", self.owned(attrs))
            for sub_name in router.subnets:
                self.add(
                    self.interface(router.name, sub_name),
                    "OS::Neutron::RouterInterface",
                    {"router": ref("router", router.name), "subnet": ref("subnet", sub_name)},
                )
        for port in topo.ports:
            self.add_port(port)
        for server in topo.servers:
            self.add_server(server)

    def rule(self, group: SecurityGroup, rule: SecurityRule) -> dict[str, Any]:
        """A rule inside its group's ``rules``: OS::Neutron::SecurityGroupRule cannot say
        "any protocol" (its protocol defaults to tcp), an inline rule can (by omitting it)."""
        attrs = desired.rule(group, rule, self.ref)
        del attrs["security_group_id"]
        if "remote_group_id" in attrs:
            attrs["remote_mode"] = "remote_group_id"
            if rule.remote_group == group.name:
                del attrs["remote_group_id"]  # Heat: no remote group means the group itself
        return attrs

    @staticmethod
    def interface(router: str, subnet: str) -> str:
        return f"{logical('router', router)}_{logical('subnet', subnet)}"

    def add_port(self, port: PortSpec) -> None:
        attrs = desired.port(port, self.tag, self.ref)
        attrs["network"] = attrs.pop("network_id")
        for fixed in attrs.get("fixed_ips", ()):
            if "subnet_id" in fixed:
                fixed["subnet"] = fixed.pop("subnet_id")
        if "security_group_ids" in attrs:
            attrs["security_groups"] = attrs.pop("security_group_ids")
        net = self.topo.network(port.network)
        subnets = [logical("subnet", s.name) for s in net.subnets] if net else []
        self.add(logical("port", port.name), "OS::Neutron::Port", self.owned(attrs), subnets)
        if port.floating_ip is None:
            return
        fip = desired.floating_ip(port, self.tag, self.ref)
        fip["floating_network"] = fip.pop("floating_network_id")
        fip["value_specs"] = {"description": fip.pop("description")}
        # the router interfaces (and gateways) that make the floating IP reachable first,
        # in the order apply creates them
        mine = {s.name for s in net.subnets} if net else set(port.subnets)
        routes = [
            (self.interface(r.name, s), logical("router", r.name))
            for r in self.topo.routers
            for s in r.subnets
            if s in mine
        ]
        self.add(
            f"fip_{port.name}",
            "OS::Neutron::FloatingIP",
            fip,
            [name for pair in routes for name in pair],
        )

    def add_server(self, server: Server) -> None:
        attrs = desired.server(self.topo, server, self.tag, self.ref)
        props: dict[str, Any] = {
            "name": attrs["name"],
            "image": {"get_param": self.images[server.image]},
            "flavor": {"get_param": self.flavors[server.flavor]},
        }
        if server.key_name:
            props["key_name"] = {"get_param": self.keys[server.key_name]}
        props["networks"] = [{"port": p} for p in attrs["port_ids"]]
        props["config_drive"] = attrs["config_drive"]
        # RAW: the user-data as apply passes it (Heat's default wraps it in a MIME
        # multipart with its own boot scripts, and needs a stack user)
        props["user_data_format"] = "RAW"
        if attrs["user_data"] is not None:
            props["user_data"] = attrs["user_data"]
        props["tags"] = attrs["tags"]
        self.add(logical("server", server.name), "OS::Nova::Server", props)

    # -- outputs ---------------------------------------------------------------------------
    def outputs(self) -> dict[str, Any]:
        ports: dict[str, Any] = {}
        for port in self.topo.ports:
            row: dict[str, Any] = {
                "server": port.server,
                "fixed_ips": {"get_attr": [logical("port", port.name), "fixed_ips"]},
            }
            if port.floating_ip is not None:
                row["floating_ip"] = {"get_attr": [f"fip_{port.name}", "floating_ip_address"]}
            ports[port.name] = row
        if not ports:
            return {}
        return {
            "ports": {
                "description": "Each port: its server, fixed IPs and floating IP",
                "value": ports,
            }
        }

    def document(self) -> dict[str, Any]:
        self.add_parameters()
        self.add_resources()
        doc: dict[str, Any] = {
            "heat_template_version": HOT_VERSION,
            "description": (
                f"multihome topology {self.topo.name}: the resources `multihome cloud apply` "
                f"would create, tagged {self.tag}"
            ),
        }
        if self.parameters:
            doc["parameters"] = self.parameters
        doc["resources"] = self.resources
        outputs = self.outputs()
        if outputs:
            doc["outputs"] = outputs
        return doc


def template(topology: Topology) -> dict[str, Any]:
    """The HOT template of ``topology``, as data."""
    return _Template(topology).document()


def render(topology: Topology) -> str:
    """The HOT template of ``topology`` as YAML text, marked as generated."""
    import yaml  # lazy

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
        style = "|" if "\n" in data else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    Dumper.add_representer(str, text)
    header = (
        f"# generated by multihome cloud export --format heat from {topology.source}\n"
        "# change the topology and export again rather than editing this file; create the "
        "stack with\n"
        f"#   openstack stack create -t THIS_FILE {topology.name}\n"
    )
    body = yaml.dump(
        template(topology), Dumper=Dumper, sort_keys=False, default_flow_style=False, width=100
    )
    return header + body
