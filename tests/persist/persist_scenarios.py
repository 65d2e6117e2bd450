"""Host states of the golden scenarios: the how-to's 2-port VM, a 3-port VM running Docker
(its bridge's route gets a throw in every table), the how-to's VM dual-stack (SLAAC
addresses and router-advertised defaults on both ports), and a VM whose hot-plugged second
port has a static IPv6 network (``network_data.json`` type ``ipv6``, addressed by the agent;
no configuration file names it yet)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from types import MappingProxyType

from hosts import host, link, port, with_ipv6, with_static_ipv6

from multihome.config import Config
from multihome.model import (
    PROTO_KERNEL,
    SCOPE_LINK,
    TABLE_MAIN,
    HostState,
    Route,
)
from multihome.policy import DesiredState, compute_policy
from multihome.render import HostFacts, RenderInput, build_input

MACS = {"eth0": "fa:16:3e:00:00:01", "eth1": "fa:16:3e:00:00:02", "eth2": "fa:16:3e:00:00:03"}


@dataclass(frozen=True)
class ScenarioPort:
    """One port of a golden scenario, as DHCP configured it (address, gateway, metric)."""

    name: str
    address: str
    gateway: str
    metric: int
    metadata: str | None = "192.168.0.100"
    address6: str | None = None
    """The SLAAC address (EUI-64 of the MAC) the router's advertisement gave, if any."""
    static6: tuple[str, str] | None = None
    """A static IPv6 address and its gateway from the metadata (no router advertisement)."""


#: Docker's bridge and its route in main (the 3-port VM runs containers).
DOCKER_ROUTE = Route(
    table=TABLE_MAIN,
    dst=ipaddress.IPv4Network("172.17.0.0/16"),
    ifname="docker0",
    proto=PROTO_KERNEL,
    scope=SCOPE_LINK,
    prefsrc=ipaddress.IPv4Address("172.17.0.1"),
)


def dhcp_host(ports: list[ScenarioPort], *, docker: bool = False) -> HostState:
    """A VM whose ports got address, default and option-121 routes from DHCP (as the how-to),
    and, for a port with ``address6``, its SLAAC address and the router's RA default."""
    states = []
    for i, p in enumerate(ports, 2):
        state = port(
            p.name, i, p.address, p.gateway, p.metric, p.metadata, mac=MACS[p.name], kind=None
        )
        if p.address6 is not None:
            state = with_ipv6(state, p.address6)
        if p.static6 is not None:
            state = with_static_ipv6(state, *p.static6)
        states.append(state)
    if not docker:
        return host(*states)
    return host(
        *states, extra_links=(link("docker0", 9, kind="bridge"),), extra_routes=(DOCKER_ROUTE,)
    )


HOWTO = [
    ScenarioPort("eth0", "192.168.0.107/24", "192.168.0.1", 100),
    ScenarioPort("eth1", "192.168.0.112/24", "192.168.0.1", 101),
]
THREE = [*HOWTO, ScenarioPort("eth2", "10.20.0.30/24", "10.20.0.1", 102, metadata=None)]

DUALSTACK = [
    ScenarioPort(
        "eth0", "192.168.0.107/24", "192.168.0.1", 100, None, "2001:db8:1:0:f816:3eff:fe00:1/64"
    ),
    ScenarioPort(
        "eth1", "192.168.0.112/24", "192.168.0.1", 101, None, "2001:db8:1:0:f816:3eff:fe00:2/64"
    ),
]

STATIC6 = [
    DUALSTACK[0],
    ScenarioPort(
        "eth1",
        "192.168.0.112/24",
        "192.168.0.1",
        101,
        None,
        static6=("2001:db8:2::5/64", "2001:db8:2::1"),
    ),
]

SCENARIOS = {"howto": HOWTO, "three": THREE, "dualstack": DUALSTACK, "static6": STATIC6}
#: Per scenario, the ports that no configuration file names yet (hot-plugged).
UNCONFIGURED = {"three": ("eth2",), "static6": ("eth1",)}


def state_of(name: str) -> HostState:
    return dhcp_host(SCENARIOS[name], docker=name == "three")


def desired_of(name: str) -> DesiredState:
    return compute_policy(state_of(name), Config())


def facts_of(name: str, backend: str) -> HostFacts:
    """What persist would find on a typical system of that backend.

    In the 3-port scenario eth2 was hot-plugged, in the static6 one eth1: they have no
    configuration of their own yet.
    """
    known = [p.name for p in SCENARIOS[name] if p.name not in UNCONFIGURED.get(name, ())]
    if backend == "networkd":
        return HostFacts(networkd_files=MappingProxyType({n: f"10-{n}.network" for n in known}))
    if backend == "netplan":
        return HostFacts(netplan_ids=MappingProxyType({n: n for n in known}))
    if backend == "systemd":
        return HostFacts(has_networkd=True)
    return HostFacts()


def input_of(name: str, backend: str) -> RenderInput:
    return build_input(state_of(name), desired_of(name), facts_of(name, backend))
