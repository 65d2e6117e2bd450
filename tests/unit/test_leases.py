"""The lease reader on files in the formats the clients write (tests/unit/leases/ holds real
ones, see its README): ISC dhclient, systemd-networkd, NetworkManager. Newest lease per
interface, expired ones ignored, malformed ones a warning and never an exception."""

from __future__ import annotations

import ipaddress
import os
import time
from pathlib import Path

import pytest
from hosts import host, port
from leasetext import current_dhclient_lease

from multihome.config import Config
from multihome.model import Link
from multihome.policy import compute_policy
from multihome.source.leases import LeaseReader, parse_dhclient
from multihome.source.portfacts import gather

HERE = Path(__file__).parent / "leases"
NOW = 1796540000.0  # 2026-12-06 06:53:20 UTC: before every real lease's expiry
NEUTRON = {("169.254.169.254/32", "192.168.0.100"), ("0.0.0.0/0", "192.168.0.1")}
LINKS = (Link("eth0", 2, up=True), Link("eth1", 3, up=True))

LEASE = """lease {{
  interface "{ifname}";
  fixed-address {address};
  option subnet-mask 255.255.255.0;
  option routers {router};
{extra}  expire 0 {expire};
}}
"""


def dhclient(
    ifname: str = "eth1",
    address: str = "192.168.0.112",
    router: str = "192.168.0.1",
    expire: str = "2026/12/06 19:55:51",
    extra: str = "",
) -> str:
    return LEASE.format(ifname=ifname, address=address, router=router, expire=expire, extra=extra)


def put(root: Path, path: str, text: str, mtime: float | None = None) -> Path:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    if mtime is not None:
        os.utime(target, (mtime, mtime))
    return target


def read(root: Path, now: float = NOW) -> tuple[dict[str, set[tuple[str, str]]], list[str]]:
    found = LeaseReader(root, processes=False).read(LINKS, now=now)
    routes = {
        name: {(str(r.dst), str(r.gateway)) for r in lease.routes}
        for name, lease in found.by_ifname.items()
    }
    return routes, list(found.warnings)


def test_real_dhclient_lease_gives_option_121_routes() -> None:
    """dhclient's real lease: its address, prefix, option 121's routes (not option 3's
    router alone, RFC 3442), and its expiry in UTC."""
    (lease,), warnings = parse_dhclient((HERE / "dhclient.eth1.leases").read_text(), "x")
    assert warnings == []
    assert lease.ifname == "eth1" and str(lease.address) == "192.168.0.112"
    assert lease.prefixlen == 24
    assert {(str(r.dst), str(r.gateway)) for r in lease.routes} == NEUTRON
    assert lease.expires == 1796586951.0  # 2026/12/06 19:55:51 UTC


def test_dhclient_without_the_121_declaration_writes_it_as_unknown_121() -> None:
    """Without `option rfc3442-classless-static-routes code 121 = ...` in dhclient.conf the
    option is kept as hex (`unknown-121`): decoded the same."""
    extra = "  option unknown-121 20:a9:fe:a9:fe:c0:a8:00:64:00:c0:a8:00:01;\n"
    (lease,), _ = parse_dhclient(dhclient(extra=extra), "x")
    assert {(str(r.dst), str(r.gateway)) for r in lease.routes} == NEUTRON


def test_lease_without_option_121_gives_a_default_via_its_router() -> None:
    """Option 3 only: one default route through the first router."""
    (lease,), _ = parse_dhclient(dhclient(router="192.168.0.254,192.168.0.253"), "x")
    assert {(str(r.dst), str(r.gateway)) for r in lease.routes} == {("0.0.0.0/0", "192.168.0.254")}


def test_the_newest_unexpired_lease_of_each_interface_wins(tmp_path: Path) -> None:
    """A dhclient file holds older leases before the newest; another file holds an expired
    lease with another router: the newest valid one is taken per interface."""
    older = dhclient(router="192.168.0.9", expire="2026/12/06 10:00:00")
    newer = dhclient(router="192.168.0.254", expire="2026/12/06 12:00:00")
    put(tmp_path, "/var/lib/dhcp/dhclient.eth1.leases", older + newer)
    put(
        tmp_path,
        "/var/lib/dhcp/dhclient.leases",
        dhclient(router="192.168.0.77", expire="2026/12/06 01:00:00")
        + dhclient(ifname="eth0", address="192.168.0.107", expire="2026/12/06 12:00:00"),
    )
    routes, warnings = read(tmp_path)
    assert routes == {
        "eth1": {("0.0.0.0/0", "192.168.0.254")},
        "eth0": {("0.0.0.0/0", "192.168.0.1")},
    }
    assert warnings == []


def test_a_stale_file_that_expires_later_loses_to_the_newer_written_lease(tmp_path: Path) -> None:
    """A dhclient file left from an earlier boot (a 12 h lease, router .9) and networkd's
    current 2-minute lease (router .1, written later): the newer written lease wins, although
    the stale one expires later."""
    put(
        tmp_path,
        "/var/lib/dhcp/dhclient.eth1.leases",
        dhclient(router="192.168.0.9", expire="2026/12/06 19:00:00"),
        mtime=NOW - 3600,
    )
    put(tmp_path, "/run/systemd/netif/leases/3", (HERE / "networkd.3").read_text(), mtime=NOW - 5)
    routes, _ = read(tmp_path)
    assert routes == {"eth1": NEUTRON}


def test_an_expired_lease_is_ignored(tmp_path: Path) -> None:
    """A lease that expired says nothing any more (networkd: file time plus LIFETIME)."""
    put(tmp_path, "/var/lib/dhcp/dhclient.eth1.leases", dhclient(expire="2026/12/06 01:00:00"))
    put(tmp_path, "/run/systemd/netif/leases/2", (HERE / "networkd.3").read_text(), mtime=NOW - 121)
    assert read(tmp_path) == ({}, [])


@pytest.mark.parametrize(
    ("path", "fixture"),
    [
        ("/run/systemd/netif/leases/3", "networkd.3"),
        ("/run/NetworkManager/devices/3", "nm-device.3"),
        ("/var/lib/NetworkManager/dhclient-5d1c-eth1.lease", "dhclient.eth1.leases"),
    ],
)
def test_real_networkd_and_networkmanager_leases(tmp_path: Path, path: str, fixture: str) -> None:
    """networkd's and NetworkManager's real lease files (by ifindex 3 = eth1), and
    NetworkManager's dhclient mode, give eth1's option 121 routes."""
    put(tmp_path, path, (HERE / fixture).read_text(), mtime=NOW - 10)
    routes, warnings = read(tmp_path)
    assert routes == {"eth1": NEUTRON} and warnings == []


def test_malformed_leases_are_warnings_and_the_good_ones_count(tmp_path: Path) -> None:
    """A lease with a bad address, an unterminated block, a networkd file without ADDRESS
    and an NM file that is not a keyfile: each a warning naming the file; no exception; the
    good lease in the same file is still used."""
    bad = dhclient(address="192.168.0.999")
    put(
        tmp_path,
        "/var/lib/dhcp/dhclient.eth1.leases",
        bad + dhclient(expire="2026/12/06 12:00:00") + 'lease {\n  interface "eth1";\n',
    )
    put(tmp_path, "/run/systemd/netif/leases/2", "ROUTER=192.168.0.1\n")
    put(tmp_path, "/run/NetworkManager/devices/3", "no section here\n")
    routes, warnings = read(tmp_path)
    assert routes == {"eth1": {("0.0.0.0/0", "192.168.0.1")}}
    text = "\n".join(warnings)
    assert "dhclient.eth1.leases: lease at line 1: fixed-address '192.168.0.999'" in text
    assert "unterminated lease block" in text
    assert "/run/systemd/netif/leases/2: no ADDRESS" in text
    assert "/run/NetworkManager/devices/3: not a keyfile" in text
    assert len(warnings) == 4


def test_truncated_option_121_is_a_warning() -> None:
    """Option 121 whose last route is cut short: the lease is refused, with the reason."""
    extra = "  option rfc3442-classless-static-routes 32,169,254,169,254,192,168;\n"
    leases, warnings = parse_dhclient(dhclient(extra=extra), "f")
    assert leases == [] and warnings == [
        "f: lease at line 1: truncated classless static routes; ignored"
    ]


def test_a_read_file_is_parsed_again_only_when_it_changed(tmp_path: Path) -> None:
    """The agent's reader re-reads a lease file only when its size or time changed."""
    path = put(tmp_path, "/var/lib/dhcp/dhclient.eth1.leases", dhclient(), mtime=NOW)
    reader = LeaseReader(tmp_path, processes=False)
    first = reader.read(LINKS, now=NOW).by_ifname["eth1"]
    assert reader.read(LINKS, now=NOW).by_ifname["eth1"] is first
    put(
        tmp_path,
        "/var/lib/dhcp/dhclient.eth1.leases",
        dhclient(router="192.168.0.254"),
        mtime=NOW + 1,
    )
    assert path.exists()
    assert str(reader.read(LINKS, now=NOW).by_ifname["eth1"].routes[0].gateway) == "192.168.0.254"


def test_a_lease_folder_is_listed_again_when_it_changed(tmp_path: Path) -> None:
    """The agent's reader keeps a folder's listing while the folder's time is unchanged and
    older than the listing: a lease file added later (a new stamp) is found, and so is one
    added in the same clock tick as a listing taken right after a change (never kept)."""
    folder = tmp_path / "var/lib/dhcp"
    put(tmp_path, "/var/lib/dhcp/dhclient.eth1.leases", dhclient())
    old = time.time() - 60
    os.utime(folder, (old, old))
    reader = LeaseReader(tmp_path, processes=False)
    assert set(reader.read(LINKS, now=NOW).by_ifname) == {"eth1"}
    # The folder's stamp as it was: the kept listing answers (the stat is what is trusted).
    hidden = put(tmp_path, "/var/lib/dhcp/dhclient.eth0.leases", dhclient("eth0", "192.168.0.107"))
    os.utime(folder, (old, old))
    assert set(reader.read(LINKS, now=NOW).by_ifname) == {"eth1"}
    # A new stamp: listed again, and the new file is read.
    os.utime(folder, (old + 1, old + 1))
    assert set(reader.read(LINKS, now=NOW).by_ifname) == {"eth0", "eth1"}
    # A folder changed just now is listed on every read until its stamp settles.
    hidden.unlink()
    assert set(reader.read(LINKS, now=NOW).by_ifname) == {"eth1"}
    stamp = folder.stat().st_mtime_ns
    put(tmp_path, "/var/lib/dhcp/dhclient.eth0.leases", dhclient("eth0", "192.168.0.107"))
    os.utime(folder, ns=(stamp, stamp))  # the same tick as the listing before
    assert set(reader.read(LINKS, now=NOW).by_ifname) == {"eth0", "eth1"}


def test_a_lease_file_drives_the_policy(tmp_path: Path) -> None:
    """eth1 has lost its metadata route from main and the table is empty (a flap): the
    policy gets it back from the real dhclient lease, and says where it came from."""
    recorded = (HERE / "dhclient.eth1.leases").read_text()
    put(tmp_path, "/var/lib/dhcp/dhclient.eth1.leases", current_dhclient_lease(recorded))
    state = host(
        port("eth0", 2, "192.168.0.107/24", "192.168.0.1", 100, "192.168.0.100"),
        port("eth1", 3, "192.168.0.112/24", None, 101),
    )
    facts = gather(state, LeaseReader(tmp_path, processes=False))
    desired = compute_policy(state, Config(), facts)
    eth1 = desired.interface("eth1")
    assert eth1 is not None and eth1.role == "secondary" and eth1.table is not None
    table = {(str(r.dst), str(r.gateway)) for r in desired.routes if r.table == eth1.table.id}
    assert table == {*NEUTRON, ("192.168.0.0/24", "None")}
    origins = desired.route_origins()
    assert any(
        o["route"].startswith("169.254.169.254/32 via 192.168.0.100 dev eth1")
        and o["origin"].endswith("/var/lib/dhcp/dhclient.eth1.leases")
        for o in origins
    ), origins
    assert any(  # eth1's address looks up its table first (design.md section 5)
        r.priority == 10000 and r.table == eth1.table.id
        for r in desired.rules
        if r.src == ipaddress.ip_network("192.168.0.112/32")
    )
