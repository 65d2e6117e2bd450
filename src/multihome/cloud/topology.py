"""The topology file: what ``multihome cloud`` provisions, parsed into frozen values.

Validated at load; every error names the file, the key (``servers[0].ports[1].fixed_ip``) and
the fix, and raises :class:`~multihome.errors.InputError` (exit 2, nothing changed).

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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from multihome.reader import Fields, Node, read_file, shown, yaml_document

_T = TypeVar("_T")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")
_TOPOLOGY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
TAG_PREFIX = "multihome:"
PROTOCOLS = ("tcp", "udp", "icmp", "any")
DIRECTIONS = ("ingress", "egress")
#: A URL with a password (``scheme://user:pass@``) or an http(s) token (``https://TOKEN@``).
_CREDENTIALS_IN_URL = re.compile(r"[a-z+]+://[^/@\s:]*:[^/@\s]*@|https?://[^/@\s]+@", re.I)
ETHERTYPES = ("IPv4", "IPv6")
#: Neutron's ``ipv6_ra_mode`` / ``ipv6_address_mode`` values.
IPV6_MODES = ("slaac", "dhcpv6-stateful", "dhcpv6-stateless")
#: Modes in which the guest forms its own address (EUI-64): Neutron wants a /64 and refuses a
#: fixed address other than the EUI-64 one on such a subnet.
AUTO_ADDRESS_MODES = ("slaac", "dhcpv6-stateless")
#: ICMPv6 types IPv6 needs to work at all (RFC 4861): router solicitation (133, guest to
#: router), router advertisement (134, router to guest), neighbour solicitation (135) and
#: advertisement (136). Added to a group of a topology with IPv6 (``ipv6_nd``).
ND_TYPES = {
    133: "router solicitation",
    134: "router advertisement",
    135: "neighbour solicitation",
    136: "neighbour advertisement",
}
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
    ipv6_ra_mode: str | None = None
    """Who sends router advertisements and what they say (:data:`IPV6_MODES`); None: not
    Neutron's router (an external one), or IPv4."""
    ipv6_address_mode: str | None = None
    """How guests get their IPv6 address (:data:`IPV6_MODES`); None: IPv4, or IPv6 with
    DHCPv6 stateful (Neutron's default) when ``dhcp`` is on."""

    @property
    def ip_version(self) -> int:
        return self.cidr.version

    @property
    def auto_address(self) -> bool:
        """The guest forms its own address (SLAAC, EUI-64 from its MAC)."""
        return bool({self.ipv6_ra_mode, self.ipv6_address_mode} & set(AUTO_ADDRESS_MODES))


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
    """tcp, udp, icmp (IPv4), ipv6-icmp (IPv6), or None for any protocol; for ICMP ``port_min``
    and ``port_max`` are the type and code (Neutron's way)."""
    port_min: int | None
    port_max: int | None
    remote_ip_prefix: str | None
    """CIDR text, or None when the rule names a remote group."""
    remote_group: str | None
    """Name of a declared security group."""

    def describe(self) -> str:
        proto = self.protocol or "any"
        if self.port_min is not None and proto in ("icmp", "ipv6-icmp"):
            code = "" if self.port_max is None else f" code {self.port_max}"
            proto = f"{proto} type {self.port_min}{code}"
        elif self.port_min is not None:
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
    """The rules the file lists (one per ethertype)."""
    nd_rules: tuple[SecurityRule, ...] = ()
    """The ICMPv6 rules IPv6 needs (:data:`ND_TYPES`), added by multihome (``ipv6_nd``)."""

    @property
    def all_rules(self) -> tuple[SecurityRule, ...]:
        """Every rule multihome keeps in the group."""
        return self.rules + self.nd_rules


def nd_note(rule: SecurityRule) -> str | None:
    """Why multihome adds ``rule`` (an ND/RA rule), or None for any other rule."""
    if rule.protocol != "ipv6-icmp" or rule.port_min not in ND_TYPES:
        return None
    return (
        f"added for IPv6: {ND_TYPES[rule.port_min]} (neighbour discovery); "
        "'ipv6_nd: false' on the group leaves it out"
    )


def nd_rules(manage_egress: bool) -> tuple[SecurityRule, ...]:
    """The ND and RA rules: ingress RA from link-local routers, NS and NA; egress RS, NS and
    NA too when the group lists egress rules (else Neutron's default egress rules allow
    them)."""

    def icmp6(direction: str, kind: int, remote: str) -> SecurityRule:
        return SecurityRule(direction, "IPv6", "ipv6-icmp", kind, None, remote, None)

    rules = [icmp6("ingress", 134, "fe80::/10"), icmp6("ingress", 135, "::/0")]
    rules.append(icmp6("ingress", 136, "::/0"))
    if manage_egress:
        rules += [icmp6("egress", kind, "::/0") for kind in (133, 135, 136)]
    return tuple(rules)


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
class FixedIp:
    """One of a port's fixed IPs: an address, a subnet to take one from, or both."""

    subnet: str | None
    ip: IPAddress | None
    version: int | None = None
    """4 or 6 when known (from the address or the declared subnet)."""

    def describe(self) -> str:
        return " on ".join(str(x) for x in (self.ip, self.subnet) if x is not None)


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
    fixed_ips: tuple[FixedIp, ...] = ()
    """Every fixed IP asked for (``fixed_ips``, or ``fixed_ip``/``subnet``: then ``subnet`` and
    ``fixed_ip`` are the first entry's); empty: Neutron chooses (one IPv4 address and
    one per SLAAC subnet of the network)."""

    @property
    def floating_fixed_ip(self) -> IPAddress | None:
        """The fixed IP a floating IP maps to: the first IPv4 address asked for."""
        return next((f.ip for f in self.fixed_ips if f.ip is not None and f.ip.version == 4), None)

    @property
    def floating_subnet(self) -> str | None:
        """The subnet of the address a floating IP maps to: the first entry's that is not
        IPv6 (the router interface a floating IP needs is on this one)."""
        return next((f.subnet for f in self.fixed_ips if f.version != 6 and f.subnet), None)

    @property
    def subnets(self) -> tuple[str, ...]:
        """Every subnet the port names (in ``fixed_ips`` or ``subnet``)."""
        return tuple(dict.fromkeys(f.subnet for f in self.fixed_ips if f.subnet))


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
    wheels: str | None = None
    """A wheel directory (a path on the guest, or a URL of a page of wheel links) that pip
    installs from without any index (``--no-index --find-links``): an air-gapped cloud."""
    index_url: str | None = None
    """A package index pip uses instead of PyPI (``--index-url``): a mirror inside the cloud."""

    def pip_options(self) -> list[str]:
        """Where pip looks for ``package`` and its dependencies."""
        if self.wheels is not None:
            return ["--no-index", "--find-links", self.wheels]
        if self.index_url is not None:
            return ["--index-url", self.index_url]
        return []


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

    def references(self) -> References:
        """What the file names but does not declare: the cloud must have it (by name)."""
        subnets = {s for p in self.ports for s in p.subnets} | {
            s for r in self.routers for s in r.subnets
        }
        groups = {g for p in self.ports for g in (p.security_groups or ())}
        if any(p.security_groups is None and p.floating_ip for p in self.ports):
            groups.add("default")
        return References(
            networks=self.external_networks(),
            subnets=tuple(sorted(subnets - {s.name for s in self.subnets})),
            security_groups=tuple(sorted(groups - {g.name for g in self.security_groups})),
        )

    def counts(self) -> dict[str, int]:
        """How many of each kind the file declares."""
        return {
            "networks": len(self.networks),
            "subnets": len(self.subnets),
            "security_groups": len(self.security_groups),
            "routers": len(self.routers),
            "servers": len(self.servers),
            "ports": len(self.ports),
        }


@dataclass(frozen=True)
class References:
    """Names a topology uses without declaring them, looked up in the cloud."""

    networks: tuple[str, ...]
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]
    """``default`` included when a port with a floating IP names no group (optional)."""

    def to_json(self) -> dict[str, list[str]]:
        return {
            "networks": list(self.networks),
            "subnets": list(self.subnets),
            "security_groups": list(self.security_groups),
        }


def load_topology(path: Path) -> Topology:
    """Read and validate the topology file at ``path``."""
    text = read_file(
        path,
        missing_fix="pass an existing topology file with -f (see examples/ for the how-to's "
        "four scenarios)",
    )
    return parse_topology(text, str(path))


def parse_topology(text: str, source: str) -> Topology:
    """Parse the YAML ``text`` (called ``source`` in messages) into a :class:`Topology`."""
    return _topology(yaml_document(text, source))


# -- values ----------------------------------------------------------------------------------
def _name(node: Node) -> str:
    return node.matching(
        _NAME,
        "a usable name",
        "use 1-63 letters, digits, '-', '_', '.' or ':', starting with a letter or digit",
    )


def _optional_name(node: Node) -> str | None:
    return None if node.absent else _name(node)


def _names(node: Node) -> tuple[str, ...]:
    return tuple(_name(item) for item in node.seq())


def _unique(named: list[tuple[str, Node]]) -> None:
    """Refuse a name given twice, at its second use."""
    seen: set[str] = set()
    for name, node in named:
        if name in seen:
            raise node.fail(f"the name {name!r} is used twice", "give each one its own name")
        seen.add(name)


# -- the file --------------------------------------------------------------------------------
def _topology(document: Node) -> Topology:
    if document.absent:
        raise document.fail("the file is empty", "start from one of the files in examples/")
    top = document.mapping(
        {"name", "networks", "security_groups", "routers", "servers", "ports", "guest"},
        required=("name",),
    )
    name = top["name"].matching(
        _TOPOLOGY_NAME,
        "a usable topology name",
        f"use 1-40 letters, digits, '-', '_' or '.' (it becomes the tag {TAG_PREFIX}NAME)",
    )
    network_nodes = top["networks"].seq()
    networks = tuple(_network(node) for node in network_nodes)
    _unique([(n.name, node["name"]) for n, node in _with_fields(networks, network_nodes)])
    subnets = {s.name: s for n in networks for s in n.subnets}
    _unique(
        [
            (subnet.name, fields["subnets"].seq()[j].mapping()["name"])
            for network, fields in _with_fields(networks, network_nodes)
            for j, subnet in enumerate(network.subnets)
        ]
    )
    group_nodes = top["security_groups"].seq()
    groups = tuple(_security_group(node) for node in group_nodes)
    _unique([(g.name, node["name"]) for g, node in _with_fields(groups, group_nodes)])
    group_names = {g.name for g in groups}
    for node in group_nodes:
        for rule_node in node.mapping()["rules"].seq():
            remote_group = rule_node.mapping()["remote_group"]
            if not remote_group.absent and _name(remote_group) not in group_names:
                raise remote_group.fail(
                    f"{remote_group.value!r} is not declared in this file",
                    f"declare it under security_groups: or use one of "
                    f"{', '.join(sorted(group_names))}",
                )
    has_ipv6 = any(s.ip_version == 6 for s in subnets.values()) or any(
        r.ethertype == "IPv6" for g in groups for r in g.rules
    )
    groups = tuple(
        _with_nd(group, node.mapping()["ipv6_nd"], has_ipv6)
        for group, node in zip(groups, group_nodes, strict=True)
    )
    router_nodes = top["routers"].seq()
    routers = tuple(_router(node) for node in router_nodes)
    _unique([(r.name, node["name"]) for r, node in _with_fields(routers, router_nodes)])
    for router, node in zip(routers, router_nodes, strict=True):
        for sub, sub_node in zip(router.subnets, node.mapping()["subnets"].seq(), strict=True):
            declared = subnets.get(sub)
            if declared is not None and declared.gateway is None:
                raise sub_node.fail(
                    f"subnet {sub} has no gateway (gateway: none), so "
                    "a router interface cannot take its gateway address",
                    f"give {sub} a gateway or remove it from the router",
                )
            if (
                declared is not None
                and declared.ipv6_address_mode is not None
                and declared.ipv6_ra_mode is None
            ):
                raise sub_node.fail(
                    f"subnet {sub} has ipv6_address_mode {declared.ipv6_address_mode} and no "
                    "ipv6_ra_mode, which tells Neutron that an external router sends its "
                    "router advertisements; Neutron refuses such a subnet on its own router",
                    f"set 'ipv6_ra_mode: {declared.ipv6_address_mode}' on {sub} (this router "
                    "advertises it), or remove it from the router",
                )
    server_nodes = top["servers"].seq()
    servers = tuple(_server(node, networks) for node in server_nodes)
    _unique([(s.name, node["name"]) for s, node in _with_fields(servers, server_nodes)])
    loose_nodes = top["ports"].seq()
    loose = tuple(_port(node, networks, None) for node in loose_nodes)
    ports = tuple(p for s in servers for p in s.ports) + loose
    port_nodes = [
        port for node in server_nodes for port in node.mapping()["ports"].seq()
    ] + loose_nodes
    _unique([(p.name, node["name"]) for p, node in _with_fields(ports, port_nodes)])
    seen_ips: dict[tuple[str, IPAddress], str] = {}
    for port, node in zip(ports, port_nodes, strict=True):
        fields = node.mapping()
        key = "fixed_ips" if "fixed_ips" in fields else "fixed_ip"
        for fixed in port.fixed_ips:
            if fixed.ip is None:
                continue
            other = seen_ips.get((port.network, fixed.ip))
            if other is not None:
                raise fields[key].fail(
                    f"{fixed.ip} is also the fixed IP of port {other}",
                    "give each port its own address",
                )
            seen_ips[(port.network, fixed.ip)] = port.name
    return Topology(
        name=name,
        networks=networks,
        security_groups=groups,
        routers=routers,
        servers=servers,
        ports=ports,
        guest=_guest(top["guest"]),
        source=document.origin.source,
    )


def _with_fields(values: Sequence[_T], nodes: Sequence[Node]) -> Iterator[tuple[_T, Fields]]:
    """Each parsed value with the fields of the mapping it was parsed from."""
    for value, node in zip(values, nodes, strict=True):
        yield value, node.mapping()


def _network(node: Node) -> Network:
    data = node.mapping({"name", "subnets", "port_security"}, required=("name",))
    name = _name(data["name"])
    subnets = tuple(_subnet(item, name) for item in data["subnets"].seq())
    if not subnets:
        raise data["subnets"].fail(
            "a network needs at least one subnet",
            "add e.g. '- {name: NAME, cidr: 192.168.0.0/24}'",
        )
    cidrs = [s.cidr for s in subnets]
    for i, a in enumerate(cidrs):
        for b in cidrs[i + 1 :]:
            if a.version == b.version and a.overlaps(b):
                raise data["subnets"].fail(
                    f"{a} and {b} overlap", "give the subnets of one network disjoint CIDRs"
                )
    return Network(
        name=name, subnets=subnets, port_security=data["port_security"].boolean(default=True)
    )


def _subnet(node: Node, network: str) -> Subnet:
    data = node.mapping(
        {
            "name",
            "cidr",
            "gateway",
            "dhcp",
            "dns_nameservers",
            "ip_version",
            "ipv6_ra_mode",
            "ipv6_address_mode",
        },
        required=("name", "cidr"),
    )
    name = _name(data["name"])
    cidr = data["cidr"].network(
        fix="write e.g. 192.168.0.0/24 or 2001:db8:0:1::/64 (host bits zero)"
    )
    if "ip_version" in data and data["ip_version"].integer(4, 6) != cidr.version:
        raise data["ip_version"].fail(
            f"{data['ip_version'].shown} does not fit cidr {cidr}, an IPv{cidr.version} network",
            f"write ip_version: {cidr.version}, or omit it (the cidr tells)",
        )
    dhcp = data["dhcp"].boolean(default=True)
    ra_mode, address_mode = _ipv6_modes(data, cidr, dhcp)
    if cidr.num_addresses < 4:
        raise data["cidr"].fail(
            f"{cidr} is too small for a subnet",
            "use a prefix of /30 or shorter (IPv4), /126 or shorter (IPv6)",
        )
    raw_gw = "auto" if "gateway" not in data else data["gateway"].value
    gateway: IPAddress | None
    if raw_gw is None or raw_gw is False or str(raw_gw).lower() == "none":
        gateway = None
    elif str(raw_gw).lower() == "auto":
        gateway = ipaddress.ip_address(cidr.network_address + 1)
    else:
        gateway = data["gateway"].address(fix=f"give an address inside {cidr}, 'auto' or 'none'")
        if gateway not in cidr or gateway in (cidr.network_address, cidr.broadcast_address):
            raise data["gateway"].fail(
                f"{gateway} is not a host address of {cidr}",
                f"give an address inside {cidr}, 'auto' or 'none'",
            )
    return Subnet(
        name=name,
        network=network,
        cidr=cidr,
        gateway=gateway,
        dhcp=dhcp,
        dns_nameservers=tuple(item.address() for item in data["dns_nameservers"].seq()),
        ipv6_ra_mode=ra_mode,
        ipv6_address_mode=address_mode,
    )


def _ipv6_modes(data: Fields, cidr: IPNetwork, dhcp: bool) -> tuple[str | None, str | None]:
    """``ipv6_ra_mode`` and ``ipv6_address_mode``, refused where Neutron would refuse them."""
    modes: dict[str, str | None] = {}
    for key in ("ipv6_ra_mode", "ipv6_address_mode"):
        node = data[key]
        modes[key] = None
        if node.absent:
            continue
        if cidr.version != 6:
            raise node.fail(
                f"{cidr} is an IPv4 subnet and {key} is for IPv6 subnets",
                "remove it, or give an IPv6 cidr",
            )
        modes[key] = node.one_of(IPV6_MODES, what="an IPv6 mode")
    ra_mode, address_mode = modes["ipv6_ra_mode"], modes["ipv6_address_mode"]
    if ra_mode is not None and address_mode is not None and ra_mode != address_mode:
        raise data["ipv6_address_mode"].fail(
            f"Neutron refuses ipv6_ra_mode {ra_mode} with ipv6_address_mode {address_mode}: "
            "when both are set they must be the same",
            f"set both to {ra_mode} (or both to {address_mode}), or leave out ipv6_ra_mode "
            "when a router outside Neutron sends the router advertisements",
        )
    if (ra_mode or address_mode) and not dhcp:
        raise data["dhcp"].fail(
            "Neutron refuses ipv6_ra_mode and ipv6_address_mode on a subnet with DHCP "
            "disabled (its router advertisements and DHCPv6 come with enable_dhcp)",
            "remove 'dhcp: false', or leave both modes out (a static IPv6 subnet)",
        )
    if {ra_mode, address_mode} & set(AUTO_ADDRESS_MODES) and cidr.prefixlen != 64:
        mode = ra_mode if ra_mode in AUTO_ADDRESS_MODES else address_mode
        example = next(cidr.subnets(new_prefix=64)) if cidr.prefixlen < 64 else "2001:db8:1::/64"
        raise data["cidr"].fail(
            f"{cidr} is a /{cidr.prefixlen}, and {mode} forms addresses the EUI-64 way, "
            "which needs a /64 (Neutron refuses any other length)",
            f"use a /64 such as {example}, or ipv6_address_mode: dhcpv6-stateful",
        )
    return ra_mode, address_mode


def _security_group(node: Node) -> SecurityGroup:
    data = node.mapping({"name", "description", "rules", "ipv6_nd"}, required=("name",))
    name = _name(data["name"])
    if name == "default":
        raise data["name"].fail(
            "'default' is the project's own group, which multihome does not manage",
            "choose another name",
        )
    if not data["ipv6_nd"].absent:
        data["ipv6_nd"].boolean()
    rules = tuple(rule for item in data["rules"].seq() for rule in _rules(item))
    if len(set(rules)) != len(rules):
        raise data["rules"].fail("the same rule is listed twice", "remove one")
    return SecurityGroup(
        name=name,
        description=data["description"].text(default="managed by multihome"),
        rules=rules,
    )


def _with_nd(group: SecurityGroup, node: Node, has_ipv6: bool) -> SecurityGroup:
    """``group`` with the ND and RA rules when ``ipv6_nd`` says so (default: the topology
    has IPv6: an IPv6 subnet or an IPv6 rule)."""
    if not node.boolean(default=has_ipv6):
        return group
    manage_egress = any(r.direction == "egress" for r in group.rules)
    extra = tuple(r for r in nd_rules(manage_egress) if not any(_covers(d, r) for d in group.rules))
    return SecurityGroup(group.name, group.description, group.rules, extra)


def _covers(wide: SecurityRule, rule: SecurityRule) -> bool:
    """Whether ``wide`` admits everything ``rule`` (an ICMPv6 rule from a prefix) does."""
    if (wide.direction, wide.ethertype) != (rule.direction, rule.ethertype):
        return False
    if wide.protocol not in (None, rule.protocol) or wide.remote_ip_prefix is None:
        return False
    if wide.port_min not in (None, rule.port_min) or wide.port_max not in (None, rule.port_max):
        return False
    assert rule.remote_ip_prefix is not None
    inner = ipaddress.ip_network(rule.remote_ip_prefix)
    outer = ipaddress.ip_network(wide.remote_ip_prefix)
    return inner.version == outer.version and inner.subnet_of(outer)  # type: ignore[arg-type]


def _ethertypes(node: Node, family: str | None) -> tuple[str, ...]:
    """``ethertype``: IPv4, IPv6 or both as a list; absent: ``family`` (the family of
    ``remote``), else IPv4."""
    fix = (
        f"use {family} (the family of 'remote') or omit it"
        if family
        else ("use IPv4, IPv6 or [IPv4, IPv6]")
    )
    if node.absent:
        return (family or "IPv4",)
    items = node.seq() if isinstance(node.value, list) else [node]
    types: list[str] = []
    for item in items:
        value = item.value
        if value not in ETHERTYPES or (family is not None and value != family):
            raise item.fail(f"{item.shown} does not fit the rule", fix)
        if value in types:
            raise item.fail(f"{value} is listed twice", "list each ethertype once")
        types.append(str(value))
    if not types:
        raise node.fail("no ethertype is listed", fix)
    return tuple(types)


def _rules(node: Node) -> tuple[SecurityRule, ...]:
    """The rule ``node`` describes, once per ethertype it lists."""
    data = node.mapping(
        {"direction", "protocol", "port", "ports", "remote", "remote_group", "ethertype"}
    )
    direction = data["direction"].one_of(DIRECTIONS, "ingress", what="a direction")
    protocol: str | None = data["protocol"].text(default="any").lower()
    if protocol not in PROTOCOLS:
        raise data["protocol"].fail(
            f"{shown(protocol)} is not supported", f"use one of {', '.join(PROTOCOLS)}"
        )
    if protocol == "any":
        protocol = None
    port_min = port_max = None
    if "port" in data and "ports" in data:
        raise node.fail("both 'port' and 'ports' are given", "keep one of them")
    if "port" in data or "ports" in data:
        port = data["port" if "port" in data else "ports"]
        if protocol not in ("tcp", "udp"):
            raise port.fail(
                "ports need protocol tcp or udp",
                "add 'protocol: tcp' (or udp), or remove the port",
            )
        port_min, port_max = _port_range(port)
    remote, group_node = data["remote"], data["remote_group"]
    if not remote.absent and not group_node.absent:
        raise node.fail(
            "both 'remote' and 'remote_group' are given",
            "a rule admits either a CIDR or a group; keep one",
        )
    group = None if group_node.absent else _name(group_node)
    family: str | None = None
    prefix: str | None = None
    if not remote.absent:
        net = remote.network(fix="write e.g. 0.0.0.0/0, 203.0.113.0/24 or ::/0 (host bits zero)")
        prefix = str(net)
        family = f"IPv{net.version}"
    rules: list[SecurityRule] = []
    for ethertype in _ethertypes(data["ethertype"], family):
        anywhere = "0.0.0.0/0" if ethertype == "IPv4" else "::/0"
        rules.append(
            SecurityRule(
                direction=direction,
                ethertype=ethertype,
                protocol="ipv6-icmp" if protocol == "icmp" and ethertype == "IPv6" else protocol,
                port_min=port_min,
                port_max=port_max,
                remote_ip_prefix=None if group is not None else (prefix or anywhere),
                remote_group=group,
            )
        )
    return tuple(rules)


def _port_range(node: Node) -> tuple[int, int]:
    raw = node.value
    low: object
    high: object
    if isinstance(raw, int) and not isinstance(raw, bool):
        low = high = raw
    elif isinstance(raw, str) and re.fullmatch(r"\d{1,5}-\d{1,5}", raw):
        low, high = (int(x) for x in raw.split("-"))
    else:
        low = high = None
    if not isinstance(low, int) or not isinstance(high, int) or not 1 <= low <= high <= 65535:
        raise node.fail(
            f"{node.shown} is not a port or port range",
            "write a number (22) or a range in quotes ('8000-8080') in 1-65535",
        )
    return low, high


def _router(node: Node) -> Router:
    data = node.mapping({"name", "external_network", "subnets"}, required=("name",))
    return Router(
        name=_name(data["name"]),
        external_network=_optional_name(data["external_network"]),
        subnets=_names(data["subnets"]),
    )


def _server(node: Node, networks: tuple[Network, ...]) -> Server:
    data = node.mapping(
        {"name", "image", "flavor", "key_name", "config_drive", "ports", "user_data"},
        required=("name", "image", "flavor", "ports"),
    )
    name = _name(data["name"])
    ports = tuple(_port(item, networks, name) for item in data["ports"].seq())
    if not ports:
        raise data["ports"].fail(
            "a server needs at least one port", "add '- {name: NAME, network: NET}'"
        )
    user_data = data["user_data"]
    return Server(
        name=name,
        image=data["image"].text(),
        flavor=data["flavor"].text(),
        key_name=_optional_name(data["key_name"]),
        config_drive=data["config_drive"].boolean(default=False),
        ports=ports,
        user_data=None
        if user_data.absent
        else user_data.text(
            fix=f"write '{USER_DATA_MULTIHOME}' (multihome's cloud-config) or a "
            "literal block (user_data: |)"
        ),
    )


def _port(node: Node, networks: tuple[Network, ...], server: str | None) -> PortSpec:
    data = node.mapping(
        {
            "name",
            "network",
            "subnet",
            "fixed_ip",
            "fixed_ips",
            "security_groups",
            "allowed_address_pairs",
            "floating_ip",
            "port_security",
        },
        required=("name", "network"),
    )
    name = _name(data["name"])
    network_name = _name(data["network"])
    network = next((n for n in networks if n.name == network_name), None)
    fixed_ips = _fixed_ips(data, network, network_name)
    groups = None if data["security_groups"].absent else _names(data["security_groups"])
    pairs = tuple(_address_pair(item) for item in data["allowed_address_pairs"].seq())
    security = data["port_security"]
    port_security = None if security.absent else security.boolean()
    effective = (
        port_security
        if port_security is not None
        else (network.port_security if network is not None else None)
    )
    if effective is False and pairs:
        raise data["allowed_address_pairs"].fail(
            "allowed address pairs need port security, which is off for this port",
            "remove the pairs (with port security off any source address "
            "passes) or set port_security: true",
        )
    if effective is False and groups:
        raise data["security_groups"].fail(
            "security groups need port security, which is off for this port",
            "remove security_groups or set port_security: true",
        )
    fip = _optional_name(data["floating_ip"])
    if fip is not None and network is not None and fip == network_name:
        raise data["floating_ip"].fail(
            "the floating IP would come from the port's own network",
            "name the external network, e.g. public",
        )
    versions = (
        {f.version for f in fixed_ips}
        if fixed_ips
        else ({s.ip_version for s in network.subnets} if network is not None else {None})
    )
    if fip is not None and versions == {6}:
        raise data["floating_ip"].fail(
            f"port {name} has only IPv6 addresses, and Neutron's floating IPs are IPv4 only "
            "(there is no NAT for IPv6: each port's global IPv6 address is reached directly "
            "through the router)",
            "remove floating_ip; route the IPv6 subnet through a router and let a security "
            "group admit the traffic (ethertype: IPv6), or give the port an IPv4 address too",
        )
    first = fixed_ips[0] if fixed_ips else FixedIp(None, None)
    return PortSpec(
        name=name,
        network=network_name,
        subnet=first.subnet,
        fixed_ip=first.ip,
        security_groups=groups,
        allowed_address_pairs=pairs,
        floating_ip=fip,
        port_security=port_security,
        server=server,
        fixed_ips=fixed_ips,
    )


def _fixed_ips(data: Fields, network: Network | None, network_name: str) -> tuple[FixedIp, ...]:
    """The port's fixed IPs: ``fixed_ips`` (addresses or ``{subnet, ip}``), or the single
    ``fixed_ip``/``subnet``; each checked against the declared network's subnets."""
    if "fixed_ips" in data and ("fixed_ip" in data or "subnet" in data):
        key = "fixed_ip" if "fixed_ip" in data else "subnet"
        raise data[key].fail(
            f"both '{key}' and 'fixed_ips' are given",
            "list every address under fixed_ips (e.g. [192.168.0.10, {subnet: NAME}])",
        )
    entries: list[tuple[Node | None, Node | None, Node]] = []
    if "fixed_ips" in data:
        items = data["fixed_ips"].seq()
        if not items:
            raise data["fixed_ips"].fail(
                "the list is empty", "list an address or {subnet: NAME}, or omit fixed_ips"
            )
        for item in items:
            if isinstance(item.value, dict):
                entry = item.mapping({"subnet", "ip"})
                if entry["subnet"].absent and entry["ip"].absent:
                    raise item.fail("neither 'ip' nor 'subnet' is given", "give one or both")
                entries.append((entry["subnet"], entry["ip"], item))
            else:
                entries.append((None, item, item))
    elif "fixed_ip" in data or "subnet" in data:
        entries.append((data["subnet"], data["fixed_ip"], data["fixed_ip"]))
    found: list[FixedIp] = []
    for subnet_node, ip_node, where in entries:
        fixed = _fixed_ip(subnet_node, ip_node, network, network_name)
        if fixed in found and fixed.ip is not None:
            raise where.fail(f"{fixed.describe()} is listed twice", "list each address once")
        found.append(fixed)
    if not found and network is not None and len(network.subnets) == 1:
        only = network.subnets[0]
        found.append(FixedIp(only.name, None, only.ip_version))
    return tuple(found)


def _fixed_ip(
    subnet_node: Node | None, ip_node: Node | None, network: Network | None, network_name: str
) -> FixedIp:
    subnet_name = None if subnet_node is None else _optional_name(subnet_node)
    fixed_ip = None if ip_node is None or ip_node.absent else ip_node.address()
    if network is None:
        return FixedIp(subnet_name, fixed_ip, None if fixed_ip is None else fixed_ip.version)
    assert ip_node is not None or subnet_node is not None
    names = [s.name for s in network.subnets]
    if subnet_name is not None and subnet_name not in names:
        assert subnet_node is not None
        raise subnet_node.fail(
            f"{subnet_name!r} is not a subnet of network {network_name}",
            f"use one of {', '.join(names)}",
        )
    if subnet_name is None and fixed_ip is not None:
        assert ip_node is not None
        owner = next((s for s in network.subnets if fixed_ip in s.cidr), None)
        if owner is None:
            raise ip_node.fail(
                f"{fixed_ip} is in no subnet of network {network_name} "
                f"({', '.join(str(s.cidr) for s in network.subnets)})",
                "choose an address inside one of them",
            )
        subnet_name = owner.name
    if subnet_name is None and len(network.subnets) == 1:
        subnet_name = network.subnets[0].name
    subnet = next((s for s in network.subnets if s.name == subnet_name), None)
    if subnet is not None and fixed_ip is not None:
        assert ip_node is not None
        if fixed_ip not in subnet.cidr or fixed_ip in (
            subnet.cidr.network_address,
            subnet.cidr.broadcast_address,
        ):
            raise ip_node.fail(
                f"{fixed_ip} is not a host address of subnet {subnet.name} ({subnet.cidr})",
                "choose an address inside the subnet",
            )
        if fixed_ip == subnet.gateway:
            raise ip_node.fail(
                f"{fixed_ip} is the gateway of subnet {subnet.name}", "choose another address"
            )
        if subnet.auto_address:
            mode = subnet.ipv6_address_mode or subnet.ipv6_ra_mode
            raise ip_node.fail(
                f"subnet {subnet.name} is {mode}: the port forms its address from its MAC "
                "(EUI-64), and Neutron refuses any other fixed address there",
                f"write '{{subnet: {subnet.name}}}' without an address, or make {subnet.name} "
                "ipv6_address_mode: dhcpv6-stateful to choose addresses",
            )
    version = fixed_ip.version if fixed_ip is not None else (subnet.ip_version if subnet else None)
    return FixedIp(subnet_name, fixed_ip, version)


def _address_pair(node: Node) -> AddressPair:
    mac = None
    ip = node
    if isinstance(node.value, dict):
        data = node.mapping({"ip", "mac"}, required=("ip",))
        ip = data["ip"]
        if not data["mac"].absent:
            fix = "write e.g. fa:16:3e:00:00:01, or omit it (the port's MAC)"
            mac = data["mac"].matching(_MAC, "a MAC address", fix).lower()
    try:
        if not isinstance(ip.value, str):
            raise ValueError(ip.value)
        net = ipaddress.ip_network(ip.value, strict=False)
    except ValueError:
        raise ip.fail(
            f"{ip.shown} is not an address or CIDR", "write e.g. 192.168.0.112 or 192.168.0.0/24"
        ) from None
    single = net.prefixlen == net.max_prefixlen
    return AddressPair(ip=str(net.network_address) if single else str(net), mac=mac)


_URL = re.compile(r"^(https?|file)://[^\s/?#]+[^\s]*$|^file:///[^\s]*$")
_GUEST_PATH = re.compile(r"^/[^\s]*$")
#: Characters a shell or cloud-init's runcmd would treat specially (argv carries them as they
#: are, but an operator's copy-paste of the command would not).
_UNSAFE = set("\n;&|`$<>'\"\\")


def _location(node: Node, *, paths: bool) -> str | None:
    """A URL (http, https, file) or, with ``paths``, an absolute path on the guest."""
    if node.absent:
        return None
    value = node.text(fix="write a URL such as http://10.0.0.5/simple/")
    what = "a URL or an absolute path on the guest" if paths else "an http(s) or file URL"
    good = _URL.match(value) or (paths and _GUEST_PATH.match(value))
    if not good or _UNSAFE & set(value):
        example = (
            "/var/lib/multihome-wheels or http://10.0.0.5/wheels/"
            if paths
            else "http://10.0.0.5/simple/"
        )
        raise node.fail(
            f"{shown(value)} is not {what}",
            f"write e.g. {example} (no spaces or shell characters)",
        )
    return value


def _guest(node: Node) -> Guest:
    data = node.mapping(
        {"install", "package", "persist_backend", "wheels", "index_url"}, optional=True
    )
    install = data["install"].text(default="pip")
    if install not in ("pip", "none"):
        raise data["install"].fail(
            f"{shown(install)} is not supported",
            "use pip (install with pip at first boot) or none (the image has multihome)",
        )
    package = data["package"].text(default="multihome")
    if not package.strip() or any(c in package for c in "\n;&|`$"):
        raise data["package"].fail(
            f"{shown(package)} is not a pip requirement", "write a name, name==version or a URL"
        )
    if _CREDENTIALS_IN_URL.search(package):
        raise data["package"].fail(
            "the URL carries credentials (user:password@ or a token before @), and user-data "
            "is readable by every process on the guest through the metadata service",
            "serve the wheel where the guest can fetch it without credentials, or use "
            "install: none with an image that has multihome",
        )
    backends = ("auto", "networkd", "netplan", "networkmanager", "ifcfg", "systemd")
    backend = data["persist_backend"].one_of(backends, "auto", what="a backend")
    wheels = _location(data["wheels"], paths=True)
    index_url = _location(data["index_url"], paths=False)
    for key in ("wheels", "index_url"):
        if install != "pip" and not data[key].absent:
            raise data[key].fail(
                f"{key} is only used with install: pip (install: {install} installs nothing)",
                f"remove {key} or set install: pip",
            )
    if wheels is not None and index_url is not None:
        raise data["index_url"].fail(
            "wheels and index_url are both given, but pip installs from the wheel directory "
            "without any index",
            "keep one: wheels (an air-gapped guest) or index_url (a mirror)",
        )
    return Guest(
        install=install,
        package=package,
        persist_backend=backend,
        wheels=wheels,
        index_url=index_url,
    )
