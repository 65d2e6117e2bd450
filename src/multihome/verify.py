"""Kernel-level proof, per address, that the policy is in force.

For every managed address: a lookup from that address to an off-subnet destination leaves
through its own interface and gateway; a lookup to its gateway leaves through its own
interface; a lookup bound to the interface (``oif``) uses its gateway. Netlink changes can
appear with a delay, so failing checks are retried briefly.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from typing import Any

from multihome.backend import Backend, Lookup
from multihome.config import Config
from multihome.model import IPAddress
from multihome.policy import DesiredState, ManagedInterface


@dataclass(frozen=True)
class Check:
    """One proof: what was resolved, what was expected, what the kernel said."""

    interface: str
    address: str
    name: str
    destination: str
    ok: bool
    expected: str
    got: str

    def to_json(self) -> dict[str, Any]:
        return {
            "interface": self.interface,
            "address": self.address,
            "check": self.name,
            "destination": self.destination,
            "ok": self.ok,
            "expected": self.expected,
            "got": self.got,
        }


def verify(
    backend: Backend, desired: DesiredState, config: Config, *, retries: int = 5, delay: float = 0.1
) -> list[Check]:
    """Run every check; retry the failing ones ``retries`` times, ``delay`` seconds apart."""
    checks = _run(backend, desired, config)
    for _ in range(retries):
        if all(c.ok for c in checks):
            break
        time.sleep(delay)
        checks = _run(backend, desired, config)
    return checks


def _run(backend: Backend, desired: DesiredState, config: Config) -> list[Check]:
    """Every check's question first, then all the kernel's answers in one batch."""
    asked: list[tuple[ManagedInterface, IPAddress | None, str, IPAddress, bool]] = []
    for iface in desired.interfaces:
        for addr in iface.addresses:
            if iface.gateway is not None and iface.table is not None:
                asked.append((iface, addr.ip, "egress", config.probe, True))
                asked.append((iface, addr.ip, "gateway", iface.gateway, False))
            else:
                peer = _subnet_peer(addr.interface)
                if peer is not None:
                    asked.append((iface, addr.ip, "on-link", peer, False))
        if iface.gateway is not None and iface.table is not None and "oif" in config.rule_kinds:
            asked.append((iface, None, "bound-to-device", config.probe, True))
    answers = backend.lookups(
        [(dst, src, iface.name if src is None else None) for iface, src, _, dst, _ in asked]
    )
    return [
        _check(iface, src, name, dst, found, want_gateway=want)
        for (iface, src, name, dst, want), found in zip(asked, answers, strict=True)
    ]


def _check(
    iface: ManagedInterface,
    src: IPAddress | None,
    name: str,
    dst: IPAddress,
    found: Lookup | None,
    *,
    want_gateway: bool,
) -> Check:
    gateway = iface.gateway if want_gateway else None
    expected = f"dev {iface.name}" + (f" via {gateway}" if gateway is not None else "")
    ok = (
        found is not None
        and found.ifname == iface.name
        and (not want_gateway or found.gateway == iface.gateway)
    )
    return Check(
        interface=iface.name,
        address="(device)" if src is None else str(src),
        name=name,
        destination=str(dst),
        ok=ok,
        expected=expected,
        got=_describe(found),
    )


def _describe(found: Lookup | None) -> str:
    if found is None:
        return "unreachable"
    text = f"dev {found.ifname}"
    if found.gateway is not None:
        text += f" via {found.gateway}"
    return text


def _subnet_peer(interface: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> IPAddress | None:
    network = interface.network
    if network.num_addresses < 4:
        return None
    for candidate in (network.network_address + 1, network.network_address + 2):
        if candidate != interface.ip:
            return candidate
    return None
