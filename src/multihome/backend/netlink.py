"""The real kernel backend: pyroute2's synchronous ``IPRoute`` in the current namespace."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from multihome.backend import ChangeFailed, Lookup
from multihome.config import SYSCTL_KNOBS
from multihome.model import (
    FR_ACT_TO_TBL,
    PROTO_BOOT,
    Address,
    HostState,
    IPAddress,
    Link,
    Route,
    Rule,
    Sysctl,
    conf_sysctl,
)

if TYPE_CHECKING:
    from multihome.plan import Change

IFF_UP = 0x1
IFF_LOOPBACK = 0x8
NO_SUPPRESS = 0xFFFFFFFF
FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}


class NetlinkBackend:
    """Reads and changes the kernel state of the namespace this process runs in."""

    def __init__(self, proc_sys: Path = Path("/proc/sys")) -> None:
        self._ipr: Any = None
        self._proc_sys = proc_sys
        self._index: dict[str, int] = {}

    @property
    def ipr(self) -> Any:
        if self._ipr is None:
            from pyroute2 import IPRoute  # lazy: a 0.1 s import

            self._ipr = IPRoute()
        return self._ipr

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    # -- reading -----------------------------------------------------------------------
    def read(self) -> HostState:
        ipr = self.ipr
        names: dict[int, str] = {}
        raw_links = list(ipr.get_links())
        for msg in raw_links:
            names[msg["index"]] = msg.get("IFLA_IFNAME")
        links = [self._link(msg, names) for msg in raw_links]
        self._index = {v: k for k, v in names.items()}
        addresses = [a for a in (self._address(m, names) for m in ipr.get_addr()) if a]
        routes = [r for r in (self._route(m, names) for m in ipr.get_routes()) if r]
        rules: list[Rule] = []
        for family in FAMILIES.values():
            rules.extend(self._rule(m) for m in ipr.get_rules(family=family))
        sysctls = self._read_sysctls([link.name for link in links])
        return HostState.build(links, addresses, routes, rules, sysctls)

    @staticmethod
    def _link(msg: Any, names: dict[int, str]) -> Link:
        info = msg.get("IFLA_LINKINFO")
        kind = info.get("IFLA_INFO_KIND") if info else None
        flags = msg["flags"]
        operstate = msg.get("IFLA_OPERSTATE")
        master = msg.get("IFLA_MASTER")
        mac = msg.get("IFLA_ADDRESS")
        return Link(
            name=msg.get("IFLA_IFNAME"), index=msg["index"],
            mac=mac.lower() if mac else None, kind=kind,
            up=bool(flags & IFF_UP) and operstate in ("UP", "UNKNOWN"),
            master=names.get(master) if master else None,
            loopback=bool(flags & IFF_LOOPBACK),
        )

    @staticmethod
    def _address(msg: Any, names: dict[int, str]) -> Address | None:
        ifname = names.get(msg["index"])
        value = msg.get("IFA_LOCAL") or msg.get("IFA_ADDRESS")
        if ifname is None or value is None:
            return None
        iface = ipaddress.ip_interface(f"{value}/{msg['prefixlen']}")
        return Address(ifname=ifname, interface=iface, scope=msg["scope"])

    @staticmethod
    def _route(msg: Any, names: dict[int, str]) -> Route | None:
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
            proto=msg["proto"], scope=msg["scope"],
            prefsrc=ipaddress.ip_address(prefsrc) if prefsrc else None,
            type=msg["type"],
        )

    @staticmethod
    def _rule(msg: Any) -> Rule:
        family = 4 if msg["family"] == socket.AF_INET else 6
        src = msg.get("FRA_SRC")
        dst = msg.get("FRA_DST")
        suppress = msg.get("FRA_SUPPRESS_PREFIXLEN")
        return Rule(
            family=family, priority=msg.get("FRA_PRIORITY") or 0,
            table=msg.get("FRA_TABLE") or msg["table"],
            src=ipaddress.ip_network(f"{src}/{msg['src_len']}", strict=False) if src else None,
            dst=ipaddress.ip_network(f"{dst}/{msg['dst_len']}", strict=False) if dst else None,
            iifname=msg.get("FRA_IIFNAME"), oifname=msg.get("FRA_OIFNAME"),
            suppress_prefixlength=None if suppress in (None, NO_SUPPRESS) else suppress,
            fwmark=msg.get("FRA_FWMARK"), fwmask=msg.get("FRA_FWMASK"),
            action=msg["action"], proto=msg.get("FRA_PROTOCOL") or PROTO_BOOT,
        )

    def _read_sysctls(self, ifnames: list[str]) -> dict[str, str]:
        values: dict[str, str] = {}
        for ifname in ["all", "default", *ifnames]:
            for knob in SYSCTL_KNOBS:
                sysctl = conf_sysctl(ifname, knob, "")
                try:
                    values[sysctl.name] = (self._proc_sys / sysctl.path).read_text().strip()
                except OSError:
                    continue
        return values

    # -- changing ----------------------------------------------------------------------
    def apply(self, changes: Sequence[Change]) -> int:
        from pyroute2 import NetlinkError

        if not self._index:
            self._index = {link.get("IFLA_IFNAME"): link["index"]
                           for link in self.ipr.get_links()}
        done = 0
        for change in changes:
            try:
                self._apply_one(change)
            except NetlinkError as exc:
                raise ChangeFailed(change, done, os.strerror(exc.code)) from exc
            except OSError as exc:
                raise ChangeFailed(change, done, exc.strerror or str(exc)) from exc
            done += 1
        return done

    def _apply_one(self, change: Change) -> None:
        obj = change.obj
        if isinstance(obj, Sysctl):
            (self._proc_sys / obj.path).write_text(obj.value + "\n")
            return
        command = "add" if change.action == "add" else "del"
        if isinstance(obj, Route):
            self.ipr.route(command, **self.route_args(obj))
        else:
            self.ipr.rule(command, **self.rule_args(obj))

    def route_args(self, route: Route) -> dict[str, Any]:
        """pyroute2 keyword arguments for ``route``."""
        args: dict[str, Any] = {
            "family": FAMILIES[route.family], "dst": str(route.dst), "table": route.table,
            "proto": route.proto, "scope": route.scope, "type": route.type,
        }
        if route.ifname:
            if route.ifname not in self._index:
                raise OSError(errno.ENODEV, f"no interface {route.ifname}")
            args["oif"] = self._index[route.ifname]
        if route.gateway is not None:
            args["gateway"] = str(route.gateway)
        if route.metric:
            args["priority"] = route.metric
        if route.prefsrc is not None:
            args["prefsrc"] = str(route.prefsrc)
        return args

    @staticmethod
    def rule_args(rule: Rule) -> dict[str, Any]:
        """pyroute2 keyword arguments for ``rule``."""
        args: dict[str, Any] = {"family": FAMILIES[rule.family], "priority": rule.priority,
                                "table": rule.table, "protocol": rule.proto}
        if rule.action != FR_ACT_TO_TBL:
            args["action"] = rule.action
        if rule.src is not None:
            args.update(src=str(rule.src.network_address), src_len=rule.src.prefixlen)
        if rule.dst is not None:
            args.update(dst=str(rule.dst.network_address), dst_len=rule.dst.prefixlen)
        if rule.iifname:
            args["iifname"] = rule.iifname
        if rule.oifname:
            args["oifname"] = rule.oifname
        if rule.suppress_prefixlength is not None:
            args["suppress_prefixlen"] = rule.suppress_prefixlength
        if rule.fwmark is not None:
            args["fwmark"] = rule.fwmark
        if rule.fwmask is not None:
            args["fwmask"] = rule.fwmask
        return args

    # -- lookups -----------------------------------------------------------------------
    def lookup(self, dst: IPAddress, src: IPAddress | None = None,
               oif: str | None = None) -> Lookup | None:
        from pyroute2 import NetlinkError

        args: dict[str, Any] = {"dst": str(dst), "family": FAMILIES[dst.version]}
        if src is not None:
            args["src"] = str(src)
        if oif is not None:
            if not self._index:
                self.read()
            if oif not in self._index:
                return None
            args["oif"] = self._index[oif]
        try:
            answer = self.ipr.route("get", **args)
        except NetlinkError:
            return None
        if not answer:
            return None
        msg = answer[0]
        oif_index = msg.get("RTA_OIF")
        names = {v: k for k, v in self._index.items()}
        gateway = msg.get("RTA_GATEWAY")
        prefsrc = msg.get("RTA_PREFSRC")
        return Lookup(
            ifname=names.get(oif_index) if oif_index else None,
            gateway=ipaddress.ip_address(gateway) if gateway else None,
            prefsrc=ipaddress.ip_address(prefsrc) if prefsrc else None,
            table=msg.get("RTA_TABLE"),
        )

