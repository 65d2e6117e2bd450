"""safety/checks.py: the management peer from the SSH variables, the ``--check`` probe
forms, and the next-hop check's reading of the backend's neighbour table (the probes
themselves run in the namespace tests)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hosts import howto_host

from multihome.backend.fake import FakeBackend
from multihome.errors import InputError
from multihome.safety import checks
from multihome.safety.checks import Probe, find_peer, parse_probe, parse_ssh

ip = ipaddress.ip_address


def test_parse_ssh_and_find_peer() -> None:
    """SSH variables give the peer; a connection that ends in another namespace is ignored;
    a bad --management-peer is bad input."""
    peer = parse_ssh("10.99.0.2 50000 192.168.0.107 22", "$SSH_CONNECTION")
    assert peer is not None and peer.address == ip("10.99.0.2")
    assert peer.local == ip("192.168.0.107")
    mapped = parse_ssh("::ffff:10.0.0.9 1 ::ffff:10.0.0.1 22", "x")
    assert mapped is not None and mapped.address == ip("10.0.0.9")
    client = parse_ssh("10.99.0.2 50000 22", "$SSH_CLIENT")
    assert client is not None and client.local is None
    env = {"SSH_CONNECTION": "10.99.0.2 50000 192.168.0.107 22"}
    here = [ip("192.168.0.107")]
    found = find_peer(None, env, here)
    assert found is not None and found.source == "$SSH_CONNECTION"
    assert find_peer(None, env, [ip("10.0.0.1")], proc=Path("/nonexistent")) is None
    assert find_peer("10.1.1.1", {}, here) is not None
    with pytest.raises(InputError, match="--management-peer nope"):
        find_peer("nope", {}, here)


@pytest.mark.parametrize(
    ("spec", "probe"),
    [
        ("ping:10.0.0.1", Probe("ping", "10.0.0.1")),
        ("tcp:example.org:443", Probe("tcp", "example.org:443")),
        ("tcp:[2001:db8::1]:22", Probe("tcp", "[2001:db8::1]:22")),
        ("http://198.51.100.10/", Probe("http", "http://198.51.100.10/")),
        ("gateways", Probe("gateways", "")),
    ],
)
def test_parse_probe(spec: str, probe: Probe) -> None:
    """Every documented probe form parses."""
    assert parse_probe(spec) == probe


@pytest.mark.parametrize("spec", ["ping:host", "tcp:host", "tcp:host:0", "ftp://x", "dns"])
def test_parse_probe_rejects(spec: str) -> None:
    """Anything else is bad input naming the option."""
    with pytest.raises(InputError, match=f"--check {spec}"):
        parse_probe(spec)


def test_neighbour_problem_reads_the_backends_neighbour_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A next hop in a state that answered (REACHABLE, STALE) is no problem; one in FAILED,
    or with no entry until the timeout, is named with its interface; a missing interface is
    gone. The datagram that makes the kernel resolve the neighbour is recorded, not sent."""
    poked: list[tuple[str, str]] = []
    monkeypatch.setattr(
        checks, "_poke", lambda hop, ifname, family: poked.append((str(hop), ifname))
    )
    backend = FakeBackend(howto_host())
    hop = ip("192.168.0.1")
    for state in (0x02, 0x04):
        backend.neighbours[("eth1", hop)] = state
        assert checks.neighbour_problem(backend, hop, "eth1", timeout=0.3) is None
    assert poked[0] == ("192.168.0.1", "eth1")
    backend.neighbours[("eth1", hop)] = 0x20
    assert checks.neighbour_problem(backend, hop, "eth1", timeout=2.0) == (
        "next hop 192.168.0.1 does not answer ARP/ND on eth1"
    )
    assert checks.neighbour_problem(backend, ip("192.168.0.9"), "eth1", timeout=0.2) == (
        "next hop 192.168.0.9 did not answer ARP/ND on eth1 within 0.2 s"
    )
    assert checks.neighbour_problem(backend, hop, "eth9") == "interface eth9 is gone"
