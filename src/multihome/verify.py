"""Kernel-level proof, per address, that the policy is in force.

For every managed address, IPv4 and IPv6 alike: a lookup from that address to an off-subnet
destination (``probe``, ``probe6``) leaves through its own interface and its family's gateway;
a lookup to its gateway leaves through its own interface (an IPv6 router's link-local address
is asked with the interface, as every link-local destination must be); a lookup bound to the
interface (``oif``) uses its gateway. Netlink changes can appear with a delay, so failing
checks are retried briefly.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable

from multihome.backend import Backend, Lookup
from multihome.config import Config
from multihome.model import IPAddress, ip_text
from multihome.policy import DesiredState, ManagedInterface
from multihome.values import frozen

TYPE_CHECKING = False  # typing is for the type checker only (start-up time)
if TYPE_CHECKING:
    from typing import Any


@frozen
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


#: Lookups per batch when the verification may be given up (``verify_unless``): between two
#: batches ``interrupted()`` is asked (a batch of 16 costs ~0.5 ms).
BATCH = 16


def verify(
    backend: Backend, desired: DesiredState, config: Config, *, retries: int = 5, delay: float = 0.1
) -> list[Check]:
    """Run every check; retry the failing ones ``retries`` times, ``delay`` seconds apart."""
    checks = verify_unless(backend, desired, config, None, retries=retries, delay=delay)
    assert checks is not None  # never interrupted
    return checks


def verify_unless(
    backend: Backend,
    desired: DesiredState,
    config: Config,
    interrupted: Callable[[], bool] | None,
    *,
    retries: int = 5,
    delay: float = 0.1,
) -> list[Check] | None:
    """:func:`verify`, given up (None) as soon as ``interrupted()``, asked before each batch
    of lookups, says so (the agent: events wait, whose repair must not wait behind the proof
    of the last one; the next pass verifies)."""
    checks = _run(backend, desired, config, interrupted)
    for _ in range(retries):
        if checks is None or all(c.ok for c in checks):
            break
        time.sleep(delay)
        checks = _run(backend, desired, config, interrupted)
    return checks


def _run(
    backend: Backend,
    desired: DesiredState,
    config: Config,
    interrupted: Callable[[], bool] | None = None,
) -> list[Check] | None:
    """Every check's question first, then the kernel's answers: in one batch, or with
    ``interrupted`` in batches of :data:`BATCH` (None when it said stop)."""
    asked: list[tuple[ManagedInterface, IPAddress | None, str, IPAddress, str | None, bool]] = []
    for iface in desired.interfaces:
        families = set()
        for addr in iface.addresses:
            gateway = iface.gateway_for(addr.family)
            if gateway is not None and iface.table is not None:
                probe = config.probe if addr.family == 4 else config.probe6
                # A link-local next hop is ambiguous without its device (fe80::/64 is on
                # every port): the kernel is asked with the port, as a socket would.
                oif = iface.name if gateway.is_link_local else None
                asked.append((iface, addr.ip, "egress", probe, None, True))
                asked.append((iface, addr.ip, "gateway", gateway, oif, False))
                families.add(addr.family)
            else:
                peer = _subnet_peer(addr.interface)
                if peer is not None:
                    asked.append((iface, addr.ip, "on-link", peer, None, False))
        if "oif" in config.rule_kinds:
            for family in sorted(families):
                probe = config.probe if family == 4 else config.probe6
                asked.append((iface, None, "bound-to-device", probe, iface.name, True))
    queries = [(dst, src, oif) for _, src, _, dst, oif, _ in asked]
    if interrupted is None:
        answers = backend.lookups(queries)
    else:
        answers = []
        for start in range(0, len(queries), BATCH):
            if interrupted():
                return None
            answers += backend.lookups(queries[start : start + BATCH])
    texts: dict[IPAddress, str] = {}  # the probes and gateways recur in most checks
    return [
        _check(iface, src, name, dst, found, texts, want_gateway=want)
        for (iface, src, name, dst, _, want), found in zip(asked, answers, strict=True)
    ]


def _check(
    iface: ManagedInterface,
    src: IPAddress | None,
    name: str,
    dst: IPAddress,
    found: Lookup | None,
    texts: dict[IPAddress, str],
    *,
    want_gateway: bool,
) -> Check:
    def text(address: IPAddress) -> str:
        known = texts.get(address)
        if known is None:
            known = texts[address] = ip_text(address)
        return known

    gateway = iface.gateway_for(dst.version) if want_gateway else None
    expected = f"dev {iface.name}" + (f" via {text(gateway)}" if gateway is not None else "")
    ok = (
        found is not None
        and found.ifname == iface.name
        and (not want_gateway or found.gateway == gateway)
    )
    if found is None:
        got = "unreachable"
    else:
        got = f"dev {found.ifname}"
        if found.gateway is not None:
            got += f" via {text(found.gateway)}"
    return Check(
        interface=iface.name,
        address="(device)" if src is None else ip_text(src),
        name=name,
        destination=text(dst),
        ok=ok,
        expected=expected,
        got=got,
    )


def _subnet_peer(interface: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> IPAddress | None:
    network = interface.network
    if network.num_addresses < 4:
        return None
    for candidate in (network.network_address + 1, network.network_address + 2):
        if candidate != interface.ip:
            return candidate
    return None
