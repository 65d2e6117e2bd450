"""The lease reader on leases written by the real daemons: systemd-networkd and
NetworkManager (internal DHCP client) get a Neutron-like lease from dnsmasq (option 121 with
the metadata route and the default) in a namespace; multihome reads each daemon's own file
through the daemon's mount namespace (``/proc/<pid>/root``), as it would on such a guest."""

from __future__ import annotations

import ipaddress
import json
import time
from pathlib import Path
from typing import Any

from persist_util import Lab, Networkd, NetworkManager, run, wait_for
from test_daemons import networkd_lab, nm_lab

from multihome.model import Link
from multihome.source.leases import Lease, LeaseReader

__all__ = ["networkd_lab", "nm_lab"]

NEUTRON_ROUTES = {("169.254.169.254/32", "192.168.0.100"), ("0.0.0.0/0", "192.168.0.1")}


def links(lab: Lab) -> list[Link]:
    data: list[dict[str, Any]] = json.loads(run("ip", "-j", "-n", lab.vm, "link").stdout)
    return [Link(name=d["ifname"], index=int(d["ifindex"]), up=True) for d in data]


def lease_of(pid: int, lab: Lab, ifname: str) -> Lease | None:
    reader = LeaseReader(Path(f"/proc/{pid}/root"), processes=False)
    return reader.read(links(lab), now=time.time()).by_ifname.get(ifname)


def routes(lease: Lease) -> set[tuple[str, str]]:
    return {(str(r.dst), str(r.gateway)) for r in lease.routes}


def test_networkd_lease_gives_address_gateway_and_classless_routes(
    networkd_lab: tuple[Lab, Networkd],
) -> None:
    """networkd's lease of eth1 (/run/systemd/netif/leases/<ifindex>) read: its address,
    option 121's routes, an expiry in the future (file time plus its lifetime)."""
    lab, nd = networkd_lab
    assert nd.proc is not None
    pid = nd.proc.pid
    wait_for(lambda: lease_of(pid, lab, "eth1") is not None, 15, "networkd's lease of eth1")
    lease = lease_of(pid, lab, "eth1")
    assert lease is not None
    assert lease.address == ipaddress.IPv4Address("192.168.0.112")
    assert lease.prefixlen == 24
    assert routes(lease) == NEUTRON_ROUTES
    assert lease.origin.startswith("systemd-networkd lease ")
    assert lease.expires is not None and time.time() < lease.expires <= time.time() + 130


def test_networkmanager_internal_client_lease_is_read(
    nm_lab: tuple[Lab, NetworkManager],
) -> None:
    """NetworkManager's internal client: the [dhcp4] options in
    /run/NetworkManager/devices/<ifindex> give eth1's address, option 121's routes and the
    expiry."""
    lab, nm = nm_lab
    assert nm.proc is not None
    pid = nm.proc.pid
    devices = Path(f"/proc/{pid}/root/run/NetworkManager/devices")
    wait_for(
        lambda: lease_of(pid, lab, "eth1") is not None,
        20,
        "NetworkManager's eth1 lease: "
        + repr({p.name: p.read_text() for p in devices.iterdir()} if devices.is_dir() else None),
    )
    lease = lease_of(pid, lab, "eth1")
    assert lease is not None
    assert lease.address == ipaddress.IPv4Address("192.168.0.112")
    assert routes(lease) == NEUTRON_ROUTES
    assert lease.origin.startswith("NetworkManager lease ")
    assert lease.expires is not None and time.time() < lease.expires <= time.time() + 130
