"""systemd-networkd: a drop-in per interface (``<its .network>.d/50-multihome.conf``).

* ``[DHCPv4] RouteTable=`` puts a secondary port's DHCP routes (default, option 121, prefix
  route) into the port's table, at every lease and renew, so main never sees them;
* ``[Route] Table=`` for the routes DHCP does not make (all of the primary's copies; the
  primary's default follows the DHCP router through ``Gateway=_dhcp4``), marked with
  multihome's protocol number;
* ``[RoutingPolicyRule]`` for every rule of the policy (from, to, iif, oif, suppress), both
  families;
* the IPv6 copies as ``[Route]`` sections too; the table's IPv6 default is
  ``Gateway=_ipv6ra``: networkd's own router-advertisement client fills in the router it
  follows (a new router, a router lifetime of 0), while main keeps networkd's RA default as
  ``multihome apply`` leaves the kernel's (docs/design.md, section 8);
* a static IPv6 port (``network_data.json`` type ``ipv6``: no router advertisement) in a
  file of multihome's own: ``Address=`` (as a static IPv4 port's; the agent's
  ``noprefixroute`` address as ``[Address] AddPrefixRoute=no``), ``IPv6AcceptRA=no``, and
  its prefix and gateway in main as ``[Route]`` sections with the metric they had (2048 +
  ifindex from the agent: never a better default than another port's advertised one: main
  after boot is main before it; its gateway routes ``GatewayOnLink=yes``, since networkd may
  configure them before the prefix); its table's default via the
  metadata's gateway is a ``[Route] Table=`` like any copy. Where the port's own ``.network``
  file exists (cloud-init's), that file configures the address: the drop-in adds the table
  and the rules only.

Rules and routes living in networkd's own configuration are immune to networkd's
``ManageForeignRoutingPolicyRules=``/``ManageForeignRoutes=`` clean-up. When an interface has no
``.network`` file yet, a complete one (``50-multihome-<if>.network``) is written instead.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from multihome.model import (
    IFA_F_NOPREFIXROUTE,
    PROTO_MULTIHOME,
    RTN_THROW,
    SCOPE_HOST,
    SCOPE_LINK,
    TABLE_MAIN,
    Address,
    Route,
    Rule,
    net_text,
)
from multihome.render.base import (
    FileSpec,
    ManagedPort,
    Rendered,
    RenderInput,
    header,
    is_ra_default,
    name_files,
)

NAME = "networkd"
NETWORK_DIR = PurePosixPath("/etc/systemd/network")
DROPIN_NAME = "50-multihome.conf"


def dropin_path(network_file: str) -> PurePosixPath:
    """The drop-in for the ``.network`` file ``network_file`` (a basename)."""
    return NETWORK_DIR / f"{network_file}.d" / DROPIN_NAME


def render(inp: RenderInput) -> Rendered:
    """networkd drop-ins (or whole files) for every port, and the iproute2 names."""
    files = name_files(inp)
    for port in inp.ports:
        existing = inp.facts.networkd_files.get(port.name)
        if existing:
            body = "\n".join(port_sections(port, dhcp_gateway=True))
            files[dropin_path(existing)] = FileSpec(_top(port) + body)
        else:
            body = "\n".join([*_standalone(port), *port_sections(port, dhcp_gateway=True)])
            files[NETWORK_DIR / f"50-multihome-{port.name}.network"] = FileSpec(_top(port) + body)
    return files


def _top(port: ManagedPort) -> str:
    return (
        f"{header()}# {port.name}: {port.role} port, table {port.table.id} ({port.table.name})\n\n"
    )


def _standalone(port: ManagedPort) -> list[str]:
    match = f"MACAddress={port.mac}" if port.mac else f"Name={port.name}"
    lines = ["[Match]", match, "", "[Network]"]
    if port.dhcp:
        lines.append("DHCP=ipv4")
    else:
        lines += [f"Address={a.interface}" for a in port.addresses if a.family == 4]
    lines += [f"Address={a.interface}" for a in port.static6 if not _noprefixroute(a)]
    if port.ipv6:
        lines.append(f"IPv6AcceptRA={'no' if port.static_only6 else 'yes'}")
        if port.role == "primary" and port.gateway is not None:
            lines.append(f"Gateway={port.gateway}")
    lines.append("")
    for address in port.static6:  # the agent's: its prefix route is one of main6
        if _noprefixroute(address):
            lines += ["[Address]", f"Address={address.interface}", "AddPrefixRoute=no", ""]
    for route in port.main6:  # the static port's own routes in main
        lines += route_section(
            route, use_dhcp_gateway=False, protocol=None, onlink=_onlink(port, route)
        )
    return lines


def _noprefixroute(address: Address) -> bool:
    return bool(address.flags & IFA_F_NOPREFIXROUTE)


def _onlink(port: ManagedPort, route: Route) -> bool:
    """A route through a gateway on the prefix of the port's ``noprefixroute`` address: its
    prefix route is one [Route] among the others, which networkd may configure after this
    one (the kernel then refuses the gateway: "No route to host"); ``GatewayOnLink=`` says
    what is true, the gateway is on the link."""
    return route.gateway is not None and any(
        _noprefixroute(a) and route.gateway in a.network for a in port.static6
    )


def port_sections(
    port: ManagedPort,
    *,
    dhcp_gateway: bool,
    routes: bool = True,
    rules: tuple[Rule, ...] | None = None,
) -> list[str]:
    """The sections for ``port``: DHCP table and metric, routes, rules (each optional)."""
    lines: list[str] = []
    if port.dhcp and (port.dhcp_table is not None or port.metric is not None):
        lines.append("[DHCPv4]")
        if port.dhcp_table is not None:
            lines.append(f"RouteTable={port.dhcp_table}")
        if port.metric is not None:
            lines.append(f"RouteMetric={port.metric}")
        lines.append("")
    if port.ipv6 and port.metric6 is not None and not port.static_only6:
        # The port's metric, as its DHCPv4 routes: unsourced IPv6 leaves the primary as IPv4
        # does; a multipath RA default's own (equal metrics merge: design.md section 5).
        lines += ["[IPv6AcceptRA]", f"RouteMetric={port.metric6}", ""]
    if routes:
        for route in port.static_routes:
            lines += route_section(
                route, use_dhcp_gateway=dhcp_gateway and port.dhcp, onlink=_onlink(port, route)
            )
    for rule in port.rules if rules is None else rules:
        lines += rule_section(rule)
    return lines


def route_section(
    route: Route,
    *,
    use_dhcp_gateway: bool,
    protocol: int | None = PROTO_MULTIHOME,
    onlink: bool = False,
) -> list[str]:
    """A ``[Route]`` section; a DHCP port's default follows its lease (``_dhcp4``). A route
    of main (``protocol`` None) keeps networkd's own protocol (static), as the port's other
    routes there."""
    lines = ["[Route]"]
    if route.type == RTN_THROW:  # main's specific, reached by the rule walk (design.md 5)
        lines.append("Type=throw")
    if not route.is_default:
        lines.append(f"Destination={route.dst}")
    if is_ra_default(route):
        lines.append("Gateway=_ipv6ra")  # whichever router networkd's RA client follows
    elif route.gateway is not None:
        dynamic = use_dhcp_gateway and route.is_default and route.family == 4
        lines.append(f"Gateway={'_dhcp4' if dynamic else route.gateway}")
        if onlink:
            lines.append("GatewayOnLink=yes")
    if route.prefsrc is not None:
        lines.append(f"PreferredSource={route.prefsrc}")
    if route.scope == SCOPE_LINK:
        lines.append("Scope=link")
    elif route.scope == SCOPE_HOST:
        lines.append("Scope=host")
    if route.metric:
        lines.append(f"Metric={route.metric}")
    if route.table != TABLE_MAIN:
        lines.append(f"Table={route.table}")
    if protocol is not None:
        lines.append(f"Protocol={protocol}")
    return [*lines, ""]


def rule_section(rule: Rule) -> list[str]:
    """A ``[RoutingPolicyRule]`` section with exactly the rule's selectors."""
    lines = ["[RoutingPolicyRule]", f"Priority={rule.priority}"]
    if rule.src is not None:
        lines.append(f"From={net_text(rule.src)}")
    if rule.dst is not None:
        lines.append(f"To={net_text(rule.dst)}")
    if rule.iifname:
        lines.append(f"IncomingInterface={rule.iifname}")
    if rule.oifname:
        lines.append(f"OutgoingInterface={rule.oifname}")
    if rule.fwmark is not None:
        lines.append(f"FirewallMark={rule.fwmark}" + (f"/{rule.fwmask}" if rule.fwmask else ""))
    if rule.suppress_prefixlength is not None:
        lines.append(f"SuppressPrefixLength={rule.suppress_prefixlength}")
    if rule.family == 6:
        lines.append("Family=ipv6")
    lines += [f"Table={'main' if rule.table == TABLE_MAIN else rule.table}", ""]
    return lines
