"""The dual-stack guest of the reboot tests: each stack's own IPv6 configuration (as a cloud
image has it) and what the IPv6 policy looks like from outside (``ip -6 -j`` in the guest's
namespace), shared by test_reboot_ipv6 and test_reboot_lab."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reboot_guest import NETPLAN_CLOUD_INIT, Guest

PREFIX = "2001:db8:1::/64"
INTERNET6 = "2001:db8:ff::10"
#: networkd's .network of a dual-stack cloud image: each port's RA default with its own
#: metric (equal ones would merge into one multipath route in main).
NETWORKD_DUALSTACK = """[Match]
Name={name}

[Network]
DHCP=ipv4

[DHCPv4]
RouteMetric={metric}

[IPv6AcceptRA]
RouteMetric={metric}
"""


def addresses6(guest: Guest) -> dict[str, str]:
    """Each port's global IPv6 address past DAD."""
    found = {}
    for entry in guest.ip("-6", "addr", "show", "scope", "global"):
        for a in entry["addr_info"]:
            if a.get("local") and not a.get("tentative") and not a.get("dadfailed"):
                found[str(entry["ifname"])] = str(a["local"])
    return found


def routers(guest: Guest) -> dict[str, str]:
    """Each port's router-advertised default in main: its router's link-local address."""
    return {
        str(r["dev"]): str(r["gateway"])
        for r in guest.ip("-6", "route", "show", "default")
        if "gateway" in r and "dev" in r
    }


def expected6(plan: dict[str, Any]) -> list[tuple[object, ...]]:
    """The family-6 rules of ``multihome plan --json`` as ``ip -6 -j rule`` shows them."""
    return sorted(
        (
            c["priority"],
            "all" if c["src"] is None else c["src"].removesuffix("/128"),
            c["dst"] and c["dst"].removesuffix("/128"),
            c["iif"],
            c["oif"],
            "main" if c["table"] == 254 else str(c["table"]),
        )
        for c in plan["changes"]
        if c["kind"] == "rule" and c["family"] == 6
    )


def band6(guest: Guest) -> list[tuple[object, ...]]:
    """The family-6 rules in multihome's band, in :func:`expected6`'s shape."""
    return sorted(
        (
            r["priority"],
            r.get("src", "all"),
            None if r.get("dst") is None else f"{r['dst']}/{r['dstlen']}",
            r.get("iif"),
            r.get("oif"),
            {"254": "main"}.get(str(r["table"]), str(r["table"])),
        )
        for r in guest.ip("-6", "rule")
        if 10000 <= int(r["priority"]) <= 10099
    )


def table6(guest: Guest, table: int) -> set[tuple[object, ...]]:
    """A table's IPv6 routes as ``(type, dst, gateway)``."""
    return {
        # iproute2 6.1's JSON gives a throw route's type as its number, RTN_THROW = 9
        (
            {"9": "throw"}.get(str(r.get("type")), r.get("type", "unicast")),
            r["dst"],
            r.get("gateway"),
        )
        for r in guest.ip("-6", "route", "show", "table", str(table))
    }


def ipv6_problems(
    guest: Guest, rules: list[tuple[object, ...]], tables: dict[str, int]
) -> list[str]:
    """What differs from the IPv6 policy (empty: right)."""
    got = band6(guest)
    problems = [] if got == rules else [f"IPv6 rules {got}, want {rules}"]
    addrs, via = addresses6(guest), routers(guest)
    for port, table in sorted(tables.items()):
        routes = table6(guest, table)
        # the router's default, the prefix, and the table-first band's link-local throw
        want = {("unicast", "default", via.get(port)), ("unicast", PREFIX, None)}
        if routes != want | {("throw", "fe80::/64", None)}:
            problems.append(f"{port}: IPv6 table {table}: {routes} (router {via.get(port)})")
        if port not in addrs:
            problems.append(f"{port}: no IPv6 address past DAD")
            continue
        hop = [(r.get("dev"), r.get("gateway"))
               for r in guest.ip("-6", "route", "get", INTERNET6, "from", addrs[port])]  # fmt: skip
        if hop != [(port, via.get(port))]:
            problems.append(f"{port}: route get {INTERNET6} from {addrs[port]}: {hop}")
    return problems


#: NetworkManager's dual-stack profile (as cloud-init writes it, EUI-64 as Neutron computes).
NM_DUALSTACK = """[connection]
id=cloud-init {name}
uuid=1dd9a779-d327-56e1-8454-c65e2556c12{index}
type=ethernet
interface-name={name}

[ipv4]
method=auto
route-metric={metric}

[ipv6]
method=auto
addr-gen-mode=eui64
route-metric={metric}
"""


#: cloud-init's netplan for a dual-stack port (Debian 12's netplan.io 0.106, networkd
#: renderer): cloud-init writes ``dhcp6: true`` for an ``ipv6_slaac`` subnet, and the
#: route metric netplan puts in networkd's ``[DHCP]`` section is also the RA routes' metric
#: (networkd 252's ``config_parse_dhcp_or_ra_route_metric``): each port's RA default keeps
#: its own metric, as with the other stacks.
NETPLAN_DUALSTACK = """    {name}:
      dhcp4: true
      dhcp4-overrides:
        route-metric: {metric}
      dhcp6: true
      dhcp6-overrides:
        route-metric: {metric}
      accept-ra: true
      ipv6-address-generation: eui64
"""


def configure(guest: Guest, stack: str, ports: Sequence[str] | None = None) -> None:
    """The guest's own dual-stack configuration for ``stack`` (``netplan``: cloud-init's
    50-cloud-init.yaml, rendered for networkd by netplan's generator at every boot) of
    ``ports`` (default: all of them)."""
    ports = guest.ports if ports is None else ports
    if stack == "netplan":
        guest.use_stack("networkd")
        body = "".join(
            NETPLAN_DUALSTACK.format(name=name, metric=100 + i) for i, name in enumerate(ports)
        )
        guest.write("/etc/netplan/50-cloud-init.yaml", NETPLAN_CLOUD_INIT.format(ports=body), 0o600)
        return
    guest.use_stack(stack)
    for i, name in enumerate(ports):
        if stack == "networkd":
            path, text, mode = f"/etc/systemd/network/10-{name}.network", NETWORKD_DUALSTACK, 0o644
        else:
            path = f"/etc/NetworkManager/system-connections/cloud-init-{name}.nmconnection"
            text, mode = NM_DUALSTACK, 0o600
        guest.write(path, text.format(name=name, index=i, metric=100 + i), mode)
