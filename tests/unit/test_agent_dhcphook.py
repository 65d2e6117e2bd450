"""agent/dhcphook.py: the routes a DHCP lease carries, decoded from what dhclient passes to
its hook (option 121, classless static routes, RFC 3442; option 3 only without it)."""

from __future__ import annotations

import ipaddress
import time

import pytest
from hosts import howto_host

from multihome.agent.dhcphook import classless_routes, lease_routes, run
from multihome.backend.fake import FakeBackend
from multihome.model import FOREVER, PROTO_DHCP, SCOPE_LINK, TABLE_MAIN, Address, Lifetime, Route

IP = ipaddress.ip_address
NET = ipaddress.ip_network


def test_dhcp_hook_decodes_classless_routes() -> None:
    """Option 121 as dhclient passes it; option 3 only without 121 (RFC 3442)."""
    text = "32 169 254 169 254 192 168 0 100 0 192 168 0 1 24 10 1 2 192 168 0 1"
    assert [(str(n), str(g)) for n, g in classless_routes(text)] == [
        ("169.254.169.254/32", "192.168.0.100"),
        ("0.0.0.0/0", "192.168.0.1"),
        ("10.1.2.0/24", "192.168.0.1"),
    ]
    assert [str(g) for _, g in lease_routes({"new_routers": "192.168.0.9 192.168.0.8"})] == [
        "192.168.0.9"
    ]
    assert (
        len(
            lease_routes(
                {"new_rfc3442_classless_static_routes": text, "new_routers": "192.168.0.9"}
            )
        )
        == 3
    )
    with pytest.raises(ValueError):
        classless_routes("24 10 1")


def _lease(reason: str, new: str | None, old: str | None = None) -> dict[str, str]:
    env = {"reason": reason, "interface": "eth1", "new_subnet_mask": "255.255.255.0"}
    env["new_rfc3442_classless_static_routes"] = "32 169 254 169 254 10 5 0 100 0 10 5 0 1"
    if new:
        env["new_ip_address"] = new
    if old:
        env["old_ip_address"] = old
        env["old_subnet_mask"] = "255.255.255.0"
    return env


def _dhcp_routes(backend: FakeBackend) -> list[str]:
    """The routes the hook made (the how-to host's own DHCP routes have metrics 100, 101)."""
    return sorted(
        r.describe() for r in backend.read().routes if r.proto == PROTO_DHCP and r.metric >= 1000
    )


def test_dhcp_hook_moves_a_lease_into_place_through_the_backend() -> None:
    """PREINIT sets the link up; BOUND adds the address without its prefix route and
    replaces the subnet and lease routes with ``proto dhcp`` and the port's metric (1000 +
    ifindex, eth1 is 3), prefsrc the lease's address; a RENEW with another address forgets the
    old one and its routes; EXPIRE forgets the address; an unknown link or reason is a no-op."""
    backend = FakeBackend(howto_host())
    backend.set_link_down("eth1")
    assert run({"reason": "PREINIT", "interface": "eth1"}, backend) == 0
    link = backend.read().link("eth1")
    assert link is not None and link.up
    before = backend.read()
    assert run({"reason": "PREINIT", "interface": "eth9"}, backend) == 0
    assert run({"reason": "NBI", "interface": "eth1"}, backend) == 0
    assert backend.read() == before

    assert run(_lease("BOUND", "10.5.0.7"), backend) == 0
    state = backend.read()
    assert "10.5.0.7/24" in [str(a.interface) for a in state.addresses_of("eth1", 4)]
    lease = {"table": TABLE_MAIN, "ifname": "eth1", "metric": 1003, "proto": PROTO_DHCP}
    subnet = Route(dst=NET("10.5.0.0/24"), scope=SCOPE_LINK, prefsrc=IP("10.5.0.7"), **lease)
    assert subnet in state.routes
    assert _dhcp_routes(backend) == [
        "10.5.0.0/24 dev eth1 table main proto dhcp scope link src 10.5.0.7 metric 1003",
        "169.254.169.254/32 via 10.5.0.100 dev eth1 table main proto dhcp src 10.5.0.7 metric 1003",
        "default via 10.5.0.1 dev eth1 table main proto dhcp src 10.5.0.7 metric 1003",
    ]
    assert not [r for r in state.routes if r.dst == NET("10.5.0.0/24") and r.proto != PROTO_DHCP]
    assert run(_lease("RENEW", "10.5.0.7", old="10.5.0.7"), backend) == 0
    assert backend.read() == state

    assert run(_lease("RENEW", "10.5.0.8", old="10.5.0.7"), backend) == 0
    seen = [str(a.interface) for a in backend.read().addresses_of("eth1", 4)]
    assert "10.5.0.8/24" in seen and "10.5.0.7/24" not in seen
    assert all("src 10.5.0.8" in text for text in _dhcp_routes(backend))
    assert len(_dhcp_routes(backend)) == 3

    assert run(_lease("EXPIRE", None, old="10.5.0.8"), backend) == 0
    assert "10.5.0.8/24" not in [str(a.interface) for a in backend.read().addresses_of("eth1", 4)]
    assert _dhcp_routes(backend) == []


def test_dhcpv6_lease_adds_replaces_and_removes_the_address() -> None:
    """Under ``dhclient -6``: PREINIT6 sets the link up; BOUND6 adds the lease's address
    (dhclient's /128, ``noprefixroute``: no route at all, DHCPv6 has none) with the lease's
    lifetimes; RENEW6 with the same address only refreshes them, REBIND6 with another replaces
    it; EXPIRE6 removes it; the IPv4 address stays."""
    backend = FakeBackend(howto_host())
    backend.set_link_down("eth1")
    assert run({"reason": "PREINIT6", "interface": "eth1"}, backend) == 0
    link = backend.read().link("eth1")
    assert link is not None and link.up

    def six() -> list[str]:
        return sorted(str(a.interface) for a in backend.read().addresses_of("eth1", 6))

    routes = backend.read().routes
    now = int(time.time())
    lease = {
        "interface": "eth1",
        "new_ip6_address": "2001:db8:3::70",
        "new_ip6_prefixlen": "128",
        "new_life_starts": str(now),
        "new_preferred_life": "120",
        "new_max_life": "120",
    }
    assert run({"reason": "BOUND6", **lease}, backend) == 0
    assert six() == ["2001:db8:3::70/128"]
    assert backend.read().routes == routes
    (address,) = backend.read().addresses_of("eth1", 6)
    assert address.flag_names == ["noprefixroute"] and not address.deprecated
    assert backend.lifetimes[address.key] in (Lifetime(120, 120), Lifetime(119, 119))
    renewed = {**lease, "old_ip6_address": "2001:db8:3::70", "old_ip6_prefixlen": "128"}
    backend.lifetimes.clear()
    assert run({"reason": "RENEW6", **renewed, "new_max_life": "300"}, backend) == 0
    assert six() == ["2001:db8:3::70/128"]
    assert backend.lifetimes[address.key].valid in (299, 300)
    moved = {**renewed, "new_ip6_address": "2001:db8:3::71"}
    assert run({"reason": "REBIND6", **moved}, backend) == 0
    assert six() == ["2001:db8:3::71/128"]
    expired = {"interface": "eth1", "old_ip6_address": "2001:db8:3::71", "old_ip6_prefixlen": "128"}
    assert run({"reason": "EXPIRE6", **expired}, backend) == 0
    assert six() == []
    assert [str(a.ip) for a in backend.read().addresses_of("eth1", 4)] == ["192.168.0.112"]


def test_dhcpv6_lease_no_longer_given_is_deprecated_then_removed() -> None:
    """What dhclient 4.4 ran here when dnsmasq stopped leasing an address (its subnet
    renumbered): RENEW6 with both lifetimes 0 removes it at once; DEPREF6 (the preferred
    lifetime over) deprecates an address with what is left of its valid lifetime; a REBOOT6
    of a lease that started earlier gets only what is left of it, one whose time is over is
    removed; lifetimes of 0xffffffff (or -1) are forever, a lease without lifetimes is
    permanent."""
    backend = FakeBackend(howto_host())
    now = int(time.time())
    base = {"interface": "eth1", "new_ip6_address": "2001:db8:3::70", "new_ip6_prefixlen": "128"}

    def lease(**times: int) -> dict[str, str]:
        return {**base, **{f"new_{k}": str(v) for k, v in times.items()}}

    def six() -> list[Address]:
        return list(backend.read().addresses_of("eth1", 6))

    assert (
        run(
            {"reason": "BOUND6", **lease(life_starts=now, preferred_life=120, max_life=120)},
            backend,
        )
        == 0
    )
    current = {
        "interface": "eth1",
        "cur_ip6_address": "2001:db8:3::70",
        "cur_ip6_prefixlen": "128",
        "cur_life_starts": str(now - 100),
        "cur_preferred_life": "100",
        "cur_max_life": "120",
    }
    assert run({"reason": "DEPREF6", **current}, backend) == 0
    (address,) = six()
    assert address.deprecated and backend.lifetimes[address.key].preferred == 0
    assert backend.lifetimes[address.key].valid in (19, 20)
    old = {"old_ip6_address": "2001:db8:3::70", "old_ip6_prefixlen": "128"}
    gone = {**lease(life_starts=now, preferred_life=0, max_life=0), **old}
    assert run({"reason": "RENEW6", **gone}, backend) == 0
    assert six() == []

    earlier = lease(life_starts=now - 50, preferred_life=60, max_life=90)
    assert run({"reason": "REBOOT6", **earlier}, backend) == 0
    (address,) = six()
    assert backend.lifetimes[address.key] in (Lifetime(10, 40), Lifetime(9, 39))
    over = lease(life_starts=now - 100, preferred_life=60, max_life=90)
    assert run({"reason": "REBOOT6", **over, **old}, backend) == 0
    assert six() == []
    assert run({"reason": "BOUND6", **lease(preferred_life=-1, max_life=4294967295)}, backend) == 0
    (address,) = six()
    assert backend.lifetimes[address.key] == Lifetime(FOREVER, FOREVER)
    assert run({"reason": "RENEW6", **base, **old}, backend) == 0
    assert backend.lifetimes[address.key] == Lifetime(FOREVER, FOREVER)
