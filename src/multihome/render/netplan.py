"""netplan: ``/etc/netplan/90-multihome.yaml`` plus a networkd drop-in for what netplan cannot say.

The YAML sorts after cloud-init's ``50-cloud-init.yaml``; netplan merges both definitions of an
interface (same id), appending multihome's ``routes`` (with ``table``) and ``routing-policy``
(with ``priority``). netplan 0.106 cannot express ``iif``/``oif`` selectors,
``suppress_prefixlength`` or a DHCP route table; those go into a networkd drop-in for the
``.network`` file netplan generates (``10-netplan-<id>.network.d/50-multihome.conf``).

IPv6: the copies and rules as for IPv4 (``routing-policy`` takes both families); the table's
IPv6 default goes into the drop-in as networkd's ``Gateway=_ipv6ra`` (the router networkd's
RA client follows), which netplan's ``via:`` cannot say. A static IPv6 port (``network_data.json``
type ``ipv6``) that no netplan file defines yet gets its definition from multihome, with the
address in ``addresses``, ``accept-ra: false``, and its gateway as a route of main with the
metric it had (2048 + ifindex from the agent: never a better default than another port's
advertised one); where cloud-init's YAML defines the port, that file has the address.

With ``renderer: NetworkManager`` netplan 0.106 silently drops ``routing-policy``: the
renderer's :func:`notes` say so (use ``--backend networkmanager`` there).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from multihome.model import RTN_THROW, SCOPE_HOST, SCOPE_LINK, TABLE_MAIN, Route, Rule, net_text
from multihome.render import networkd
from multihome.render.base import (
    FileSpec,
    ManagedPort,
    Rendered,
    RenderInput,
    header,
    is_ra_default,
    name_files,
)

NAME = "netplan"
YAML_PATH = PurePosixPath("/etc/netplan/90-multihome.yaml")


def expressible(rule: Rule) -> bool:
    """Whether netplan 0.106's ``routing-policy`` can carry ``rule``."""
    return (
        rule.iifname is None
        and rule.oifname is None
        and rule.suppress_prefixlength is None
        and rule.table != TABLE_MAIN
    )


def render(inp: RenderInput) -> Rendered:
    """The netplan YAML, the networkd drop-ins it needs, and the iproute2 names."""
    files = name_files(inp)
    lines = [header(), "network:", "  version: 2", "  ethernets:"]
    for port in inp.ports:
        ident = inp.facts.netplan_ids.get(port.name)
        lines.append(f"    {ident or port.name}:")
        if ident is None:
            lines += _definition(port)
        main = port.main6_via if ident is None else ()
        routes = [*main, *(r for r in port.static_routes if not is_ra_default(r))]
        if routes:
            lines.append("      routes:")
            for route in routes:
                lines += _route(route)
        policy = [r for r in port.rules if expressible(r)]
        if policy:
            lines.append("      routing-policy:")
            for rule in policy:
                lines += _rule(rule)
        rest = tuple(r for r in port.rules if not expressible(r))
        body = networkd.port_sections(port, dhcp_gateway=False, routes=False, rules=rest)
        for route in port.static_routes:
            if is_ra_default(route):  # netplan cannot say "the advertising router"
                body += networkd.route_section(route, use_dhcp_gateway=False)
        if body:
            top = (
                f"{header()}# {port.name}: what netplan 0.106 cannot express for table "
                f"{port.table.id} ({port.table.name})\n\n"
            )
            files[networkd.dropin_path(f"10-netplan-{ident or port.name}.network")] = FileSpec(
                top + "\n".join(body)
            )
    files[YAML_PATH] = FileSpec("\n".join(lines) + "\n", mode=0o600)
    return files


def notes(inp: RenderInput) -> list[str]:
    """Warnings about what this system's netplan would lose."""
    if inp.facts.netplan_renderer == "NetworkManager":
        return [
            "netplan renders to NetworkManager here, and netplan 0.106 then silently "
            "drops routing-policy (and the networkd drop-ins have no effect): use "
            "--backend networkmanager instead"
        ]
    return []


def _definition(port: ManagedPort) -> list[str]:
    lines = []
    if port.mac:
        lines += ["      match:", f'        macaddress: "{port.mac}"']
    if port.dhcp:
        lines.append("      dhcp4: true")
    addresses = [a for a in port.addresses if a.family == 4 and not port.dhcp]
    addresses += port.static6
    if addresses:
        lines.append("      addresses:")
        lines += [f"        - {a.interface}" for a in addresses]
    if port.ipv6:
        accept = "false" if port.static_only6 else "true"
        lines += [f"      accept-ra: {accept}", "      ipv6-address-generation: eui64"]
    return lines


def _route(route: Route) -> list[str]:
    dst = "0.0.0.0/0" if route.is_default and route.family == 4 else str(route.dst)
    lines = [f"        - to: {dst}"]
    if route.type == RTN_THROW:
        lines.append("          type: throw")
    if route.gateway is not None:
        lines.append(f"          via: {route.gateway}")
    if route.prefsrc is not None:
        lines.append(f"          from: {route.prefsrc}")
    if route.scope == SCOPE_LINK:
        lines.append("          scope: link")
    elif route.scope == SCOPE_HOST:
        lines.append("          scope: host")
    if route.metric:
        lines.append(f"          metric: {route.metric}")
    if route.table != TABLE_MAIN:
        lines.append(f"          table: {route.table}")
    return lines


def _rule(rule: Rule) -> list[str]:
    lines = []
    if rule.src is not None:
        lines.append(f"from: {net_text(rule.src)}")
    if rule.dst is not None:
        lines.append(f"to: {net_text(rule.dst)}")
    if rule.fwmark is not None:
        lines.append(f"mark: {rule.fwmark}")
    lines += [f"table: {rule.table}", f"priority: {rule.priority}"]
    return [f"        - {lines[0]}", *(f"          {line}" for line in lines[1:])]
