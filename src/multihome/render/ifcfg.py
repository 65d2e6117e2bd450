"""RHEL 7/8 ifcfg files for NetworkManager's ifcfg-rh plugin: ``ifcfg-multihome-<if>`` and
``route-multihome-<if>`` in ``/etc/sysconfig/network-scripts``.

* the rules are ``ROUTING_RULE_N=`` lines inside multihome's ifcfg file: ifcfg-rh ignores
  BOTH ``rule-ethX`` and ``route-ethX`` as soon as a ``rule-ethX`` file exists, so multihome
  never writes one;
* the routes DHCP does not make are ip-style lines (``DEST via GW dev IF ... table N``) in the
  ``route-`` file that belongs to multihome's ifcfg file (same suffix);
* ``IPV4_ROUTE_TABLE=`` makes a secondary port's DHCP routes land in its table;
* IPv6: ``ROUTING_RULE6_N=`` lines and a ``route6-`` file, both of which NetworkManager's
  ifcfg-rh plugin reads (``ROUTING_RULE6_`` is one of its numbered keys, ``route6-<name>``
  is parsed by its ``read_route_file(AF_INET6, ...)`` in ip-route syntax; legacy
  network-scripts replay it with ``ip -6 route add``). Like NetworkManager's keyfile, it
  names the router's link-local address seen at persist time (docs/design.md, section 8);
* a static IPv6 port (``network_data.json`` type ``ipv6``: no router advertisement):
  ``IPV6_AUTOCONF=no``, ``IPV6ADDR=`` (and ``IPV6ADDR_SECONDARIES=``), no
  ``IPV6_DEFAULTGW=`` (that default would take ``IPV6_ROUTE_METRIC=`` and beat the other
  ports' advertised ones) but the gateway as a ``route6-`` line without a table (main), with
  the metric it had (2048 + ifindex from the agent).

The profile is multihome's own (its own NAME and a stable UUID) and outranks the
distribution's ``ifcfg-ethX`` through ``AUTOCONNECT_PRIORITY``; the user's files are never edited.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from multihome.model import RTN_THROW, SCOPE_HOST, SCOPE_LINK, TABLE_MAIN, Route
from multihome.portconfig import AUTOCONNECT_PRIORITY
from multihome.render.base import (
    FileSpec,
    ManagedPort,
    Rendered,
    RenderInput,
    header,
    name_files,
    rule_selector_text,
)
from multihome.render.networkmanager import connection_uuid

NAME = "ifcfg"
SCRIPTS_DIR = PurePosixPath("/etc/sysconfig/network-scripts")


def render(inp: RenderInput) -> Rendered:
    """An ifcfg file (and a route file when needed) per port, and the iproute2 names."""
    files = name_files(inp)
    for port in inp.ports:
        files[SCRIPTS_DIR / f"ifcfg-multihome-{port.name}"] = FileSpec(ifcfg(port))
        for family, prefix in ((4, "route"), (6, "route6")):
            routes = route_lines(port, family)
            if routes:
                files[SCRIPTS_DIR / f"{prefix}-multihome-{port.name}"] = FileSpec(
                    header() + "".join(f"{line}\n" for line in routes)
                )
    return files


def ifcfg(port: ManagedPort) -> str:
    lines = [
        f"# {port.name}: {port.role} port, table {port.table.id} ({port.table.name})",
        f"NAME=multihome-{port.name}",
        f"UUID={connection_uuid(port.name)}",
        f"DEVICE={port.name}",
        "TYPE=Ethernet",
        "ONBOOT=yes",
        f"AUTOCONNECT_PRIORITY={AUTOCONNECT_PRIORITY}",
    ]
    if port.mac:
        lines.append(f"HWADDR={port.mac.upper()}")
    if port.dhcp:
        lines.append("BOOTPROTO=dhcp")
    else:
        lines.append("BOOTPROTO=none")
        for n, addr in enumerate(a for a in port.addresses if a.family == 4):
            lines += [f"IPADDR{n}={addr.ip}", f"PREFIX{n}={addr.interface.network.prefixlen}"]
        if port.role == "primary" and port.gateway is not None:
            lines.append(f"GATEWAY={port.gateway}")
        else:
            lines.append("DEFROUTE=no")
    if port.ipv6:  # SLAAC from the router's advertisements, the address from the MAC
        autoconf = "no" if port.static_only6 else "yes"
        lines += ["IPV6INIT=yes", f"IPV6_AUTOCONF={autoconf}", "IPV6_ADDR_GEN_MODE=eui64"]
        lines.append("IPV6_PRIVACY=no")
        if port.static6:  # a static IPv6 network (the metadata's), as network-scripts reads it
            lines.append(f"IPV6ADDR={port.static6[0].interface}")
            if port.static6[1:]:
                more = " ".join(str(a.interface) for a in port.static6[1:])
                lines.append(f'IPV6ADDR_SECONDARIES="{more}"')
        if port.metric6 is not None:
            lines.append(f"IPV6_ROUTE_METRIC={port.metric6}")
    if port.metric is not None:
        lines.append(f"IPV4_ROUTE_METRIC={port.metric}")
    if port.dhcp_table is not None:
        lines.append(f"IPV4_ROUTE_TABLE={port.dhcp_table}")
    for n, rule in enumerate(port.rules, 1):
        key = "ROUTING_RULE" if rule.family == 4 else "ROUTING_RULE6"
        lines.append(f'{key}_{n}="{rule_selector_text(rule)}"')
    return header() + "\n".join(lines) + "\n"


def route_lines(port: ManagedPort, family: int = 4) -> list[str]:
    """``ip route add`` arguments, one route per line (what network-scripts replays, and
    ifcfg-rh's ``read_route_file`` parses: ``route-`` for IPv4, ``route6-`` for IPv6)."""
    return [route_text(r) for r in (*port.main6_via, *port.static_routes) if r.family == family]


def route_text(route: Route) -> str:
    parts = [("default" if route.family == 4 else "::/0") if route.is_default else str(route.dst)]
    if route.type == RTN_THROW:
        parts.insert(0, "throw")
    if route.gateway is not None:
        parts += ["via", str(route.gateway)]
    if route.ifname:
        parts += ["dev", route.ifname]
    if route.scope == SCOPE_LINK:
        parts += ["scope", "link"]
    elif route.scope == SCOPE_HOST:
        parts += ["scope", "host"]
    if route.prefsrc is not None:
        parts += ["src", str(route.prefsrc)]
    if route.metric:
        parts += ["metric", str(route.metric)]
    if route.table != TABLE_MAIN:
        parts += ["table", str(route.table)]
    return " ".join(parts)
