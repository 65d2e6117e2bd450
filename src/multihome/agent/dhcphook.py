"""The script ISC dhclient runs for ports the agent addresses by DHCP (``dhclient -sf``).

dhclient passes the lease in environment variables (``reason``, ``interface``,
``new_ip_address``, ``new_subnet_mask``, ``new_routers``,
``new_rfc3442_classless_static_routes``, ``old_ip_address``). Unlike Debian's stock script,
this one gives every lease route the port's own metric (1000 + ifindex, like the static
configuration) and marks it ``proto dhcp``, so that a second port's routes never collide with
the first's ("File exists") and a hot-plugged port never becomes the primary. DNS is left alone.

Under ``dhclient -6`` (DHCPv6-stateful ports) the reasons end in 6 and the lease is
``new_ip6_address``/``new_ip6_prefixlen`` (``old_ip6_*`` the one before, ``cur_ip6_*`` for
``DEPREF6``) with its lifetimes (``new_preferred_life``, ``new_max_life``, counted from
``new_life_starts``). The address lives as long as its lease, as a DHCPv6 client's must:

* ``BOUND6``, ``RENEW6``, ``REBIND6``, ``REBOOT6``: the address is added or updated
  (``ip addr replace``) with what is left of the lease's preferred and valid lifetimes, so
  that the kernel deprecates it (no longer a source of new connections) and removes it when
  the lease runs out unrenewed (a stopped client, a server that went); a changed address
  replaces the old one; an address the server gives a valid lifetime of 0 (it no longer
  leases it: a renumbered subnet) is removed.
* ``DEPREF6``: the preferred lifetime ended: the address is deprecated (preferred 0), its
  valid lifetime kept.
* ``EXPIRE6``, ``RELEASE6``, ``STOP6``: the address is removed.

The address is ``noprefixroute`` and keeps dhclient's prefix length (128): DHCPv6 says
nothing about which addresses are on-link (the router's advertisements do, with their prefix
routes), and the kernel would otherwise add a host route for the address to main (``proto
kernel``, measured on 6.18) that says nothing either. DHCPv6 gives no routes.
Every kernel change goes through the :class:`~multihome.backend.Backend` protocol (the
rtnetlink backend of the namespace dhclient runs in), so the hook's logic runs on the in-memory
twin too.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import sys
import time
from collections.abc import Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING

from multihome.model import (
    FOREVER,
    PROTO_DHCP,
    SCOPE_LINK,
    TABLE_MAIN,
    Address,
    IPAddress,
    IPNetwork,
    Lifetime,
    Route,
)
from multihome.source.ports import STATIC_METRIC_BASE

if TYPE_CHECKING:
    from multihome.backend import Backend

BIND = {"BOUND", "RENEW", "REBIND", "REBOOT"}
UNBIND = {"EXPIRE", "FAIL", "RELEASE", "STOP"}
BIND6 = {"BOUND6", "RENEW6", "REBIND6", "REBOOT6"}
UNBIND6 = {"EXPIRE6", "RELEASE6", "STOP6"}
DEPREF6 = "DEPREF6"
#: The reasons the script acts on (dhclient's others, ``NBI``, ``MEDIUM``, ..., are no-ops).
REASONS = BIND | UNBIND | BIND6 | UNBIND6 | {DEPREF6, "PREINIT", "PREINIT6"}


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
    if not ifname or reason not in REASONS:
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
    if reason in ("PREINIT", "PREINIT6"):
        backend.set_link_up(ifname)
        return 0
    if reason in BIND6 | UNBIND6 | {DEPREF6}:
        return _run6(env, backend, reason, ifname)
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


def _run6(env: Mapping[str, str], backend: Backend, reason: str, ifname: str) -> int:
    now = int(time.time())
    if reason == DEPREF6:
        current = _lease6(env, "cur", ifname)
        left = None if current is None else lease_lifetime(env, "cur", now)
        if current is not None and left is not None:
            backend.add_address(current, prefix_route=False, lifetime=Lifetime(0, left.valid))
        elif current is not None:
            _remove(backend, current)
        return 0
    old = _lease6(env, "old", ifname)
    new = None if reason in UNBIND6 else _lease6(env, "new", ifname)
    left = None if new is None else lease_lifetime(env, "new", now)
    if old is not None and (old != new or left is None):
        _remove(backend, old)
    if new is not None and left is None:
        _remove(backend, new)  # valid lifetime 0: the server no longer leases it
    elif new is not None and left is not None:
        backend.add_address(new, prefix_route=False, lifetime=left)
    return 0


def lease_lifetime(env: Mapping[str, str], which: str, now: int) -> Lifetime | None:
    """What is left at ``now`` (epoch seconds) of the lifetimes of dhclient's ``which``
    (``new``, ``cur``) lease: ``{which}_preferred_life`` and ``{which}_max_life`` count from
    ``{which}_life_starts`` (0xffffffff: forever); the preferred never above the valid (the
    kernel refuses that). None when the valid lifetime is over (or 0). Without lifetimes
    (another client) the address is permanent, as before."""
    valid = _seconds(env.get(f"{which}_max_life"))
    if valid is None:
        return Lifetime(FOREVER, FOREVER)
    preferred = _seconds(env.get(f"{which}_preferred_life"))
    starts = _seconds(env.get(f"{which}_life_starts") or env.get(f"{which}_starts"))
    elapsed = 0 if starts is None or starts == FOREVER else max(0, now - starts)

    def left(life: int) -> int:
        return FOREVER if life == FOREVER else max(0, life - elapsed)

    remaining = left(valid)
    if remaining == 0:
        return None
    return Lifetime(min(left(valid if preferred is None else preferred), remaining), remaining)


def _seconds(text: str | None) -> int | None:
    """A lifetime as dhclient prints it (decimal; 4294967295 or -1: forever)."""
    try:
        value = int((text or "").strip())
    except ValueError:
        return None
    return FOREVER if value < 0 or value >= FOREVER else value


def _remove(backend: Backend, address: Address) -> None:
    with contextlib.suppress(OSError):
        backend.remove_address(address)


def _lease6(env: Mapping[str, str], which: str, ifname: str) -> Address | None:
    """The DHCPv6 lease's address (``new`` or ``old``), with dhclient's prefix length."""
    address = env.get(f"{which}_ip6_address", "").strip()
    if not address:
        return None
    length = env.get(f"{which}_ip6_prefixlen", "").strip() or "128"
    return Address(ifname, ipaddress.IPv6Interface(f"{address}/{length}"))


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
