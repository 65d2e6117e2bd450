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

from multihome.backend import Backend, Lookup, Query
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
    asked = _questions(desired, config)
    queries = [question.query for question in asked]
    if interrupted is None:
        answers = backend.lookups(queries)
    else:
        answers = []
        for start in range(0, len(queries), BATCH):
            if interrupted():
                return None
            answers += backend.lookups(queries[start : start + BATCH])
    return [_check(question, found) for question, found in zip(asked, answers, strict=True)]


class _Question:
    """One check's lookup and what its answer must be, with the texts a :class:`Check`
    holds made when it is asked: an answer that is the expected one (all of them, once the
    policy is in force) is proved without formatting its gateway again (at 256 ports 768
    checks; each was a closure, three dictionary look-ups by address and four texts)."""

    __slots__ = (
        "address",
        "destination",
        "expected",
        "gateway",
        "gateway_text",
        "interface",
        "name",
        "query",
        "want_gateway",
    )

    def __init__(
        self,
        iface: ManagedInterface,
        src: IPAddress | None,
        name: str,
        dst: IPAddress,
        oif: str | None,
        want_gateway: bool,
    ) -> None:
        self.interface = iface.name
        self.address = "(device)" if src is None else ip_text(src)
        self.name = name
        self.destination = ip_text(dst)
        self.query: Query = (dst, src, oif)
        self.want_gateway = want_gateway
        self.gateway = iface.gateway_for(dst.version) if want_gateway else None
        self.gateway_text = None if self.gateway is None else ip_text(self.gateway)
        self.expected = f"dev {iface.name}"
        if self.gateway_text is not None:
            self.expected += f" via {self.gateway_text}"


def _questions(desired: DesiredState, config: Config) -> list[_Question]:
    """The checks' questions, port by port (see the module)."""
    asked: list[_Question] = []
    for iface in desired.interfaces:
        families = set()
        for addr in iface.addresses:
            gateway = iface.gateway_for(addr.family)
            if gateway is not None and iface.table is not None:
                probe = config.probe if addr.family == 4 else config.probe6
                # A link-local next hop is ambiguous without its device (fe80::/64 is on
                # every port): the kernel is asked with the port, as a socket would.
                oif = iface.name if gateway.is_link_local else None
                asked.append(_Question(iface, addr.ip, "egress", probe, None, True))
                asked.append(_Question(iface, addr.ip, "gateway", gateway, oif, False))
                families.add(addr.family)
            else:
                peer = _subnet_peer(addr.interface)
                if peer is not None:
                    asked.append(_Question(iface, addr.ip, "on-link", peer, None, False))
        if "oif" in config.rule_kinds:
            for family in sorted(families):
                probe = config.probe if family == 4 else config.probe6
                asked.append(_Question(iface, None, "bound-to-device", probe, iface.name, True))
    return asked


def _check(question: _Question, found: Lookup | None) -> Check:
    """The proof of ``question`` from the kernel's answer ``found`` (None: unreachable)."""
    if found is None:
        ok, got = False, "unreachable"
    else:
        gateway = found.gateway
        same = gateway == question.gateway
        ok = found.ifname == question.interface and (same or not question.want_gateway)
        got = f"dev {found.ifname}"
        if gateway is not None:  # the expected gateway's text when it is that one
            got += f" via {question.gateway_text if same else ip_text(gateway)}"
    return Check(
        question.interface,
        question.address,
        question.name,
        question.destination,
        ok,
        question.expected,
        got,
    )


def _subnet_peer(interface: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> IPAddress | None:
    network = interface.network
    if network.num_addresses < 4:
        return None
    for candidate in (network.network_address + 1, network.network_address + 2):
        if candidate != interface.ip:
            return candidate
    return None
