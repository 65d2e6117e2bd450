"""Lab scenarios as data: one YAML file per section of the how-to, parsed into frozen objects.

A scenario says which tenant networks exist, which ports the guest has (addresses, floating
IPs, allowed address pairs), and what ``lab probe`` must find before and after
``multihome apply``. Files live in ``multihome/lab/scenarios/`` (package data); ``--scenario``
also takes a path to a file of the same shape::

    number: 4
    name: two-ports-one-subnet
    title: Two ports on one subnet, each with a floating IP
    howto: Multiple Internal Interfaces with Gateways & Floating IPs & Policy-Based ...
    story: |
      What happens and why (printed by `lab up` and `lab demo`).
    networks:
      private: {cidr: 192.168.0.0/24, gateway: 192.168.0.1, dhcp: true,
                ipv6: {cidr: 2001:db8:1::/64}}     # optional: router advertisements; SLAAC
                                                   # (mode: slaac), dhcpv6-stateful or
                                                   # dhcpv6-stateless
    ports:
      - name: eth0
        network: private
        ips: [192.168.0.107]
        floating_ips: {192.168.0.107: 203.0.113.107}
        allowed_address_pairs: []
    expect:
      before:
        reachable: {203.0.113.107: true}         # ping and HTTP from the internet host
        egress: {192.168.0.107: 203.0.113.107}   # source address -> public address seen
                                                 # (IPv6: the global address, HTTP only)
        gateway: {eth0: true}                    # ping -I <port> <its gateway>
        spoof_drops: false                       # port security dropped spoofed packets
      after: {...}                               # the same keys, after multihome apply
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from multihome.errors import InputError
from multihome.reader import Node, read_file, shown, yaml_document

SLAAC, DHCPV6, STATELESS = "slaac", "dhcpv6-stateful", "dhcpv6-stateless"
IPV6_MODES = (SLAAC, DHCPV6, STATELESS)
#: Tenant IPv6 subnets lie here (the documentation range).
DOCUMENTATION6 = ipaddress.IPv6Network("2001:db8::/32")
#: Where floating IPs and external networks live (TEST-NET-3), and the internet host (TEST-NET-2).
PUBLIC_RANGE = ipaddress.IPv4Network("203.0.113.0/24")
INTERNET_HOST = ipaddress.IPv4Address("198.51.100.10")
#: The internet host's IPv6 address (multihome's default ``probe6``); no NAT for IPv6.
INTERNET_HOST6 = ipaddress.IPv6Address("2001:db8:ffff::10")
METADATA_ADDRESS = ipaddress.IPv4Address("169.254.169.254")
#: The route metric of the first port; port N gets FIRST_METRIC + N (100, 101, ...).
FIRST_METRIC = 100
#: Guest sysctls unless the scenario says otherwise: an Ubuntu cloud image's defaults.
DEFAULT_GUEST_SYSCTLS: Mapping[str, int] = {
    "rp_filter": 2,
    "arp_ignore": 0,
    "arp_announce": 0,
    "arp_filter": 0,
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}$")
_IFNAME = re.compile(r"^eth[0-9]{1,2}$")
_NETNAME = re.compile(r"^[a-z][a-z0-9_-]{0,20}$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_PHASES = ("before", "after")


@dataclass(frozen=True)
class Network:
    """A tenant (or provider) network with one IPv4 subnet."""

    name: str
    cidr: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address | None
    """The tenant router's address on it; None for a gateway-less network."""
    dhcp: bool
    """dnsmasq serves it (address, router option and option 121), like Neutron's DHCP port."""
    dhcp_server: ipaddress.IPv4Address | None
    """The DHCP/metadata port's address (the subnet's .100 unless given)."""
    external: bool
    """A provider network routed without NAT: its addresses are public themselves."""
    cidr6: ipaddress.IPv6Network | None = None
    """Its IPv6 subnet (the tenant router advertises it); None: IPv4 only."""
    ipv6_mode: str = "slaac"
    """How a port gets its IPv6 address: ``slaac`` (from the advertised prefix and its MAC),
    ``dhcpv6-stateful`` (from dnsmasq's DHCPv6; the advertisement's managed flag set) or
    ``dhcpv6-stateless`` (SLAAC's address, the other configuration from dnsmasq's DHCPv6;
    the advertisement's other-config flag set), Neutron's ``ipv6_address_mode``."""

    @property
    def dhcpv6(self) -> bool:
        """DHCPv6-stateful: the address comes from DHCPv6."""
        return self.cidr6 is not None and self.ipv6_mode == DHCPV6

    @property
    def stateless(self) -> bool:
        """DHCPv6-stateless: SLAAC's address, DNS and the like from DHCPv6."""
        return self.cidr6 is not None and self.ipv6_mode == STATELESS

    @property
    def serves_dhcpv6(self) -> bool:
        """dnsmasq answers DHCPv6 on the subnet (stateful or stateless)."""
        return self.dhcpv6 or self.stateless

    @property
    def dhcp_server6(self) -> ipaddress.IPv6Address | None:
        """The DHCP port's IPv6 address on a DHCPv6 subnet (``::2``)."""
        return self.cidr6.network_address + 2 if self.cidr6 and self.serves_dhcpv6 else None

    @property
    def gateway6(self) -> ipaddress.IPv6Address | None:
        """The router's global address on the IPv6 subnet (Neutron's gateway_ip, ``::1``);
        the guest routes through the router's link-local address, from its advertisements."""
        return None if self.cidr6 is None else self.cidr6.network_address + 1


@dataclass(frozen=True)
class GuestPort:
    """One port of the guest: a NIC (eth0, eth1, ...) with fixed IPs on one network."""

    name: str
    network: str
    mac: str
    ips: tuple[ipaddress.IPv4Address, ...]
    """Fixed IPv4 addresses; the first one comes from DHCP when the network has DHCP (none:
    an IPv6-only port)."""
    floating_ips: Mapping[ipaddress.IPv4Address, ipaddress.IPv4Address]
    """Fixed IP -> floating IP (1:1 NAT on the router)."""
    allowed_address_pairs: tuple[ipaddress.IPv4Address, ...]
    metric: int
    """The metric of the routes the guest's DHCP client installs for this NIC."""
    dhcp: bool = True
    """DHCP serves the port when its network has DHCP (``lab attach-port --no-dhcp``: not;
    the port's address is then only in ``network_data.json``, type ``ipv4``)."""
    hotplugged: bool = False
    """Attached to the running guest (``lab attach-port``): the lab runs no DHCP client for
    it; whatever runs in the guest (``multihome agent``) must bring it up."""
    router: ipaddress.IPv4Address | None = None
    """The router DHCP hands this port when not its network's gateway (``lab renew
    --router``)."""
    ips6: tuple[ipaddress.IPv6Address, ...] = ()
    """Its IPv6 global addresses: SLAAC's, from the network's prefix and the MAC (EUI-64),
    as Neutron computes them; on a DHCPv6 subnet, the one DHCPv6 hands it."""

    @property
    def addresses(self) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
        """Its fixed IPs of both families, IPv4 first."""
        return (*self.ips, *self.ips6)

    @property
    def link_local(self) -> ipaddress.IPv6Address:
        """The MAC-derived link-local address (fe80::/64 + EUI-64)."""
        return eui64(ipaddress.IPv6Network("fe80::/64"), self.mac)

    @property
    def number(self) -> int:
        """N of ethN: it also names the port's switch port (tapN) and sets its metric."""
        return int(self.name[3:])

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "network": self.network,
            "mac": self.mac,
            "ips": [str(i) for i in self.ips],
            "floating_ips": {str(k): str(v) for k, v in self.floating_ips.items()},
            "allowed_address_pairs": [str(a) for a in self.allowed_address_pairs],
            "metric": self.metric,
            "dhcp": self.dhcp,
            "hotplugged": self.hotplugged,
            "router": None if self.router is None else str(self.router),
            "ips6": [str(i) for i in self.ips6],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GuestPort:
        """The inverse of :meth:`to_json` (the lab's own state file; no user input)."""
        router = data.get("router")
        return cls(
            name=str(data["name"]),
            network=str(data["network"]),
            mac=str(data["mac"]),
            ips=tuple(ipaddress.IPv4Address(i) for i in data["ips"]),
            floating_ips={
                ipaddress.IPv4Address(k): ipaddress.IPv4Address(v)
                for k, v in data["floating_ips"].items()
            },
            allowed_address_pairs=tuple(
                ipaddress.IPv4Address(a) for a in data["allowed_address_pairs"]
            ),
            metric=int(data["metric"]),
            dhcp=bool(data.get("dhcp", True)),
            hotplugged=bool(data.get("hotplugged", False)),
            router=None if router is None else ipaddress.IPv4Address(router),
            ips6=tuple(ipaddress.IPv6Address(i) for i in data.get("ips6", [])),
        )


@dataclass(frozen=True)
class Outcome:
    """What a probe finds, reduced to what a scenario states (expected or observed)."""

    reachable: Mapping[str, bool]
    """Public address -> reachable from the internet host (ping and HTTP)."""
    egress: Mapping[str, str | None]
    """Guest source address -> the public address the internet host saw (None: no answer)."""
    gateway: Mapping[str, bool]
    """Port -> its gateway answers ``ping -I <port>``."""
    spoof_drops: bool
    """Port security dropped spoofed IPv4 or IPv6 packets during the probe."""

    def to_json(self) -> dict[str, Any]:
        return {
            "reachable": dict(self.reachable),
            "egress": dict(self.egress),
            "gateway": dict(self.gateway),
            "spoof_drops": self.spoof_drops,
        }

    def mismatches(self, observed: Outcome) -> list[str]:
        """Human-readable differences between this expectation and ``observed``."""
        problems: list[str] = []
        for public, want in sorted(self.reachable.items()):
            got = observed.reachable.get(public)
            if got != want:
                problems.append(
                    f"{public}: expected {'reachable' if want else 'unreachable'}"
                    f", got {_state(got, 'reachable', 'unreachable')}"
                )
        for source, want_seen in sorted(self.egress.items()):
            got_seen = observed.egress.get(source, "(not probed)")
            if got_seen != want_seen:
                problems.append(
                    f"egress from {source}: expected {want_seen or 'no answer'}, "
                    f"got {got_seen or 'no answer'}"
                )
        for port, want_ok in sorted(self.gateway.items()):
            got_ok = observed.gateway.get(port)
            if got_ok != want_ok:
                problems.append(
                    f"gateway ping on {port}: expected "
                    f"{'answer' if want_ok else 'no answer'}, got "
                    f"{_state(got_ok, 'answer', 'no answer')}"
                )
        if observed.spoof_drops != self.spoof_drops:
            problems.append(
                "port security: expected "
                f"{'spoofed packets dropped' if self.spoof_drops else 'no drops'}, "
                f"got {'drops' if observed.spoof_drops else 'none'}"
            )
        return problems


def _state(value: bool | None, yes: str, no: str) -> str:
    if value is None:
        return "(not probed)"
    return yes if value else no


@dataclass(frozen=True)
class Scenario:
    """A miniature tenant network for one section of the how-to."""

    number: int
    name: str
    title: str
    howto: str
    story: str
    networks: tuple[Network, ...]
    ports: tuple[GuestPort, ...]
    guest_sysctls: Mapping[str, int]
    guest_routes: tuple[str, ...]
    """The guest's main table after DHCP (``ip route`` lines), as the how-to shows it."""
    expect: Mapping[str, Outcome]
    """``before`` and ``after`` (multihome apply)."""
    source: str
    """Where it was read from (messages)."""
    text: str
    """The file's text, kept in the lab's state so a running lab can be read back."""

    def network(self, name: str) -> Network:
        for network in self.networks:
            if network.name == name:
                return network
        raise KeyError(name)

    def port(self, name: str) -> GuestPort | None:
        return next((p for p in self.ports if p.name == name), None)

    def port_dhcp(self, port: GuestPort) -> bool:
        """Whether the port's first address comes from DHCP (an IPv6-only port: no)."""
        return port.dhcp and bool(port.ips) and self.network(port.network).dhcp

    @property
    def ipv6(self) -> bool:
        """Whether any network has an IPv6 subnet (the lab then runs IPv6 and radvd)."""
        return any(n.cidr6 is not None for n in self.networks)

    def with_ports(self, ports: tuple[GuestPort, ...]) -> Scenario:
        """The same lab with other ports (after ``attach-port`` / ``detach-port``)."""
        return replace(self, ports=ports)

    def public_address(
        self, port: GuestPort, ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    ) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The address the internet reaches ``ip`` at: its floating IP, or itself when the
        port is on an external network or ``ip`` is IPv6 (no floating IPs, no NAT: the
        router routes to the global address); None when it has none."""
        if isinstance(ip, ipaddress.IPv6Address):
            return ip if self.network(port.network).gateway is not None else None
        if ip in port.floating_ips:
            return port.floating_ips[ip]
        if self.network(port.network).external:
            return ip
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "name": self.name,
            "title": self.title,
            "howto": self.howto,
            "networks": [
                {
                    "name": n.name,
                    "cidr": str(n.cidr),
                    "gateway": str(n.gateway) if n.gateway else None,
                    "dhcp": n.dhcp,
                    "external": n.external,
                    "cidr6": str(n.cidr6) if n.cidr6 else None,
                    "ipv6_mode": n.ipv6_mode if n.cidr6 else None,
                }
                for n in self.networks
            ],
            "ports": [p.to_json() for p in self.ports],
            "expect": {phase: outcome.to_json() for phase, outcome in self.expect.items()},
        }


def scenario_files() -> list[tuple[str, str]]:
    """(file name, text) of every built-in scenario, in file-name order."""
    folder = resources.files("multihome.lab").joinpath("scenarios")
    found = [
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    ]
    return sorted(found)


def builtin_scenarios() -> list[Scenario]:
    """Every built-in scenario, by number."""
    loaded = [parse_scenario(text, f"scenarios/{name}") for name, text in scenario_files()]
    return sorted(loaded, key=lambda s: s.number)


def load_scenario(wanted: str) -> Scenario:
    """A built-in scenario by number or name, or a scenario file by path."""
    if wanted.endswith((".yaml", ".yml")) or "/" in wanted:
        path = Path(wanted)
        fix = "give a built-in scenario (multihome lab list) or a readable file"
        text = read_file(path, missing_fix=fix, unreadable_fix=fix)
        return parse_scenario(text, str(path))
    scenarios = builtin_scenarios()
    for scenario in scenarios:
        if wanted in (str(scenario.number), scenario.name):
            return scenario
    choices = ", ".join(f"{s.number} ({s.name})" for s in scenarios)
    raise InputError(
        f"--scenario {wanted}: no such scenario; choose one of {choices}, or "
        "give the path of a scenario file"
    )


def parse_scenario(text: str, source: str) -> Scenario:
    """Parse and check one scenario file; errors name the file, the key and the fix."""
    top = yaml_document(text, source).mapping(
        {
            "number",
            "name",
            "title",
            "howto",
            "story",
            "networks",
            "ports",
            "guest_sysctls",
            "guest_routes",
            "expect",
        }
    )
    number = top["number"].value
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise top["number"].fail(f"{top['number'].shown} is not a positive integer", "write e.g. 4")
    name = top["name"].matching(_NAME, "a scenario name", "use lower-case letters, digits and '-'")
    networks = _networks(top["networks"])
    ports = _ports(top["ports"], {n.name: n for n in networks})
    sysctls = dict(DEFAULT_GUEST_SYSCTLS)
    for knob, value in top["guest_sysctls"].mapping(optional=True).items():
        if knob not in DEFAULT_GUEST_SYSCTLS or not isinstance(value.value, int):
            raise value.fail(
                f"{value.shown} is not valid",
                f"use one of {', '.join(DEFAULT_GUEST_SYSCTLS)} with an integer",
            )
        sysctls[knob] = value.value
    example = "quote each line as a string"
    routes = [
        item.text(fix=example)
        for item in top["guest_routes"].seq(what="a list of `ip route` lines", fix=example)
    ]
    expect_raw = top["expect"].mapping(_PHASES)
    expect = {phase: _outcome(expect_raw[phase]) for phase in _PHASES}
    return Scenario(
        number=number,
        name=name,
        title=_prose(top["title"]),
        howto=_prose(top["howto"]),
        story=_prose(top["story"]).strip(),
        networks=networks,
        ports=ports,
        guest_sysctls=sysctls,
        guest_routes=tuple(" ".join(r.split()) for r in routes),
        expect=expect,
        source=source,
        text=text,
    )


def _prose(node: Node) -> str:
    if not isinstance(node.value, str) or not node.value.strip():
        raise node.fail("missing or empty", "write a short text")
    return node.value


def _address(node: Node) -> ipaddress.IPv4Address:
    address = node.address(4, fix="write e.g. 192.168.0.107")
    assert isinstance(address, ipaddress.IPv4Address)  # address(4) gives IPv4 only
    return address


def _optional_address(node: Node) -> ipaddress.IPv4Address | None:
    return None if node.absent else _address(node)


def _networks(node: Node) -> tuple[Network, ...]:
    nets = node.mapping()
    if not nets:
        raise node.fail("no network", "define at least one network")
    result = []
    for name, value in nets.items():
        nets.key(name).matching(_NETNAME, "a network name", "use lower-case letters and digits")
        spec = value.mapping({"cidr", "gateway", "dhcp", "dhcp_server", "external", "ipv6"})
        cidr = spec["cidr"].network(4, fix="write e.g. 192.168.0.0/24")
        assert isinstance(cidr, ipaddress.IPv4Network)  # network(4) gives IPv4 only
        gateway = _optional_address(spec["gateway"])
        if gateway is not None and gateway not in cidr:
            raise spec["gateway"].fail(
                f"{gateway} is outside {cidr}", "give an address of the subnet"
            )
        dhcp = spec["dhcp"].boolean(default=True)
        server = _optional_address(spec["dhcp_server"])
        if dhcp and server is None:
            server = cidr.network_address + 100
        if server is not None and server not in cidr:
            raise spec["dhcp_server"].fail(
                f"{server} is outside {cidr}", "give an address of the subnet"
            )
        external = spec["external"].boolean(default=False)
        if external and not cidr.subnet_of(PUBLIC_RANGE):
            raise spec["cidr"].fail(
                f"an external network must lie in {PUBLIC_RANGE}", f"use a part of {PUBLIC_RANGE}"
            )
        result.append(
            Network(
                name=name,
                cidr=cidr,
                gateway=gateway,
                dhcp=dhcp,
                dhcp_server=server if dhcp else None,
                external=external,
                cidr6=_ipv6_subnet(spec["ipv6"], gateway, external),
                ipv6_mode=_ipv6_mode(spec["ipv6"], dhcp),
            )
        )
    return tuple(result)


def _ipv6_subnet(
    node: Node, gateway: ipaddress.IPv4Address | None, external: bool
) -> ipaddress.IPv6Network | None:
    """A network's ``ipv6: {cidr: PREFIX/64}``: SLAAC from the tenant router's advertisements."""
    if node.absent:
        return None
    spec = node.mapping({"cidr", "mode"})
    cidr6 = spec["cidr"].network(6, fix="write e.g. 2001:db8:1::/64")
    assert isinstance(cidr6, ipaddress.IPv6Network)  # network(6) gives IPv6 only
    if cidr6.prefixlen != 64 or not cidr6.subnet_of(DOCUMENTATION6):
        raise spec["cidr"].fail(
            f"{cidr6} is not a /64 in {DOCUMENTATION6}",
            "SLAAC needs a /64; use e.g. 2001:db8:1::/64",
        )
    if gateway is None or external:
        raise node.fail(
            "an IPv6 subnet needs the tenant router", "give the network a gateway (not external)"
        )
    return cidr6


def _ipv6_mode(node: Node, dhcp: bool) -> str:
    """``ipv6.mode``: slaac (the default), dhcpv6-stateful or dhcpv6-stateless (both on a
    network with DHCP)."""
    if node.absent or node.mapping({"cidr", "mode"})["mode"].absent:
        return SLAAC
    mode_node = node.mapping({"cidr", "mode"})["mode"]
    mode = str(mode_node.value)
    if mode not in IPV6_MODES:
        raise mode_node.fail(
            f"{mode_node.shown} is not an IPv6 mode", f"use {', '.join(IPV6_MODES)}"
        )
    if mode != SLAAC and not dhcp:
        raise mode_node.fail("DHCPv6 needs the network's DHCP", "set dhcp: true, or use slaac")
    return mode


def eui64(prefix: ipaddress.IPv6Network, mac: str) -> ipaddress.IPv6Address:
    """SLAAC's address for ``mac`` in ``prefix`` (modified EUI-64, RFC 4291 appendix A)."""
    octets = bytearray(int(b, 16) for b in mac.split(":"))
    octets[0] ^= 0x02
    interface_id = bytes(octets[:3]) + b"\xff\xfe" + bytes(octets[3:])
    return prefix.network_address + int.from_bytes(interface_id, "big")


def ipv6_address(
    network: Network, mac: str, ips: tuple[ipaddress.IPv4Address, ...], index: int
) -> ipaddress.IPv6Address:
    """A port's IPv6 address on ``network``'s subnet: SLAAC's (EUI-64 of the MAC), or the one
    the lab's DHCPv6 hands it (``::<last byte of its IPv4 address>``, IPv6-only ``::1<N>``)."""
    assert network.cidr6 is not None
    if not network.dhcpv6:
        return eui64(network.cidr6, mac)
    host = ips[0].packed[-1] if ips else 0x100 + index
    return network.cidr6.network_address + host


def _ports(node: Node, networks: dict[str, Network]) -> tuple[GuestPort, ...]:
    items = node.seq(what="a list of ports", fix="list eth0, eth1, ... in order", optional=False)
    if not items:
        raise node.fail("expected a list of ports", "list eth0, eth1, ... in order")
    ports: list[GuestPort] = []
    seen_ips: set[ipaddress.IPv4Address] = set()
    seen_fips: set[ipaddress.IPv4Address] = set()
    for index, item in enumerate(items):
        spec = item.mapping(
            {"name", "network", "mac", "ips", "floating_ips", "allowed_address_pairs"}
        )
        name = spec["name"].value
        if name != f"eth{index}":
            raise spec["name"].fail(
                f"{spec['name'].shown} is not eth{index}", "name the ports eth0, eth1, ... in order"
            )
        network = networks.get(str(spec["network"].value))
        if network is None:
            raise spec["network"].fail(
                f"{spec['network'].shown} is not defined", f"use one of {', '.join(networks)}"
            )
        ip_nodes = spec["ips"].seq(
            what="a list of addresses", fix="write e.g. [192.168.0.107]", optional=False
        )
        if not ip_nodes and network.cidr6 is None:
            raise spec["ips"].fail(
                "expected a list of addresses",
                "write e.g. [192.168.0.107] (an IPv6-only port, ips: [], needs a network "
                "with an ipv6 subnet)",
            )
        ips = tuple(_address(ip) for ip in ip_nodes)
        for ip, ip_node in zip(ips, ip_nodes, strict=True):
            if ip not in network.cidr:
                raise ip_node.fail(
                    f"{ip} is outside {network.cidr}", "give addresses of the port's subnet"
                )
            if ip in seen_ips or ip in (network.gateway, network.dhcp_server):
                raise ip_node.fail(f"{ip} is used twice", "give each its own")
            seen_ips.add(ip)
        fips: dict[ipaddress.IPv4Address, ipaddress.IPv4Address] = {}
        floating = spec["floating_ips"].mapping(optional=True)
        for fixed, floating_node in floating.items():
            fixed_ip = _address(floating.key(fixed))
            fip = _address(floating_node)
            if fixed_ip not in ips:
                raise floating.key(fixed).fail(
                    f"{fixed} is not one of the port's ips",
                    "map each fixed IP of the port to a floating IP",
                )
            if fip not in PUBLIC_RANGE or fip in seen_fips or network.gateway is None:
                raise floating_node.fail(
                    f"{fip} is not a free floating IP behind a router",
                    f"give each its own address in {PUBLIC_RANGE} on a network with a gateway",
                )
            seen_fips.add(fip)
            fips[fixed_ip] = fip
        pairs = tuple(
            _address(pair)
            for pair in spec["allowed_address_pairs"].seq(fix="write e.g. [192.168.0.112]")
        )
        mac_node = spec["mac"]
        if mac_node.value:
            mac = str(mac_node.value).lower()
        else:
            mac = _default_mac(ips[0] if ips else None, index)
        if not _MAC.match(mac):
            raise mac_node.fail(
                f"{shown(mac)} is not a MAC address", "write e.g. fa:16:3e:00:00:07"
            )
        ips6 = () if network.cidr6 is None else (ipv6_address(network, mac, ips, index),)
        ports.append(
            GuestPort(
                name=f"eth{index}",
                network=network.name,
                mac=mac,
                ips=ips,
                floating_ips=fips,
                allowed_address_pairs=pairs,
                metric=FIRST_METRIC + index,
                ips6=ips6,
            )
        )
    return tuple(ports)


def _default_mac(ip: ipaddress.IPv4Address | None, index: int = 0) -> str:
    """Neutron's OUI plus the last three bytes of the port's first address (an IPv6-only
    port: ``fa:16:3e:66:00:<index>``)."""
    tail = ip.packed[1:] if ip is not None else bytes((0x66, 0, index))
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in tail)


def _outcome(node: Node) -> Outcome:
    spec = node.mapping({"reachable", "egress", "gateway", "spoof_drops"})
    reachable = {k: bool(v.value) for k, v in spec["reachable"].mapping(optional=True).items()}
    egress = {
        k: (None if v.absent else str(v.value))
        for k, v in spec["egress"].mapping(optional=True).items()
    }
    gateway = {k: bool(v.value) for k, v in spec["gateway"].mapping(optional=True).items()}
    drops = spec["spoof_drops"].boolean()
    return Outcome(reachable=reachable, egress=egress, gateway=gateway, spoof_drops=drops)
