"""The topology file: what ``multihome cloud`` provisions, parsed into frozen values.

Validated at load; every error names the file, the key (``servers[0].ports[1].fixed_ip``) and
the fix, and raises :class:`~multihome.errors.ConfigError` (exit 2, nothing changed).

Example (the how-to's scenario 4: one server, two ports, two floating IPs)::

    name: scenario4                  # every resource is tagged multihome:scenario4
    networks:
      - name: mh-private
        subnets:
          - name: mh-private-v4
            cidr: 192.168.0.0/24
            gateway: auto            # auto (first address), an address, or none
            dhcp: true
    security_groups:
      - name: mh-ssh
        rules:
          - {protocol: tcp, port: 22}            # ingress from anywhere by default
          - {protocol: icmp}
    routers:
      - name: mh-router
        external_network: public     # an existing external network, by name
        subnets: [mh-private-v4]     # router interfaces
    servers:
      - name: multiport-test
        image: ubuntu-24.04
        flavor: m1.small
        key_name: mykey
        config_drive: true
        user_data: multihome         # cloud-config that runs `multihome apply` and `persist`
        ports:
          - name: multiport-test-eth0
            network: mh-private
            fixed_ip: 192.168.0.107
            security_groups: [mh-ssh]
            floating_ip: public      # allocate one from this external network
          - name: multiport-test-eth1
            network: mh-private
            fixed_ip: 192.168.0.112
            security_groups: [mh-ssh]
            floating_ip: public

Networks, subnets and security groups that a port or router names but the file does not
declare are looked up in the cloud by name (e.g. an existing provider network, or ``default``).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multihome.config import load_yaml
from multihome.errors import ConfigError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")
_TOPOLOGY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
TAG_PREFIX = "multihome:"
PROTOCOLS = ("tcp", "udp", "icmp", "any")
DIRECTIONS = ("ingress", "egress")
#: ``user_data:`` value that asks for multihome's own cloud-config.
USER_DATA_MULTIHOME = "multihome"


@dataclass(frozen=True)
class Subnet:
    """A subnet of a declared network."""

    name: str
    network: str
    """Name of the network it belongs to."""
    cidr: IPNetwork
    gateway: IPAddress | None
    """The gateway address, or None for a subnet without a gateway."""
    dhcp: bool
    dns_nameservers: tuple[IPAddress, ...] = ()

    @property
    def ip_version(self) -> int:
        return self.cidr.version


@dataclass(frozen=True)
class Network:
    """A tenant network and its subnets."""

    name: str
    subnets: tuple[Subnet, ...]
    port_security: bool = True
    """Default for its ports (Neutron's ``port_security_enabled``)."""


@dataclass(frozen=True, order=True)
class SecurityRule:
    """One security-group rule; its fields are its identity."""

    direction: str
    ethertype: str
    protocol: str | None
    """tcp, udp, icmp, or None for any protocol."""
    port_min: int | None
    port_max: int | None
    remote_ip_prefix: str | None
    """CIDR text, or None when the rule names a remote group."""
    remote_group: str | None
    """Name of a declared security group."""

    def describe(self) -> str:
        proto = self.protocol or "any"
        if self.port_min is not None:
            ports = (
                str(self.port_min)
                if self.port_min == self.port_max
                else f"{self.port_min}-{self.port_max}"
            )
            proto = f"{proto}/{ports}"
        peer = self.remote_ip_prefix or (
            f"group {self.remote_group}" if self.remote_group else "any"
        )
        way = "from" if self.direction == "ingress" else "to"
        return f"{self.direction} {self.ethertype} {proto} {way} {peer}"


@dataclass(frozen=True)
class SecurityGroup:
    """A security group and the rules multihome keeps in it."""

    name: str
    description: str
    rules: tuple[SecurityRule, ...]


@dataclass(frozen=True)
class Router:
    """A router: its external gateway and the subnets it has interfaces on."""

    name: str
    external_network: str | None
    subnets: tuple[str, ...]


@dataclass(frozen=True)
class AddressPair:
    """An allowed address pair: an address or CIDR, optionally with a MAC."""

    ip: str
    mac: str | None = None


@dataclass(frozen=True)
class PortSpec:
    """A port, created ahead of its server (the how-to's advice)."""

    name: str
    network: str
    subnet: str | None
    fixed_ip: IPAddress | None
    security_groups: tuple[str, ...] | None
    """None: leave it to the cloud (the project's ``default`` group)."""
    allowed_address_pairs: tuple[AddressPair, ...]
    floating_ip: str | None
    """Name of the external network to allocate a floating IP from."""
    port_security: bool | None
    """None: the network's setting."""
    server: str | None = None


@dataclass(frozen=True)
class Server:
    """A server booted with its pre-created ports, in order (the first is eth0)."""

    name: str
    image: str
    flavor: str
    key_name: str | None
    config_drive: bool
    ports: tuple[PortSpec, ...]
    user_data: str | None
    """None, :data:`USER_DATA_MULTIHOME`, or literal user-data."""


@dataclass(frozen=True)
class Guest:
    """How the guest installs multihome (used by ``cloud user-data``)."""

    install: str = "pip"
    """pip or none (the image already has multihome)."""
    package: str = "multihome"
    """What pip installs (a name, a pinned version or a URL)."""
    persist_backend: str = "auto"


@dataclass(frozen=True)
class Topology:
    """A validated topology file."""

    name: str
    networks: tuple[Network, ...]
    security_groups: tuple[SecurityGroup, ...]
    routers: tuple[Router, ...]
    servers: tuple[Server, ...]
    ports: tuple[PortSpec, ...]
    """Every port, those of servers included, in file order."""
    guest: Guest
    source: str

    @property
    def tag(self) -> str:
        """The tag every resource of this topology carries."""
        return f"{TAG_PREFIX}{self.name}"

    @property
    def subnets(self) -> tuple[Subnet, ...]:
        return tuple(s for n in self.networks for s in n.subnets)

    def network(self, name: str) -> Network | None:
        return next((n for n in self.networks if n.name == name), None)

    def subnet(self, name: str) -> Subnet | None:
        return next((s for s in self.subnets if s.name == name), None)

    def security_group(self, name: str) -> SecurityGroup | None:
        return next((g for g in self.security_groups if g.name == name), None)

    def external_networks(self) -> tuple[str, ...]:
        """Undeclared networks the file names (looked up in the cloud), sorted."""
        names = {r.external_network for r in self.routers if r.external_network}
        names |= {p.floating_ip for p in self.ports if p.floating_ip}
        names |= {p.network for p in self.ports}
        return tuple(sorted(n for n in names if self.network(n) is None))


def load_topology(path: Path) -> Topology:
    """Read and validate the topology file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{path}: no such file; pass an existing topology file with -f "
            "(see examples/ for the how-to's four scenarios)"
        ) from exc
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read ({exc.strerror}); check the path and its permissions"
        ) from exc
    return parse_topology(text, str(path))


def parse_topology(text: str, source: str) -> Topology:
    """Parse the YAML ``text`` (called ``source`` in messages) into a :class:`Topology`."""
    data = load_yaml(text, source)
    return _Parser(source).topology(data)


class _Parser:
    """Builds a :class:`Topology`; each error names the source, the key path and the fix."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str, fix: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {problem}; {fix}")

    # -- generic readers -------------------------------------------------------------------
    def mapping(
        self, value: object, key: str, allowed: set[str], required: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(
                key, f"expected a mapping, got {_kind(value)}", "write it as 'key: value' lines"
            )
        data = {str(k): v for k, v in value.items()}
        for k in data:
            if k not in allowed:
                raise self.fail(
                    key, f"unknown key {k!r}", f"use one of {', '.join(sorted(allowed))}"
                )
        for k in required:
            if data.get(k) is None:
                raise self.fail(
                    f"{key}.{k}" if key != "(top level)" else k, "missing", f"add '{k}:' to {key}"
                )
        return data

    def seq(self, value: object, key: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(
                key, f"expected a list, got {_kind(value)}", "write it as '- item' lines or [a, b]"
            )
        return value

    def name(self, value: object, key: str) -> str:
        if not isinstance(value, str) or not _NAME.match(value):
            raise self.fail(
                key,
                f"{value!r} is not a usable name",
                "use 1-63 letters, digits, '-', '_', '.' or ':', starting with a letter or digit",
            )
        return value

    def names(self, value: object, key: str) -> tuple[str, ...]:
        return tuple(self.name(v, f"{key}[{i}]") for i, v in enumerate(self.seq(value, key)))

    def boolean(self, value: object, key: str, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(key, f"{value!r} is not true or false", "write true or false")
        return value

    def text(self, value: object, key: str, default: str = "") -> str:
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.fail(key, f"expected text, got {_kind(value)}", "quote the value")
        return value

    def address(self, value: object, key: str) -> IPAddress:
        try:
            return ipaddress.ip_address(str(value))
        except ValueError as exc:
            raise self.fail(
                key, f"{value!r} is not an IP address", "give an address such as 192.168.0.107"
            ) from exc

    def unique(self, names: list[str], key: str) -> None:
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise self.fail(
                    key, f"the name {name!r} is used twice", "give each one its own name"
                )
            seen.add(name)

    # -- the file --------------------------------------------------------------------------
    def topology(self, data: object) -> Topology:
        if data is None:
            raise self.fail(
                "(top level)", "the file is empty", "start from one of the files in examples/"
            )
        top = self.mapping(
            data,
            "(top level)",
            {"name", "networks", "security_groups", "routers", "servers", "ports", "guest"},
            required=("name",),
        )
        name = top["name"]
        if not isinstance(name, str) or not _TOPOLOGY_NAME.match(name):
            raise self.fail(
                "name",
                f"{name!r} is not a usable topology name",
                f"use 1-40 letters, digits, '-', '_' or '.' (it becomes the tag {TAG_PREFIX}NAME)",
            )
        networks = tuple(
            self.network(v, f"networks[{i}]")
            for i, v in enumerate(self.seq(top.get("networks"), "networks"))
        )
        self.unique([n.name for n in networks], "networks")
        subnets = {s.name: s for n in networks for s in n.subnets}
        self.unique([s.name for n in networks for s in n.subnets], "networks[*].subnets")
        groups = tuple(
            self.security_group(v, f"security_groups[{i}]")
            for i, v in enumerate(self.seq(top.get("security_groups"), "security_groups"))
        )
        self.unique([g.name for g in groups], "security_groups")
        group_names = {g.name for g in groups}
        for i, group in enumerate(groups):
            for j, rule in enumerate(group.rules):
                if rule.remote_group is not None and rule.remote_group not in group_names:
                    raise self.fail(
                        f"security_groups[{i}].rules[{j}].remote_group",
                        f"{rule.remote_group!r} is not declared in this file",
                        f"declare it under security_groups: or use one of "
                        f"{', '.join(sorted(group_names))}",
                    )
        routers = tuple(
            self.router(v, f"routers[{i}]")
            for i, v in enumerate(self.seq(top.get("routers"), "routers"))
        )
        self.unique([r.name for r in routers], "routers")
        for i, router in enumerate(routers):
            versions: dict[str, int] = {}
            for j, sub in enumerate(router.subnets):
                where = f"routers[{i}].subnets[{j}]"
                declared = subnets.get(sub)
                if declared is not None and declared.gateway is None:
                    raise self.fail(
                        where,
                        f"subnet {sub} has no gateway (gateway: none), so "
                        "a router interface cannot take its gateway address",
                        f"give {sub} a gateway or remove it from the router",
                    )
                if declared is not None:
                    versions[sub] = declared.ip_version
        servers = tuple(
            self.server(v, f"servers[{i}]", networks)
            for i, v in enumerate(self.seq(top.get("servers"), "servers"))
        )
        self.unique([s.name for s in servers], "servers")
        loose = tuple(
            self.port(v, f"ports[{i}]", networks, None)
            for i, v in enumerate(self.seq(top.get("ports"), "ports"))
        )
        ports = tuple(p for s in servers for p in s.ports) + loose
        self.unique([p.name for p in ports], "servers[*].ports and ports")
        seen_ips: dict[tuple[str, IPAddress], str] = {}
        for port in ports:
            if port.fixed_ip is not None:
                other = seen_ips.get((port.network, port.fixed_ip))
                if other is not None:
                    raise self.fail(
                        f"port {port.name}.fixed_ip",
                        f"{port.fixed_ip} is also the fixed IP of port {other}",
                        "give each port its own address",
                    )
                seen_ips[(port.network, port.fixed_ip)] = port.name
        guest = self.guest(top.get("guest"))
        return Topology(
            name=name,
            networks=networks,
            security_groups=groups,
            routers=routers,
            servers=servers,
            ports=ports,
            guest=guest,
            source=self.source,
        )

    def network(self, value: object, key: str) -> Network:
        data = self.mapping(value, key, {"name", "subnets", "port_security"}, required=("name",))
        name = self.name(data["name"], f"{key}.name")
        subnets = tuple(
            self.subnet(v, f"{key}.subnets[{i}]", name)
            for i, v in enumerate(self.seq(data.get("subnets"), f"{key}.subnets"))
        )
        if not subnets:
            raise self.fail(
                f"{key}.subnets",
                "a network needs at least one subnet",
                "add e.g. '- {name: NAME, cidr: 192.168.0.0/24}'",
            )
        cidrs = [s.cidr for s in subnets]
        for i, a in enumerate(cidrs):
            for b in cidrs[i + 1 :]:
                if a.version == b.version and a.overlaps(b):
                    raise self.fail(
                        f"{key}.subnets",
                        f"{a} and {b} overlap",
                        "give the subnets of one network disjoint CIDRs",
                    )
        return Network(
            name=name,
            subnets=subnets,
            port_security=self.boolean(data.get("port_security"), f"{key}.port_security", True),
        )

    def subnet(self, value: object, key: str, network: str) -> Subnet:
        data = self.mapping(
            value,
            key,
            {"name", "cidr", "gateway", "dhcp", "dns_nameservers"},
            required=("name", "cidr"),
        )
        name = self.name(data["name"], f"{key}.name")
        try:
            cidr = ipaddress.ip_network(str(data["cidr"]), strict=True)
        except ValueError as exc:
            raise self.fail(
                f"{key}.cidr",
                f"{data['cidr']!r} is not a network in CIDR notation",
                "write e.g. 192.168.0.0/24 (host bits zero)",
            ) from exc
        if cidr.num_addresses < 4:
            raise self.fail(
                f"{key}.cidr",
                f"{cidr} is too small for a subnet",
                "use a prefix of /30 or shorter (IPv4), /126 or shorter (IPv6)",
            )
        raw_gw = data.get("gateway", "auto")
        gateway: IPAddress | None
        if raw_gw is None or raw_gw is False or str(raw_gw).lower() == "none":
            gateway = None
        elif str(raw_gw).lower() == "auto":
            gateway = ipaddress.ip_address(cidr.network_address + 1)
        else:
            gateway = self.address(raw_gw, f"{key}.gateway")
            if gateway not in cidr or gateway in (cidr.network_address, cidr.broadcast_address):
                raise self.fail(
                    f"{key}.gateway",
                    f"{gateway} is not a host address of {cidr}",
                    f"give an address inside {cidr}, 'auto' or 'none'",
                )
        dns = tuple(
            self.address(v, f"{key}.dns_nameservers[{i}]")
            for i, v in enumerate(self.seq(data.get("dns_nameservers"), f"{key}.dns_nameservers"))
        )
        return Subnet(
            name=name,
            network=network,
            cidr=cidr,
            gateway=gateway,
            dhcp=self.boolean(data.get("dhcp"), f"{key}.dhcp", True),
            dns_nameservers=dns,
        )

    def security_group(self, value: object, key: str) -> SecurityGroup:
        data = self.mapping(value, key, {"name", "description", "rules"}, required=("name",))
        name = self.name(data["name"], f"{key}.name")
        if name == "default":
            raise self.fail(
                f"{key}.name",
                "'default' is the project's own group, which multihome does not manage",
                "choose another name",
            )
        rules = tuple(
            self.rule(v, f"{key}.rules[{i}]")
            for i, v in enumerate(self.seq(data.get("rules"), f"{key}.rules"))
        )
        if len(set(rules)) != len(rules):
            raise self.fail(f"{key}.rules", "the same rule is listed twice", "remove one")
        return SecurityGroup(
            name=name,
            description=self.text(
                data.get("description"), f"{key}.description", "managed by multihome"
            ),
            rules=rules,
        )

    def rule(self, value: object, key: str) -> SecurityRule:
        data = self.mapping(
            value,
            key,
            {"direction", "protocol", "port", "ports", "remote", "remote_group", "ethertype"},
        )
        direction = self.text(data.get("direction"), f"{key}.direction", "ingress")
        if direction not in DIRECTIONS:
            raise self.fail(
                f"{key}.direction", f"{direction!r} is not a direction", "write ingress or egress"
            )
        protocol: str | None = self.text(data.get("protocol"), f"{key}.protocol", "any").lower()
        if protocol not in PROTOCOLS:
            raise self.fail(
                f"{key}.protocol",
                f"{protocol!r} is not supported",
                f"use one of {', '.join(PROTOCOLS)}",
            )
        if protocol == "any":
            protocol = None
        port_min = port_max = None
        if "port" in data and "ports" in data:
            raise self.fail(key, "both 'port' and 'ports' are given", "keep one of them")
        if "port" in data or "ports" in data:
            if protocol not in ("tcp", "udp"):
                raise self.fail(
                    f"{key}.port",
                    "ports need protocol tcp or udp",
                    "add 'protocol: tcp' (or udp), or remove the port",
                )
            raw = data.get("port", data.get("ports"))
            port_min, port_max = self.port_range(raw, f"{key}.port")
        remote = data.get("remote")
        group = data.get("remote_group")
        if remote is not None and group is not None:
            raise self.fail(
                key,
                "both 'remote' and 'remote_group' are given",
                "a rule admits either a CIDR or a group; keep one",
            )
        ethertype_default = "IPv4"
        prefix: str | None = None
        if group is not None:
            group = self.name(group, f"{key}.remote_group")
        else:
            raw_remote = "0.0.0.0/0" if remote is None else str(remote)
            try:
                net = ipaddress.ip_network(raw_remote, strict=True)
            except ValueError as exc:
                raise self.fail(
                    f"{key}.remote",
                    f"{raw_remote!r} is not a CIDR",
                    "write e.g. 0.0.0.0/0 or 203.0.113.0/24 (host bits zero)",
                ) from exc
            prefix = str(net)
            ethertype_default = f"IPv{net.version}"
        ethertype = self.text(data.get("ethertype"), f"{key}.ethertype", ethertype_default)
        if ethertype not in ("IPv4", "IPv6") or (
            prefix is not None and ethertype != ethertype_default
        ):
            raise self.fail(
                f"{key}.ethertype",
                f"{ethertype!r} does not fit the rule",
                f"use {ethertype_default} (the family of 'remote') or omit it",
            )
        if protocol == "icmp" and ethertype == "IPv6":
            protocol = "ipv6-icmp"
        return SecurityRule(
            direction=direction,
            ethertype=ethertype,
            protocol=protocol,
            port_min=port_min,
            port_max=port_max,
            remote_ip_prefix=prefix,
            remote_group=group,
        )

    def port_range(self, raw: object, key: str) -> tuple[int, int]:
        low: object
        high: object
        if isinstance(raw, int) and not isinstance(raw, bool):
            low = high = raw
        elif isinstance(raw, str) and re.fullmatch(r"\d+-\d+", raw):
            low, high = (int(x) for x in raw.split("-"))
        else:
            low = high = None
        if not isinstance(low, int) or not isinstance(high, int) or not 1 <= low <= high <= 65535:
            raise self.fail(
                key,
                f"{raw!r} is not a port or port range",
                "write a number (22) or a range in quotes ('8000-8080') in 1-65535",
            )
        return low, high

    def router(self, value: object, key: str) -> Router:
        data = self.mapping(value, key, {"name", "external_network", "subnets"}, required=("name",))
        ext = data.get("external_network")
        return Router(
            name=self.name(data["name"], f"{key}.name"),
            external_network=None if ext is None else self.name(ext, f"{key}.external_network"),
            subnets=self.names(data.get("subnets"), f"{key}.subnets"),
        )

    def server(self, value: object, key: str, networks: tuple[Network, ...]) -> Server:
        data = self.mapping(
            value,
            key,
            {"name", "image", "flavor", "key_name", "config_drive", "ports", "user_data"},
            required=("name", "image", "flavor", "ports"),
        )
        name = self.name(data["name"], f"{key}.name")
        ports = tuple(
            self.port(v, f"{key}.ports[{i}]", networks, name)
            for i, v in enumerate(self.seq(data.get("ports"), f"{key}.ports"))
        )
        if not ports:
            raise self.fail(
                f"{key}.ports",
                "a server needs at least one port",
                "add '- {name: NAME, network: NET}'",
            )
        user_data = data.get("user_data")
        if user_data is not None and not isinstance(user_data, str):
            raise self.fail(
                f"{key}.user_data",
                f"expected text, got {_kind(user_data)}",
                f"write '{USER_DATA_MULTIHOME}' (multihome's cloud-config) or a "
                "literal block (user_data: |)",
            )
        key_name = data.get("key_name")
        return Server(
            name=name,
            image=self.text(data["image"], f"{key}.image"),
            flavor=self.text(data["flavor"], f"{key}.flavor"),
            key_name=None if key_name is None else self.name(key_name, f"{key}.key_name"),
            config_drive=self.boolean(data.get("config_drive"), f"{key}.config_drive", False),
            ports=ports,
            user_data=user_data,
        )

    def port(
        self, value: object, key: str, networks: tuple[Network, ...], server: str | None
    ) -> PortSpec:
        data = self.mapping(
            value,
            key,
            {
                "name",
                "network",
                "subnet",
                "fixed_ip",
                "security_groups",
                "allowed_address_pairs",
                "floating_ip",
                "port_security",
            },
            required=("name", "network"),
        )
        name = self.name(data["name"], f"{key}.name")
        network_name = self.name(data["network"], f"{key}.network")
        network = next((n for n in networks if n.name == network_name), None)
        subnet_name = data.get("subnet")
        if subnet_name is not None:
            subnet_name = self.name(subnet_name, f"{key}.subnet")
        fixed_ip = (
            None
            if data.get("fixed_ip") is None
            else self.address(data["fixed_ip"], f"{key}.fixed_ip")
        )
        if network is not None:
            names = [s.name for s in network.subnets]
            if subnet_name is not None and subnet_name not in names:
                raise self.fail(
                    f"{key}.subnet",
                    f"{subnet_name!r} is not a subnet of network {network_name}",
                    f"use one of {', '.join(names)}",
                )
            if subnet_name is None and fixed_ip is not None:
                owner = next((s for s in network.subnets if fixed_ip in s.cidr), None)
                if owner is None:
                    raise self.fail(
                        f"{key}.fixed_ip",
                        f"{fixed_ip} is in no subnet of network "
                        f"{network_name} "
                        f"({', '.join(str(s.cidr) for s in network.subnets)})",
                        "choose an address inside one of them",
                    )
                subnet_name = owner.name
            if subnet_name is None and len(network.subnets) == 1:
                subnet_name = network.subnets[0].name
            subnet = next((s for s in network.subnets if s.name == subnet_name), None)
            if subnet is not None and fixed_ip is not None:
                if fixed_ip not in subnet.cidr or fixed_ip in (
                    subnet.cidr.network_address,
                    subnet.cidr.broadcast_address,
                ):
                    raise self.fail(
                        f"{key}.fixed_ip",
                        f"{fixed_ip} is not a host address of subnet {subnet.name} ({subnet.cidr})",
                        "choose an address inside the subnet",
                    )
                if fixed_ip == subnet.gateway:
                    raise self.fail(
                        f"{key}.fixed_ip",
                        f"{fixed_ip} is the gateway of subnet {subnet.name}",
                        "choose another address",
                    )
        raw_groups = data.get("security_groups")
        groups = None if raw_groups is None else self.names(raw_groups, f"{key}.security_groups")
        pairs = tuple(
            self.address_pair(v, f"{key}.allowed_address_pairs[{i}]")
            for i, v in enumerate(
                self.seq(data.get("allowed_address_pairs"), f"{key}.allowed_address_pairs")
            )
        )
        security = data.get("port_security")
        port_security = (
            None if security is None else self.boolean(security, f"{key}.port_security", True)
        )
        effective = (
            port_security
            if port_security is not None
            else (network.port_security if network is not None else None)
        )
        if effective is False and pairs:
            raise self.fail(
                f"{key}.allowed_address_pairs",
                "allowed address pairs need port security, which is off for this port",
                "remove the pairs (with port security off any source address "
                "passes) or set port_security: true",
            )
        if effective is False and groups:
            raise self.fail(
                f"{key}.security_groups",
                "security groups need port security, which is off for this port",
                "remove security_groups or set port_security: true",
            )
        fip = data.get("floating_ip")
        if fip is not None:
            fip = self.name(fip, f"{key}.floating_ip")
            if network is not None and fip == network_name:
                raise self.fail(
                    f"{key}.floating_ip",
                    "the floating IP would come from the port's own network",
                    "name the external network, e.g. public",
                )
        return PortSpec(
            name=name,
            network=network_name,
            subnet=subnet_name,
            fixed_ip=fixed_ip,
            security_groups=groups,
            allowed_address_pairs=pairs,
            floating_ip=fip,
            port_security=port_security,
            server=server,
        )

    def address_pair(self, value: object, key: str) -> AddressPair:
        mac = None
        raw = value
        if isinstance(value, dict):
            data = self.mapping(value, key, {"ip", "mac"}, required=("ip",))
            raw = data["ip"]
            if data.get("mac") is not None:
                mac = str(data["mac"]).lower()
                if not _MAC.match(mac):
                    raise self.fail(
                        f"{key}.mac",
                        f"{data['mac']!r} is not a MAC address",
                        "write e.g. fa:16:3e:00:00:01, or omit it (the port's MAC)",
                    )
        try:
            net = ipaddress.ip_network(str(raw), strict=False)
        except ValueError as exc:
            raise self.fail(
                key,
                f"{raw!r} is not an address or CIDR",
                "write e.g. 192.168.0.112 or 192.168.0.0/24",
            ) from exc
        single = net.prefixlen == net.max_prefixlen
        return AddressPair(ip=str(net.network_address) if single else str(net), mac=mac)

    def guest(self, value: object) -> Guest:
        if value is None:
            return Guest()
        data = self.mapping(value, "guest", {"install", "package", "persist_backend"})
        install = self.text(data.get("install"), "guest.install", "pip")
        if install not in ("pip", "none"):
            raise self.fail(
                "guest.install",
                f"{install!r} is not supported",
                "use pip (install with pip at first boot) or none (the image has multihome)",
            )
        package = self.text(data.get("package"), "guest.package", "multihome")
        if not package.strip() or any(c in package for c in "\n;&|`$"):
            raise self.fail(
                "guest.package",
                f"{package!r} is not a pip requirement",
                "write a name, name==version or a URL",
            )
        backend = self.text(data.get("persist_backend"), "guest.persist_backend", "auto")
        backends = ("auto", "networkd", "netplan", "networkmanager", "ifcfg", "systemd")
        if backend not in backends:
            raise self.fail(
                "guest.persist_backend",
                f"{backend!r} is not a backend",
                f"use one of {', '.join(backends)}",
            )
        return Guest(install=install, package=package, persist_backend=backend)


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__
