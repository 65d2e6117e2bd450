"""What every renderer shares: its input (:class:`RenderInput`), its output (:class:`FileSpec`)
and the per-port view of the desired state (:class:`ManagedPort`).

A renderer is a pure function ``RenderInput -> {path: FileSpec}``. The input is built from the
policy's :class:`~multihome.policy.DesiredState` (the same tables, routes and rules that
``multihome apply`` makes) plus :class:`HostFacts`, the few facts about the target system's
existing configuration that decide *where* multihome's own files go (which networkd
``.network`` file an interface already has, which netplan id defines it, ...). Facts are read
by :mod:`multihome.persist`; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from types import MappingProxyType

from multihome.files import HEADER, PROGRAM
from multihome.model import (
    IFA_F_PERMANENT,
    IFA_F_TEMPORARY,
    PROTO_DHCP,
    PROTO_KERNEL,
    PROTO_MULTIHOME,
    PROTO_RA,
    SCOPE_UNIVERSE,
    TABLE_MAIN,
    Address,
    HostState,
    IPAddress,
    Route,
    Rule,
    Table,
    net_text,
)
from multihome.names import RT_PROTOS_FILE, RT_TABLES_FILE, render_rt_protos, render_rt_tables
from multihome.policy import DesiredState

#: The first line of every file multihome writes (persist and unpersist recognise it).
MARKER = HEADER
#: Route protocols whose routes a DHCP client (or the kernel, for the prefix route) makes:
#: with a per-interface DHCP route table they land in the port's table by themselves.
DYNAMIC_PROTOS = frozenset({PROTO_DHCP, PROTO_KERNEL, 9})  # 9: ra


@dataclass(frozen=True)
class FileSpec:
    """One file multihome owns on the target system."""

    content: str
    """Text, or the link target when ``symlink`` is set."""
    mode: int = 0o644
    symlink: bool = False


Rendered = dict[PurePosixPath, FileSpec]


@dataclass(frozen=True)
class HostFacts:
    """What the target system's existing configuration says (read by persist, under --root).

    Every mapping is keyed by interface name; a missing key means "nothing found".
    """

    networkd_files: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Basename of the ``.network`` file networkd uses for the interface (``10-eth1.network``)."""
    netplan_ids: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """The netplan definition id that configures the interface (``eth1``)."""
    netplan_renderer: str = "networkd"
    """``networkd`` or ``NetworkManager``: what netplan renders to on this system."""
    has_networkd: bool = False
    """networkd runs on the target (the systemd backend then protects its rules from it)."""
    program: str = PROGRAM
    """The multihome executable the systemd unit runs (the one installed on the target)."""
    program_found: bool = True
    """``program`` is installed on the target (False: no multihome program was found there)."""


@dataclass(frozen=True)
class ManagedPort:
    """One managed interface with a table: everything a renderer needs about it."""

    name: str
    mac: str | None
    role: str
    """``primary`` or ``secondary`` (see :class:`~multihome.policy.ManagedInterface`)."""
    table: Table
    metric: int | None
    gateway: IPAddress | None
    addresses: tuple[Address, ...]
    dhcp: bool
    """The interface's configuration comes from DHCP (its routes carry proto dhcp)."""
    routes: tuple[Route, ...]
    """Every desired route of the port's table (what ``apply`` puts there)."""
    static_routes: tuple[Route, ...]
    """The routes of the table a DHCP client does not make by itself (all of them for the
    primary, whose DHCP routes stay in main, and for statically configured ports)."""
    rules: tuple[Rule, ...]
    """The desired rules that look up the port's table, plus the shared main-suppress rule."""
    static6: tuple[Address, ...] = ()
    """The port's static global IPv6 addresses (``permanent``: no lifetime, so neither SLAAC's
    nor DHCPv6's): a DHCP-disabled IPv6 network (``network_data.json`` type ``ipv6``) that the
    agent, an admin or a network manager configured. A renderer whose own definition
    configures the port writes them (as its static IPv4 addresses)."""
    ra6: bool = False
    """Router advertisements configure the port's IPv6: it has an address with a lifetime
    (SLAAC, DHCPv6) or a route of the advertisements (``proto ra``)."""
    main6: tuple[Route, ...] = ()
    """A static IPv6 port's own routes in main (the agent's from the metadata, metric 2048 +
    ifindex: its prefix, its gateway, never a better default than another port's advertised
    one), written with the addresses: the port's default for unsourced traffic. The prefix
    route is written only by the renderers that can also say ``noprefixroute`` (the agent's
    addresses have it), else the kernel's prefix route of the address stands for it."""
    multipath_metric6: int | None = None
    """The metric of main's multipath IPv6 default among whose next hops the port is (one
    metric set on several ports' profiles: the network manager's RA defaults merged), or
    None."""

    @property
    def metric6(self) -> int | None:
        """The metric for the port's router-advertisement routes: the port's (as its IPv4
        routes: unsourced IPv6 leaves the primary as IPv4 does), except for a port whose RA
        default is one next hop of a multipath route in main: that route's, which keeps the
        merge the administrator configured (design.md section 5, "Multipath routes"); the
        port's IPv4 metric there would split it into one route per metric."""
        return self.metric if self.multipath_metric6 is None else self.multipath_metric6

    @property
    def ipv6(self) -> bool:
        """The port's table has IPv6 routes (router advertisements or a static IPv6 network
        configure it)."""
        return any(r.family == 6 for r in self.routes)

    @property
    def main6_via(self) -> tuple[Route, ...]:
        """:attr:`main6` through a gateway (for the renderers whose address brings its
        prefix route: NetworkManager, netplan, ifcfg)."""
        return tuple(r for r in self.main6 if r.gateway is not None)

    @property
    def static_only6(self) -> bool:
        """The port's IPv6 is static and no router advertises on its link: the renderers
        turn router advertisements off for it (networkd ``IPv6AcceptRA=no``, NetworkManager
        ``method=manual``, netplan ``accept-ra: false``, ifcfg ``IPV6_AUTOCONF=no``)."""
        return bool(self.static6) and not self.ra6

    @property
    def dhcp_table(self) -> int | None:
        """The table the DHCP client should write into (None: leave it in main)."""
        return self.table.id if self.dhcp and self.role != "primary" else None


@dataclass(frozen=True)
class RenderInput:
    """The input of every renderer."""

    desired: DesiredState
    ports: tuple[ManagedPort, ...]
    facts: HostFacts = field(default_factory=HostFacts)

    @property
    def table_names(self) -> dict[int, str]:
        return self.desired.table_names


def build_input(
    state: HostState, desired: DesiredState, facts: HostFacts | None = None
) -> RenderInput:
    """The per-port view of ``desired`` (pure; ``state`` only tells where routes came from)."""
    facts = facts or HostFacts()
    shared = tuple(sorted((r for r in desired.rules if r.table == TABLE_MAIN), key=_rule_order))
    ports = []
    for iface in desired.interfaces:
        if iface.table is None:
            continue
        link = state.link(iface.name)
        # Where the DHCP client writes: main, or already the port's own table (persisted).
        main = [
            r
            for r in state.routes
            if r.ifname == iface.name
            and r.table in (TABLE_MAIN, iface.table.id)
            and r.proto != PROTO_MULTIHOME
        ]
        dhcp = any(r.proto == PROTO_DHCP for r in main) or any(
            r.proto == PROTO_DHCP and r.ifname == iface.name for r in desired.main_removals
        )
        routes = tuple(
            sorted((r for r in desired.routes if r.table == iface.table.id), key=_route_order)
        )
        if dhcp and iface.role != "primary":
            origin = {(r.dst, r.gateway): r.proto for r in main}
            # Only IPv4's DHCP routes land in the table by themselves (the DHCP route
            # table); the IPv6 routes are all written (docs/design.md, section 8).
            static = tuple(
                r
                for r in routes
                if r.family == 6
                or (not r.is_default and origin.get((r.dst, r.gateway)) not in DYNAMIC_PROTOS)
            )
        else:
            static = routes
        own = tuple(
            sorted((r for r in desired.rules if r.table == iface.table.id), key=_rule_order)
        )
        static6, ra6, main6 = _ipv6_facts(state, iface.name)
        ports.append(
            ManagedPort(
                name=iface.name,
                mac=None if link is None else link.mac,
                role=iface.role,
                table=iface.table,
                metric=iface.metric,
                gateway=iface.gateway,
                addresses=iface.addresses,
                dhcp=dhcp,
                routes=routes,
                static_routes=static,
                rules=tuple(sorted(own + shared, key=_rule_order)),
                static6=static6,
                ra6=ra6,
                main6=main6,
                multipath_metric6=min(
                    (
                        r.metric
                        for r in state.routes
                        if r.table == TABLE_MAIN
                        and r.family == 6
                        and r.is_default
                        and r.multipath
                        and iface.name in r.devices
                    ),
                    default=None,
                ),
            )
        )
    return RenderInput(
        desired=desired, ports=tuple(sorted(ports, key=lambda p: p.name)), facts=facts
    )


def _ipv6_facts(
    state: HostState, ifname: str
) -> tuple[tuple[Address, ...], bool, tuple[Route, ...]]:
    """How the port's IPv6 is configured, from the kernel (as :func:`build_input` tells a
    DHCP port by its routes' protocol): its static global addresses, whether router
    advertisements configure it, and a static port's own routes in main."""
    globals6 = [a for a in state.addresses_of(ifname, 6) if a.scope == SCOPE_UNIVERSE]
    static6 = tuple(
        sorted(
            (a for a in globals6 if a.flags & IFA_F_PERMANENT and not a.flags & IFA_F_TEMPORARY),
            key=lambda a: a.key,
        )
    )
    mine = [r for r in state.routes if r.family == 6 and r.ifname == ifname]
    ra6 = any(r.proto == PROTO_RA for r in mine) or any(
        not a.flags & IFA_F_PERMANENT for a in globals6
    )
    main6: tuple[Route, ...] = ()
    if static6 and not ra6:
        main6 = tuple(
            sorted(
                (
                    r
                    for r in mine
                    if r.table == TABLE_MAIN and r.proto not in (PROTO_MULTIHOME, PROTO_KERNEL)
                ),
                # connected first: a gateway route needs its prefix (the agent's order)
                key=lambda r: (r.gateway is not None, _route_order(r)),
            )
        )
    return static6, ra6, main6


def _rule_order(rule: Rule) -> tuple[object, ...]:
    return (
        rule.priority,
        rule.family,
        str(rule.src),
        str(rule.dst),
        rule.iifname or "",
        rule.oifname or "",
        rule.table,
    )


def _route_order(route: Route) -> tuple[object, ...]:
    return (
        route.dst.prefixlen != 0,
        int(route.dst.network_address),
        route.dst.prefixlen,
        route.metric,
        str(route.gateway),
    )


#: The ports' ARP-flux and reverse-path sysctls (systemd-sysctl applies them at boot, and
#: udev's 99-systemd.rules again for each network device that appears).
SYSCTL_PATH = PurePosixPath("/etc/sysctl.d/90-multihome.conf")


def name_files(inp: RenderInput) -> Rendered:
    """What every backend writes: table and protocol names for iproute2 (rt_tables.d,
    rt_protos.d) and the policy's per-port sysctls (sysctl.d), which no network manager's
    own configuration can carry."""
    files = {
        PurePosixPath(str(RT_TABLES_FILE)): FileSpec(render_rt_tables(inp.desired.tables)),
        PurePosixPath(str(RT_PROTOS_FILE)): FileSpec(render_rt_protos()),
    }
    if inp.desired.sysctls:
        files[SYSCTL_PATH] = FileSpec(sysctl_conf(inp))
    return files


def sysctl_conf(inp: RenderInput) -> str:
    """``sysctl.d`` lines for the policy's sysctls (dotted names: a '/' stands for a '.' in an
    interface name, as sysctl.d(5) reads it)."""
    lines = [
        header(),
        "# ARP flux and reverse-path filtering of the ports multihome manages\n",
    ]
    lines += [f"{s.name} = {s.value}\n" for s in sorted(inp.desired.sysctls, key=lambda s: s.name)]
    return "".join(lines)


def is_ra_default(route: Route) -> bool:
    """An IPv6 default via a link-local router: the router advertisement's, whose router can
    change (a renderer that can follows it: networkd's ``Gateway=_ipv6ra``)."""
    return (
        route.family == 6
        and route.is_default
        and route.gateway is not None
        and route.gateway.is_link_local
    )


def header(comment: str = "#") -> str:
    """The "managed by multihome" marker in a file's own comment syntax."""
    return MARKER if comment == "#" else MARKER.replace("#", comment, 1)


def rule_selector_text(rule: Rule) -> str:
    """A rule in iproute2/NetworkManager syntax without ``lookup`` (shared by NM and ifcfg)."""
    parts = [f"priority {rule.priority}"]
    parts.append(
        f"from {net_text(rule.src)}"
        if rule.src is not None
        else ("from 0.0.0.0/0" if rule.family == 4 else "from ::/0")
    )
    if rule.dst is not None:
        parts.append(f"to {net_text(rule.dst)}")
    if rule.iifname:
        parts.append(f"iif {rule.iifname}")
    if rule.oifname:
        parts.append(f"oif {rule.oifname}")
    if rule.fwmark is not None:
        parts.append(f"fwmark {rule.fwmark:#x}" + (f"/{rule.fwmask:#x}" if rule.fwmask else ""))
    if rule.suppress_prefixlength is not None:
        parts.append(f"suppress_prefixlength {rule.suppress_prefixlength}")
    parts.append(f"table {rule.table}")
    return " ".join(parts)
