"""Fixtures of the persistence tests: namespaces, a DHCP-served lab, and helpers.

Every namespace is named ``mhpersist-<random>-...`` and removed (with every process in it)
also when a test fails. Nothing here touches the host's own network.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from persist_util import (
    LEASES,
    MACS,
    MULTIHOME,
    VENV_BIN,
    Namespaces,
    desired_rule_tuple,
    need,
    need_root,
    ns_routes,
    ns_rules,
    rule_tuple,
    run,
    start_dnsmasq,
    wait_for,
)

GOLDEN = Path(__file__).parent / "golden"

__all__ = [  # what the test modules import from here
    "GOLDEN",
    "LEASES",
    "MACS",
    "MULTIHOME",
    "VENV_BIN",
    "Lab",
    "Namespaces",
    "NetworkManager",
    "Networkd",
    "desired_rule_tuple",
    "howto_vm",
    "multihome",
    "need",
    "need_root",
    "ns_routes",
    "ns_rules",
    "rule_tuple",
    "run",
    "wait_for",
]


@pytest.fixture
def namespaces() -> Iterator[Namespaces]:
    """A namespace factory; everything it made is removed after the test."""
    need_root()
    spaces = Namespaces(f"mhpersist-{secrets.token_hex(3)}")
    try:
        yield spaces
    finally:
        spaces.cleanup()


@dataclass
class Lab:
    """A VM namespace with ports eth0..ethN on a bridge served by dnsmasq (Neutron-like DHCP)."""

    vm: str
    switch: str
    ports: list[str]
    workdir: Path
    spaces: Namespaces

    def router(self, address: str) -> None:
        """Make the DHCP server hand out ``address`` as the router from now on (restart)."""
        self.start_dhcp(router=address)

    def start_dhcp(self, router: str = "192.168.0.1") -> None:
        start_dnsmasq(self.switch, self.ports, self.workdir, router)


@pytest.fixture
def make_lab(namespaces: Namespaces, tmp_path: Path) -> Callable[[int], Lab]:
    """Build a lab with ``n`` ports: VM namespace, switch namespace with br0, dnsmasq."""
    need("dnsmasq")

    def build(n: int) -> Lab:
        vm = namespaces.add("vm")
        sw = namespaces.add("sw")
        run("ip", "-n", sw, "link", "add", "br0", "type", "bridge")
        ports = [f"eth{i}" for i in range(n)]
        for i, port in enumerate(ports):
            run(
                "ip",
                "link",
                "add",
                port,
                "netns",
                vm,
                "address",
                MACS[port],
                "type",
                "veth",
                "peer",
                f"p{i}",
                "netns",
                sw,
            )
            run("ip", "-n", sw, "link", "set", f"p{i}", "master", "br0")
            run("ip", "-n", sw, "link", "set", f"p{i}", "up")
        run("ip", "-n", sw, "link", "set", "br0", "up")
        for addr in ("192.168.0.1/24", "192.168.0.100/24", "192.168.0.2/24"):
            run("ip", "-n", sw, "addr", "add", addr, "dev", "br0")
        lab = Lab(vm, sw, ports, tmp_path / "lab", namespaces)
        lab.workdir.mkdir()
        lab.start_dhcp()
        return lab

    return build


def howto_vm(spaces: Namespaces) -> str:
    """The how-to's VM as the kernel sees it after DHCP (static copy of /tmp/howto.sh)."""
    ns = spaces.add("vm")
    sw = spaces.add("sw")
    run("ip", "-n", sw, "link", "add", "br0", "type", "bridge")
    for i, port in enumerate(("eth0", "eth1")):
        run(
            "ip",
            "link",
            "add",
            port,
            "netns",
            ns,
            "address",
            MACS[port],
            "type",
            "veth",
            "peer",
            f"p{i}",
            "netns",
            sw,
        )
        run("ip", "-n", sw, "link", "set", f"p{i}", "master", "br0")
        run("ip", "-n", sw, "link", "set", f"p{i}", "up")
        run("ip", "-n", ns, "link", "set", port, "up")
    run("ip", "-n", sw, "link", "set", "br0", "up")
    run("ip", "-n", sw, "addr", "add", "192.168.0.1/24", "dev", "br0")
    run("ip", "-n", sw, "addr", "add", "192.168.0.100/24", "dev", "br0")
    for port, addr, metric in (("eth0", "192.168.0.107", 100), ("eth1", "192.168.0.112", 101)):
        run("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", port, "noprefixroute")
        base = ["dev", port, "src", addr, "metric", str(metric)]
        run(
            "ip",
            "-n",
            ns,
            "route",
            "add",
            "192.168.0.0/24",
            *base,
            "proto",
            "kernel",
            "scope",
            "link",
        )
        run("ip", "-n", ns, "route", "add", "default", "via", "192.168.0.1", *base, "proto", "dhcp")
        run(
            "ip",
            "-n",
            ns,
            "route",
            "add",
            "169.254.169.254",
            "via",
            "192.168.0.100",
            *base,
            "proto",
            "dhcp",
        )
    return ns


def multihome(ns: str, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    """``ip netns exec NS multihome ARGS`` (the installed console script of this venv)."""
    return run("ip", "netns", "exec", ns, MULTIHOME, *args, check=check)


NETWORKD_SCRIPT = """
set -e
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/netif/links /run/systemd/netif/leases /run/systemd/netif/lldp /run/dbus \
  /run/mh-empty /run/mh-empty-conf
chown -R systemd-network:systemd-network /run/systemd/netif
mount -t tmpfs tmpfs /etc/systemd
mkdir -p /etc/systemd/network /etc/systemd/networkd.conf.d "$1/etc/systemd/networkd.conf.d"
mount --bind "$1/etc/systemd/network" /etc/systemd/network
mount --bind "$1/etc/systemd/networkd.conf.d" /etc/systemd/networkd.conf.d
mount --bind /run/mh-empty /lib/systemd/network
mount -o remount,ro /sys 2>/dev/null || true
dbus-daemon --system --fork --nopidfile
exec /lib/systemd/systemd-networkd
"""


@dataclass
class Networkd:
    """systemd-networkd running in a lab's VM namespace, configured from ``root``/etc."""

    lab: Lab
    root: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        (self.root / "etc/systemd/network").mkdir(parents=True, exist_ok=True)
        self.proc = self.lab.spaces.spawn(
            [
                "ip",
                "netns",
                "exec",
                self.lab.vm,
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                NETWORKD_SCRIPT,
                "sh",
                str(self.root),
            ],
            self.log,
        )

    def stop(self) -> None:
        """Stop networkd (and its private dbus) like a shutdown would."""
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
            self.proc = None
        for pid in run("ip", "netns", "pids", self.lab.vm, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)

    def networkctl(self, *args: str) -> None:
        assert self.proc is not None  # ip netns exec -> unshare -> sh all exec: it is networkd
        run("nsenter", "-t", str(self.proc.pid), "-m", "-n", "networkctl", *args)


NM_SCRIPT = """
set -e
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /var/lib/NetworkManager
mkdir -p /run/dbus /run/mh-empty
mount --bind /run/mh-empty /etc/NetworkManager/dispatcher.d
mount --bind /run/mh-empty /etc/NetworkManager/conf.d
[ -d /usr/lib/NetworkManager/conf.d ] && mount --bind /run/mh-empty /usr/lib/NetworkManager/conf.d
mount -o remount,ro /sys 2>/dev/null || true
dbus-daemon --system --fork --nopidfile
exec NetworkManager --no-daemon --debug --config="$1"
"""


@dataclass
class NetworkManager:
    """NetworkManager in a lab's VM namespace, reading keyfiles from ``root``/etc."""

    lab: Lab
    root: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def keyfiles(self) -> Path:
        return self.root / "etc/NetworkManager/system-connections"

    def start(self) -> None:
        self.keyfiles.mkdir(parents=True, exist_ok=True)
        conf = self.root / "nm.conf"
        conf.write_text(
            f"[main]\nplugins=keyfile\nno-auto-default=*\ndhcp=internal\n"
            f"[keyfile]\npath={self.keyfiles}\n[logging]\nlevel=INFO\n"
        )
        self.proc = self.lab.spaces.spawn(
            [
                "ip",
                "netns",
                "exec",
                self.lab.vm,
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                NM_SCRIPT,
                "sh",
                str(conf),
            ],
            self.log,
        )

    def stop(self) -> None:
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
            self.proc = None
        for pid in run("ip", "netns", "pids", self.lab.vm, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)

    def nmcli(self, *args: str) -> str:
        assert self.proc is not None
        return run("nsenter", "-t", str(self.proc.pid), "-m", "-n", "nmcli", *args).stdout
