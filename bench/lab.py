"""Throwaway namespaces for the benchmarks: N veth ports configured like the how-to.

``BenchLab(n)`` creates two namespaces, ``<name>`` (the "VM", ports ``p0..p{n-1}``) and
``<name>-sw`` (their peers ``q0..``), and gives every port what DHCP gives it in the how-to:
an address (``noprefixroute``), its subnet route (``proto kernel``, metric 100+i) and a default
route via the port's gateway (``proto dhcp``, metric 100+i), all in main. Port i has the
address ``10.X.Y.10/24`` with gateway ``10.X.Y.1`` (X, Y = divmod(i, 256)).

``BenchLab(n, dual_stack=True)`` also gives every port what SLAAC and a router advertisement
give it: the global address ``2001:db8:X:Y::10/64`` (``nodad``: usable at once, as after DAD;
``noprefixroute``), its on-link prefix route (``proto kernel``, metric 256, expiring after the
prefix's valid lifetime, as the kernel installs it) and the default via the router's link-local
address ``fe80::1`` (``proto ra``, expiring after the router lifetime, ``hoplimit 64``, ``pref
medium``). These are installed with ``ip`` in the form the kernel gives them, with one
difference: the metric is 1024+i, as ``net.ipv6.conf.pI.ra_defrtr_metric = 1024+i`` makes the
kernel install it. With every port at the kernel's default 1024, ``ip route add`` answers
EEXIST (``ip route append`` would merge them into one multipath route): only the kernel's own
RA path (``RTF_ADDRCONF``) keeps equal-metric defaults apart.

Everything is done with ``ip -batch`` from outside (``ip -n``), nothing touches the host's own
namespace, and :meth:`BenchLab.close` deletes both namespaces by name.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multihome.model import PROTO_NAMES, Route, Rule, Sysctl, table_label
from multihome.plan import Change

#: Sysctls the harness records and restores (multihome's knobs).
KNOBS = ("rp_filter", "arp_ignore", "arp_announce", "arp_filter")


def port_name(i: int) -> str:
    return f"p{i}"


def port_net(i: int) -> tuple[str, str]:
    """(address/prefix, gateway) of port ``i``."""
    x, y = divmod(i, 256)
    return f"10.{x}.{y}.10/24", f"10.{x}.{y}.1"


#: The router's link-local address on every port's link (Neutron's is MAC-derived).
ROUTER6 = "fe80::1"
#: Lifetimes of the advertised router and prefix, in seconds: the longest a router lifetime
#: may be (RFC 4861, 9000 s), so that no route expires during a long run; radvd's default
#: valid lifetime of a prefix (86400 s).
ROUTER_LIFETIME = 9000
PREFIX_LIFETIME = 86400


def port_net6(i: int) -> str:
    """The global IPv6 address/prefix of port ``i`` (its router is :data:`ROUTER6`)."""
    x, y = divmod(i, 256)
    return f"2001:db8:{x:x}:{y:x}::10/64"


def ipv6_lines(i: int) -> list[str]:
    """``ip -6 -batch`` lines giving port ``i`` what SLAAC and a router advertisement give it."""
    dev, addr = port_name(i), port_net6(i)
    prefix = addr.split("::", 1)[0] + "::/64"
    return [
        f"address add {addr} dev {dev} nodad noprefixroute",
        f"route add {prefix} dev {dev} proto kernel metric 256 expires {PREFIX_LIFETIME}",
        f"route add default via {ROUTER6} dev {dev} proto ra metric {1024 + i} "
        f"expires {ROUTER_LIFETIME} hoplimit 64 pref medium",
    ]


def run(args: Sequence[str], *, input_text: str | None = None) -> str:
    """Run a command, return its stdout; raise with its stderr on failure."""
    proc = subprocess.run(list(args), input=input_text, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def ip_batch(netns: str | None, lines: Iterable[str], family: int | None = None) -> None:
    """One ``ip -batch -`` process for ``lines`` (inside ``netns`` when given); ``ip -6
    -batch -`` for ``family`` 6 (a batch line takes no options: one process per family)."""
    text = "".join(line + "\n" for line in lines)
    if not text:
        return
    prefix = ["ip"] + (["-n", netns] if netns else []) + (["-6"] if family == 6 else [])
    run([*prefix, "-batch", "-"], input_text=text)


# -- iproute2 text for one change ---------------------------------------------------------
def route_words(route: Route) -> list[str]:
    """``ip route`` arguments that select exactly ``route``."""
    words = (
        []
        if route.type == 1
        else [
            {
                2: "local",
                3: "broadcast",
                6: "blackhole",
                7: "unreachable",
                8: "prohibit",
                9: "throw",
            }[route.type]
        ]
    )
    words.append("default" if route.is_default else str(route.dst))
    if route.gateway is not None:
        words += ["via", str(route.gateway)]
    if route.ifname:
        words += ["dev", route.ifname]
    words += [
        "table",
        table_label(route.table),
        "proto",
        str(route.proto),
        "scope",
        str(route.scope),
    ]
    if route.prefsrc is not None:
        words += ["src", str(route.prefsrc)]
    words += ["metric", str(route.metric)]
    return words


def rule_words(rule: Rule) -> list[str]:
    """``ip rule`` arguments that select exactly ``rule``."""
    words = ["priority", str(rule.priority)]
    words += ["from", "all" if rule.src is None else str(rule.src)]
    if rule.dst is not None:
        words += ["to", str(rule.dst)]
    if rule.iifname:
        words += ["iif", rule.iifname]
    if rule.oifname:
        words += ["oif", rule.oifname]
    if rule.fwmark is not None:
        mark = hex(rule.fwmark)
        words += ["fwmark", mark if rule.fwmask is None else f"{mark}/{hex(rule.fwmask)}"]
    words += ["lookup", table_label(rule.table)]
    if rule.suppress_prefixlength is not None:
        words += ["suppress_prefixlength", str(rule.suppress_prefixlength)]
    words += ["protocol", str(rule.proto)]
    return words


def ip_words(change: Change) -> list[str]:
    """The ``ip`` arguments (without ``ip``) for a route or rule change."""
    obj = change.obj
    verb = "add" if change.action == "add" else "del"
    if isinstance(obj, Route):
        return (["-6"] if obj.family == 6 else []) + ["route", verb, *route_words(obj)]
    assert isinstance(obj, Rule)
    return (["-6"] if obj.family == 6 else []) + ["rule", verb, *rule_words(obj)]


def batch_lines(changes: Iterable[Change]) -> dict[int, list[str]]:
    """Family (4, 6) -> the ``ip -batch`` lines of those route and rule ``changes``, in order
    (:func:`ip_words` without its ``-6``: family 6 goes to ``ip -6 -batch``)."""
    found: dict[int, list[str]] = {4: [], 6: []}
    for change in changes:
        words = ip_words(change)
        family = 6 if words[0] == "-6" else 4
        found[family].append(" ".join(words[1:] if family == 6 else words))
    return found


def sysctl_line(sysctl: Sysctl) -> str:
    return f"{sysctl.name} = {sysctl.value}"


def split_changes(changes: Sequence[Change]) -> tuple[list[Change], list[Change]]:
    """(sysctl changes, netlink changes), each in plan order."""
    sysctls = [c for c in changes if isinstance(c.obj, Sysctl)]
    return sysctls, [c for c in changes if not isinstance(c.obj, Sysctl)]


@dataclass
class BenchLab:
    """Two namespaces with ``n`` configured veth ports; delete them with :meth:`close`."""

    n: int
    name: str = ""
    dual_stack: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            kind = "ds-" if self.dual_stack else ""
            self.name = f"mhbench-{kind}{secrets.token_hex(3)}-{self.n}"
        self.sw = f"{self.name}-sw"
        self.root = Path(tempfile.mkdtemp(prefix=f"{self.name}-root-"))
        self._created = False

    # -- life cycle -------------------------------------------------------------------
    def create(self) -> BenchLab:
        run(["ip", "netns", "add", self.name])
        self._created = True
        run(["ip", "netns", "add", self.sw])
        ip_batch(
            None,
            (
                f"link add {port_name(i)} netns {self.name} type veth "
                f"peer name q{i} netns {self.sw}"
                for i in range(self.n)
            ),
        )
        ip_batch(self.sw, ["link set lo up", *(f"link set q{i} up" for i in range(self.n))])
        lines = ["link set lo up"]
        lines += [f"link set {port_name(i)} up" for i in range(self.n)]
        for i in range(self.n):
            addr, gateway = port_net(i)
            dev, metric = port_name(i), 100 + i
            ip = addr.split("/")[0]
            net = addr.rsplit(".", 1)[0] + ".0/24"
            lines += [
                f"address add {addr} dev {dev} noprefixroute",
                f"route add {net} dev {dev} proto kernel scope link src {ip} metric {metric}",
                f"route add default via {gateway} dev {dev} proto dhcp src {ip} metric {metric}",
            ]
        ip_batch(self.name, lines)
        if self.dual_stack:
            ip_batch(self.name, (line for i in range(self.n) for line in ipv6_lines(i)), 6)
        # New namespaces copy the host's conf defaults: make the start state explicit.
        self.write_sysctls(
            {f"net.ipv4.conf.{port_name(i)}.{knob}": "0" for i in range(self.n) for knob in KNOBS}
        )
        return self

    def close(self) -> None:
        for ns in (self.sw, self.name):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> BenchLab:
        try:
            return self.create()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands inside the VM namespace --------------------------------------------
    def exec_args(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def write_sysctls(self, values: dict[str, str]) -> None:
        """Write sysctls inside the namespace (one ``sysctl -p -`` process)."""
        if values:
            text = "".join(f"{k} = {v}\n" for k, v in values.items())
            run(self.exec_args("sysctl", "-q", "-p", "-"), input_text=text)

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until no IPv6 address of the VM is tentative (the veths' link-local addresses
        finish DAD a second or two after the lab is built): the notification that ends DAD
        is a change nobody planned, and an apply that sees one during its changes records no
        fingerprint, so the next apply would not be a no-op."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = subprocess.run(
                ["ip", "-n", self.name, "-6", "addr", "show", "tentative"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            if "inet6" not in shown:
                return
            time.sleep(0.05)

    def undo(self, changes: Sequence[Change]) -> None:
        """Undo ``changes`` (all of which were made) with ``ip -batch``: reset between runs."""
        sysctls, netlink = split_changes([c.inverse() for c in reversed(changes)])
        for family, lines in batch_lines(netlink).items():
            ip_batch(self.name, lines, family)
        self.write_sysctls({c.obj.name: c.obj.value for c in sysctls if isinstance(c.obj, Sysctl)})

    # -- state, read independently of multihome ------------------------------------
    def fingerprint(self) -> dict[str, Any]:
        """Rules, routes of every table and the knobs, as ``ip -j`` and ``sysctl`` show them.

        IPv6 routes the kernel adds by itself (link-local, ``proto kernel``) appear a moment
        after a link comes up; they are left out so that two reads compare equal, and so is
        the remaining lifetime (``expires``) of the router advertisement's routes, which counts
        down between two reads.
        """

        def ip_json(*args: str) -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = json.loads(
                run(["ip", "-n", self.name, "-j", *args]) or "[]"
            )
            return found

        rules = ip_json("-4", "rule", "show") + ip_json("-6", "rule", "show")
        routes = ip_json("-4", "route", "show", "table", "all")
        routes += [
            {k: v for k, v in r.items() if k != "expires"}
            for r in ip_json("-6", "route", "show", "table", "all")
            if r.get("protocol") != "kernel"
        ]
        out = run(
            self.exec_args(
                "sysctl",
                *(f"net.ipv4.conf.{port_name(i)}.{knob}" for i in range(self.n) for knob in KNOBS),
            )
        )
        return {
            "rules": sorted(json.dumps(r, sort_keys=True) for r in rules),
            "routes": sorted(json.dumps(r, sort_keys=True) for r in routes),
            "sysctls": sorted(out.splitlines()),
        }


def proto_name(proto: int) -> str:
    return PROTO_NAMES.get(proto, str(proto))


def env_without_color() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MULTIHOME_FAILPOINT", None)
    return env
