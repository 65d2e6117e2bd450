"""The script ISC dhclient runs for ports the agent addresses by DHCP (``dhclient -sf``).

dhclient passes the lease in environment variables (``reason``, ``interface``,
``new_ip_address``, ``new_subnet_mask``, ``new_routers``,
``new_rfc3442_classless_static_routes``, ``old_ip_address``). Unlike Debian's stock script,
this one gives every lease route the port's own metric (1000 + ifindex, like the static
configuration) and marks it ``proto dhcp``, so that a second port's routes never collide with
the first's ("File exists") and a hot-plugged port never becomes the primary. DNS is left alone.
Every kernel change goes through the :class:`~multihome.backend.Backend` protocol (the
rtnetlink backend of the namespace dhclient runs in), so the hook's logic runs on the in-memory
twin too.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import sys
from collections.abc import Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING

from multihome.model import (
    PROTO_DHCP,
    SCOPE_LINK,
    TABLE_MAIN,
    Address,
    IPAddress,
    IPNetwork,
    Route,
)
from multihome.source.ports import STATIC_METRIC_BASE

if TYPE_CHECKING:
    from multihome.backend import Backend

BIND = {"BOUND", "RENEW", "REBIND", "REBOOT"}
UNBIND = {"EXPIRE", "FAIL", "RELEASE", "STOP"}


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


def run(env: Mapping[str, str], backend: Backend | None = None) -> int:
    """Act on one dhclient event through ``backend`` (the kernel of this namespace when
    None)."""
    reason = env.get("reason", "")
    ifname = env.get("interface", "")
    if not ifname or (reason not in BIND | UNBIND and reason != "PREINIT"):
        return 0
    if backend is not None:
        return _run(env, backend, reason, ifname)
    from multihome.backend.netlink import NetlinkBackend

    kernel = NetlinkBackend()
    try:
        return _run(env, kernel, reason, ifname)
    finally:
        kernel.close()


def _run(env: Mapping[str, str], backend: Backend, reason: str, ifname: str) -> int:
    index = backend.link_index(ifname)
    if index is None:
        return 0
    if reason == "PREINIT":
        backend.set_link_up(ifname)
        return 0
    old = env.get("old_ip_address")
    new = env.get("new_ip_address")
    if old and (reason in UNBIND or old != new):
        _forget(backend, ifname, old, env.get("old_subnet_mask", "255.255.255.255"))
    if reason in UNBIND or not new:
        return 0
    iface = ipaddress.IPv4Interface(f"{new}/{env.get('new_subnet_mask', '255.255.255.255')}")
    bind(backend, ifname, index, iface, lease_routes(env))
    return 0


def bind(
    backend: Backend,
    ifname: str,
    index: int,
    iface: ipaddress.IPv4Interface,
    routes: Iterable[tuple[IPNetwork, IPAddress]],
) -> None:
    """Give ``ifname`` (index ``index``) a lease's address and put its routes into main, as
    the script does on every bind or renewal (idempotent): the address ``noprefixroute``,
    the subnet route and each of ``routes`` with the port's metric, ``proto dhcp``. The
    agent calls it too, with the client's lease, when a flap flushed the routes."""
    backend.add_address(Address(ifname, iface), prefix_route=False)
    lease = partial(
        Route,
        table=TABLE_MAIN,
        ifname=ifname,
        metric=STATIC_METRIC_BASE + index,
        proto=PROTO_DHCP,
        prefsrc=iface.ip,
    )
    backend.replace_route(lease(dst=iface.network, scope=SCOPE_LINK))
    for network, gateway in routes:
        backend.replace_route(lease(dst=network, gateway=gateway))


def _forget(backend: Backend, ifname: str, address: str, mask: str) -> None:
    with contextlib.suppress(OSError):
        backend.remove_address(Address(ifname, ipaddress.IPv4Interface(f"{address}/{mask}")))


def main() -> None:
    try:
        code = run(os.environ)
    except (ValueError, OSError) as exc:
        print(f"multihome dhcphook: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
