"""The lab's names and configuration texts: pure functions of a prefix and a scenario.

Nodes (one network namespace each, named ``<prefix>-<suffix>``)::

    internet 198.51.100.10, 2001:db8:ffff::10 (HTTP echo)
        ── up0 ── router (1:1 NAT per floating IP, SNAT; IPv6 routed, radvd on qr-N)
                                                  │ qr-N (gateway) / qg-N (external network)
                    dhcp (dnsmasq, 169.254.169.254) ── switch (bridge brN per network,
                                                  │      nftables port security per guest port)
                                        guest (eth0, eth1, ...: DHCP client, HTTP echo)

Interface names inside a namespace need no prefix: each lab has its own namespaces.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from multihome.errors import InputError
from multihome.files import json_text
from multihome.lab.scenario import (
    DOCUMENTATION6,
    INTERNET_HOST,
    INTERNET_HOST6,
    METADATA_ADDRESS,
    PUBLIC_RANGE,
    GuestPort,
    Scenario,
)

STATE_ROOT = Path("/run/multihome-lab")
NETNS_ETC = Path("/etc/netns")
DEFAULT_PREFIX = "mhlab"
#: The router's address towards the internet host, and its default SNAT address.
ROUTER_UPLINK = ipaddress.IPv4Interface("198.51.100.1/24")
INTERNET_INTERFACE = ipaddress.IPv4Interface(f"{INTERNET_HOST}/24")
#: The same link in IPv6 (the router routes every tenant prefix, without NAT).
ROUTER_UPLINK6 = ipaddress.IPv6Interface("2001:db8:ffff::1/64")
INTERNET_INTERFACE6 = ipaddress.IPv6Interface(f"{INTERNET_HOST6}/64")
TENANT_RANGE6 = DOCUMENTATION6
ROUTER_SNAT = PUBLIC_RANGE.network_address + 2
UPLINK = "up0"
HTTP_PORT = 80
#: nftables objects (one table per namespace, so no prefix is needed).
PORTSEC_TABLE = "portsec"
NAT_TABLE = "nat"
#: The reasons port security drops a packet; each has a named counter per guest port
#: (``ip6`` and ``nd`` only on a port with IPv6).
DROP_REASONS = ("mac", "ip", "ip6", "nd", "arp", "other")
IPV6_REASONS = ("ip6", "nd")


def drop_reasons(port: GuestPort) -> tuple[str, ...]:
    """The drop counters ``port`` has."""
    return tuple(r for r in DROP_REASONS if port.ips6 or r not in IPV6_REASONS)


_PREFIX = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
#: Node name -> namespace suffix, in creation order.
NODES = {"guest": "vm", "switch": "sw", "router": "rtr", "dhcp": "dhcp", "internet": "inet"}


@dataclass(frozen=True)
class LabNames:
    """Every name a lab with ``prefix`` uses on the host."""

    prefix: str

    @classmethod
    def checked(cls, prefix: str) -> LabNames:
        if not _PREFIX.match(prefix):
            raise InputError(
                f"--name {prefix!r}: not a usable lab name; use 1-20 lower-case "
                "letters, digits or '-', starting with a letter (e.g. mhlab2)"
            )
        return cls(prefix)

    def namespace(self, node: str) -> str:
        return f"{self.prefix}-{NODES[node]}"

    @property
    def guest(self) -> str:
        return self.namespace("guest")

    @property
    def switch(self) -> str:
        return self.namespace("switch")

    @property
    def router(self) -> str:
        return self.namespace("router")

    @property
    def dhcp(self) -> str:
        return self.namespace("dhcp")

    @property
    def internet(self) -> str:
        return self.namespace("internet")

    @property
    def namespaces(self) -> tuple[str, ...]:
        return tuple(self.namespace(node) for node in NODES)

    @property
    def state_dir(self) -> Path:
        return STATE_ROOT / self.prefix

    @property
    def guest_etc(self) -> Path:
        """``ip netns exec`` bind-mounts this over /etc in the guest (its own iproute2/)."""
        return NETNS_ETC / self.guest


def switch_port(port_index: int) -> str:
    """The switch's side of guest port ``eth<port_index>`` (Neutron's tapXXXX)."""
    return f"tap{port_index}"


def tap(port: GuestPort) -> str:
    """The switch's side of ``port`` (tapN for ethN, whatever ports came and went)."""
    return switch_port(port.number)


def bridge(net_index: int) -> str:
    return f"br{net_index}"


def router_leg(scenario: Scenario, net_index: int) -> str:
    """The router's interface on a network: qr-N (tenant) or qg-N (external)."""
    network = scenario.networks[net_index]
    return f"{'qg' if network.external else 'qr'}-{net_index}"


def router_leg_peer(net_index: int) -> str:
    return f"rtr{net_index}"


def dhcp_leg(net_index: int) -> str:
    return f"ns-{net_index}"


def dhcp_leg_peer(net_index: int) -> str:
    return f"dhcp{net_index}"


def net_index(scenario: Scenario, name: str) -> int:
    return [n.name for n in scenario.networks].index(name)


def counter_name(port: str, reason: str) -> str:
    return f"{port}_{reason}"


def render_portsec(scenario: Scenario) -> str:
    """The switch's nftables ruleset: Neutron-style port security for every guest port.

    The source MAC must be the port's; IPv4 only from ``address . mac`` pairs of the port's
    fixed IPs and allowed address pairs (DHCP discovery from 0.0.0.0 excepted); ARP only with
    the port's MAC and one of those addresses; IPv6 (a port with IPv6 addresses) only from
    its fixed IPv6 addresses and its MAC-derived link-local address (DAD and MLD from ::
    excepted), no router advertisement, and a neighbour advertisement only for one of those
    addresses (Neutron's ND anti-spoofing); everything else dropped, with a named counter
    per port and reason. The prerouting chain dispatches through the verdict map ``ports``
    (switch port -> the port's chain), so a port can be added or removed on its own
    (:func:`render_portsec_add`, :func:`render_portsec_remove`) without touching the others
    or their counters.
    """
    lines = [f"table bridge {PORTSEC_TABLE} {{"]
    for port in scenario.ports:
        lines += _portsec_objects(port)
    lines += ["\tmap ports {", "\t\ttype ifname : verdict"]
    if scenario.ports:
        jumps = ", ".join(f'"{tap(port)}" : jump port_{port.name}' for port in scenario.ports)
        lines.append(f"\t\telements = {{ {jumps} }}")
    lines += [
        "\t}",
        "\tchain prerouting {",
        "\t\ttype filter hook prerouting priority -200; policy accept;",
        "\t\tiifname vmap @ports",
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _portsec_objects(port: GuestPort) -> list[str]:
    """One port's counters, allowed set and chain (inside the table block)."""
    name = port.name
    lines = [f"\tcounter {counter_name(name, reason)} {{ }}" for reason in drop_reasons(port)]
    allowed = [*port.ips, *port.allowed_address_pairs]
    lines += _address_set(f"{name}_allowed", "ipv4_addr", allowed, port.mac)
    if port.ips6:
        lines += _address_set(
            f"{name}_allowed6", "ipv6_addr", [port.link_local, *port.ips6], port.mac
        )
    lines += [
        f"\tchain port_{name} {{",
        f'\t\tether saddr != {port.mac} counter name "{counter_name(name, "mac")}" drop',
        "\t\tip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept",
        f"\t\tip saddr . ether saddr @{name}_allowed accept",
        f'\t\tether type ip counter name "{counter_name(name, "ip")}" drop',
        *_portsec_ipv6(port),
        f"\t\tarp saddr ether {port.mac} arp saddr ip 0.0.0.0 accept",
        f"\t\tarp saddr ip . arp saddr ether @{name}_allowed accept",
        f'\t\tether type arp counter name "{counter_name(name, "arp")}" drop',
        f'\t\tcounter name "{counter_name(name, "other")}" drop',
        "\t}",
    ]
    return lines


def _address_set(
    name: str, kind: str, addresses: Sequence[ipaddress._BaseAddress], mac: str
) -> list[str]:
    """An ``address . mac`` set (an IPv6-only port's IPv4 set is empty)."""
    lines = [f"\tset {name} {{", f"\t\ttype {kind} . ether_addr"]
    if addresses:
        lines.append(f"\t\telements = {{ {', '.join(f'{ip} . {mac}' for ip in addresses)} }}")
    return [*lines, "\t}"]


def _portsec_ipv6(port: GuestPort) -> list[str]:
    """A port's IPv6 rules (none without IPv6: then IPv6 counts as ``other``).

    nft 1.0.6 (Debian 12) has no ``icmpv6 taddr``: the target of a neighbour advertisement
    is matched as raw transport header bits 64-191, against the addresses as integers.
    """
    if not port.ips6:
        return []
    name = port.name
    targets = ", ".join(f"0x{int(ip):032x}" for ip in (port.link_local, *port.ips6))
    nd, ip6 = counter_name(name, "nd"), counter_name(name, "ip6")
    return [
        "\t\tip6 saddr :: icmpv6 type { nd-neighbor-solicit, mld2-listener-report } accept",
        f'\t\ticmpv6 type nd-router-advert counter name "{nd}" drop',
        f"\t\ticmpv6 type nd-neighbor-advert @th,64,128 != {{ {targets} }} "
        f'counter name "{nd}" drop',
        f"\t\tip6 saddr . ether saddr @{name}_allowed6 accept",
        f'\t\tether type ip6 counter name "{ip6}" drop',
    ]


def render_portsec_add(port: GuestPort) -> str:
    """Add one port's port security to the running switch (one nft transaction)."""
    lines = [f"table bridge {PORTSEC_TABLE} {{", *_portsec_objects(port), "}"]
    lines.append(
        f'add element bridge {PORTSEC_TABLE} ports {{ "{tap(port)}" : jump port_{port.name} }}'
    )
    return "\n".join(lines) + "\n"


def render_portsec_remove(port: GuestPort) -> str:
    """Remove one port's port security from the running switch (one nft transaction)."""
    table = f"bridge {PORTSEC_TABLE}"
    lines = [
        f'delete element {table} ports {{ "{tap(port)}" }}',
        f"delete chain {table} port_{port.name}",
        f"delete set {table} {port.name}_allowed",
        *([f"delete set {table} {port.name}_allowed6"] if port.ips6 else []),
        *(f"delete counter {table} {counter_name(port.name, r)}" for r in drop_reasons(port)),
    ]
    return "\n".join(lines) + "\n"


def outside_interfaces(scenario: Scenario) -> list[str]:
    """The router's interfaces towards the outside: the uplink and external networks."""
    return [UPLINK] + [
        router_leg(scenario, i)
        for i, n in enumerate(scenario.networks)
        if n.external and n.gateway is not None
    ]


def render_router_nat(scenario: Scenario) -> str:
    """The router's nftables ruleset: 1:1 DNAT+SNAT per floating IP, default SNAT.

    Floating IPs live in two maps (``floating_dnat``: floating -> fixed, ``floating_snat``:
    fixed -> floating), so a port's floating IPs can be added and removed on their own
    (:func:`render_nat_add`, :func:`render_nat_remove`); the per-address SNAT comes before
    the subnet's default SNAT.
    """
    outside = ", ".join(f'"{name}"' for name in outside_interfaces(scenario))
    dnat = [f"{f} : {x}" for port in scenario.ports for x, f in port.floating_ips.items()]
    snat = [f"{x} : {f}" for port in scenario.ports for x, f in port.floating_ips.items()]
    lines = [f"table ip {NAT_TABLE} {{"]
    for name, elements in (("floating_dnat", dnat), ("floating_snat", snat)):
        lines += [f"\tmap {name} {{", "\t\ttype ipv4_addr : ipv4_addr"]
        if elements:
            lines.append(f"\t\telements = {{ {', '.join(elements)} }}")
        lines.append("\t}")
    lines += [
        "\tchain prerouting {",
        "\t\ttype nat hook prerouting priority dstnat; policy accept;",
        "\t\tdnat to ip daddr map @floating_dnat",
        "\t}",
        "\tchain postrouting {",
        "\t\ttype nat hook postrouting priority srcnat; policy accept;",
        f"\t\toifname {{ {outside} }} snat to ip saddr map @floating_snat",
    ]
    for network in scenario.networks:
        if network.gateway is not None and not network.external:
            lines.append(
                f"\t\toifname {{ {outside} }} ip saddr {network.cidr} snat to {ROUTER_SNAT}"
            )
    lines += ["\t}", "}"]
    return "\n".join(lines) + "\n"


def render_nat_add(port: GuestPort) -> str:
    """Add ``port``'s floating IPs to the running router ("" when it has none)."""
    return _nat_elements("add", port)


def render_nat_remove(port: GuestPort) -> str:
    """Remove ``port``'s floating IPs from the running router ("" when it has none)."""
    return _nat_elements("delete", port)


def _nat_elements(verb: str, port: GuestPort) -> str:
    if not port.floating_ips:
        return ""
    pairs = port.floating_ips.items()
    if verb == "add":
        dnat = ", ".join(f"{f} : {x}" for x, f in pairs)
        snat = ", ".join(f"{x} : {f}" for x, f in pairs)
    else:
        dnat = ", ".join(str(f) for _, f in pairs)
        snat = ", ".join(str(x) for x, _ in pairs)
    return (
        f"{verb} element ip {NAT_TABLE} floating_dnat {{ {dnat} }}\n"
        f"{verb} element ip {NAT_TABLE} floating_snat {{ {snat} }}\n"
    )


def radvd_conf(
    interfaces: Sequence[tuple[str, ipaddress.IPv6Network]],
    intervals: tuple[int, int] = (30, 100),
    managed: Collection[str] = (),
    other: Collection[str] = (),
) -> str:
    """radvd's configuration: per (interface, /64 prefix), router advertisements with the
    prefix on-link and autonomous (SLAAC), every ``intervals`` (min, max) seconds: Neutron's
    L3 agent's 30-100 s by default (a new guest solicits and is answered at once). On the
    ``managed`` interfaces (DHCPv6-stateful) the managed and other-config flags are set and
    the prefix is not autonomous; on the ``other`` ones (DHCPv6-stateless) only the
    other-config flag, the prefix autonomous: as Neutron's radvd template does."""
    low, high = intervals
    return "".join(
        f"interface {ifname} {{\n"
        "\tAdvSendAdvert on;\n"
        f"\tMinRtrAdvInterval {low};\n"
        f"\tMaxRtrAdvInterval {high};\n"
        "\tAdvLinkMTU 1500;\n"
        + ("\tAdvManagedFlag on;\n\tAdvOtherConfigFlag on;\n" if ifname in managed else "")
        + ("\tAdvOtherConfigFlag on;\n" if ifname in other else "")
        + f"\tprefix {prefix} {{\n\t\tAdvOnLink on;\n"
        f"\t\tAdvAutonomous {'off' if ifname in managed else 'on'};\n\t}};\n"
        "};\n"
        for ifname, prefix in interfaces
    )


def managed_legs(scenario: Scenario) -> list[str]:
    """The router's legs on DHCPv6 subnets (the advertisement's managed flag)."""
    return [router_leg(scenario, i) for i, n in enumerate(scenario.networks) if n.dhcpv6]


def other_legs(scenario: Scenario) -> list[str]:
    """The router's legs on DHCPv6-stateless subnets (the advertisement's other-config flag)."""
    return [router_leg(scenario, i) for i, n in enumerate(scenario.networks) if n.stateless]


def router_advertised(scenario: Scenario) -> list[tuple[str, ipaddress.IPv6Network]]:
    """The router's tenant legs that advertise an IPv6 prefix, with it."""
    return [(router_leg(scenario, i), n.cidr6) for i, n in enumerate(scenario.networks) if n.cidr6]


def radvd_args(state_dir: Path) -> list[str]:
    """radvd's command line (without the program): it forks once it has read its file."""
    return [
        "-C",
        str(state_dir / "radvd.conf"),
        "-p",
        str(state_dir / "radvd.pid"),
        "-u",
        "root",
        "-m",
        "logfile",
        "-l",
        str(state_dir / "radvd.log"),
    ]


def dnsmasq_args(scenario: Scenario, state_dir: Path) -> list[str]:
    """dnsmasq's command line (without the program): DHCP only, one fixed address per port
    (:func:`dhcp_hosts`), the router option and option 121/249 with the metadata host route
    and the default."""
    args = [
        "--conf-file=/dev/null",
        "--port=0",
        "--bind-interfaces",
        "--except-interface=lo",
        "--no-resolv",
        "--no-hosts",
        "--no-ping",
        "--dhcp-authoritative",
        "--user=root",
        "--group=root",
        "--log-dhcp",
        f"--log-facility={state_dir / 'dnsmasq.log'}",
        f"--dhcp-leasefile={state_dir / 'dnsmasq.leases'}",
        f"--pid-file={state_dir / 'dnsmasq.pid'}",
    ]
    for index, network in enumerate(scenario.networks):
        if not network.dhcp or network.dhcp_server is None:
            continue
        tag = f"net{index}"
        args += [
            f"--interface={dhcp_leg(index)}",
            f"--dhcp-range=set:{tag},{network.cidr.network_address},static,"
            f"{network.cidr.netmask},12h",
        ]
        routes = [f"{METADATA_ADDRESS}/32,{network.dhcp_server}"]
        if network.gateway is not None:
            args.append(f"--dhcp-option=tag:{tag},option:router,{network.gateway}")
            routes.append(f"0.0.0.0/0,{network.gateway}")
        else:
            args.append(f"--dhcp-option=tag:{tag},option:router")
        args += [
            f"--dhcp-option=tag:{tag},option:classless-static-route,{','.join(routes)}",
            f"--dhcp-option=tag:{tag},249,{','.join(routes)}",
        ]
        if network.serves_dhcpv6 and network.cidr6 is not None:
            # DHCPv6 as Neutron's DHCP agent runs it (a ``static`` range for stateful and
            # stateless subnets alike, neutron/agent/linux/dhcp.py), no advertisements:
            # stateful, fixed addresses only (the hosts file matches each client by its
            # MAC: it is on-link); both, the other configuration (DNS: this server, ``[::]``;
            # the search domain Neutron's ``dhcp_domain`` defaults to).
            args += [
                f"--dhcp-range=set:{tag}v6,{network.cidr6.network_address},static,64,12h",
                f"--dhcp-option=tag:{tag}v6,option6:dns-server,[::]",
                f"--dhcp-option=tag:{tag}v6,option6:domain-search,{DHCP_DOMAIN}",
            ]
    args.append(f"--dhcp-hostsfile={state_dir / DHCP_HOSTS_FILE}")
    args.append(f"--dhcp-optsfile={state_dir / DHCP_OPTS_FILE}")
    return args


DHCP_HOSTS_FILE = "dhcp-hosts"
#: The search domain DHCPv6 hands out (Neutron's ``dhcp_domain`` default).
DHCP_DOMAIN = "openstacklocal"
DHCP_OPTS_FILE = "dhcp-opts"


def dhcp_hosts(scenario: Scenario) -> str:
    """dnsmasq's ``--dhcp-hostsfile``: ``MAC,set:PORT,IP`` per DHCP port (the tag selects
    the port's own options). A running lab changes it and restarts dnsmasq."""
    lines = []
    for port in scenario.ports:
        addresses = [str(port.ips[0])] if scenario.port_dhcp(port) else []
        if scenario.network(port.network).dhcpv6:
            addresses += [f"[{ip}]" for ip in port.ips6]
        if addresses:
            lines.append(f"{port.mac},set:{port.name},{','.join(addresses)}\n")
    return "".join(lines)


def dhcp_opts(scenario: Scenario) -> str:
    """dnsmasq's ``--dhcp-optsfile``: the options of ports whose router differs from their
    network's gateway (``lab renew --router``). A host's tag outranks the network's."""
    lines = []
    for port in scenario.ports:
        network = scenario.network(port.network)
        if port.router is None or not scenario.port_dhcp(port) or network.dhcp_server is None:
            continue
        routes = f"{METADATA_ADDRESS}/32,{network.dhcp_server},0.0.0.0/0,{port.router}"
        lines += [
            f"tag:{port.name},option:router,{port.router}",
            f"tag:{port.name},option:classless-static-route,{routes}",
            f"tag:{port.name},249,{routes}",
        ]
    return "".join(f"{line}\n" for line in lines)


def dhcp_ports(scenario: Scenario) -> list[int]:
    """Indexes of the ports whose first address comes from DHCP."""
    return [i for i, p in enumerate(scenario.ports) if scenario.port_dhcp(p)]


def lab_clients(scenario: Scenario) -> list[GuestPort]:
    """The ports whose DHCP client the lab runs: DHCP ports that were there at ``up`` (a
    hot-plugged port is left to what runs in the guest, as on a real VM)."""
    return [p for p in scenario.ports if scenario.port_dhcp(p) and not p.hotplugged]


def lab_clients6(scenario: Scenario) -> list[GuestPort]:
    """The ports whose DHCPv6 client (``dhclient -6``; ``-S``, information only, on a
    stateless subnet) the lab runs: on a DHCPv6 subnet, there at ``up``."""
    return [
        p for p in scenario.ports if scenario.network(p.network).serves_dhcpv6 and not p.hotplugged
    ]


def dhcp6_info_file(port: GuestPort) -> str:
    """The file (in the lab's state directory) where the guest's DHCPv6 client puts the DNS
    servers and search domain it was given for ``port``, as resolv.conf lines."""
    return f"dhcp6-info.{port.name}"


DHCLIENT_CONF = """\
# multihome lab: ISC dhclient configuration for the guest's NICs.
option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;
timeout 10;
retry 5;
request subnet-mask, broadcast-address, routers, interface-mtu,
        rfc3442-classless-static-routes;
also request dhcp6.name-servers, dhcp6.domain-search;
"""

_DHCLIENT_SCRIPT = r"""#!/bin/sh
# multihome lab: the guest's DHCP client script (ISC dhclient -sf).
# Like Debian's dhclient-script, but every route of a lease carries the NIC's own metric
# (IF_METRIC, given with dhclient -e): two NICs then give the how-to's routing table.
# DHCPv6: the address of a stateful lease; the DNS servers and search domain (stateful or
# stateless: dhclient -6 -S calls this with RENEW6 and no address) go, resolv.conf-style,
# into IF_INFO when given (the lab's state directory, never the host's /etc/resolv.conf).
IP=@IP@
metric=${IF_METRIC:-0}
dev=$interface

add_routes() {
    if [ -n "$new_rfc3442_classless_static_routes" ]; then
        set -- $new_rfc3442_classless_static_routes
        while [ $# -ge 5 ]; do
            width=$1; shift
            octets=$(( (width + 7) / 8 ))
            net=""; i=0
            while [ $i -lt 4 ]; do
                if [ $i -lt $octets ]; then byte=$1; shift; else byte=0; fi
                net="$net${net:+.}$byte"; i=$((i + 1))
            done
            gw="$1.$2.$3.$4"; shift 4
            if [ "$width" = 0 ]; then dst=default; else dst="$net/$width"; fi
            if [ "$gw" = 0.0.0.0 ]; then
                $IP -4 route replace "$dst" dev "$dev" proto dhcp scope link \
                    src "$new_ip_address" metric "$metric"
            else
                $IP -4 route replace "$dst" via "$gw" dev "$dev" proto dhcp \
                    src "$new_ip_address" metric "$metric"
            fi
        done
    elif [ -n "$new_routers" ]; then
        for router in $new_routers; do
            $IP -4 route replace default via "$router" dev "$dev" proto dhcp \
                src "$new_ip_address" metric "$metric"
            break
        done
    fi
}

case "$reason" in
    PREINIT|PREINIT6)
        $IP link set dev "$dev" up
        ;;
    BOUND6|RENEW6|REBIND6|REBOOT6)
        if [ -n "$old_ip6_address" ] && [ "$old_ip6_address" != "$new_ip6_address" ]; then
            $IP -6 addr del "$old_ip6_address/$old_ip6_prefixlen" dev "$dev"
        fi
        if [ -n "$new_ip6_address" ]; then
            $IP -6 addr replace "$new_ip6_address/$new_ip6_prefixlen" dev "$dev"
        fi
        if [ -n "$IF_INFO" ] && [ -n "$new_dhcp6_name_servers$new_dhcp6_domain_search" ]; then
            {
                for server in $new_dhcp6_name_servers; do echo "nameserver $server"; done
                if [ -n "$new_dhcp6_domain_search" ]; then
                    echo "search $new_dhcp6_domain_search"
                fi
            } > "$IF_INFO"
        fi
        ;;
    EXPIRE6|RELEASE6|STOP6)
        if [ -n "$old_ip6_address" ]; then
            $IP -6 addr del "$old_ip6_address/$old_ip6_prefixlen" dev "$dev"
        fi
        ;;
    BOUND|RENEW|REBIND|REBOOT)
        if [ -n "$old_ip_address" ] && [ "$old_ip_address" != "$new_ip_address" ]; then
            $IP -4 addr flush dev "$dev"
        fi
        $IP -4 addr replace "$new_ip_address/$new_subnet_mask" dev "$dev" metric "$metric"
        add_routes
        ;;
    EXPIRE|FAIL|RELEASE|STOP)
        $IP -4 addr flush dev "$dev"
        ;;
    TIMEOUT)
        exit 1
        ;;
esac
exit 0
"""


def dhclient_script(ip_program: str) -> str:
    """The guest's dhclient-script, calling ``ip_program`` (dhclient passes no PATH)."""
    return _DHCLIENT_SCRIPT.replace("@IP@", ip_program)


def network_data(scenario: Scenario) -> dict[str, object]:
    """OpenStack's ``network_data.json`` for the guest, served by the metadata host."""
    links: list[dict[str, object]] = []
    networks: list[dict[str, object]] = []
    for port in scenario.ports:
        port_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"multihome-lab:{port.mac}"))
        link_id = f"tap{port_id[:11]}"
        links.append(
            {
                "id": link_id,
                "vif_id": port_id,
                "type": "ovs",
                "mtu": 1500,
                "ethernet_mac_address": port.mac,
            }
        )
        network = scenario.network(port.network)
        for number, ip in enumerate(port.ips):
            routes = []
            if network.gateway is not None:
                routes.append(
                    {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": str(network.gateway)}
                )
            dhcp = scenario.port_dhcp(port) and number == 0
            networks.append(
                {
                    "id": f"network{len(networks)}",
                    "link": link_id,
                    "type": "ipv4_dhcp" if dhcp else "ipv4",
                    "ip_address": str(ip),
                    "netmask": str(network.cidr.netmask),
                    "routes": routes,
                    "network_id": str(
                        uuid.uuid5(uuid.NAMESPACE_URL, f"multihome-lab:{network.name}")
                    ),
                    "services": [],
                }
            )
        for ip6 in port.ips6:  # as Nova writes an IPv6 subnet with an address mode
            networks.append(
                {
                    "id": f"network{len(networks)}",
                    "link": link_id,
                    "type": f"ipv6_{network.ipv6_mode}",
                    "ip_address": str(ip6),
                    "netmask": "ffff:ffff:ffff:ffff::",
                    "routes": [
                        {"network": "::", "netmask": "::", "gateway": str(network.gateway6)}
                    ],
                    "network_id": str(
                        uuid.uuid5(uuid.NAMESPACE_URL, f"multihome-lab:{network.name}")
                    ),
                    "services": [],
                }
            )
    return {"links": links, "networks": networks, "services": []}


def network_data_json(scenario: Scenario) -> str:
    return json_text(network_data(scenario))


def meta_data_json(names: LabNames) -> str:
    """OpenStack's ``meta_data.json`` for the guest (the fields a guest reads)."""
    uuid_ = str(uuid.uuid5(uuid.NAMESPACE_URL, f"multihome-lab:{names.prefix}"))
    data = {
        "uuid": uuid_,
        "name": names.guest,
        "hostname": names.guest,
        "launch_index": 0,
        "availability_zone": "nova",
        "project_id": "multihome-lab",
        "meta": {},
    }
    return json_text(data)
