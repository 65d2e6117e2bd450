"""Builders of host states: the how-to and its variants (pure data, no kernel)."""

from __future__ import annotations

import ipaddress

from multihome.model import (
    PROTO_DHCP,
    PROTO_KERNEL,
    SCOPE_LINK,
    TABLE_MAIN,
    Address,
    HostState,
    Link,
    Route,
    Rule,
)


def link(name: str, index: int, up: bool = True, kind: str | None = "veth",
         master: str | None = None) -> Link:
    return Link(name=name, index=index, mac=f"52:54:00:00:00:{index:02x}", kind=kind, up=up,
                master=master)


def port(name: str, index: int, addr: str, gateway: str | None, metric: int,
         metadata: str | None = None) -> tuple[Link, list[Address], list[Route]]:
    """A DHCP-configured port as dhclient/networkd leave it in main."""
    iface = ipaddress.ip_interface(addr)
    routes = [Route(table=TABLE_MAIN, dst=iface.network, ifname=name, proto=PROTO_KERNEL,
                    scope=SCOPE_LINK, prefsrc=iface.ip, metric=metric)]
    if gateway:
        routes.append(Route(table=TABLE_MAIN, dst=ipaddress.ip_network("0.0.0.0/0"),
                            ifname=name, gateway=ipaddress.ip_address(gateway),
                            proto=PROTO_DHCP, prefsrc=iface.ip, metric=metric))
    if metadata:
        routes.append(Route(table=TABLE_MAIN, dst=ipaddress.ip_network("169.254.169.254/32"),
                            ifname=name, gateway=ipaddress.ip_address(metadata),
                            proto=PROTO_DHCP, prefsrc=iface.ip, metric=metric))
    return link(name, index), [Address(name, iface)], routes


def host(*ports: tuple[Link, list[Address], list[Route]], extra_links: tuple[Link, ...] = (),
         extra_routes: tuple[Route, ...] = (), extra_rules: tuple[Rule, ...] = ()) -> HostState:
    links = [link("lo", 1, kind=None), *extra_links]
    links[0] = Link(name="lo", index=1, loopback=True, up=True)
    addresses: list[Address] = [Address("lo", ipaddress.ip_interface("127.0.0.1/8"), 254)]
    routes: list[Route] = list(extra_routes)
    for lnk, addrs, rts in ports:
        links.append(lnk)
        addresses += addrs
        routes += rts
    rules = [Rule(family=4, priority=0, table=255, proto=2),
             Rule(family=4, priority=32766, table=254, proto=2),
             Rule(family=4, priority=32767, table=253, proto=2), *extra_rules]
    sysctls = {f"net.ipv4.conf.{lnk.name}.{knob}": "0" for lnk in links
               for knob in ("rp_filter", "arp_ignore", "arp_announce", "arp_filter")}
    return HostState.build(links, addresses, routes, rules, sysctls)
