"""Addressing ports that nothing else addresses: static addresses from metadata, or DHCP.

Who addresses a hot-plugged port (the decision, see multihome-agent(8)):

1. A port that already has an IPv4 address is never touched here.
2. A port the metadata lists as DHCP-disabled (``"type": "ipv4"``) gets its fixed address,
   its subnet route and its gateway from ``network_data.json`` (routes marked ``proto static``
   with metric 1000+ifindex, addresses ``noprefixroute``), at once.
3. Any other unaddressed port gets a DHCP client -- only when nothing else manages it: no
   systemd-networkd link state for it, no NetworkManager device that is not "unmanaged", no
   ifupdown stanza, no DHCP client already running for it in this namespace, and only after a
   grace period that lets those act first. The client is ISC dhclient with multihome's own
   script (:mod:`multihome.agent.dhcphook`), which gives every lease route the port's metric.
4. A port that is administratively down is brought up only when it was hot-plugged while the
   agent runs; a port someone set down before stays down.

IPv6 is decided apart, by the port's first IPv6 network in the metadata (a port that has a
global IPv6 address is never touched): ``ipv6`` (DHCP disabled) gets its address, prefix and
gateway from the metadata as in 2; ``ipv6_dhcpv6-stateful`` (and ``ipv6_dhcp``) gets a DHCPv6
client (``dhclient -6``, the same script) as in 3, once its link-local address has passed DAD
(the client binds to it); ``ipv6_slaac`` and ``ipv6_dhcpv6-stateless`` need nothing but the
link up: the kernel takes the address from the router's advertisements.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multihome.backend import Backend
from multihome.files import read_text, under_root, write_atomic
from multihome.model import FOREVER
from multihome.plan import Change
from multihome.processes import DHCP_CLIENTS
from multihome.source.ports import StaticConfig

log = logging.getLogger(__name__)


def configure_static(backend: Backend, config: StaticConfig) -> None:
    """Bring the link up and give it the metadata's addresses and routes (idempotent)."""
    backend.set_link_up(config.ifname)
    for address in config.addresses:
        backend.add_address(address, prefix_route=False)  # the route below is ours
    present = {r.key for r in backend.read().routes}
    # Connected routes first, then the ones through a gateway.
    for route in sorted(config.routes, key=lambda r: (r.gateway is not None, r.order)):
        if route.key not in present:
            backend.apply([Change("add", route)])


# -- who manages a port ------------------------------------------------------------------
def manager_of(ifname: str, index: int, root: Path = Path("/"), family: int = 4) -> str | None:
    """Who already manages ``ifname`` (a reason string), or None when nothing does; a DHCP
    client counts for its ``family`` only (``dhclient -6`` is no DHCPv4 client)."""
    links = under_root(root, f"/run/systemd/netif/links/{index}")
    text = read_text(links) if links.exists() else None
    if text is not None and "ADMIN_STATE=unmanaged" not in text:
        return "systemd-networkd"
    if under_root(root, "/run/NetworkManager").is_dir() and _nm_manages(ifname):
        return "NetworkManager"
    interfaces = read_text(under_root(root, "/etc/network/interfaces")) or ""
    if any(
        line.split()[:2] == ["iface", ifname] for line in interfaces.splitlines() if line.strip()
    ):
        return "ifupdown (/etc/network/interfaces)"
    client = dhcp_client_running(ifname, family)
    if client is not None:
        return f"{client[1]} (pid {client[0]})"
    return None


def _nm_manages(ifname: str) -> bool:
    nmcli = shutil.which("nmcli")
    if nmcli is None:
        return True  # NetworkManager runs but cannot be asked: assume it manages the port
    try:
        done = subprocess.run(
            [nmcli, "-t", "-f", "DEVICE,STATE", "device"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return True
    for line in done.stdout.splitlines():
        device, _, state = line.partition(":")
        if device == ifname:
            return not state.startswith("unmanaged")
    return True


def dhcp_client_running(ifname: str, family: int | None = None) -> tuple[int, str] | None:
    """A DHCP client process for ``ifname`` in this network namespace, as (pid, name); with
    ``family``, an ISC dhclient only when it serves that family (``-6`` or not)."""
    try:
        own = os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return None
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
            if not argv or os.path.basename(argv[0].decode(errors="replace")) not in DHCP_CLIENTS:
                continue
            if ifname.encode() not in argv or not _serves(argv, family):
                continue
            if os.stat(f"/proc/{entry.name}/ns/net").st_ino != own:
                continue
        except OSError:
            continue
        return int(entry.name), os.path.basename(argv[0].decode(errors="replace"))
    return None


def _serves(argv: list[bytes], family: int | None) -> bool:
    """Whether a DHCP client's ``argv`` serves ``family`` (None: any); only ISC dhclient
    serves one family per process."""
    if family is None or os.path.basename(argv[0].decode(errors="replace")) != "dhclient":
        return True
    return (b"-6" in argv) == (family == 6)


# -- running a DHCP client ---------------------------------------------------------------
@dataclass
class DhcpClient:
    """A DHCP client the agent started for one port."""

    ifname: str
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 3.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)


def stop_earlier_client(ifname: str, root: Path, timeout: float = 3.0) -> int | None:
    """Stop the dhclient an earlier agent started for ``ifname`` that outlived it (an agent
    killed with SIGKILL leaves its child running, which no agent then follows): the process
    of the pid file in the namespace's folder, if it runs with this folder's lease file.
    Its pid (None: there was none); the lease file and the address stay."""
    from multihome.agent.state import run_dir as namespace_dir
    from multihome.processes import pid_alive

    folder = namespace_dir(root)
    try:
        pid = int((folder / f"dhclient.{ifname}.pid").read_text().split()[0])
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, IndexError):
        return None
    if str(lease_file(ifname, root)).encode() not in argv or not pid_alive(pid):
        return None
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return None
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    if pid_alive(pid):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return pid


def dhclient_available() -> str | None:
    return shutil.which("dhclient")


def _stem(family: int) -> str:
    return "dhclient" if family == 4 else "dhclient6"


def lease_file(ifname: str, root: Path, family: int = 4) -> Path:
    """The lease file of the agent's DHCP client for ``ifname`` (the namespace's folder):
    ``dhclient.<if>.leases``, the DHCPv6 client's ``dhclient6.<if>.leases``."""
    from multihome.agent.state import run_dir as namespace_dir

    return namespace_dir(root) / f"{_stem(family)}.{ifname}.leases"


_IAADDR = re.compile(r"iaaddr\s+\S+\s*\{\s*starts\s+(\d+);[^}]*?max-life\s+(\d+);")


def lease6_over(ifname: str, root: Path, now: float) -> bool:
    """Whether every address of the newest lease in the agent's DHCPv6 lease file for
    ``ifname`` is past its valid lifetime (``iaaddr ... { starts S; ... max-life M; }``,
    S + M <= now, or M 0: the server no longer leases it). Then its client, which removed
    the address itself (``EXPIRE6``), is asking for a new lease already. False when the
    file cannot tell (missing, no address, unreadable)."""
    text = read_text(lease_file(ifname, root, 6)) or ""
    newest = text.rpartition("lease6 {")[2]
    found = [(int(start), int(life)) for start, life in _IAADDR.findall(newest)]
    return bool(found) and all(
        life == 0 or (life != FOREVER and start + life <= now) for start, life in found
    )


def start_dhclient(ifname: str, root: Path, family: int = 4) -> DhcpClient:
    """Run ISC dhclient (``-4``, or ``-6`` for DHCPv6) for ``ifname`` in the foreground as the
    agent's child, with multihome's script, its lease and pid files in the namespace's
    folder under ``{root}/run/multihome`` (:func:`multihome.agent.state.run_dir`)."""
    dhclient = dhclient_available()
    if dhclient is None:
        raise FileNotFoundError("dhclient (package isc-dhcp-client) is not installed")
    from multihome.agent.state import run_dir as namespace_dir

    run_dir = namespace_dir(root, create=True)
    script = run_dir / "dhclient-script"
    write_atomic(
        script,
        f"#!/bin/sh\n# Written by multihome agent: dhclient's script.\n"
        f"exec '{sys.executable}' -m multihome.agent.dhcphook\n",
        mode=0o755,
    )
    argv = [
        dhclient,
        f"-{family}",
        "-d",
        "-q",
        "-sf",
        str(script),
        "-pf",
        str(run_dir / f"{_stem(family)}.{ifname}.pid"),
        "-lf",
        str(lease_file(ifname, root, family)),
        ifname,
    ]
    env: dict[str, Any] = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=False,
    )
    return DhcpClient(ifname, process)
