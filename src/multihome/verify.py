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
from multihome.policy import DesiredState
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
    # No check reads an answer's source (``sources=False``: the kernel's choice of it was most
    # of a dual-stack verification's cost in the kernel, see NetlinkBackend.lookups).
    if interrupted is None:
        answers = backend.lookups(queries, sources=False)
    else:
        given = backend.lookups_unless(queries, interrupted, BATCH, sources=False)
        if given is None:
            return None
        answers = given
    return [_check(question, found) for question, found in zip(asked, answers, strict=True)]


class _Question:
    """One check's lookup and what its answer must be, with the texts a :class:`Check`
    holds made when it is asked: an answer that is the expected one (all of them, once the
    policy is in force) is proved without formatting its gateway again (at 256 ports 768
    checks; each was a closure, three dictionary look-ups by address and four texts).
    The texts are given: a port's address, gateway and the probe are each formatted once
    for the port's three questions (they were formatted for each, 1,792 ``ip_text``)."""

    __slots__ = (
        "address",
        "destination",
        "expected",
        "gateway",
        "gateway_text",
        "interface",
        "name",
        "query",
    )

    def __init__(
        self,
        interface: str,
        address: str,
        name: str,
        query: Query,
        destination: str,
        gateway: IPAddress | None = None,
        gateway_text: str | None = None,
    ) -> None:
        """``gateway`` (and its text): the gateway the answer must name; None: any."""
        self.interface = interface
        self.address = address
        self.name = name
        self.query = query
        self.destination = destination
        self.gateway = gateway
        self.gateway_text = gateway_text
        self.expected = f"dev {interface}"
        if gateway_text is not None:
            self.expected += f" via {gateway_text}"


def _questions(desired: DesiredState, config: Config) -> list[_Question]:
    """The checks' questions, port by port (see the module)."""
    asked: list[_Question] = []
    probes = {4: (config.probe, ip_text(config.probe)), 6: (config.probe6, ip_text(config.probe6))}
    for iface in desired.interfaces:
        name = iface.name
        vias: dict[int, tuple[IPAddress, str]] = {}  # the families proved: gateway, its text
        for addr in iface.addresses:
            src, source = addr.ip, ip_text(addr.ip)
            gateway = iface.gateway_for(addr.family)
            if gateway is not None and iface.table is not None:
                probe, probe_text = probes[addr.family]
                via = vias.get(addr.family)
                if via is None:
                    via = vias[addr.family] = (gateway, ip_text(gateway))
                gateway_text = via[1]
                # A link-local next hop is ambiguous without its device (fe80::/64 is on
                # every port): the kernel is asked with the port, as a socket would.
                oif = name if gateway.is_link_local else None
                asked.append(
                    _Question(
                        name,
                        source,
                        "egress",
                        (probe, src, None),
                        probe_text,
                        gateway,
                        gateway_text,
                    )
                )
                asked.append(_Question(name, source, "gateway", (gateway, src, oif), gateway_text))
            else:
                peer = _subnet_peer(addr.interface)
                if peer is not None:
                    asked.append(
                        _Question(name, source, "on-link", (peer, src, None), ip_text(peer))
                    )
        if "oif" in config.rule_kinds:
            for family in sorted(vias):
                probe, probe_text = probes[family]
                gateway, gateway_text = vias[family]
                query: Query = (probe, None, name)
                asked.append(
                    _Question(
                        name,
                        "(device)",
                        "bound-to-device",
                        query,
                        probe_text,
                        gateway,
                        gateway_text,
                    )
                )
    return asked


def _check(question: _Question, found: Lookup | None) -> Check:
    """The proof of ``question`` from the kernel's answer ``found`` (None: unreachable)."""
    if found is None:
        ok, got = False, "unreachable"
    else:
        gateway = found.gateway
        same = gateway == question.gateway
        ok = found.ifname == question.interface and (same or question.gateway is None)
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
