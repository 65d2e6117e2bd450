"""The reference reader: multihome's original pyroute2-based ``read()``, kept to prove that the
struct-based reader in ``multihome.backend.netlink`` sees exactly the same state."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Any

from multihome.backend.netlink import NetlinkBackend
from multihome.model import PROTO_BOOT, Address, HostState, Link, Route, Rule

IFF_UP = 0x1
IFF_LOOPBACK = 0x8
NO_SUPPRESS = 0xFFFFFFFF
FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}


def read_with_pyroute2(proc_sys: Path = Path("/proc/sys")) -> HostState:
    """HostState of the current namespace, read through pyroute2's IPRoute."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        names: dict[int, str] = {}
        raw_links = list(ipr.get_links())
        for msg in raw_links:
            names[msg["index"]] = msg.get("IFLA_IFNAME")
        links = [_link(msg, names) for msg in raw_links]
        addresses = [a for a in (_address(m, names) for m in ipr.get_addr()) if a]
        routes = [_route(m, names) for m in ipr.get_routes()]
        rules: list[Rule] = []
        for family in FAMILIES.values():
            rules.extend(_rule(m) for m in ipr.get_rules(family=family))
    sysctls = NetlinkBackend(proc_sys)._read_sysctls([link.name for link in links])
    return HostState.build(links, addresses, routes, rules, sysctls)


def _link(msg: Any, names: dict[int, str]) -> Link:
    info = msg.get("IFLA_LINKINFO")
    kind = info.get("IFLA_INFO_KIND") if info else None
    flags = msg["flags"]
    operstate = msg.get("IFLA_OPERSTATE")
    master = msg.get("IFLA_MASTER")
    mac = msg.get("IFLA_ADDRESS")
    return Link(
        name=msg.get("IFLA_IFNAME"),
        index=msg["index"],
        mac=mac.lower() if mac else None,
        kind=kind,
        up=bool(flags & IFF_UP) and operstate in ("UP", "UNKNOWN"),
        master=names.get(master) if master else None,
        loopback=bool(flags & IFF_LOOPBACK),
        group=msg.get("IFLA_GROUP") or 0,
        admin_up=bool(flags & IFF_UP),
    )


def _address(msg: Any, names: dict[int, str]) -> Address | None:
    ifname = names.get(msg["index"])
    value = msg.get("IFA_LOCAL") or msg.get("IFA_ADDRESS")
    if ifname is None or value is None:
        return None
    iface = ipaddress.ip_interface(f"{value}/{msg['prefixlen']}")
    secondary = bool((msg.get("IFA_FLAGS") or msg["flags"]) & 0x01)  # IFA_F_SECONDARY
    return Address(ifname=ifname, interface=iface, scope=msg["scope"], secondary=secondary)


def _route(msg: Any, names: dict[int, str]) -> Route:
    family = 4 if msg["family"] == socket.AF_INET else 6
    dst = msg.get("RTA_DST") or ("0.0.0.0" if family == 4 else "::")
    oif = msg.get("RTA_OIF")
    gateway = msg.get("RTA_GATEWAY")
    prefsrc = msg.get("RTA_PREFSRC")
    return Route(
        table=msg.get("RTA_TABLE") or msg["table"],
        dst=ipaddress.ip_network(f"{dst}/{msg['dst_len']}", strict=False),
        ifname=names.get(oif) if oif else None,
        gateway=ipaddress.ip_address(gateway) if gateway else None,
        metric=msg.get("RTA_PRIORITY") or 0,
        proto=msg["proto"],
        scope=msg["scope"],
        prefsrc=ipaddress.ip_address(prefsrc) if prefsrc else None,
        type=msg["type"],
    )


def _rule(msg: Any) -> Rule:
    family = 4 if msg["family"] == socket.AF_INET else 6
    src = msg.get("FRA_SRC")
    dst = msg.get("FRA_DST")
    suppress = msg.get("FRA_SUPPRESS_PREFIXLEN")
    return Rule(
        family=family,
        priority=msg.get("FRA_PRIORITY") or 0,
        table=msg.get("FRA_TABLE") or msg["table"],
        src=ipaddress.ip_network(f"{src}/{msg['src_len']}", strict=False) if src else None,
        dst=ipaddress.ip_network(f"{dst}/{msg['dst_len']}", strict=False) if dst else None,
        iifname=msg.get("FRA_IIFNAME"),
        oifname=msg.get("FRA_OIFNAME"),
        suppress_prefixlength=None if suppress in (None, NO_SUPPRESS) else suppress,
        fwmark=msg.get("FRA_FWMARK"),
        fwmask=msg.get("FRA_FWMASK"),
        action=msg["action"],
        proto=msg.get("FRA_PROTOCOL") or PROTO_BOOT,
    )
