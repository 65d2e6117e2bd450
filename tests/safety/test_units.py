"""Pure tests of the safety library (no root, no namespaces): checkpoints and restores on the
in-memory backend, the record, the journal's view of changes, codecs, checks' parsing, the
lock."""

from __future__ import annotations

import ipaddress
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from multihome.backend.fake import FakeBackend, net
from multihome.config import Config
from multihome.errors import InputError
from multihome.model import (
    PROTO_DHCP,
    PROTO_KERNEL,
    PROTO_MULTIHOME,
    SCOPE_LINK,
    TABLE_MAIN,
    Address,
    HostState,
    Link,
    Route,
    Rule,
    Sysctl,
)
from multihome.plan import Change, make_plan
from multihome.policy import compute_policy
from multihome.safety.checks import Probe, find_peer, parse_probe, parse_ssh
from multihome.transaction import checkpoint, journal
from multihome.transaction.lock import LockTimeoutError, acquire
from multihome.transaction.statedir import StateDir, change_from_json, change_to_json

ip = ipaddress.ip_address


def howto_state() -> HostState:
    """The how-to's VM: eth0 .107 and eth1 .112 on 192.168.0.0/24, two defaults."""
    links = [
        Link("lo", 1, loopback=True, up=True),
        Link("eth0", 2, mac="52:54:00:00:00:07", kind="veth", up=True),
        Link("eth1", 3, mac="52:54:00:00:00:12", kind="veth", up=True),
    ]
    addrs = [
        Address("eth0", ipaddress.ip_interface("192.168.0.107/24")),
        Address("eth1", ipaddress.ip_interface("192.168.0.112/24")),
    ]
    routes = []
    for ifname, src, metric in (("eth0", "192.168.0.107", 100), ("eth1", "192.168.0.112", 101)):
        routes += [
            Route(
                TABLE_MAIN,
                net("192.168.0.0/24"),
                ifname,
                None,
                metric,
                PROTO_KERNEL,
                SCOPE_LINK,
                ip(src),
            ),
            Route(
                TABLE_MAIN,
                net("0.0.0.0/0"),
                ifname,
                ip("192.168.0.1"),
                metric,
                PROTO_DHCP,
                prefsrc=ip(src),
            ),
            Route(
                TABLE_MAIN,
                net("169.254.169.254/32"),
                ifname,
                ip("192.168.0.100"),
                metric,
                PROTO_DHCP,
                prefsrc=ip(src),
            ),
        ]
    rules = [Rule(4, 0, 255, proto=2), Rule(4, 32766, 254, proto=2), Rule(4, 32767, 253, proto=2)]
    sysctls = {
        f"net.ipv4.conf.{i}.{k}": "0"
        for i in ("all", "default", "eth0", "eth1")
        for k in ("rp_filter", "arp_ignore", "arp_announce", "arp_filter")
    }
    return HostState.build(links, addrs, routes, rules, sysctls)


def _apply_policy(backend: FakeBackend, config: Config) -> list[Change]:
    state = backend.read()
    plan = make_plan(state, compute_policy(state, config), config)
    backend.apply(plan.changes)
    return list(plan.changes)


def test_restore_after_apply_is_exact_and_idempotent(tmp_path: Path) -> None:
    """capture -> apply -> restore_changes brings routes, rules and sysctls back exactly;
    restoring again finds nothing to do."""
    config = Config()
    backend = FakeBackend(howto_state())
    before = backend.read()
    plan = make_plan(before, compute_policy(before, config), config)
    saved = checkpoint.capture(before, plan.changes, config, tmp_path)
    assert [r.ifname for r in saved.moved] == ["eth1"]
    assert saved.sysctls["net.ipv4.conf.eth1.arp_ignore"] == "0"
    backend.apply(plan.changes)
    assert backend.read() != before
    changes, notes = checkpoint.restore_changes(backend.read(), saved)
    assert notes == []
    done, problems = checkpoint.execute(backend, changes)
    assert problems == [] and done == len(changes) == len(plan.changes)
    after = backend.read()
    assert set(after.routes) == set(before.routes)
    assert set(after.rules) == set(before.rules)
    assert dict(after.sysctls) == dict(before.sysctls)
    assert checkpoint.restore_changes(after, saved) == ([], [])


def test_restore_from_half_way(tmp_path: Path) -> None:
    """A restore from any prefix of the plan (a killed apply) is exact too."""
    config = Config()
    for k in (0, 1, 9, 17, 25):
        backend = FakeBackend(howto_state())
        before = backend.read()
        plan = make_plan(before, compute_policy(before, config), config)
        saved = checkpoint.capture(before, plan.changes, config, tmp_path)
        backend.apply(plan.changes[:k])
        changes, _ = checkpoint.restore_changes(backend.read(), saved)
        checkpoint.execute(backend, changes)
        assert set(backend.read().routes) == set(before.routes), k
        assert set(backend.read().rules) == set(before.rules), k


def test_still_needed_finishes_a_prefix() -> None:
    """After k changes, still_needed gives exactly the remaining ones, in order."""
    config = Config()
    backend = FakeBackend(howto_state())
    state = backend.read()
    plan = make_plan(state, compute_policy(state, config), config)
    backend.apply(plan.changes[:10])
    rest = journal.still_needed(plan.changes, backend.read())
    assert [c.obj for c in rest] == [c.obj for c in plan.changes[10:]]
    backend.apply(rest)
    assert journal.still_needed(plan.changes, backend.read()) == []


def test_reset_changes_with_and_without_record(tmp_path: Path) -> None:
    """reset removes everything owned and puts back the moved default: from the record with
    its own protocol, or rebuilt from the owned copy (proto boot) when the record is lost."""
    config = Config()
    backend = FakeBackend(howto_state())
    before = backend.read()
    plan = make_plan(before, compute_policy(before, config), config)
    record = checkpoint.Record().add(checkpoint.capture(before, plan.changes, config, tmp_path))
    backend.apply(plan.changes)
    applied = backend.read()

    changes, _ = checkpoint.reset_changes(applied, config, record)
    checkpoint.execute(backend, changes)
    assert set(backend.read().routes) == set(before.routes)
    assert set(backend.read().rules) == set(before.rules)
    assert dict(backend.read().sysctls) == dict(before.sysctls)

    lost = FakeBackend(applied)
    changes, _ = checkpoint.reset_changes(applied, config, checkpoint.Record())
    checkpoint.execute(lost, changes)
    defaults = {(r.ifname, r.proto) for r in lost.read().routes if r.is_default}
    assert defaults == {("eth0", PROTO_DHCP), ("eth1", 3)}
    assert set(lost.read().rules) == set(before.rules)


def test_record_first_value_wins_and_prune(tmp_path: Path) -> None:
    """The record keeps the first prior value of a sysctl and forgets routes back in main."""
    config = Config()
    state = howto_state()
    plan = make_plan(state, compute_policy(state, config), config)
    first = checkpoint.capture(state, plan.changes, config, tmp_path)
    record = checkpoint.Record().add(first)
    later = checkpoint.Checkpoint(
        id="x",
        created=0.0,
        boot="b",
        table_range=(1, 2),
        priority_range=(1, 5),
        sysctls={"net.ipv4.conf.eth1.arp_ignore": "1"},
    )
    assert record.add(later).sysctls["net.ipv4.conf.eth1.arp_ignore"] == "0"
    assert len(record.moved) == 1
    assert record.prune(state).moved == ()


def test_codecs_round_trip(tmp_path: Path) -> None:
    """Checkpoints and changes survive JSON unchanged (fwmask included)."""
    config = Config()
    state = howto_state()
    plan = make_plan(state, compute_policy(state, config), config)
    saved = checkpoint.capture(state, plan.changes, config, tmp_path)
    assert checkpoint.Checkpoint.from_json(saved.to_json()) == saved
    odd = Rule(4, 900, 77, src=net("10.0.0.0/8"), fwmark=3, fwmask=255, proto=4)
    for change in [*plan.changes, Change("add", odd), Change("set", Sysctl("a.b", "1"), "0")]:
        assert change_from_json(change_to_json(change)) == change


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


def test_state_dir_is_per_namespace(tmp_path: Path) -> None:
    """The state dir is keyed by the inode of this process's network namespace."""
    state = StateDir.current(tmp_path)
    assert state.netns == f"net-{os.stat('/proc/self/ns/net').st_ino}"
    assert state.path == tmp_path / "run/multihome" / state.netns


def test_lock_is_exclusive_and_bounded(tmp_path: Path) -> None:
    """A second holder (another open file) waits about the timeout, then gets a message
    naming the first; after release it gets the lock."""
    state = StateDir.current(tmp_path)
    first = acquire(state, timeout=0, purpose="apply")
    start = time.monotonic()
    with pytest.raises(LockTimeoutError, match=rf"apply \(pid {os.getpid()}"):
        acquire(state, timeout=0.3, purpose="reset")
    assert 0.3 <= time.monotonic() - start < 3
    first.release()
    acquire(state, timeout=0, purpose="reset").release()


def test_reset_gives_the_moved_default_its_slot_back_from_our_own_in_main(
    tmp_path: Path,
) -> None:
    """Once eth0 (the primary) is gone, the policy puts eth1's default, which apply had
    moved into eth1's table, back in main as multihome's own route, in the slot of the
    moved one. reset then removes ours and puts the moved one back (its own protocol):
    eth1 keeps a default, and nothing of multihome's is left."""
    config = Config()
    backend = FakeBackend(howto_state())
    before = backend.read()
    plan = make_plan(before, compute_policy(before, config), config)
    record = checkpoint.Record().add(checkpoint.capture(before, plan.changes, config, tmp_path))
    backend.apply(plan.changes)
    applied = backend.read()
    alone = FakeBackend(
        replace(
            applied,
            links=tuple(x for x in applied.links if x.name != "eth0"),
            addresses=tuple(a for a in applied.addresses if a.ifname != "eth0"),
            routes=tuple(r for r in applied.routes if r.ifname != "eth0"),
        )
    )
    state = alone.read()
    alone.apply(make_plan(state, compute_policy(state, config), config).changes)
    ours = [r for r in alone.read().routes if r.table == TABLE_MAIN and r.is_default]
    assert [(r.ifname, r.proto) for r in ours] == [("eth1", PROTO_MULTIHOME)]

    changes, notes = checkpoint.reset_changes(alone.read(), config, record)
    done, problems = checkpoint.execute(alone, changes)
    assert (done, problems, notes) == (len(changes), [], [])
    defaults = [r for r in alone.read().routes if r.table == TABLE_MAIN and r.is_default]
    assert [(r.ifname, r.proto) for r in defaults] == [("eth1", PROTO_DHCP)]
    assert not [r for r in alone.read().routes if r.proto == PROTO_MULTIHOME]
