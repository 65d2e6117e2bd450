"""Builders of host states for tests: the how-to's VM and its variants (pure data, no kernel).

The one place tests build a ``HostState`` by hand: unit, safety, persist and labhot tests all
start from :func:`howto_host` or from :func:`host` with :func:`port` s.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from multihome.model import (
    IFA_F_NOPREFIXROUTE,
    IFA_F_PERMANENT,
    PROTO_DHCP,
    PROTO_KERNEL,
    PROTO_RA,
    PROTO_STATIC,
    SCOPE_LINK,
    SCOPE_UNIVERSE,
    TABLE_MAIN,
    Address,
    HostState,
    Link,
    Route,
    Rule,
)

#: A port as :func:`host` takes it: its link, addresses and routes in main.
PortState = tuple[Link, list[Address], list[Route]]
SYSCTL_KNOBS = ("rp_filter", "arp_ignore", "arp_announce", "arp_filter")
#: The how-to's ports: name, address, metric (gateway 192.168.0.1, metadata 192.168.0.100).
HOWTO_PORTS = (("eth0", "192.168.0.107/24", 100), ("eth1", "192.168.0.112/24", 101))


def link(
    name: str,
    index: int,
    up: bool = True,
    kind: str | None = "veth",
    master: str | None = None,
    mac: str | None = None,
) -> Link:
    """A link; its MAC is ``52:54:00:00:00:<index>`` unless given."""
    return Link(
        name=name,
        index=index,
        mac=mac or f"52:54:00:00:00:{index:02x}",
        kind=kind,
        up=up,
        master=master,
    )


def port(
    name: str,
    index: int,
    addr: str,
    gateway: str | None,
    metric: int,
    metadata: str | None = None,
    *,
    mac: str | None = None,
    kind: str | None = "veth",
) -> PortState:
    """A DHCP-configured port as dhclient/networkd leave it in main: the prefix route, the
    default via ``gateway`` and the metadata host route via ``metadata`` (option 121)."""
    iface = ipaddress.ip_interface(addr)
    routes = [
        Route(
            table=TABLE_MAIN,
            dst=iface.network,
            ifname=name,
            proto=PROTO_KERNEL,
            scope=SCOPE_LINK,
            prefsrc=iface.ip,
            metric=metric,
        )
    ]
    for dst, via in (("0.0.0.0/0", gateway), ("169.254.169.254/32", metadata)):
        if via:
            routes.append(
                Route(
                    table=TABLE_MAIN,
                    dst=ipaddress.ip_network(dst),
                    ifname=name,
                    gateway=ipaddress.ip_address(via),
                    proto=PROTO_DHCP,
                    prefsrc=iface.ip,
                    metric=metric,
                )
            )
    return link(name, index, kind=kind, mac=mac), [Address(name, iface)], routes


def with_ipv6(
    state: PortState,
    addr: str,
    router: str = "fe80::1",
    *,
    flags: int = 0,
    metric: int = 1024,
    more: Sequence[tuple[str, int]] = (),
) -> PortState:
    """``state`` with what SLAAC and a router advertisement leave: the global address
    ``addr`` (its ``IFA_F_*`` ``flags``), a link-local address, the prefix route and fe80::/64
    (proto kernel, metric 256), the default via the router's link-local address (proto ra,
    ``metric``, with an expiry); ``more``: further addresses of the prefix with their flags
    (a temporary one, a tentative one)."""
    lnk, addrs, routes = state
    iface = ipaddress.IPv6Interface(addr)
    local = ipaddress.IPv6Interface(f"fe80::{lnk.index:x}/64")
    v6 = [
        Address(lnk.name, iface, SCOPE_UNIVERSE, flags=flags),
        *(
            Address(lnk.name, ipaddress.IPv6Interface(extra), SCOPE_UNIVERSE, flags=bits)
            for extra, bits in more
        ),
        Address(lnk.name, local, SCOPE_LINK),
    ]
    v6_routes = [
        Route(table=TABLE_MAIN, dst=net, ifname=lnk.name, proto=PROTO_KERNEL, metric=256)
        for net in (iface.network, local.network)
    ]
    v6_routes.append(
        Route(
            table=TABLE_MAIN,
            dst=ipaddress.IPv6Network("::/0"),
            ifname=lnk.name,
            gateway=ipaddress.IPv6Address(router),
            proto=PROTO_RA,
            metric=metric,
            expires=1800,
        )
    )
    return lnk, [*addrs, *v6], [*routes, *v6_routes]


def with_static_ipv6(state: PortState, addr: str, gateway: str) -> PortState:
    """``state`` with a DHCP-disabled IPv6 network (``network_data.json`` type ``ipv6``) as the
    agent configures it from the metadata: the address permanent and ``noprefixroute``, its
    prefix and the default via ``gateway`` in main (proto static, metric 2048 + ifindex), a
    link-local address and fe80::/64; no router advertisement."""
    lnk, addrs, routes = state
    iface = ipaddress.IPv6Interface(addr)
    local = ipaddress.IPv6Interface(f"fe80::{lnk.index:x}/64")
    metric = 2048 + lnk.index
    v6 = [
        Address(lnk.name, iface, SCOPE_UNIVERSE, flags=IFA_F_PERMANENT | IFA_F_NOPREFIXROUTE),
        Address(lnk.name, local, SCOPE_LINK, flags=IFA_F_PERMANENT),
    ]
    v6_routes = [
        Route(table=TABLE_MAIN, dst=local.network, ifname=lnk.name, proto=PROTO_KERNEL, metric=256),
        Route(
            table=TABLE_MAIN, dst=iface.network, ifname=lnk.name, proto=PROTO_STATIC, metric=metric
        ),
        Route(
            table=TABLE_MAIN,
            dst=ipaddress.IPv6Network("::/0"),
            ifname=lnk.name,
            gateway=ipaddress.IPv6Address(gateway),
            proto=PROTO_STATIC,
            metric=metric,
        ),
    ]
    return lnk, [*addrs, *v6], [*routes, *v6_routes]


def ipv6_port(
    name: str, index: int, addr: str, router: str = "fe80::1", *, flags: int = 0
) -> PortState:
    """An IPv6-only port (no IPv4 address), as SLAAC leaves it (:func:`with_ipv6`)."""
    return with_ipv6((link(name, index), [], []), addr, router, flags=flags)


def host(
    *ports: PortState,
    extra_links: tuple[Link, ...] = (),
    extra_routes: tuple[Route, ...] = (),
    extra_rules: tuple[Rule, ...] = (),
) -> HostState:
    """Loopback, the ports, the kernel's three default rules and every ARP/rp sysctl at 0."""
    links = [Link(name="lo", index=1, loopback=True, up=True), *extra_links]
    addresses: list[Address] = [Address("lo", ipaddress.ip_interface("127.0.0.1/8"), 254)]
    routes: list[Route] = list(extra_routes)
    for lnk, addrs, rts in ports:
        links.append(lnk)
        addresses += addrs
        routes += rts
    rules = [
        Rule(family=4, priority=0, table=255, proto=2),
        Rule(family=4, priority=32766, table=254, proto=2),
        Rule(family=4, priority=32767, table=253, proto=2),
        *extra_rules,
    ]
    names = ["all", "default", *(lnk.name for lnk in links)]
    sysctls = {f"net.ipv4.conf.{name}.{knob}": "0" for name in names for knob in SYSCTL_KNOBS}
    return HostState.build(links, addresses, routes, rules, sysctls)


def without_port(state: HostState, ifname: str) -> HostState:
    """``state`` after port ``ifname`` was deleted: its link, addresses and routes gone (the
    kernel removes them with the device), the rules that name it kept."""
    return HostState.build(
        [lnk for lnk in state.links if lnk.name != ifname],
        [a for a in state.addresses if a.ifname != ifname],
        [r for r in state.routes if r.ifname != ifname],
        state.rules,
        state.sysctls,
    )


def howto_host(macs: Sequence[str] = ()) -> HostState:
    """The how-to's VM: eth0 .107 and eth1 .112 on 192.168.0.0/24, a default each via .1
    (metrics 100, 101) and the metadata route via .100, as the DHCP client leaves them.
    ``macs``: the ports' MACs (they decide the table ids) when not the builder's own."""
    return host(
        *(
            port(name, index, addr, "192.168.0.1", metric, "192.168.0.100", mac=mac)
            for index, ((name, addr, metric), mac) in enumerate(
                zip(HOWTO_PORTS, [*macs, None, None][:2], strict=True), start=2
            )
        )
    )
