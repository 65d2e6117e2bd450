"""Fixtures for the agent and metadata tests: a guest namespace wired to a peer namespace whose
bridge is the gateway (192.168.0.1), the DHCP/metadata host (192.168.0.100, 169.254.169.254)
and, on demand, an HTTP metadata service and dnsmasq. Every namespace has a unique name and
is deleted by name, also on failure; every process started here is stopped by its pid."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from netnsid import state_dir_of

REPO = Path(__file__).resolve().parents[2]
MULTIHOME = [str(Path(sys.executable).parent / "multihome")]
GATEWAY = "192.168.0.1"
MAC = {
    "eth0": "fa:16:3e:00:00:0a",
    "eth1": "fa:16:3e:00:00:0b",
    "eth2": "fa:16:3e:00:00:0c",
    "eth3": "fa:16:3e:00:00:0d",
}
ADDRESS = {
    "eth0": "192.168.0.107",
    "eth1": "192.168.0.112",
    "eth2": "192.168.0.120",
    "eth3": "192.168.0.130",
}


def sh(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout)


def network_data(
    static: tuple[str, ...] = (),
    dhcp: tuple[str, ...] = ("eth0", "eth1"),
) -> dict[str, Any]:
    """A network_data.json as Nova writes it: DHCP ports and DHCP-disabled (static) ports."""
    links, networks = [], []
    for number, ifname in enumerate((*dhcp, *static)):
        links.append(
            {
                "id": f"tap{ifname}",
                "type": "ovs",
                "ethernet_mac_address": MAC[ifname],
                "mtu": 1500,
                "vif_id": f"port-{ifname}",
            }
        )
        if ifname in static:
            networks.append(
                {
                    "id": f"network{number}",
                    "type": "ipv4",
                    "link": f"tap{ifname}",
                    "ip_address": ADDRESS[ifname],
                    "netmask": "255.255.255.0",
                    "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": GATEWAY}],
                    "network_id": "net-1",
                    "services": [],
                }
            )
        else:
            networks.append(
                {
                    "id": f"network{number}",
                    "type": "ipv4_dhcp",
                    "link": f"tap{ifname}",
                    "network_id": "net-1",
                }
            )
    return {"links": links, "networks": networks, "services": []}


def write_drive(root: Path, data: dict[str, Any] | bytes) -> Path:
    latest = root / "openstack" / "latest"
    latest.mkdir(parents=True, exist_ok=True)
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    (latest / "network_data.json").write_bytes(raw)
    (latest / "meta_data.json").write_text(json.dumps({"uuid": "0000-test", "name": "vm1"}))
    return root


@dataclass
class Lab:
    """A guest namespace (eth0, eth1) and its peer (bridge br0 = gateway + metadata host)."""

    guest: str
    peer: str
    tmp: Path
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)

    def ip(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("ip", "-n", self.guest, *argv, check=check)

    def peer_ip(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return sh("ip", "-n", self.peer, *argv)

    def json(self, *argv: str) -> list[dict[str, Any]]:
        out = sh("ip", "-n", self.guest, "-j", *argv).stdout
        return json.loads(out) if out.strip() else []

    def rules(self) -> list[dict[str, Any]]:
        return self.json("rule")

    def owned_rules(self) -> list[dict[str, Any]]:
        return [r for r in self.rules() if 10000 <= r.get("priority", 0) <= 10099]

    def routes(self, table: str = "all") -> list[dict[str, Any]]:
        return self.json("route", "show", "table", table)

    def owned_routes(self) -> list[dict[str, Any]]:
        return [
            r
            for r in self.routes()
            if r.get("protocol") in ("222", "multihome")
            or (str(r.get("table", "")).isdigit() and 10000 <= int(r["table"]) <= 10999)
        ]

    def main_defaults(self) -> list[dict[str, Any]]:
        return [r for r in self.routes("main") if r.get("dst") == "default"]

    def addresses(self, ifname: str) -> list[str]:
        data = self.json("-4", "addr", "show", "dev", ifname)
        return [a["local"] for entry in data for a in entry.get("addr_info", [])]

    def add_port(
        self,
        ifname: str,
        address: str | None,
        *,
        up: bool = True,
        default_metric: int | None = None,
    ) -> None:
        """A veth from the guest's ``ifname`` to the peer's bridge (a Neutron port)."""
        peer_end = f"p{ifname[-1]}"
        sh(
            "ip",
            "link",
            "add",
            ifname,
            "netns",
            self.guest,
            "address",
            MAC[ifname],
            "type",
            "veth",
            "peer",
            peer_end,
            "netns",
            self.peer,
        )
        self.peer_ip("link", "set", peer_end, "master", "br0")
        self.peer_ip("link", "set", peer_end, "up")
        if address:
            self.ip("addr", "add", f"{address}/24", "dev", ifname)
        if up:
            self.ip("link", "set", ifname, "up")
        if default_metric is not None:
            self.ip(
                "route",
                "add",
                "default",
                "via",
                GATEWAY,
                "dev",
                ifname,
                "proto",
                "dhcp",
                "metric",
                str(default_metric),
            )

    def serve_metadata(self, directory: Path) -> None:
        """An HTTP metadata service at 169.254.169.254:80 in the peer namespace."""
        process = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.peer,
                sys.executable,
                "-m",
                "http.server",
                "80",
                "--bind",
                "169.254.169.254",
                "--directory",
                str(directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.processes.append(process)
        wait_until(
            lambda: (
                sh(
                    "ip",
                    "netns",
                    "exec",
                    self.peer,
                    "curl",
                    "-sf",
                    "-o",
                    "/dev/null",
                    "http://169.254.169.254/",
                    check=False,
                ).returncode
                == 0
            ),
            10,
            "metadata service up",
        )

    def multihome(self, *argv: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return sh(
            "ip",
            "netns",
            "exec",
            self.guest,
            *MULTIHOME,
            "--root",
            str(self.tmp / "root"),
            *argv,
            check=check,
            timeout=60,
        )

    def start_agent(self, *argv: str, notify: Path | None = None) -> subprocess.Popen[str]:
        env = dict(os.environ)
        if notify is not None:
            env["NOTIFY_SOCKET"] = str(notify)
        # The child writes into its own copy of the descriptor: ours closes at once.
        with (self.tmp / "agent.log").open("a") as log:
            process = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    self.guest,
                    *MULTIHOME,
                    "--root",
                    str(self.tmp / "root"),
                    "agent",
                    "--dhcp-grace",
                    "0.3",
                    *argv,
                ],
                stdout=log,
                stderr=log,
                text=True,
                env=env,
            )
        self.processes.append(process)
        wait_until(
            lambda: self.agent_state().get("pid") == process.pid or process.poll() is not None,
            20,
            "agent ready",
        )
        assert process.poll() is None, self.agent_log()
        return process

    def agent_state(self) -> dict[str, Any]:
        # The agent's folder is its network namespace's: netns-<cookie of the namespace>.
        path = state_dir_of(self.tmp / "root", self.guest) / "agent.json"
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError):
            return {}

    def agent_log(self) -> str:
        path = self.tmp / "agent.log"
        return path.read_text() if path.exists() else ""

    def stop(self, process: subprocess.Popen[Any]) -> int:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        return int(process.returncode)


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> float:
    """Poll ``predicate`` (test side only) until true; return the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for: {what}")


def _require_root() -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """The how-to's VM before the fix: eth0 .107 and eth1 .112 on 192.168.0.0/24, a default
    per port in main (metrics 100, 101), the metadata host route via .100."""
    _require_root()
    suffix = secrets.token_hex(3)
    lab = Lab(guest=f"mhagent-{suffix}-g", peer=f"mhagent-{suffix}-p", tmp=tmp_path)
    try:
        sh("ip", "netns", "add", lab.guest)
        sh("ip", "netns", "add", lab.peer)
        # A fixed MAC: a bridge without one takes its ports' lowest, so a hot-plugged port
        # could change the gateway's MAC under the guest's ARP cache (seconds of timeouts).
        lab.peer_ip("link", "add", "br0", "address", "02:00:00:00:00:01", "type", "bridge")
        for address in ("192.168.0.1/24", "192.168.0.100/24", "169.254.169.254/32"):
            lab.peer_ip("addr", "add", address, "dev", "br0")
        lab.peer_ip("link", "set", "br0", "up")
        lab.peer_ip("link", "set", "lo", "up")
        lab.ip("link", "set", "lo", "up")
        # IPv4 lab: no IPv6 (its DAD and router events would only add noise to the timings).
        for knob in (
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ):
            sh("ip", "netns", "exec", lab.guest, "sysctl", "-qw", knob)
        lab.add_port("eth0", ADDRESS["eth0"], default_metric=100)
        lab.add_port("eth1", ADDRESS["eth1"], default_metric=101)
        lab.ip(
            "route",
            "add",
            "169.254.169.254",
            "via",
            "192.168.0.100",
            "dev",
            "eth0",
            "proto",
            "dhcp",
            "metric",
            "100",
        )
        yield lab
    finally:
        for process in reversed(lab.processes):
            lab.stop(process)
        for namespace in (lab.guest, lab.peer):
            # Processes this test started inside its namespaces (dhclient, dnsmasq) by pid.
            pids = sh("ip", "netns", "pids", namespace, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            sh("ip", "netns", "del", namespace, check=False)


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[Path, socket.socket]]:
    """A datagram socket standing in for systemd's $NOTIFY_SOCKET."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        yield path, sock
    finally:
        sock.close()
