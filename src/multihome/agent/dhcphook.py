"""The script ISC dhclient runs for ports the agent addresses by DHCP (``dhclient -sf``).

dhclient passes the lease in environment variables (``reason``, ``interface``,
``new_ip_address``, ``new_subnet_mask``, ``new_routers``,
``new_rfc3442_classless_static_routes``, ``old_ip_address``). Unlike Debian's stock script,
this one gives every lease route the port's own metric (1000 + ifindex, like the static
configuration) and marks it ``proto dhcp``, so that a second port's routes never collide with
the first's ("File exists") and a hot-plugged port never becomes the primary. DNS is left alone.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import sys
from collections.abc import Mapping
from typing import Any

from multihome.model import PROTO_DHCP
from multihome.source.ports import STATIC_METRIC_BASE

BIND = {"BOUND", "RENEW", "REBIND", "REBOOT"}
UNBIND = {"EXPIRE", "FAIL", "RELEASE", "STOP"}
IFA_F_NOPREFIXROUTE = 0x200


def classless_routes(text: str) -> list[tuple[ipaddress.IPv4Network, ipaddress.IPv4Address]]:
    """Decode dhclient's ``new_rfc3442_classless_static_routes`` (space-separated octets:
    width, significant destination octets, four gateway octets, repeated)."""
    octets = [int(x) for x in text.split()]
    routes = []
    position = 0
    while position < len(octets):
        width = octets[position]
        if width > 32:
            raise ValueError(f"prefix length {width}")
        size = (width + 7) // 8
        dst = octets[position + 1 : position + 1 + size] + [0] * (4 - size)
        gateway = octets[position + 1 + size : position + 5 + size]
        if len(gateway) != 4:
            raise ValueError("truncated")
        routes.append(
            (
                ipaddress.IPv4Network(f"{'.'.join(map(str, dst))}/{width}"),
                ipaddress.IPv4Address(".".join(map(str, gateway))),
            )
        )
        position += 5 + size
    return routes


def lease_routes(
    env: Mapping[str, str],
) -> list[tuple[ipaddress.IPv4Network, ipaddress.IPv4Address]]:
    """Option 121 when present (clients ignore option 3 then, RFC 3442), else the router."""
    classless = env.get("new_rfc3442_classless_static_routes", "").strip()
    if classless:
        return classless_routes(classless)
    routers = env.get("new_routers", "").split()
    if routers:
        return [(ipaddress.IPv4Network("0.0.0.0/0"), ipaddress.IPv4Address(routers[0]))]
    return []


def run(env: Mapping[str, str]) -> int:
    reason = env.get("reason", "")
    ifname = env.get("interface", "")
    if not ifname or (reason not in BIND | UNBIND and reason != "PREINIT"):
        return 0
    from pyroute2 import IPRoute, NetlinkError

    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return 0
        index = int(found[0])
        if reason == "PREINIT":
            ipr.link("set", index=index, state="up")
            return 0
        old = env.get("old_ip_address")
        new = env.get("new_ip_address")
        if old and (reason in UNBIND or old != new):
            _forget(ipr, index, old, env.get("old_subnet_mask", "255.255.255.255"))
        if reason in UNBIND or not new:
            return 0
        iface = ipaddress.IPv4Interface(f"{new}/{env.get('new_subnet_mask', '255.255.255.255')}")
        metric = STATIC_METRIC_BASE + index
        try:
            ipr.addr(
                "add",
                index=index,
                address=str(iface.ip),
                prefixlen=iface.network.prefixlen,
                flags=IFA_F_NOPREFIXROUTE,
            )
        except NetlinkError as exc:
            if exc.code != 17:
                raise
        common: dict[str, Any] = {
            "oif": index,
            "priority": metric,
            "proto": PROTO_DHCP,
            "prefsrc": str(iface.ip),
        }
        ipr.route("replace", dst=str(iface.network), scope=253, **common)
        for network, gateway in lease_routes(env):
            ipr.route("replace", dst=str(network), gateway=str(gateway), **common)
    return 0


def _forget(ipr: Any, index: int, address: str, mask: str) -> None:
    from pyroute2 import NetlinkError

    iface = ipaddress.IPv4Interface(f"{address}/{mask}")
    with contextlib.suppress(NetlinkError):
        ipr.addr("del", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)


def main() -> None:
    try:
        code = run(os.environ)
    except (ValueError, OSError) as exc:
        print(f"multihome dhcphook: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
