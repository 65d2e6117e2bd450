"""Fixtures of the persistence tests: namespaces, a DHCP-served lab, and helpers.

Every namespace is named ``mhpersist-<random>-...`` and removed (with every process in it)
also when a test fails. Nothing here touches the host's own network.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from multihome.model import net_text

sys.path.insert(0, str(Path(__file__).parent))

VENV_BIN = Path(sys.executable).parent
MULTIHOME = str(VENV_BIN / "multihome")
GOLDEN = Path(__file__).parent / "golden"
MACS = {"eth0": "fa:16:3e:00:00:01", "eth1": "fa:16:3e:00:00:02", "eth2": "fa:16:3e:00:00:03"}
LEASES = {"eth0": "192.168.0.107", "eth1": "192.168.0.112", "eth2": "192.168.0.120"}


def run(
    *args: str, check: bool = True, timeout: float = 60, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """Run a command, text mode, capturing output; fail with its stderr."""
    proc = subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, check=False, **kw
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def need(*programs: str) -> None:
    for program in programs:
        if shutil.which(program) is None and not Path(program).exists():
            pytest.skip(f"{program} is not installed (make deps)")


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")


def ns_rules(ns: str, family: int = 4) -> list[dict[str, object]]:
    """``ip -j rule`` of a namespace (checked independently of multihome's code)."""
    return json.loads(run("ip", f"-{family}", "-N", "-n", ns, "-j", "rule").stdout or "[]")


def ns_routes(ns: str, table: int | str, family: int = 4) -> list[dict[str, object]]:
    """``ip -j route show table T`` (empty when the table does not exist yet)."""
    proc = run(
        "ip", f"-{family}", "-N", "-n", ns, "-j", "route", "show", "table", str(table), check=False
    )
    if proc.returncode != 0:
        return []
    return json.loads(proc.stdout or "[]")


def rule_tuple(rule: dict[str, object]) -> tuple[object, ...]:
    """A rule of ``ip -j rule`` as comparable selectors (protocol left out)."""
    src = rule.get("src", "all")
    if src != "all" and rule.get("srclen") not in (None, 32, 128):
        src = f"{src}/{rule['srclen']}"
    dst = rule.get("dst")
    if dst is not None and rule.get("dstlen") not in (None, 32, 128):
        dst = f"{dst}/{rule['dstlen']}"
    return (
        int(rule["priority"]),
        src,
        dst,
        rule.get("iif"),
        rule.get("oif"),
        {"254": "main"}.get(str(rule.get("table")), str(rule.get("table"))),
        rule.get("suppress_prefixlen"),
    )


def desired_rule_tuple(rule: object) -> tuple[object, ...]:
    """The same shape for a :class:`multihome.model.Rule`."""
    r = rule
    table = {254: "main", 255: "local", 253: "default"}.get(r.table, str(r.table))
    return (
        r.priority,
        "all" if r.src is None else net_text(r.src),
        None if r.dst is None else net_text(r.dst),
        r.iifname,
        r.oifname,
        table,
        r.suppress_prefixlength,
    )


@dataclass
class Namespaces:
    """Creates uniquely named namespaces and removes them (and their processes) at the end."""

    prefix: str
    names: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    etc_dirs: list[Path] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    """Every process spawned, kept until the end (a caller may drop what ``spawn`` returns:
    a running Popen garbage-collected is a ResourceWarning)."""

    def add(self, suffix: str) -> str:
        name = f"{self.prefix}-{suffix}"
        run("ip", "netns", "add", name)
        self.names.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def spawn(self, args: list[str], log: Path) -> subprocess.Popen[bytes]:
        """Start a long-running process (its own session, killed at the end)."""
        with log.open("ab") as handle:  # the child keeps its own copy
            proc = subprocess.Popen(
                args, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.pids.append(proc.pid)
        self.procs.append(proc)
        return proc

    def cleanup(self) -> None:
        for pid in reversed(self.pids):
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + 5
        for proc in [p for p in self.procs if p.pid in self.pids]:  # the rest were reaped
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        for name in reversed(self.names):
            pids = run("ip", "netns", "pids", name, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            run("ip", "netns", "del", name, check=False)
        for directory in self.etc_dirs:
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def namespaces() -> Iterator[Namespaces]:
    """A namespace factory; everything it made is removed after the test."""
    need_root()
    spaces = Namespaces(f"mhpersist-{secrets.token_hex(3)}")
    try:
        yield spaces
    finally:
        spaces.cleanup()


def start_dnsmasq(
    switch: str, ports: list[str], workdir: Path, router: str = "192.168.0.1", lease: str = "2m"
) -> None:
    """Serve ``ports`` (fixed lease per MAC) from the bridge br0 in ``switch`` as Neutron's DHCP
    agent does: router option, option 121 with the metadata route and the default, instant
    leases (``--no-ping``); a dnsmasq already serving from ``workdir`` is stopped first. Also
    used by the reboot tests, whose guest reboots while this "cloud" stays up. ``lease``: 2
    minutes (dnsmasq's minimum: renews come soon) or Neutron's default, ``24h``."""
    pidfile = workdir / "dnsmasq.pid"
    if pidfile.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
        time.sleep(0.2)
    hosts = [f"--dhcp-host={MACS[p]},{LEASES[p]}" for p in ports]
    run(
        "ip",
        "netns",
        "exec",
        switch,
        "dnsmasq",
        "--port=0",
        "--bind-interfaces",
        "--interface=br0",
        "--except-interface=lo",
        "--no-ping",
        "--dhcp-authoritative",
        f"--dhcp-range=192.168.0.0,static,255.255.255.0,{lease}",
        *hosts,
        f"--dhcp-option=3,{router}",
        f"--dhcp-option=121,169.254.169.254/32,192.168.0.100,0.0.0.0/0,{router}",
        f"--dhcp-leasefile={workdir}/leases",
        f"--pid-file={pidfile}",
        f"--log-facility={workdir}/dnsmasq.log",
        "--log-dhcp",
    )


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


def wait_gone(namespace: str, link: str, timeout: float = 10) -> None:
    """Until ``link`` no longer exists in ``namespace`` (a veth whose peer's namespace was
    deleted goes a moment later)."""
    deadline = time.monotonic() + timeout
    while run("ip", "-n", namespace, "link", "show", link, check=False).returncode == 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"{link} is still in {namespace} after {timeout}s")
        time.sleep(0.05)


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` until true; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


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
