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
      private: {cidr: 192.168.0.0/24, gateway: 192.168.0.1, dhcp: true}
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
        gateway: {eth0: true}                    # ping -I <port> <its gateway>
        spoof_drops: false                       # port security dropped spoofed IPv4
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

#: Where floating IPs and external networks live (TEST-NET-3), and the internet host (TEST-NET-2).
PUBLIC_RANGE = ipaddress.IPv4Network("203.0.113.0/24")
INTERNET_HOST = ipaddress.IPv4Address("198.51.100.10")
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


@dataclass(frozen=True)
class GuestPort:
    """One port of the guest: a NIC (eth0, eth1, ...) with fixed IPs on one network."""

    name: str
    network: str
    mac: str
    ips: tuple[ipaddress.IPv4Address, ...]
    """Fixed IPs; the first one comes from DHCP when the network has DHCP."""
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
    """Port security dropped spoofed IPv4 packets during the probe."""

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
        """Whether the port's first address comes from DHCP."""
        return port.dhcp and self.network(port.network).dhcp

    def with_ports(self, ports: tuple[GuestPort, ...]) -> Scenario:
        """The same lab with other ports (after ``attach-port`` / ``detach-port``)."""
        return replace(self, ports=ports)

    def public_address(
        self, port: GuestPort, ip: ipaddress.IPv4Address
    ) -> ipaddress.IPv4Address | None:
        """The address the internet reaches ``ip`` at: its floating IP, or itself when the
        port is on an external network; None when it has none."""
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
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(
                f"--scenario {wanted}: cannot read it ({exc.strerror}); give a "
                "built-in scenario (multihome lab list) or a readable file"
            ) from exc
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
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(
            f"{source}: malformed YAML: {str(exc).splitlines()[0]}; fix the syntax"
        ) from exc
    reader = _Reader(source)
    top = reader.mapping(data, "(top level)")
    reader.only_keys(
        top,
        "(top level)",
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
        },
    )
    number = top.get("number")
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise reader.fail("number", f"{number!r} is not a positive integer", "write e.g. 4")
    name = top.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise reader.fail(
            "name", f"{name!r} is not a scenario name", "use lower-case letters, digits and '-'"
        )
    networks = _networks(reader, top.get("networks"))
    ports = _ports(reader, top.get("ports"), {n.name: n for n in networks})
    sysctls = dict(DEFAULT_GUEST_SYSCTLS)
    for knob, value in reader.mapping(top.get("guest_sysctls", {}), "guest_sysctls").items():
        if knob not in DEFAULT_GUEST_SYSCTLS or not isinstance(value, int):
            raise reader.fail(
                f"guest_sysctls.{knob}",
                f"{value!r} is not valid",
                f"use one of {', '.join(DEFAULT_GUEST_SYSCTLS)} with an integer",
            )
        sysctls[knob] = value
    routes = top.get("guest_routes", [])
    if not isinstance(routes, list) or not all(isinstance(r, str) for r in routes):
        raise reader.fail(
            "guest_routes", "expected a list of `ip route` lines", "quote each line as a string"
        )
    expect_raw = reader.mapping(top.get("expect"), "expect")
    reader.only_keys(expect_raw, "expect", set(_PHASES))
    expect = {
        phase: _outcome(reader, expect_raw.get(phase), f"expect.{phase}") for phase in _PHASES
    }
    return Scenario(
        number=number,
        name=name,
        title=reader.text(top, "title"),
        howto=reader.text(top, "howto"),
        story=reader.text(top, "story").strip(),
        networks=networks,
        ports=ports,
        guest_sysctls=sysctls,
        guest_routes=tuple(" ".join(r.split()) for r in routes),
        expect=expect,
        source=source,
        text=text,
    )


def _networks(reader: _Reader, raw: object) -> tuple[Network, ...]:
    nets = reader.mapping(raw, "networks")
    if not nets:
        raise reader.fail("networks", "no network", "define at least one network")
    result = []
    for name, value in nets.items():
        key = f"networks.{name}"
        if not _NETNAME.match(name):
            raise reader.fail(key, "not a network name", "use lower-case letters and digits")
        spec = reader.mapping(value, key)
        reader.only_keys(spec, key, {"cidr", "gateway", "dhcp", "dhcp_server", "external"})
        try:
            cidr = ipaddress.IPv4Network(str(spec.get("cidr")))
        except ValueError as exc:
            raise reader.fail(
                f"{key}.cidr",
                f"{spec.get('cidr')!r} is not an IPv4 network",
                "write e.g. 192.168.0.0/24",
            ) from exc
        gateway = reader.address(spec.get("gateway"), f"{key}.gateway", optional=True)
        if gateway is not None and gateway not in cidr:
            raise reader.fail(
                f"{key}.gateway", f"{gateway} is outside {cidr}", "give an address of the subnet"
            )
        dhcp = bool(spec.get("dhcp", True))
        server = reader.address(spec.get("dhcp_server"), f"{key}.dhcp_server", optional=True)
        if dhcp and server is None:
            server = cidr.network_address + 100
        if server is not None and server not in cidr:
            raise reader.fail(
                f"{key}.dhcp_server", f"{server} is outside {cidr}", "give an address of the subnet"
            )
        external = bool(spec.get("external", False))
        if external and not cidr.subnet_of(PUBLIC_RANGE):
            raise reader.fail(
                f"{key}.cidr",
                f"an external network must lie in {PUBLIC_RANGE}",
                f"use a part of {PUBLIC_RANGE}",
            )
        result.append(
            Network(
                name=name,
                cidr=cidr,
                gateway=gateway,
                dhcp=dhcp,
                dhcp_server=server if dhcp else None,
                external=external,
            )
        )
    return tuple(result)


def _ports(reader: _Reader, raw: object, networks: dict[str, Network]) -> tuple[GuestPort, ...]:
    if not isinstance(raw, list) or not raw:
        raise reader.fail("ports", "expected a list of ports", "list eth0, eth1, ... in order")
    ports: list[GuestPort] = []
    seen_ips: set[ipaddress.IPv4Address] = set()
    seen_fips: set[ipaddress.IPv4Address] = set()
    for index, value in enumerate(raw):
        key = f"ports[{index}]"
        spec = reader.mapping(value, key)
        reader.only_keys(
            spec, key, {"name", "network", "mac", "ips", "floating_ips", "allowed_address_pairs"}
        )
        name = spec.get("name")
        if name != f"eth{index}":
            raise reader.fail(
                f"{key}.name",
                f"{name!r} is not eth{index}",
                "name the ports eth0, eth1, ... in order",
            )
        network = networks.get(str(spec.get("network")))
        if network is None:
            raise reader.fail(
                f"{key}.network",
                f"{spec.get('network')!r} is not defined",
                f"use one of {', '.join(networks)}",
            )
        ips_raw = spec.get("ips")
        if not isinstance(ips_raw, list) or not ips_raw:
            raise reader.fail(
                f"{key}.ips", "expected a list of addresses", "write e.g. [192.168.0.107]"
            )
        ips = tuple(reader.address(ip, f"{key}.ips") for ip in ips_raw)
        for ip in ips:
            if ip is None or ip not in network.cidr:
                raise reader.fail(
                    f"{key}.ips",
                    f"{ip} is outside {network.cidr}",
                    "give addresses of the port's subnet",
                )
            if ip in seen_ips or ip in (network.gateway, network.dhcp_server):
                raise reader.fail(f"{key}.ips", f"{ip} is used twice", "give each its own")
            seen_ips.add(ip)
        fips: dict[ipaddress.IPv4Address, ipaddress.IPv4Address] = {}
        for fixed, floating in reader.mapping(
            spec.get("floating_ips", {}), f"{key}.floating_ips"
        ).items():
            fixed_ip = reader.address(fixed, f"{key}.floating_ips")
            fip = reader.address(floating, f"{key}.floating_ips.{fixed}")
            if fixed_ip not in ips or fip is None or fixed_ip is None:
                raise reader.fail(
                    f"{key}.floating_ips",
                    f"{fixed} is not one of the port's ips",
                    "map each fixed IP of the port to a floating IP",
                )
            if fip not in PUBLIC_RANGE or fip in seen_fips or network.gateway is None:
                raise reader.fail(
                    f"{key}.floating_ips.{fixed}",
                    f"{fip} is not a free floating IP behind a router",
                    f"give each its own address in {PUBLIC_RANGE} on a network with a gateway",
                )
            seen_fips.add(fip)
            fips[fixed_ip] = fip
        pairs_raw = spec.get("allowed_address_pairs", [])
        if not isinstance(pairs_raw, list):
            raise reader.fail(
                f"{key}.allowed_address_pairs", "expected a list", "write e.g. [192.168.0.112]"
            )
        pairs = tuple(
            a
            for a in (reader.address(p, f"{key}.allowed_address_pairs") for p in pairs_raw)
            if a is not None
        )
        mac = str(spec.get("mac") or _default_mac(ips[0])).lower()
        if not _MAC.match(mac):
            raise reader.fail(
                f"{key}.mac", f"{mac!r} is not a MAC address", "write e.g. fa:16:3e:00:00:07"
            )
        ports.append(
            GuestPort(
                name=str(name),
                network=network.name,
                mac=mac,
                ips=tuple(i for i in ips if i is not None),
                floating_ips=fips,
                allowed_address_pairs=pairs,
                metric=FIRST_METRIC + index,
            )
        )
    return tuple(ports)


def _default_mac(ip: ipaddress.IPv4Address | None) -> str:
    """Neutron's OUI plus the last three bytes of the port's first address."""
    tail = ip.packed[1:] if ip is not None else b"\0\0\1"
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in tail)


def _outcome(reader: _Reader, raw: object, key: str) -> Outcome:
    spec = reader.mapping(raw, key)
    reader.only_keys(spec, key, {"reachable", "egress", "gateway", "spoof_drops"})
    reachable = {
        str(k): bool(v)
        for k, v in reader.mapping(spec.get("reachable", {}), f"{key}.reachable").items()
    }
    egress = {
        str(k): (None if v is None else str(v))
        for k, v in reader.mapping(spec.get("egress", {}), f"{key}.egress").items()
    }
    gateway = {
        str(k): bool(v)
        for k, v in reader.mapping(spec.get("gateway", {}), f"{key}.gateway").items()
    }
    drops = spec.get("spoof_drops")
    if not isinstance(drops, bool):
        raise reader.fail(
            f"{key}.spoof_drops", f"{drops!r} is not true or false", "write true or false"
        )
    return Outcome(reachable=reachable, egress=egress, gateway=gateway, spoof_drops=drops)


class _Reader:
    """Typed accessors that raise :class:`InputError` naming the file and the key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str, fix: str) -> InputError:
        return InputError(f"{self.source}: {key}: {problem}; {fix}")

    def mapping(self, value: object, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(
                key,
                f"expected a mapping, got {type(value).__name__}",
                "write it as 'key: value' lines",
            )
        return {str(k): v for k, v in value.items()}

    def only_keys(self, data: dict[str, Any], where: str, allowed: set[str]) -> None:
        for key in data:
            if key not in allowed:
                raise self.fail(
                    where, f"unknown key {key!r}", f"use one of {', '.join(sorted(allowed))}"
                )

    def text(self, data: dict[str, Any], key: str) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "missing or empty", "write a short text")
        return value

    def address(
        self, value: object, key: str, optional: bool = False
    ) -> ipaddress.IPv4Address | None:
        if value is None and optional:
            return None
        try:
            return ipaddress.IPv4Address(str(value))
        except ValueError as exc:
            raise self.fail(
                key, f"{value!r} is not an IPv4 address", "write e.g. 192.168.0.107"
            ) from exc
