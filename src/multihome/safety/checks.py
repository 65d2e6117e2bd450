"""Post-apply checks that catch a lock-out before the user notices.

* The management path: the way back to the client that ran apply (the SSH peer from
  ``$SSH_CONNECTION``/``$SSH_CLIENT``, found also through the parent processes when ``sudo``
  dropped it, or ``--management-peer``) must resolve through an interface that is up, the one
  holding the address the client connected to, and its next hop must answer ARP/ND.
* Extra probes (``--check``): ``ping:ADDR``, ``tcp:HOST:PORT``, an ``http://``/``https://``
  URL (an echo service, say) that must answer 2xx/3xx, and ``gateways`` (every managed
  interface's gateway answers ARP, and its IPv6 router ND, on that interface).
"""

from __future__ import annotations

# The C module: socket.py builds enums of every constant at import (start-up of every command).
import _socket
import errno
import ipaddress
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from multihome.backend import Backend
from multihome.errors import InputError
from multihome.model import HostState, IPAddress
from multihome.values import frozen

TYPE_CHECKING = False  # typing is for the type checker only (start-up time)
if TYPE_CHECKING:  # the policy is not imported by an apply that has nothing to do
    from typing import Any

    from multihome.policy import ManagedInterface

NUD_INCOMPLETE = 0x01
NUD_FAILED = 0x20
#: Neighbour states that show a next hop answered (REACHABLE, STALE, DELAY, PROBE,
#: NOARP, PERMANENT).
NUD_OK = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80
ARP_TIMEOUT = 4.0
PROBE_TIMEOUT = 5.0
DISCARD_PORT = 9


@frozen
class Peer:
    """The management client: its address and, when known, the local address it reached."""

    address: IPAddress
    local: IPAddress | None
    source: str
    """Where it was found (``$SSH_CONNECTION``, ``--management-peer``, ``process 123``)."""


@frozen
class CheckResult:
    """One post-apply check."""

    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail}


@frozen
class Probe:
    """An extra probe given with ``--check``."""

    kind: str
    """``ping``, ``tcp``, ``http`` or ``gateways``."""
    target: str

    def describe(self) -> str:
        return self.kind if self.kind == "gateways" else f"{self.kind} {self.target}"


# -- the management peer ---------------------------------------------------------------------
def parse_ssh(value: str, source: str) -> Peer | None:
    """``client cport server sport`` ($SSH_CONNECTION) or ``client cport sport`` ($SSH_CLIENT)."""
    parts = value.split()
    try:
        client = ipaddress.ip_address(parts[0].split("%")[0])
    except (IndexError, ValueError):
        return None
    local = None
    if len(parts) >= 4:
        try:
            local = ipaddress.ip_address(parts[2].split("%")[0])
        except ValueError:
            local = None
    return Peer(_unmap(client), None if local is None else _unmap(local), source)


def _unmap(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def find_peer(
    explicit: str | None,
    environ: Mapping[str, str],
    local_addresses: Iterable[IPAddress] | None = None,
    proc: Path = Path("/proc"),
) -> Peer | None:
    """The management peer: ``explicit``, the environment, or a parent's environment.

    An SSH connection whose local address is not in ``local_addresses`` (the addresses of
    this network namespace) ends elsewhere (``ip netns exec`` from the host's SSH session)
    and is ignored; so are parents in another network namespace.
    """
    if explicit is not None:
        try:
            return Peer(ipaddress.ip_address(explicit), None, "--management-peer")
        except ValueError as exc:
            raise InputError(
                f"--management-peer {explicit}: not an IP address; give the "
                "address of the host you manage this machine from"
            ) from exc
    here = None if local_addresses is None else set(local_addresses)

    def usable(peer: Peer | None) -> bool:
        return peer is not None and (here is None or peer.local is None or peer.local in here)

    for name in ("SSH_CONNECTION", "SSH_CLIENT"):
        if environ.get(name):
            peer = parse_ssh(environ[name], f"${name}")
            if usable(peer):
                return peer
            break
    mine = _netns_of(proc, "self")
    pid = os.getppid()
    for _ in range(64):  # sudo resets the environment: ask the parents
        if pid <= 1 or _netns_of(proc, str(pid)) != mine:
            break
        env = _environ_of(proc, pid)
        for name in ("SSH_CONNECTION", "SSH_CLIENT"):
            if env.get(name):
                peer = parse_ssh(env[name], f"${name} of process {pid}")
                if usable(peer):
                    return peer
                return None
        pid = _parent_of(proc, pid)
    return None


def _netns_of(proc: Path, pid: str) -> int | None:
    try:
        return os.stat(proc / pid / "ns/net").st_ino
    except OSError:
        return None


def _environ_of(proc: Path, pid: int) -> dict[str, str]:
    try:
        raw = (proc / str(pid) / "environ").read_bytes()
    except OSError:
        return {}
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def _parent_of(proc: Path, pid: int) -> int:
    try:
        stat = (proc / str(pid) / "stat").read_text()
        return int(stat.rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


# -- probes -------------------------------------------------------------------------------------
def parse_probe(spec: str) -> Probe:
    """Parse one ``--check`` value (nothing is changed on a bad one: exit 2)."""
    if spec == "gateways":
        return Probe("gateways", "")
    if spec.startswith(("http://", "https://")):
        return Probe("http", spec)
    kind, sep, target = spec.partition(":")
    if sep and kind == "ping":
        try:
            ipaddress.ip_address(target)
        except ValueError:
            pass
        else:
            return Probe("ping", target)
    if sep and kind == "tcp":
        host, _, port = target.rpartition(":")
        if host and port.isdigit() and 0 < int(port) < 65536:
            return Probe("tcp", target)
    raise InputError(
        f"--check {spec}: not a probe; use ping:ADDR, tcp:HOST:PORT, an "
        "http:// or https:// URL, or gateways"
    )


def run_checks(
    backend: Backend,
    peer: Peer | None,
    probes: Iterable[Probe],
    interfaces: Iterable[ManagedInterface],
) -> list[CheckResult]:
    """The management path (when a peer is known) and every probe, in order."""
    state = backend.read()
    results: list[CheckResult] = []
    if peer is not None:
        results.append(management_path(backend, state, peer))
    for probe in probes:
        if probe.kind == "gateways":
            results.extend(
                _gateway(backend, iface, gateway)
                for iface in interfaces
                if iface.table is not None
                for gateway in (iface.gateway, iface.gateway6)
                if gateway is not None
            )
        elif probe.kind == "ping":
            results.append(_ping(probe.target))
        elif probe.kind == "tcp":
            results.append(_tcp(probe.target))
        else:
            results.append(_http(probe.target))
    return results


def management_path(backend: Backend, state: HostState, peer: Peer) -> CheckResult:
    """The way back to ``peer`` resolves through a working interface whose next hop answers."""
    name = f"management path to {peer.address} ({peer.source})"
    owners = sorted({a.ifname for a in state.addresses if a.ip == peer.local})
    local = peer.local if owners else None
    found = backend.lookup(peer.address, src=local)
    if found is None or not found.ifname:
        return CheckResult(
            name, False, f"no route to {peer.address}" + (f" from {local}" if local else "")
        )
    link = state.link(found.ifname)
    if link is None or not link.up:
        return CheckResult(
            name, False, f"the route leaves through {found.ifname}, which is down or has no carrier"
        )
    via = f"dev {found.ifname}" + (f" via {found.gateway}" if found.gateway else "")
    if link.loopback:
        return CheckResult(name, True, via)
    if local is not None and found.ifname not in owners:
        return CheckResult(
            name,
            False,
            f"replies from {local} leave through "
            f"{found.ifname}, not {', '.join(owners)} which holds {local}: "
            "port security (anti-spoofing) and reverse-path filters drop them",
        )
    hop = found.gateway or peer.address
    problem = neighbour_problem(backend, hop, found.ifname)
    if problem:
        return CheckResult(name, False, f"{via}: {problem}")
    return CheckResult(name, True, f"{via}; next hop {hop} answers")


def _gateway(backend: Backend, iface: ManagedInterface, gateway: IPAddress) -> CheckResult:
    """The IPv4 gateway or the IPv6 router (its link-local address) answers on the port."""
    name = f"gateway {gateway} of {iface.name}"
    problem = neighbour_problem(backend, gateway, iface.name)
    return CheckResult(name, problem is None, problem or "answers")


def neighbour_problem(
    backend: Backend, hop: IPAddress, ifname: str, timeout: float = ARP_TIMEOUT
) -> str | None:
    """None when ``hop`` answers ARP/ND on ``ifname`` within ``timeout`` seconds."""
    family = _socket.AF_INET if hop.version == 4 else _socket.AF_INET6
    start = time.monotonic()
    poked = 0.0
    while True:
        now = time.monotonic() - start
        if now - poked >= 1.0 or poked == 0.0:
            _poke(hop, ifname, family)
            poked = max(now, 1e-6)
            time.sleep(0.02)
        try:
            nud = backend.neighbour_state(ifname, hop) or 0
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                return f"interface {ifname} is gone"
            return f"cannot read the neighbour table of {ifname}: {exc.strerror or exc}"
        if nud & NUD_OK:
            return None
        if nud & NUD_FAILED and now >= 1.0:
            return f"next hop {hop} does not answer ARP/ND on {ifname}"
        if now >= timeout:
            return f"next hop {hop} did not answer ARP/ND on {ifname} within {timeout:g} s"
        time.sleep(0.05)


def _poke(hop: IPAddress, ifname: str, family: int) -> None:
    """Send one datagram to ``hop`` out of ``ifname``: the kernel resolves the neighbour."""
    import socket  # not at import: socket.py builds enums of every constant (apply start-up)

    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
            sock.sendto(b"multihome", (str(hop), DISCARD_PORT))
        except OSError:
            return


def _ping(target: str) -> CheckResult:
    import shutil  # lazy, like urllib: every apply imports this module
    import subprocess

    name = f"ping {target}"
    ping = shutil.which("ping")
    if ping is None:
        return CheckResult(name, False, "ping is not installed (package iputils-ping)")
    done = subprocess.run(
        [ping, "-n", "-q", "-c", "3", "-i", "0.2", "-W", "1", target],
        capture_output=True,
        text=True,
        check=False,
        timeout=PROBE_TIMEOUT + 5,
    )
    if done.returncode == 0:
        return CheckResult(name, True, "answers")
    summary = [line for line in done.stdout.splitlines() if "packets" in line]
    return CheckResult(name, False, summary[0] if summary else "no answer")


def _tcp(target: str) -> CheckResult:
    host, _, port = target.rpartition(":")
    host = host.strip("[]")
    name = f"tcp {target}"
    import socket  # see _poke

    try:
        with socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT):
            return CheckResult(name, True, "connects")
    except OSError as exc:
        return CheckResult(name, False, exc.strerror or str(exc))


def _http(url: str) -> CheckResult:
    import urllib.error  # lazy: 50 ms of imports every apply would pay otherwise
    import urllib.request

    name = f"http {url}"
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT) as answer:
            body = answer.read(200).decode(errors="replace").strip()
            return CheckResult(name, True, f"{answer.status} {body[:60]}".strip())
    except urllib.error.HTTPError as exc:
        return CheckResult(name, False, f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return CheckResult(name, False, str(reason))
