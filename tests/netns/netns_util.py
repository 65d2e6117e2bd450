"""Namespaces for kernel-level tests: unique names, removed by name, checked with `ip -j`."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HowtoVM:
    """The how-to's VM namespace, its switch namespace, and a --root for files."""

    ns: str
    switch: str
    root: Path


MULTIHOME = [sys.executable, "-m", "multihome"]
KNOBS = ("rp_filter", "arp_ignore", "arp_announce", "arp_filter")


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True)


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


@contextmanager
def namespaces(*names: str) -> Iterator[None]:
    """Create the namespaces; delete them by name on the way out, also on failure."""
    try:
        for name in names:
            sh("ip", "netns", "add", name)
        yield
    finally:
        for name in names:
            sh("ip", "netns", "del", name, check=False)


def build_howto(ns: str, sw: str, *, ports: int = 2) -> None:
    """The how-to's `ip route` exactly: eth0 .107, eth1 .112 on 192.168.0.0/24, DHCP-style
    defaults with metrics 100/101 and the metadata host route; the switch namespace ``sw``
    bridges the ports and holds the gateway 192.168.0.1 and the metadata host .100."""
    sh("ip", "-n", sw, "link", "add", "br0", "type", "bridge")
    for i in range(ports):
        sh(
            "ip",
            "link",
            "add",
            f"eth{i}",
            "netns",
            ns,
            "type",
            "veth",
            "peer",
            f"p{i}",
            "netns",
            sw,
        )
        sh("ip", "-n", sw, "link", "set", f"p{i}", "master", "br0", "up")
    for cmd in (
        ["link", "set", "br0", "up"],
        ["link", "set", "lo", "up"],
        ["addr", "add", "192.168.0.1/24", "dev", "br0"],
        ["addr", "add", "192.168.0.100/24", "dev", "br0"],
    ):
        sh("ip", "-n", sw, *cmd)
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    hosts = [107, 112, 115, 118]
    for i in range(ports):
        sh("ip", "-n", ns, "link", "set", f"eth{i}", "up")
        for knob in KNOBS:  # new namespaces copy the host's defaults: be explicit
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv4.conf.eth{i}.{knob}=0")
    for i in range(ports):
        addr = f"192.168.0.{hosts[i]}"
        sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", f"eth{i}", "noprefixroute")
        sh(
            "ip",
            "-n",
            ns,
            "route",
            "add",
            "192.168.0.0/24",
            "dev",
            f"eth{i}",
            "proto",
            "kernel",
            "scope",
            "link",
            "src",
            addr,
            "metric",
            str(100 + i),
        )
    for i in range(ports):
        addr = f"192.168.0.{hosts[i]}"
        # The DHCP client's default and its option-121 metadata host route, as the how-to has.
        for dst, via in (("default", "192.168.0.1"), ("169.254.169.254", "192.168.0.100")):
            sh(
                *f"ip -n {ns} route add {dst} via {via} dev eth{i}".split(),
                *f"proto dhcp src {addr} metric {100 + i}".split(),
            )


def rules(ns: str) -> list[dict[str, object]]:
    out: list[dict[str, object]] = json.loads(sh("ip", "-n", ns, "-j", "rule").stdout)
    return out


def routes(ns: str) -> list[dict[str, object]]:
    out: list[dict[str, object]] = json.loads(
        sh("ip", "-4", "-n", ns, "-j", "route", "show", "table", "all").stdout
    )
    return out


def sysctls(ns: str) -> dict[str, str]:
    text = sh("ip", "netns", "exec", ns, "sysctl", "-a", "-r", r"net\.ipv4\.conf\.").stdout
    return dict(line.split(" = ", 1) for line in text.splitlines() if " = " in line)


def dump(ns: str) -> dict[str, object]:
    """Everything an apply may change, as the kernel reports it."""
    return {"rules": rules(ns), "routes": routes(ns), "sysctls": sysctls(ns)}


def multihome(
    ns: str, *args: str, root: Path, env: dict[str, str] | None = None, user: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``ip netns exec NS multihome --root ROOT ARGS`` (optionally as another user)."""
    prefix = ["ip", "netns", "exec", ns]
    if user is not None:
        prefix += ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"]
    full_env = dict(os.environ, **(env or {}))
    full_env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "src")
    return subprocess.run(
        [*prefix, *MULTIHOME, "--root", str(root), *args],
        capture_output=True,
        text=True,
        env=full_env,
        check=False,
    )
