"""Events of a running lab: attach and detach a port, flap a link, renew or lose a lease.

What changes on a real cloud VM while it runs, reproduced so that ``multihome agent`` can be
tested against it:

* ``attach_port``: like ``openstack server add port`` (Neutron creates the port, Nova plugs
  it): the port's security chain and counters on the switch, its DHCP host entry (dnsmasq
  is restarted to read it), its floating IP on the router, its entry in the
  ``network_data.json`` that the metadata host serves, and last a new NIC ``ethN`` in the
  guest -- down and unconfigured, as a hot-plugged NIC appears. The config drive is not
  changed (Nova writes it at boot only). A failure or interruption undoes every step.
* ``detach_port``: the reverse, the NIC first.
* ``flap``: the NIC goes down and up in the guest (the kernel flushes its routes).
* ``renew``: the guest's DHCP client asks again (optionally handed another router): the lab's
  client is restarted with its lease file, asks for its lease (INIT-REBOOT) and re-installs
  the lease's routes in main, as a client does on every renewal.
* ``expire``: the lease is lost: the client stops and its script removes the address.

Each takes the lab's event lock, so two commands never interleave on one lab.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import secrets
import signal
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path

from multihome.errors import InputError, LabError
from multihome.lab import topology as topo
from multihome.lab.runtime import (
    NETNS_RUN,
    Lab,
    _enslave,
    _index,
    _read_pid,
    _terminate,
    failpoint,
    netlink,
    netns_pids,
)
from multihome.lab.scenario import (
    FIRST_METRIC,
    PUBLIC_RANGE,
    GuestPort,
    Network,
    Scenario,
    ipv6_address,
)
from multihome.processes import DHCP_CLIENTS, pid_alive

LOCK_FILE = "events.lock"
#: Where an address is taken from when none is given: hosts from .10 on (like a Neutron pool).
POOL_OFFSET = 10
MAX_PORTS = 100


@dataclass(frozen=True)
class PortRequest:
    """What ``lab attach-port`` was asked for (None: let the lab choose)."""

    network: str | None = None
    ip: str | None = None
    floating_ip: str | None = None
    """An address in 203.0.113.0/24, ``auto``, or None for no floating IP."""
    dhcp: bool = True
    """False (``--no-dhcp``): the port's addresses are only in ``network_data.json``, types
    ``ipv4`` and, on a DHCPv6 subnet, ``ipv6`` (DHCP disabled)."""
    ip6: str | None = None
    """The port's IPv6 fixed IP (a DHCPv6 subnet's; SLAAC's is the MAC's). Given without
    ``ip``: an IPv6-only port, as a Neutron port whose fixed_ips name the IPv6 subnet only."""


def split_ips(values: Sequence[str], option: str = "--ip") -> tuple[str | None, str | None]:
    """``--ip`` given once per family (as a Neutron port's fixed_ips: one per subnet here):
    (the IPv4 one, the IPv6 one). A value of neither family, or two of one, is bad input."""
    found: dict[int, str] = {}
    for value in values:
        try:
            family = ipaddress.ip_address(value).version
        except ValueError as exc:
            raise InputError(
                f"{option} {value}: not an IPv4 or IPv6 address; write e.g. 192.168.0.120 "
                "or 2001:db8:3::78"
            ) from exc
        if family in found:
            raise InputError(
                f"{option} {found[family]} and {option} {value}: two IPv{family} addresses; "
                f"a lab port has one fixed IP per family: give {option} at most once for "
                "IPv4 and once for IPv6"
            )
        found[family] = value
    return found.get(4), found.get(6)


# -- choosing a new port (pure) --------------------------------------------------------
def plan_port(
    scenario: Scenario,
    request: PortRequest,
    taken: Collection[str] = (),
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
) -> GuestPort:
    """The port to attach: the lowest free ``ethN`` (not in ``taken`` either), on the
    requested network (default: eth0's, else the first), with the requested or the first
    free address, its metric and floating IP, and a new MAC (Neutron's prefix fa:16:3e and
    three random bytes, as Neutron makes one per port: a port attached again after a detach
    is a new port). Bad input raises :class:`InputError`."""
    network = _network(scenario, request.network)
    ipv6_only = request.ip6 is not None and request.ip is None
    ips: tuple[ipaddress.IPv4Address, ...] = (
        () if ipv6_only else (_address(scenario, network.name, request.ip),)
    )
    names = {p.name for p in scenario.ports} | set(taken)
    number = next((n for n in range(MAX_PORTS) if f"eth{n}" not in names), None)
    if number is None:
        raise InputError(
            f"the guest has {MAX_PORTS} ports (eth0-eth{MAX_PORTS - 1}); detach one first "
            "with `multihome lab detach-port IF`"
        )
    if ipv6_only and request.floating_ip is not None:
        raise InputError(
            f"--floating-ip: the port gets no IPv4 address (only --ip {request.ip6}), and "
            "floating IPs are IPv4 (IPv6 has none: its address is reached directly); add an "
            "IPv4 --ip or leave --floating-ip out"
        )
    floating = (
        None if not ips else _floating_ip(scenario, network.name, ips[0], request.floating_ip)
    )
    macs = {p.mac for p in scenario.ports}
    mac = next(m for m in iter(lambda: _random_mac(random_bytes), None) if m not in macs)
    if request.ip6 is not None:
        ips6: tuple[ipaddress.IPv6Address, ...] = (_address6(scenario, network, request.ip6),)
    elif network.cidr6 is None:
        ips6 = ()
    else:
        ips6 = (_free6(scenario, network, ipv6_address(network, mac, ips, number)),)
    return GuestPort(
        name=f"eth{number}",
        network=network.name,
        mac=mac,
        ips=ips,
        floating_ips={} if floating is None else {ips[0]: floating},
        allowed_address_pairs=(),
        metric=FIRST_METRIC + number,
        dhcp=request.dhcp and network.dhcp,
        hotplugged=True,
        ips6=ips6,
    )


def _random_mac(random_bytes: Callable[[int], bytes]) -> str:
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in random_bytes(3))


def _network(scenario: Scenario, wanted: str | None) -> Network:
    names = ", ".join(n.name for n in scenario.networks)
    if wanted is None:
        first = scenario.port("eth0")
        return scenario.network(first.network) if first else scenario.networks[0]
    for network in scenario.networks:
        if network.name == wanted:
            return network
    raise InputError(
        f"--network {wanted}: no such network in this lab (scenario {scenario.number}); use "
        f"one of: {names}"
    )


def _used(scenario: Scenario, network_name: str) -> dict[ipaddress.IPv4Address, str]:
    network = scenario.network(network_name)
    used: dict[ipaddress.IPv4Address, str] = {}
    if network.gateway is not None:
        used[network.gateway] = "the router (gateway)"
    if network.dhcp_server is not None:
        used[network.dhcp_server] = "the DHCP port"
    for port in scenario.ports:
        for ip in (*port.ips, *port.allowed_address_pairs):
            used.setdefault(ip, port.name)
        if port.router is not None:
            used.setdefault(port.router, f"the router {port.name}'s DHCP hands out")
    return used


def _address(scenario: Scenario, network_name: str, wanted: str | None) -> ipaddress.IPv4Address:
    network = scenario.network(network_name)
    cidr = network.cidr
    used = _used(scenario, network_name)
    if wanted is None:
        hosts = list(cidr.hosts())
        for ip in hosts[POOL_OFFSET - 1 :] + hosts[: POOL_OFFSET - 1]:
            if ip not in used:
                return ip
        raise InputError(
            f"--ip: no free address left in {network.name} ({cidr}); detach a port or "
            "give --network"
        )
    try:
        ip = ipaddress.IPv4Address(wanted)
    except ValueError as exc:
        raise InputError(f"--ip {wanted}: not an IPv4 address; write e.g. 192.168.0.120") from exc
    if ip not in cidr or ip in (cidr.network_address, cidr.broadcast_address):
        raise InputError(
            f"--ip {wanted}: not a host address of network {network.name} ({cidr}); give one "
            "of its free addresses, or --network"
        )
    if ip in used:
        raise InputError(
            f"--ip {wanted}: already used by {used[ip]}; give a free address of {cidr} "
            "(or leave --ip out)"
        )
    return ip


def _used6(scenario: Scenario, network: Network) -> dict[ipaddress.IPv6Address, str]:
    used: dict[ipaddress.IPv6Address, str] = {}
    if network.gateway6 is not None:
        used[network.gateway6] = "the router (gateway)"
    if network.dhcp_server6 is not None:
        used[network.dhcp_server6] = "the DHCP port"
    for port in scenario.ports:
        for ip in port.ips6:
            used.setdefault(ip, port.name)
    return used


def _address6(scenario: Scenario, network: Network, wanted: str) -> ipaddress.IPv6Address:
    """The requested IPv6 fixed IP, checked as Neutron would: on the network's IPv6 subnet,
    a host's (not the subnet-router anycast address), free, and not on a SLAAC subnet (there
    the address is the one computed from the MAC)."""
    ip = ipaddress.IPv6Address(wanted)  # split_ips checked the family
    cidr = network.cidr6
    if cidr is None:
        raise InputError(
            f"--ip {wanted}: network {network.name} has no IPv6 subnet; leave the IPv6 --ip "
            "out, or give --network with one"
        )
    if ip not in cidr or ip == cidr.network_address:
        raise InputError(
            f"--ip {wanted}: not a host address of network {network.name}'s IPv6 subnet "
            f"({cidr}; its first address is the subnet-router anycast address); give one of it"
        )
    if not network.dhcpv6:
        raise InputError(
            f"--ip {wanted}: network {network.name}'s IPv6 subnet is SLAAC: a port's address "
            "there is the one computed from its MAC (EUI-64; Neutron refuses any other); "
            "leave the IPv6 --ip out"
        )
    owner = _used6(scenario, network).get(ip)
    if owner is not None:
        raise InputError(
            f"--ip {wanted}: already used by {owner}; give a free address of {cidr} (or "
            "leave the IPv6 --ip out)"
        )
    return ip


def _free6(
    scenario: Scenario, network: Network, chosen: ipaddress.IPv6Address
) -> ipaddress.IPv6Address:
    """The IPv6 address the lab chose for a new port, unless another port holds it (one
    attached with that IPv6 --ip)."""
    owner = _used6(scenario, network).get(chosen)
    if owner is not None:
        raise InputError(
            f"the new port's IPv6 address {chosen} is already used by {owner}; give its "
            f"IPv6 address with --ip (a free address of {network.cidr6})"
        )
    return chosen


def _floating_ip(
    scenario: Scenario, network_name: str, ip: ipaddress.IPv4Address, wanted: str | None
) -> ipaddress.IPv4Address | None:
    if wanted is None:
        return None
    network = scenario.network(network_name)
    if network.external:
        raise InputError(
            f"--floating-ip: network {network.name} is external: its addresses are public "
            "themselves; leave --floating-ip out"
        )
    if network.gateway is None:
        raise InputError(
            f"--floating-ip: network {network.name} has no router; a floating IP needs one "
            "(give --network with a gateway)"
        )
    taken: dict[ipaddress.IPv4Address, str] = {topo.ROUTER_SNAT: "the router's SNAT address"}
    for port in scenario.ports:
        for fip in port.floating_ips.values():
            taken[fip] = f"{port.name}'s floating IP"
    externals = [n for n in scenario.networks if n.external]
    if wanted == "auto":
        preferred = PUBLIC_RANGE.network_address + int(ip.packed[-1])
        candidates = [preferred, *PUBLIC_RANGE.hosts()]
        for candidate in candidates:
            if (
                candidate in PUBLIC_RANGE
                and candidate not in (PUBLIC_RANGE.network_address, PUBLIC_RANGE.broadcast_address)
                and candidate not in taken
                and not any(candidate in n.cidr for n in externals)
                and int(candidate) - int(PUBLIC_RANGE.network_address) >= POOL_OFFSET
            ):
                return candidate
        raise InputError(f"--floating-ip auto: no free address left in {PUBLIC_RANGE}")
    try:
        fip = ipaddress.IPv4Address(wanted)
    except ValueError as exc:
        raise InputError(
            f"--floating-ip {wanted}: not an IPv4 address; write e.g. 203.0.113.120 or auto"
        ) from exc
    if fip not in PUBLIC_RANGE or fip in (
        PUBLIC_RANGE.network_address,
        PUBLIC_RANGE.broadcast_address,
    ):
        raise InputError(
            f"--floating-ip {wanted}: floating IPs of the lab come from {PUBLIC_RANGE}; give "
            "a free address of it, or auto"
        )
    if fip in taken:
        raise InputError(f"--floating-ip {wanted}: already {taken[fip]}; give another, or auto")
    for external in externals:
        if fip in external.cidr:
            raise InputError(
                f"--floating-ip {wanted}: inside the external network {external.name} "
                f"({external.cidr}); give another, or auto"
            )
    return fip


# -- the running lab -------------------------------------------------------------------
@contextmanager
def locked(lab: Lab) -> Iterator[Scenario]:
    """Hold the lab's event lock; yield the running lab's scenario with its current ports.
    No lab (or one still being built) is bad input: exit 2, nothing changed."""
    prefix = lab.names.prefix
    hint = f"start one with `multihome lab up{_name_arg(prefix)}`"
    state = lab.state()
    if state is None:
        raise InputError(f"no lab named {prefix!r} is up; {hint}")
    if not state.get("complete"):
        raise InputError(
            f"the lab {prefix!r} is being built or its `up` was interrupted; wait, or remove "
            f"it with `multihome lab down{_name_arg(prefix)}`"
        )
    missing = [ns for ns in lab.names.namespaces if not (NETNS_RUN / ns).exists()]
    if missing:
        raise InputError(
            f"the lab {prefix!r} is broken (namespace {', '.join(missing)} missing); remove "
            f"it with `multihome lab down{_name_arg(prefix)}` and start it again"
        )
    try:
        fd = os.open(lab.names.state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError as exc:  # removed by `lab down` meanwhile
        raise InputError(f"no lab named {prefix!r} is up; {hint}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if lab.state() is None:
            raise InputError(f"no lab named {prefix!r} is up; {hint}")
        yield lab.scenario()
    finally:
        os.close(fd)


def _name_arg(prefix: str) -> str:
    return "" if prefix == topo.DEFAULT_PREFIX else f" --name {prefix}"


def find_port(lab: Lab, scenario: Scenario, ifname: str) -> GuestPort:
    """The lab's port ``ifname``, or bad input naming the ports there are."""
    port = scenario.port(ifname)
    if port is None:
        have = ", ".join(p.name for p in scenario.ports) or "none"
        raise InputError(
            f"{ifname}: no such port in the guest of lab {lab.names.prefix!r} (ports: {have}); "
            f"see `multihome lab status{_name_arg(lab.names.prefix)}`"
        )
    return port


def guest_links(lab: Lab) -> set[str]:
    with netlink(lab.names.guest) as guest:
        return {str(link.get_attr("IFLA_IFNAME")) for link in guest.get_links()}


def attach_port(lab: Lab, request: PortRequest) -> GuestPort:
    """Attach a new port to the running guest; on any failure or interruption, undo it."""
    with locked(lab) as scenario:
        port = plan_port(scenario, request, guest_links(lab))
        after = scenario.with_ports((*scenario.ports, port))
        try:
            _plug(lab, after, port)
        except BaseException:
            with suppress(LabError, OSError):
                _unplug(lab, scenario, port, strict=False)
            raise
        return port


def detach_port(lab: Lab, ifname: str) -> GuestPort:
    """Remove a port of the running guest, and everything the cloud had for it."""
    with locked(lab) as scenario:
        port = find_port(lab, scenario, ifname)
        remaining = tuple(p for p in scenario.ports if p.name != ifname)
        _unplug(lab, scenario.with_ports(remaining), port, strict=True)
        return port


def _plug(lab: Lab, after: Scenario, port: GuestPort) -> None:
    nft = lab.programs["nft"]
    lab.save_ports(after.ports)
    lab.run(
        "switch",
        [nft, "-f", "-"],
        f"port security of {port.name}",
        stdin=topo.render_portsec_add(port),
    )
    nat = topo.render_nat_add(port)
    if nat:
        lab.run("router", [nft, "-f", "-"], f"floating IP of {port.name}", stdin=nat)
    if after.port_dhcp(port) or after.port_dhcp6(port):
        lab.write_dhcp(after)
        lab.reload_dhcp(after)
    lab.write_metadata(after)
    failpoint("attach")
    _plug_nic(lab, after, port)


def _plug_nic(lab: Lab, scenario: Scenario, port: GuestPort) -> None:
    """Make the veth pair in the switch (its tap in the bridge, up), then move the NIC end
    into the guest: it appears there complete, down and unconfigured."""
    names = lab.names
    guest_fd = os.open(NETNS_RUN / names.guest, os.O_RDONLY)
    try:
        with netlink(names.switch) as sw:
            sw.link("add", ifname=topo.tap(port), kind="veth", peer={"ifname": port.name})
            nic = _index(sw, port.name)
            sw.link("set", index=nic, address=port.mac)
            _enslave(sw, topo.tap(port), topo.bridge(topo.net_index(scenario, port.network)))
            sw.link("set", index=nic, net_ns_fd=guest_fd)
    finally:
        os.close(guest_fd)


def _unplug(lab: Lab, after: Scenario, port: GuestPort, *, strict: bool) -> None:
    """Remove ``port`` (the NIC first, then the cloud's side); ``after`` is the lab without
    it. Pieces already gone are skipped; ``strict`` raises on other failures."""
    _stop_client(lab, port)
    with netlink(lab.names.guest) as guest:
        found = guest.link_lookup(ifname=port.name)
        if found:
            guest.link("del", index=found[0])
    with netlink(lab.names.switch) as sw:
        for name in (topo.tap(port), port.name):
            found = sw.link_lookup(ifname=name)
            if found:
                sw.link("del", index=found[0])
    lab.write_metadata(after)
    if (lab.names.state_dir / topo.DHCP_HOSTS_FILE).exists():  # dnsmasq runs
        lab.write_dhcp(after)
        lab.reload_dhcp(after)
    nat = topo.render_nat_remove(port)
    if nat:
        _nft_remove(lab, "router", nat, f"floating IP of {port.name}", strict)
    _nft_remove(
        lab, "switch", topo.render_portsec_remove(port), f"port security of {port.name}", strict
    )
    lab.save_ports(after.ports)
    for stem in ("dhclient", "dhclient6"):
        for suffix in ("pid", "leases"):
            with suppress(FileNotFoundError):
                (lab.names.state_dir / f"{stem}.{port.name}.{suffix}").unlink()


def _nft_remove(lab: Lab, node: str, script: str, what: str, strict: bool) -> None:
    try:
        lab.run(node, [lab.programs["nft"], "-f", "-"], what, stdin=script)
    except LabError as exc:
        if strict and "No such file or directory" not in str(exc):
            raise


# -- link and lease events -------------------------------------------------------------
def flap(lab: Lab, ifname: str, down_for: float) -> GuestPort:
    """Set the guest's ``ifname`` down, wait ``down_for`` seconds, set it up again."""
    with locked(lab) as scenario:
        port = find_port(lab, scenario, ifname)
        ip = lab.programs["ip"]
        lab.run("guest", [ip, "link", "set", "dev", ifname, "down"], f"{ifname} down")
        try:
            time.sleep(down_for)
        finally:
            lab.run("guest", [ip, "link", "set", "dev", ifname, "up"], f"{ifname} up")
        return port


@dataclass(frozen=True)
class Renewal:
    """What ``renew`` did."""

    port: GuestPort
    router: ipaddress.IPv4Address | None
    """The router the lease hands out now (None: the network has none)."""
    seconds: float


def renew(lab: Lab, ifname: str, router: str | None = None) -> Renewal:
    """Make the lab's DHCP client of ``ifname`` ask for its lease again; with ``router``,
    dnsmasq hands out that router from now on (the network's gateway: back to normal)."""
    with locked(lab) as scenario:
        port = find_port(lab, scenario, ifname)
        _check_lab_client(lab, scenario, port, "renew")
        network = scenario.network(port.network)
        if router is not None:
            port = _set_router(lab, scenario, port, router)
            now = scenario.with_ports(
                tuple(port if p.name == ifname else p for p in scenario.ports)
            )
            lab.save_ports(now.ports)
            lab.write_dhcp(now)
            lab.reload_dhcp(now)
        started = time.monotonic()
        _stop_client(lab, port)
        lab.lease(port)
        return Renewal(port, port.router or network.gateway, time.monotonic() - started)


def expire(lab: Lab, ifname: str) -> GuestPort:
    """The lease of ``ifname`` is lost: its client stops (no release), and the lab's
    dhclient script runs as at expiry (``reason=EXPIRE``: the address is removed).
    ``renew`` starts the client again."""
    with locked(lab) as scenario:
        port = find_port(lab, scenario, ifname)
        _check_lab_client(lab, scenario, port, "expire")
        _stop_client(lab, port)
        env = ["reason=EXPIRE", f"interface={ifname}", f"old_ip_address={port.ips[0]}"]
        script = str(lab.names.state_dir / "dhclient-script")
        lab.run("guest", ["env", *env, script], f"the DHCP client's expiry on {ifname}")
        return port


def _check_lab_client(lab: Lab, scenario: Scenario, port: GuestPort, verb: str) -> None:
    """``renew``/``expire`` act on the lab's own DHCP clients only."""
    network = scenario.network(port.network)
    if not scenario.port_dhcp(port):
        why = (
            f"network {network.name} has no DHCP"
            if not network.dhcp
            else "it was attached with --no-dhcp"
        )
        raise InputError(f"{port.name}: its address is static ({why}); there is no lease to {verb}")
    foreign = [pid for pid, name in _clients_of(lab, port.name) if pid != _client_pid(lab, port)]
    if port.hotplugged or foreign:
        who = f" (pid {', '.join(map(str, foreign))})" if foreign else ""
        raise InputError(
            f"{port.name}: its DHCP client is not the lab's but one running in the guest"
            f"{who}, such as multihome agent's; `lab {verb}` acts on the clients the lab "
            "started at `up`; restart that client to make it ask again"
        )


def _set_router(lab: Lab, scenario: Scenario, port: GuestPort, wanted: str) -> GuestPort:
    network = scenario.network(port.network)
    try:
        router = ipaddress.IPv4Address(wanted)
    except ValueError as exc:
        raise InputError(
            f"--router {wanted}: not an IPv4 address; write e.g. 192.168.0.254"
        ) from exc
    cidr = network.cidr
    if router not in cidr or router in (cidr.network_address, cidr.broadcast_address):
        raise InputError(
            f"--router {wanted}: not a host address of {port.name}'s network {network.name} "
            f"({cidr}); give one of it"
        )
    if network.gateway is None:
        raise InputError(
            f"--router {wanted}: network {network.name} has no router to answer on it; "
            "leave --router out"
        )
    used = _used(scenario, network.name)
    owner = used.get(router)
    if router != network.gateway and owner is not None and not owner.startswith("the router"):
        raise InputError(f"--router {wanted}: that is {owner}'s address; give a free one")
    if router == network.gateway:
        return _replace_router(port, None)
    # The tenant router answers on the new address too, so the new gateway works.
    leg = topo.router_leg(scenario, topo.net_index(scenario, network.name))
    with netlink(lab.names.router) as rtr:
        index = _index(rtr, leg)
        present = {a.get_attr("IFA_ADDRESS") for a in rtr.get_addr(index=index, family=2)}
        if str(router) not in present:
            rtr.addr("add", index=index, address=str(router), prefixlen=cidr.prefixlen)
    return _replace_router(port, router)


def _replace_router(port: GuestPort, router: ipaddress.IPv4Address | None) -> GuestPort:
    return replace(port, router=router)


def _client_pid(lab: Lab, port: GuestPort) -> int | None:
    return _read_pid(lab.names.state_dir / f"dhclient.{port.name}.pid")


def _clients_of(lab: Lab, ifname: str) -> list[tuple[int, str]]:
    """DHCP client processes for ``ifname`` in the guest, as (pid, program)."""
    found = []
    for pid in netns_pids(lab.names.guest):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        program = os.path.basename(argv[0].decode(errors="replace")) if argv else ""
        if program in DHCP_CLIENTS and ifname.encode() in argv and pid_alive(pid):
            found.append((pid, program))
    return found


def _stop_client(lab: Lab, port: GuestPort) -> None:
    """Stop the lab's DHCP client of ``port`` without a release and without its script
    (SIGKILL), keeping its lease file: what a crash or a lost lease leaves."""
    pid = _client_pid(lab, port)
    if pid is None or not pid_alive(pid):
        return
    if (pid, "dhclient") not in _clients_of(lab, port.name):
        return  # the pid file is stale: never signal another process
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _terminate([pid], grace=2.0)
