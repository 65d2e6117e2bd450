"""backend/fake.py, the in-memory twin every unit test leans on: it must refuse what the
kernel refuses and answer lookups the way the policy's rules make the kernel answer, or the
unit tier would pass where the namespace tests fail."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest
from hosts import howto_host

from multihome.backend import ChangeFailed
from multihome.backend.fake import FakeBackend
from multihome.model import TABLE_MAIN, Route, Rule, Sysctl
from multihome.plan import Change

IP = ipaddress.ip_address
NET = ipaddress.ip_network


def test_a_second_route_in_the_same_slot_is_refused_like_eexist() -> None:
    """IPv4 keeps one route per table, destination and metric: adding another gateway in
    that slot fails with "File exists" and leaves the state as it was."""
    backend = FakeBackend(howto_host())
    taken = next(r for r in backend.read().routes if r.is_default and r.ifname == "eth0")
    other = replace(taken, gateway=IP("192.168.0.254"))
    with pytest.raises(ChangeFailed, match="File exists") as refused:
        backend.apply([Change("add", other)])
    assert refused.value.done == 0 and backend.read() == howto_host()


def test_removing_what_is_not_there_is_refused() -> None:
    """A missing route is ESRCH ("No such process"), a missing rule ENOENT, as from the
    kernel; the changes before the refused one stay made and are counted."""
    backend = FakeBackend(howto_host())
    rule = Rule(4, 10002, 10001, src=NET("192.168.0.112/32"))
    route = Route(10001, NET("0.0.0.0/0"), "eth1", IP("192.168.0.1"))
    with pytest.raises(ChangeFailed, match="No such process") as refused:
        backend.apply([Change("add", rule), Change("remove", route)])
    assert refused.value.done == 1 and rule in backend.read().rules
    with pytest.raises(ChangeFailed, match="No such file or directory"):
        backend.apply([Change("remove", replace(rule, priority=10003))])


def test_sysctls_are_set_and_fail_at_injects_a_refusal() -> None:
    """A sysctl is set to its value; ``fail_at=k`` refuses the k-th change of the backend's
    life, whatever it is."""
    backend = FakeBackend(howto_host(), fail_at=2)
    name = "net.ipv4.conf.eth1.arp_ignore"
    assert backend.apply([Change("set", Sysctl(name, "1"), "0")]) == 1
    assert backend.read().sysctls[name] == "1"
    with pytest.raises(ChangeFailed, match="injected failure"):
        backend.apply([Change("set", Sysctl(name, "2"), "1")])
    assert backend.read().sysctls[name] == "1"


def test_lookup_walks_the_rules_in_priority_order() -> None:
    """Before any rule of multihome's, main answers (lowest metric: eth0); a from-rule to a
    table with its own default sends that source through eth1; a suppress rule skips main's
    default but not its on-link routes."""
    state = howto_host()
    probe, src = IP("198.51.100.10"), IP("192.168.0.112")
    before = FakeBackend(state).lookup(probe, src=src)
    assert before is not None and (before.ifname, before.table) == ("eth0", TABLE_MAIN)
    table = Route(10001, NET("0.0.0.0/0"), "eth1", IP("192.168.0.1"))
    rules = (
        Rule(4, 10001, TABLE_MAIN, suppress_prefixlength=0),
        Rule(4, 10002, 10001, src=NET("192.168.0.112/32")),
    )
    after = FakeBackend(replace(state, routes=(*state.routes, table),
                                rules=(*state.rules, *rules)))  # fmt: skip
    found = after.lookup(probe, src=src)
    assert found is not None and (found.ifname, found.table) == ("eth1", 10001)
    on_link = after.lookup(IP("192.168.0.50"), src=src)
    assert on_link is not None and (on_link.ifname, on_link.table) == ("eth0", TABLE_MAIN)
    bound = after.lookup(probe, oif="eth1")
    assert bound is not None and bound.ifname == "eth1"  # main's eth1 default (metric 101)


def test_replace_route_takes_the_slot_and_link_index_reads_the_link() -> None:
    """``replace_route`` puts a route in its slot (table, destination, metric) in place of the
    one there, or adds it to a free slot, as ``ip route replace`` does; a route through a
    missing link is ENODEV. ``link_index`` is the link's ifindex, None for a missing one."""
    backend = FakeBackend(howto_host())
    taken = next(r for r in backend.read().routes if r.is_default and r.ifname == "eth0")
    other = replace(taken, gateway=IP("192.168.0.254"))
    backend.replace_route(other)
    slot = [r for r in backend.read().routes if r.slot == taken.slot]
    assert slot == [other]
    free = Route(TABLE_MAIN, NET("10.9.0.0/16"), "eth1", IP("192.168.0.1"), metric=1003)
    backend.watch()
    backend.replace_route(free)
    assert free in backend.read().routes
    assert backend.notifications() == []  # its own change: not another writer's
    with pytest.raises(OSError, match="no interface eth9"):
        backend.replace_route(replace(free, ifname="eth9"))
    assert backend.link_index("eth1") == 3 and backend.link_index("eth9") is None


def test_neighbour_state_is_what_the_test_set() -> None:
    """The neighbour table holds what a test puts in it: the NUD state of an address on a
    link, None for an address it has no entry for (or one on another link), ENODEV for a
    missing link."""
    backend = FakeBackend(howto_host())
    backend.neighbours[("eth1", IP("192.168.0.1"))] = 0x02
    assert backend.neighbour_state("eth1", IP("192.168.0.1")) == 0x02
    assert backend.neighbour_state("eth0", IP("192.168.0.1")) is None
    assert backend.neighbour_state("eth1", IP("192.168.0.9")) is None
    with pytest.raises(OSError, match="no interface eth9"):
        backend.neighbour_state("eth9", IP("192.168.0.1"))
