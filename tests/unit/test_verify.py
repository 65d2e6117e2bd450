"""verify.py on the in-memory backend: the per-address proofs that the policy is in force,
what a failing proof says, and the bounded retries for netlink changes that show late."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import replace

from hosts import host, howto_host, port, with_ipv6
from twin import converge

from multihome.backend import Lookup, Query
from multihome.backend.fake import FakeBackend
from multihome.config import Config
from multihome.model import IPAddress, ip_text
from multihome.plan import Assessment
from multihome.policy import DesiredState, ManagedInterface, compute_policy
from multihome.verify import BATCH, Check, _questions, _subnet_peer, verify, verify_unless

CONFIG = Config()


def by_name(checks: list[Check]) -> dict[tuple[str, str, str], Check]:
    """The checks by (interface, address, check name)."""
    return {(c.interface, c.address, c.name): c for c in checks}


def test_a_converged_howto_passes_every_check() -> None:
    """After the fix each port's address leaves by its own port and gateway (egress), reaches
    its gateway on its own port, and a socket bound to the port uses its gateway."""
    backend = converge(howto_host())
    checks = verify(backend, compute_policy(backend.read(), CONFIG), CONFIG, delay=0)
    assert sorted(by_name(checks)) == [
        ("eth0", "(device)", "bound-to-device"),
        ("eth0", "192.168.0.107", "egress"),
        ("eth0", "192.168.0.107", "gateway"),
        ("eth1", "(device)", "bound-to-device"),
        ("eth1", "192.168.0.112", "egress"),
        ("eth1", "192.168.0.112", "gateway"),
    ]
    assert all(c.ok for c in checks), [c.to_json() for c in checks if not c.ok]
    egress = by_name(checks)[("eth1", "192.168.0.112", "egress")]
    assert (egress.destination, egress.expected, egress.got) == (
        "198.51.100.10",
        "dev eth1 via 192.168.0.1",
        "dev eth1 via 192.168.0.1",
    )


def test_the_howtos_failure_is_reported_with_what_the_kernel_said() -> None:
    """Before the fix, eth1's address leaves through eth0: the egress proof fails and says
    what was expected and what the lookup gave; eth0's proofs still pass."""
    howto = howto_host()
    checks = by_name(verify(FakeBackend(howto), compute_policy(howto, CONFIG), CONFIG, retries=0))
    egress = checks[("eth1", "192.168.0.112", "egress")]
    assert not egress.ok
    assert (egress.expected, egress.got) == ("dev eth1 via 192.168.0.1", "dev eth0 via 192.168.0.1")
    assert egress.to_json() == {
        "interface": "eth1",
        "address": "192.168.0.112",
        "check": "egress",
        "destination": "198.51.100.10",
        "ok": False,
        "expected": "dev eth1 via 192.168.0.1",
        "got": "dev eth0 via 192.168.0.1",
    }
    assert checks[("eth0", "192.168.0.107", "egress")].ok


def test_no_route_at_all_is_unreachable() -> None:
    """A lookup that finds nothing is reported as ``unreachable``, never as passing."""
    howto = howto_host()
    empty = FakeBackend(replace(howto, routes=()))
    checks = verify(empty, compute_policy(howto, CONFIG), CONFIG, retries=0)
    assert checks and all(not c.ok and c.got == "unreachable" for c in checks)


class LateBackend(FakeBackend):
    """A namespace whose policy shows only after ``late`` lookups (netlink's delay)."""

    def __init__(self, before: FakeBackend, after: FakeBackend, late: int) -> None:
        super().__init__(before.read())
        self.after = after
        self.late = late
        self.asked = 0

    def lookup(
        self, dst: IPAddress, src: IPAddress | None = None, oif: str | None = None
    ) -> Lookup | None:
        self.asked += 1
        if self.asked > self.late:
            return self.after.lookup(dst, src, oif)
        return super().lookup(dst, src, oif)


def test_failing_checks_are_retried_until_they_pass() -> None:
    """Changes that show late pass on a retry: the first round (6 lookups) sees the old
    state, the second the new one, and no further round runs."""
    howto = howto_host()
    desired = compute_policy(howto, CONFIG)
    backend = LateBackend(FakeBackend(howto), converge(howto), late=6)
    checks = verify(backend, desired, CONFIG, retries=5, delay=0)
    assert all(c.ok for c in checks)
    assert backend.asked == 12


def test_retries_are_bounded() -> None:
    """A proof that never passes is retried exactly ``retries`` times, then reported."""
    howto = howto_host()
    desired = compute_policy(howto, CONFIG)
    backend = LateBackend(FakeBackend(howto), FakeBackend(howto), late=0)
    checks = verify(backend, desired, CONFIG, retries=3, delay=0)
    assert not all(c.ok for c in checks)
    assert backend.asked == 6 * (1 + 3)


def test_an_isolated_port_is_proved_on_link_to_a_subnet_peer() -> None:
    """A gateway-less port has no table: its proof is that a peer on its subnet (.1, or .2
    when .1 is its own address) is reached directly on it."""
    state = host(
        port("eth0", 2, "10.0.1.5/24", "10.0.1.1", 100), port("eth1", 3, "10.9.0.1/24", None, 0)
    )
    backend = converge(state)
    checks = by_name(verify(backend, compute_policy(backend.read(), CONFIG), CONFIG, delay=0))
    on_link = checks[("eth1", "10.9.0.1", "on-link")]
    assert on_link.ok and on_link.destination == "10.9.0.2" and on_link.got == "dev eth1"
    assert not [k for k in checks if k[0] == "eth1" and k[2] != "on-link"]


def test_a_point_to_point_address_has_no_on_link_peer_to_prove() -> None:
    """A /31 or /32 isolated address has no subnet peer to look up: no check, not a failure."""
    state = host(
        port("eth0", 2, "10.0.1.5/24", "10.0.1.1", 100), port("eth1", 3, "10.9.0.1/31", None, 0)
    )
    desired = compute_policy(state, CONFIG)
    assert "eth1" in {i.name for i in desired.interfaces}
    checks = verify(converge(state), desired, CONFIG, delay=0)
    assert not [c for c in checks if c.interface == "eth1"]


def test_without_oif_rules_there_is_no_bound_to_device_proof() -> None:
    """``rules:`` without ``oif`` makes no device rule, so verify does not ask for one; the
    configured probe address is the egress destination."""
    config = replace(
        CONFIG, rule_kinds=("onlink", "from", "iif"), probe=ipaddress.ip_address("203.0.113.77")
    )
    backend = converge(howto_host(), config)
    assessment = Assessment.of(backend.read(), config)
    assert assessment.plan.empty
    checks = verify(backend, assessment.desired, config, delay=0)
    assert {c.name for c in checks} == {"egress", "gateway"}
    assert {c.destination for c in checks if c.name == "egress"} == {"203.0.113.77"}
    assert all(c.ok for c in checks)


def test_the_right_port_through_the_wrong_gateway_fails() -> None:
    """Leaving by eth1 is not enough: a table whose default names another router than the
    port's fails the egress proof, and says which router it found."""
    backend = converge(howto_host())
    desired = compute_policy(backend.read(), CONFIG)
    eth1 = desired.interface("eth1")
    assert eth1 is not None and eth1.table is not None
    state = backend.read()
    wrong = [
        replace(r, gateway=ipaddress.ip_address("192.168.0.254"))
        if r.table == eth1.table.id and r.is_default
        else r
        for r in state.routes
    ]
    backend.state = replace(state, routes=tuple(wrong))
    checks = by_name(verify(backend, desired, CONFIG, retries=0))
    egress = checks[("eth1", "192.168.0.112", "egress")]
    assert not egress.ok and egress.got == "dev eth1 via 192.168.0.254"
    assert checks[("eth1", "192.168.0.112", "gateway")].ok  # the router itself is on-link


class CountingBackend(FakeBackend):
    """A twin that notes the size of each batch of lookups it is asked."""

    def __init__(self, backend: FakeBackend) -> None:
        super().__init__(backend.read())
        self.batches: list[int] = []

    def lookups(self, queries: Sequence[Query], *, sources: bool = True) -> list[Lookup | None]:
        self.batches.append(len(queries))
        return super().lookups(queries, sources=sources)


def eight_ports() -> FakeBackend:
    """A converged host with eight ports: 24 lookups to prove it (two batches of 16)."""
    return converge(
        host(
            *(port(f"eth{i}", 2 + i, f"10.0.0.{10 + i}/24", "10.0.0.1", 100 + i) for i in range(8))
        )
    )


def test_verify_unless_gives_up_between_batches_when_interrupted() -> None:
    """With ``interrupted`` the lookups go in batches of BATCH; when it says stop before the
    second batch the verification is given up (None: not a pass, not a failure) after one
    batch; never interrupted, it is the whole verification, as verify's."""
    backend = CountingBackend(eight_ports())
    desired = compute_policy(backend.read(), CONFIG)
    asked = iter([False, True])
    assert verify_unless(backend, desired, CONFIG, lambda: next(asked)) is None
    assert backend.batches == [BATCH]
    backend.batches.clear()
    checks = verify_unless(backend, desired, CONFIG, lambda: False)
    assert checks is not None and len(checks) == 24 and all(c.ok for c in checks)
    assert backend.batches == [BATCH, 24 - BATCH]
    assert by_name(checks) == by_name(verify(backend, desired, CONFIG, delay=0))


def _plain_questions(desired: DesiredState, config: Config) -> list[tuple[object, ...]]:
    """The questions as :func:`verify._questions` asked them before a port's texts were
    made once for its three questions: each formatted its own."""
    asked: list[tuple[object, ...]] = []

    def ask(
        iface: ManagedInterface,
        src: IPAddress | None,
        name: str,
        dst: IPAddress,
        oif: str | None,
        want: bool,
    ) -> None:
        gateway = iface.gateway_for(dst.version) if want else None
        text = None if gateway is None else ip_text(gateway)
        expected = f"dev {iface.name}" + ("" if text is None else f" via {text}")
        address = "(device)" if src is None else ip_text(src)
        asked.append(
            (iface.name, address, name, ip_text(dst), (dst, src, oif), gateway, text, expected)
        )

    for iface in desired.interfaces:
        families = set()
        for addr in iface.addresses:
            gateway = iface.gateway_for(addr.family)
            if gateway is not None and iface.table is not None:
                probe = config.probe if addr.family == 4 else config.probe6
                oif = iface.name if gateway.is_link_local else None
                ask(iface, addr.ip, "egress", probe, None, True)
                ask(iface, addr.ip, "gateway", gateway, oif, False)
                families.add(addr.family)
            else:
                peer = _subnet_peer(addr.interface)
                if peer is not None:
                    ask(iface, addr.ip, "on-link", peer, None, False)
        if "oif" in config.rule_kinds:
            for family in sorted(families):
                ask(
                    iface,
                    None,
                    "bound-to-device",
                    config.probe if family == 4 else config.probe6,
                    iface.name,
                    True,
                )
    return asked


def test_the_questions_are_those_each_formatted_alone() -> None:
    """Two dual-stack ports (a link-local IPv6 router each), an isolated port (on-link) and
    the how-to's: the questions, their texts and expected answers are the plain ones."""
    state = host(
        with_ipv6(
            port("eth0", 2, "192.168.0.107/24", "192.168.0.1", 100), "2001:db8:1::10/64", "fe80::1"
        ),
        with_ipv6(
            port("eth1", 3, "192.168.0.112/24", "192.168.0.1", 101), "2001:db8:2::11/64", "fe80::2"
        ),
        port("eth2", 4, "10.9.0.1/24", None, 0),
    )
    for config in (CONFIG, replace(CONFIG, rule_kinds=("onlink", "from", "iif"))):
        desired = compute_policy(state, config)
        asked = [
            (
                q.interface,
                q.address,
                q.name,
                q.destination,
                q.query,
                q.gateway,
                q.gateway_text,
                q.expected,
            )
            for q in _questions(desired, config)
        ]
        assert asked == _plain_questions(desired, config)
        assert {q[2] for q in asked} == {"egress", "gateway", "on-link", "bound-to-device"} or (
            config is not CONFIG
        )
