"""Fixtures of the safety tests: small labs in network namespaces, and independent views of
their kernel state (``ip -j``, /proc/sys), never the code under test."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MULTIHOME = str(Path(sys.executable).parent / "multihome")
KNOBS = ("rp_filter", "arp_ignore", "arp_announce", "arp_filter")


def sh(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=timeout)


def ns_sh(ns: str, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", ns, "sh", "-ec", script, check=check)


@dataclass
class Lab:
    """A VM namespace (eth0, eth1), a switch/router namespace and an "SSH client" namespace.

    ``variant="howto"``: eth0 192.168.0.107 and eth1 192.168.0.112 on one /24, both defaults
    via 192.168.0.1 (metrics 100, 101) and the metadata routes, as in the how-to.
    ``variant="deadgw"``: eth1 is 192.168.1.112/24 with a default via 192.168.1.1, a gateway
    that does not exist: any path through eth1 is dead.
    The client 10.99.0.2 sits behind the router 192.168.0.1.
    """

    vm: str
    sw: str
    client: str
    root: Path

    def mh(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        timeout: float = 90,
        check_rc: int | None = None,
    ) -> subprocess.CompletedProcess[str]:
        full_env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("SSH_CONNECTION", "SSH_CLIENT", "MULTIHOME_FAILPOINT")
        }
        full_env.update(env or {})
        done = subprocess.run(
            ["ip", "netns", "exec", self.vm, MULTIHOME, "--root", str(self.root), *args],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if check_rc is not None:
            assert done.returncode == check_rc, (done.returncode, done.stdout, done.stderr)
        return done

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        full_env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("SSH_CONNECTION", "SSH_CLIENT", "MULTIHOME_FAILPOINT")
        }
        full_env.update(env or {})
        # SIGINT as a terminal gives it: a test run started in the background (`make test &`,
        # nohup) has SIGINT ignored, which its children inherit, and Python then never
        # raises KeyboardInterrupt (test_ctrl_c_during_the_window_rolls_back_now hung so).
        command = ["ip", "netns", "exec", self.vm, MULTIHOME, "--root", str(self.root), *args]
        return subprocess.Popen(
            ["env", "--default-signal=INT", *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=full_env,
        )

    def kernel(self) -> dict[str, Any]:
        """The VM's rules, routes of every table and ARP/rp sysctls, via ip -j and /proc."""
        rules = [
            dict(r, family=family)
            for family in ("-4", "-6")
            for r in json.loads(sh("ip", "-n", self.vm, family, "-j", "rule").stdout)
        ]
        routes = json.loads(sh("ip", "-n", self.vm, "-j", "route", "show", "table", "all").stdout)
        sysctls = {}
        script = (
            "for k in " + " ".join(KNOBS) + "; do for f in /proc/sys/net/ipv4/conf/*/$k; "
            "do echo $f $(cat $f); done; done"
        )
        for line in ns_sh(self.vm, script).stdout.splitlines():
            path, value = line.split()
            sysctls[path] = value
        return {
            "rules": sorted(json.dumps(r, sort_keys=True) for r in rules),
            "routes": sorted(json.dumps(r, sort_keys=True) for r in routes),
            "sysctls": sysctls,
        }

    def state_dir(self) -> Path:
        dirs = list((self.root / "run/multihome").glob("netns-*"))
        assert len(dirs) == 1, dirs
        return dirs[0]

    def client_ping(self, address: str = "192.168.0.107") -> bool:
        """The "SSH client" reaches ``address`` (and gets the answer back)."""
        return (
            sh(
                "ip",
                "netns",
                "exec",
                self.client,
                "ping",
                "-n",
                "-q",
                "-c",
                "1",
                "-W",
                "2",
                address,
                check=False,
            ).returncode
            == 0
        )


def _build(prefix: str, variant: str) -> Lab:
    vm, sw, client = prefix, f"{prefix}-sw", f"{prefix}-cl"
    for ns in (vm, sw, client):
        sh("ip", "netns", "add", ns)
        # IPv6 link-local routes appear asynchronously (DAD): keep the comparisons exact
        ns_sh(
            ns, "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"
        )
    sh("ip", "link", "add", "eth0", "netns", vm, "type", "veth", "peer", "p0", "netns", sw)
    sh("ip", "link", "add", "eth1", "netns", vm, "type", "veth", "peer", "p1", "netns", sw)
    sh("ip", "link", "add", "c0", "netns", sw, "type", "veth", "peer", "eth0", "netns", client)
    conf = (
        "for k in rp_filter arp_ignore arp_announce arp_filter; do "
        "for i in all default; do echo 0 > /proc/sys/net/ipv4/conf/$i/$k; done; done; "
    )
    ns_sh(
        sw,
        conf
        + """
        sysctl -qw net.ipv4.ip_forward=1
        ip link add br0 type bridge
        ip link set p0 master br0
        for l in lo p0 p1 br0 c0; do ip link set $l up; done
        ip addr add 192.168.0.1/24 dev br0
        ip addr add 192.168.0.100/24 dev br0
        ip addr add 10.99.0.1/24 dev c0
    """
        + ("ip link set p1 master br0\n" if variant == "howto" else ""),
    )
    ns_sh(
        client,
        conf
        + """
        ip link set lo up; ip link set eth0 up
        ip addr add 10.99.0.2/24 dev eth0
        ip route add default via 10.99.0.1
    """,
    )
    ns_sh(
        vm,
        conf
        + """
        for l in lo eth0 eth1; do ip link set $l up; done
        for i in eth0 eth1; do for k in rp_filter arp_ignore arp_announce arp_filter; do
          echo 0 > /proc/sys/net/ipv4/conf/$i/$k; done; done
        ip addr add 192.168.0.107/24 dev eth0 noprefixroute
        ip route add 192.168.0.0/24 dev eth0 proto kernel scope link src 192.168.0.107 metric 100
        ip route add default via 192.168.0.1 dev eth0 proto dhcp src 192.168.0.107 metric 100
        ip route add 169.254.169.254 via 192.168.0.100 dev eth0 proto dhcp \
          src 192.168.0.107 metric 100
    """,
    )
    if variant == "howto":
        ns_sh(
            vm,
            """
        ip addr add 192.168.0.112/24 dev eth1 noprefixroute
        ip route add 192.168.0.0/24 dev eth1 proto kernel scope link src 192.168.0.112 metric 101
        ip route add default via 192.168.0.1 dev eth1 proto dhcp src 192.168.0.112 metric 101
        ip route add 169.254.169.254 via 192.168.0.100 dev eth1 proto dhcp \
          src 192.168.0.112 metric 101
        """,
        )
    else:
        ns_sh(
            vm,
            """
        ip addr add 192.168.1.112/24 dev eth1 noprefixroute
        ip route add 192.168.1.0/24 dev eth1 proto kernel scope link src 192.168.1.112 metric 101
        ip route add default via 192.168.1.1 dev eth1 proto dhcp src 192.168.1.112 metric 101
        """,
        )
    return Lab(vm, sw, client, Path())


def _destroy(prefix: str) -> None:
    for ns in (prefix, f"{prefix}-sw", f"{prefix}-cl"):
        # processes left in the namespace (watchdogs, dhclient) go with it
        pids = sh("ip", "netns", "pids", ns, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), 9)
        sh("ip", "netns", "del", ns, check=False)


def _need_root() -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 (network namespaces)")


def _lab(tmp_path: Path, variant: str) -> Iterator[Lab]:
    _need_root()
    prefix = f"mhsafe-{secrets.token_hex(3)}"
    try:
        lab = _build(prefix, variant)
        lab.root = tmp_path / "root"
        lab.root.mkdir()
        yield lab
    finally:
        _destroy(prefix)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """The how-to's VM (two ports on one subnet) with a router and an SSH client."""
    yield from _lab(tmp_path, "howto")


@pytest.fixture
def deadgw_lab(tmp_path: Path) -> Iterator[Lab]:
    """A VM whose eth1 has a gateway that does not exist."""
    yield from _lab(tmp_path, "deadgw")


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    """Read a pty until ``needle`` shows up."""
    data = b""
    deadline = time.monotonic() + timeout
    while needle not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {needle!r} within {timeout} s; got {data!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    return data
