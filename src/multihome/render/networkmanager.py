"""NetworkManager keyfiles: one connection profile per port, ``multihome-<if>.nmconnection``.

The profile is multihome's own file (mode 0600, a stable uuid5); it binds to the interface
and outranks the distribution's profile through ``autoconnect-priority``, so the user's
profile is never edited and comes back as soon as multihome's is removed (``unpersist``).

* ``ipv4.route-table`` makes a secondary port's DHCP routes (default, option 121 and the
  prefix route) land in the port's table at every lease and renew;
* ``ipv4.routes`` with ``table=`` carries the routes DHCP does not make (the primary's copies,
  without ``src=``: NetworkManager adds them before the lease's address exists);
* ``ipv4.routing-rules`` carries every rule of the policy, in NetworkManager's normal form;
* ``ipv6.routes`` and ``ipv6.routing-rules`` the same for IPv6. NetworkManager cannot name
  "the advertising router" in a static route: the table's IPv6 default names the router's
  link-local address seen at persist time (Neutron's router keeps it as long as its
  interface); a new router is the agent's to follow (docs/design.md, section 8);
* a static IPv6 port (``network_data.json`` type ``ipv6``: no router advertisement):
  ``ipv6.method=manual`` with its ``addressN=``, no ``gateway=`` (that default would take
  the profile's ``route-metric`` and beat the other ports' advertised ones) but its
  gateway as a route of main with the metric it had (2048 + ifindex from the agent), that
  metric as ``ipv6.route-metric`` too (the prefix route NetworkManager adds for the address
  gets it: main is what it was), and its table's routes and rules as above. The profile
  replaces the distribution's, so it carries the addresses, as its static IPv4 ones.

NetworkManager silently drops invalid values from keyfiles: the tests round-trip every
rendered profile through ``nmcli --offline`` and compare the keys.
"""

from __future__ import annotations

import uuid
from pathlib import PurePosixPath

from multihome.model import RTN_THROW, SCOPE_UNIVERSE, TABLE_MAIN, Route
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

NAME = "networkmanager"
CONNECTION_DIR = PurePosixPath("/etc/NetworkManager/system-connections")
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "multihome.invalid")


def connection_uuid(ifname: str) -> str:
    """A stable uuid for the profile of ``ifname`` (the same on every run and host)."""
    return str(uuid.uuid5(_NAMESPACE, f"networkmanager/{ifname}"))


def connection_path(ifname: str) -> PurePosixPath:
    return CONNECTION_DIR / f"multihome-{ifname}.nmconnection"


def render(inp: RenderInput) -> Rendered:
    """A keyfile per port, and the iproute2 names."""
    files = name_files(inp)
    for port in inp.ports:
        files[connection_path(port.name)] = FileSpec(keyfile(port), mode=0o600)
    return files


def keyfile(port: ManagedPort) -> str:
    """The keyfile text for ``port``."""
    lines = [
        header().rstrip("\n"),
        f"# {port.name}: {port.role} port, table {port.table.id} ({port.table.name})",
        "[connection]",
        f"id=multihome-{port.name}",
        f"uuid={connection_uuid(port.name)}",
        "type=ethernet",
        f"interface-name={port.name}",
        f"autoconnect-priority={AUTOCONNECT_PRIORITY}",
        "",
    ]
    if port.mac:
        lines += ["[ethernet]", f"mac-address={port.mac.upper()}", ""]
    lines.append("[ipv4]")
    if port.dhcp:
        lines.append("method=auto")
    elif not any(a.family == 4 for a in port.addresses):
        lines.append("method=disabled")  # an IPv6-only port (manual needs an address)
    else:
        lines.append("method=manual")
        for n, addr in enumerate((a for a in port.addresses if a.family == 4), 1):
            lines.append(f"address{n}={addr.interface}")
        if port.role != "primary":
            lines.append("never-default=true")
        elif port.gateway is not None:
            lines.append(f"gateway={port.gateway}")
    if port.metric is not None:
        lines.append(f"route-metric={port.metric}")
    if port.dhcp_table is not None:
        lines.append(f"route-table={port.dhcp_table}")
    lines += _routes_and_rules(port, 4)
    if port.ipv6:
        # Router advertisements (NetworkManager's own client; its RA default stays in main,
        # as the kernel's does after `multihome apply`), the address from the MAC (EUI-64:
        # the one Neutron computes and its port security allows; NetworkManager's default
        # is stable-privacy), no privacy addresses.
        method = "manual" if port.static_only6 else "auto"
        lines += ["", "[ipv6]", f"method={method}", "addr-gen-mode=eui64", "ip6-privacy=0"]
        lines += [f"address{n}={a.interface}" for n, a in enumerate(port.static6, 1)]
        metric = port.metric6  # equal metrics merge the RA defaults (multipath)
        if port.static_only6:  # no RA defaults: the metric of the prefix route NetworkManager
            # adds for the address, the agent's (NetworkManager's own would be 100 or IPv4's)
            metric = next((r.metric for r in port.main6 if r.gateway is None), metric)
        if metric is not None:
            lines.append(f"route-metric={metric}")
        lines += _routes_and_rules(port, 6)
    return "\n".join(lines) + "\n"


def _routes_and_rules(port: ManagedPort, family: int) -> list[str]:
    """The ``routeN``/``routing-ruleN`` keys of one family's section."""
    lines: list[str] = []
    routes = [r for r in (*port.main6_via, *port.static_routes) if r.family == family]
    for n, route in enumerate(routes, 1):
        lines += _route(n, route)
    rules = [r for r in port.rules if r.family == family]
    for n, rule in enumerate(rules, 1):
        lines.append(f"routing-rule{n}={rule_selector_text(rule)}")
    return lines


def _route(n: int, route: Route) -> list[str]:
    hop = (
        str(route.gateway)
        if route.gateway is not None
        else ("0.0.0.0" if route.family == 4 else "::")
    )
    text = f"route{n}={route.dst},{hop}" + (f",{route.metric}" if route.metric else "")
    if route.type == RTN_THROW and not route.metric:
        text = f"route{n}={route.dst}"  # as NetworkManager writes it back
    # No src=: NetworkManager adds static routes before the DHCP address is there, and the
    # kernel refuses a preferred source that is not local yet (EINVAL), for good. The port's
    # rules select the table; the kernel picks the port's address as source.
    options = [] if route.table == TABLE_MAIN else [f"table={route.table}"]
    if route.type == RTN_THROW:  # no next hop (0.0.0.0, ::): main answers (design.md 5)
        options.append("type=throw")
    if route.scope != SCOPE_UNIVERSE:
        options.append(f"scope={route.scope}")
    return [text, *([f"route{n}_options={','.join(sorted(options))}"] if options else [])]
