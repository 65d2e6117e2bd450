"""safety/checks.py: the management peer from the SSH variables and the ``--check`` probe
forms (parsing only; the probes themselves run in the namespace tests)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from multihome.errors import InputError
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
