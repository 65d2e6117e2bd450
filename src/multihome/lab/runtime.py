"""Building, inspecting and removing a lab: the only module of the lab that changes the host.

Namespaces, links, addresses and routes are made through pyroute2 (the netlink library the
rest of multihome uses); the switch's port security and the router's NAT through ``nft``;
DHCP through the real ``dnsmasq`` and ISC ``dhclient``; IPv6 router advertisements (SLAAC)
through the real ``radvd`` in the router, as Neutron's L3 agent sends them; the guest's static
addresses through
``ip`` inside the guest, as its own tools would. Every name carries the lab's prefix; the
state (pid files, leases, logs, the scenario) lives in ``/run/multihome-lab/<prefix>/``.

``up`` undoes itself on any failure or interruption; ``down`` removes every namespace, every
process running in one of them, and every file, whatever state the lab is in.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multihome import processes
from multihome.errors import (
    InputError,
    LabError,
    LabExistsError,
    LabInterrupted,
    MissingProgramError,
)
from multihome.files import json_text, write_atomic
from multihome.lab import topology as topo
from multihome.lab.scenario import (
    METADATA_ADDRESS,
    PUBLIC_RANGE,
    GuestPort,
    Scenario,
    parse_scenario,
)
from multihome.lab.topology import LabNames
from multihome.processes import pid_alive

#: Program -> the Debian/Ubuntu package that provides it.
REQUIRED_PROGRAMS: Mapping[str, str] = {
    "ip": "iproute2",
    "nft": "nftables",
    "dnsmasq": "dnsmasq-base",
    "dhclient": "isc-dhcp-client",
    "curl": "curl",
    "ping": "iputils-ping",
    "sysctl": "procps",
    "radvd": "radvd",
}
NETNS_RUN = Path("/run/netns")
FAILPOINT_ENV = "MULTIHOME_LAB_FAILPOINT"
ECHO_SCRIPT = Path(__file__).with_name("echo.py")
STATE_FILE = "lab.json"
SCENARIO_FILE = "scenario.yaml"
NETWORK_DATA_FILE = "network_data.json"
META_DATA_FILE = "meta_data.json"
METADATA_PATH = "/openstack/latest/network_data.json"
META_DATA_PATH = "/openstack/latest/meta_data.json"
#: The config drive's tree, as Nova writes it at boot (a hot-plugged port is not in it).
CONFIG_DRIVE_DIR = "config-drive"
#: The guest's current ports, once a port was attached or detached (else the scenario's).
PORTS_FILE = "ports.json"
COMMAND_TIMEOUT = 20.0
#: How long ``up`` waits for SLAAC (DAD of the link-local address, a router solicitation,
#: the advertisement, DAD of the global address: about 2 s).
SLAAC_TIMEOUT = 15.0
#: Where the host's iproute2 configuration is (newer iproute2 ships it in /usr/share only).
IPROUTE2_CONFIG = (Path("/etc/iproute2"), Path("/usr/share/iproute2"))


@dataclass(frozen=True)
class Programs:
    """Absolute paths of the programs the lab runs, found once on PATH."""

    paths: Mapping[str, str]

    def __getitem__(self, name: str) -> str:
        return self.paths[name]


#: What each verb needs: removing or entering a lab needs only ``ip``.
PROBE_PROGRAMS = ("ip", "nft", "curl", "ping")
MINIMAL_PROGRAMS = ("ip",)


def find_programs(
    needed: Sequence[str] = tuple(REQUIRED_PROGRAMS), search_path: str | None = None
) -> Programs:
    """Find the ``needed`` programs on PATH (or ``search_path``), or say what to install."""
    found: dict[str, str] = {}
    missing: list[tuple[str, str]] = []
    for program in needed:
        package = REQUIRED_PROGRAMS[program]
        path = shutil.which(program, path=search_path)
        if path is None:
            missing.append((program, package))
        else:
            found[program] = path
    if missing:
        programs = ", ".join(f"`{program}` (package {package})" for program, package in missing)
        packages = " ".join(sorted({package for _, package in missing}))
        raise MissingProgramError(
            f"the lab needs {programs}, not found on PATH; install with: "
            f"apt-get install {packages}   (or run `make deps`); nothing was changed"
        )
    return Programs(found)


def require_pyroute2() -> None:
    """The lab builds its namespaces through pyroute2 (the rest of multihome has its own
    rtnetlink codec and does not need it): say how to get it, before anything is changed."""
    try:
        import pyroute2  # noqa: F401 - only whether it is there
    except ImportError as exc:
        raise MissingProgramError(
            "the lab needs the Python library pyroute2 (multihome's other commands do not); "
            "install it with: pip install 'multihome[lab]' (or apt-get install "
            "python3-pyroute2); nothing was changed"
        ) from exc


def require_root() -> None:
    """The lab creates network namespaces: it runs as root only."""
    processes.require_root("the lab (it creates network namespaces)", "run it with sudo")


@dataclass(frozen=True)
class UpResult:
    """What ``up`` built."""

    names: LabNames
    scenario: Scenario
    seconds: float


@dataclass(frozen=True)
class DownResult:
    """What ``down`` removed."""

    namespaces: tuple[str, ...]
    processes: int
    paths: tuple[str, ...]
    seconds: float

    @property
    def anything(self) -> bool:
        return bool(self.namespaces or self.processes or self.paths)


@dataclass(frozen=True)
class Process:
    """A daemon of the lab: which node it runs on, its pid, and whether it is alive."""

    name: str
    node: str
    pid: int | None
    alive: bool


@dataclass(frozen=True)
class LabStatus:
    """A running lab as found on the host."""

    prefix: str
    scenario: str | None
    namespaces: Mapping[str, bool]
    processes: tuple[Process, ...]
    guest_addresses: tuple[str, ...]
    guest_routes: tuple[str, ...]
    guest_rules: tuple[str, ...]
    problems: tuple[str, ...] = field(default=())

    @property
    def up(self) -> bool:
        return self.scenario is not None and all(self.namespaces.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "up": self.up,
            "scenario": self.scenario,
            "namespaces": dict(self.namespaces),
            "processes": [
                {"name": p.name, "node": p.node, "pid": p.pid, "alive": p.alive}
                for p in self.processes
            ],
            "guest": {
                "addresses": list(self.guest_addresses),
                "routes": list(self.guest_routes),
                "rules": list(self.guest_rules),
            },
            "problems": list(self.problems),
        }


def failpoint(step: str) -> None:
    """Test hook: ``MULTIHOME_LAB_FAILPOINT=<step>`` fails ``up`` at that step,
    ``<step>:hang`` makes it wait there (to be interrupted)."""
    value = os.environ.get(FAILPOINT_ENV, "")
    wanted, _, mode = value.partition(":")
    if wanted != step:
        return
    if mode == "hang":
        time.sleep(120)
    raise LabError(f"injected failure at step {step!r} ({FAILPOINT_ENV})")


class Lab:
    """One lab, named by its prefix."""

    def __init__(self, names: LabNames, programs: Programs) -> None:
        self.names = names
        self.programs = programs

    # -- helpers ---------------------------------------------------------------------------
    def exec_argv(self, node: str, command: Sequence[str]) -> list[str]:
        """The command line that runs ``command`` inside ``node``'s namespace."""
        return [self.programs["ip"], "netns", "exec", self.names.namespace(node), *command]

    def run(
        self,
        node: str,
        command: Sequence[str],
        what: str,
        timeout: float = COMMAND_TIMEOUT,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` in ``node``; a failure raises :class:`LabError` saying ``what``."""
        argv = self.exec_argv(node, command)
        try:
            done = subprocess.run(
                argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise LabError(
                f"{what}: `{' '.join(command)}` in {node} did not finish within {timeout:g} s"
            ) from exc
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise LabError(
                f"{what}: `{' '.join(command)}` in {node} failed with exit "
                f"{done.returncode}: {' / '.join(detail[-3:]) or '(no output)'}"
            )
        return done

    def existing_namespaces(self) -> list[str]:
        return [ns for ns in self.names.namespaces if (NETNS_RUN / ns).exists()]

    def exists(self) -> bool:
        return (
            bool(self.existing_namespaces())
            or self.names.state_dir.exists()
            or self.names.guest_etc.exists()
        )

    def state(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.names.state_dir / STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def scenario(self) -> Scenario:
        """The scenario of the running lab (read back from its state), with the ports the
        guest has now (``attach-port`` and ``detach-port`` change them)."""
        if self.state() is None:
            raise InputError(
                f"no lab named {self.names.prefix!r} is up; start one with "
                f"`multihome lab up --name {self.names.prefix}`"
            )
        path = self.names.state_dir / SCENARIO_FILE
        scenario = parse_scenario(path.read_text(encoding="utf-8"), str(path))
        try:
            raw = (self.names.state_dir / PORTS_FILE).read_text(encoding="utf-8")
        except FileNotFoundError:
            return scenario
        ports = tuple(GuestPort.from_json(item) for item in json.loads(raw)["ports"])
        return scenario.with_ports(ports)

    def save_ports(self, ports: Sequence[GuestPort]) -> None:
        """Record the guest's current ports (atomically: a reader sees old or new)."""
        write_atomic(
            self.names.state_dir / PORTS_FILE,
            json_text({"ports": [p.to_json() for p in ports]}),
            durable=False,
        )

    def write_metadata(self, scenario: Scenario) -> None:
        """What the metadata host serves now (the echo reads the files on every request)."""
        state_dir = self.names.state_dir
        write_atomic(state_dir / NETWORK_DATA_FILE, topo.network_data_json(scenario), durable=False)
        write_atomic(state_dir / META_DATA_FILE, topo.meta_data_json(self.names), durable=False)

    def write_dhcp(self, scenario: Scenario) -> None:
        """dnsmasq's hosts and options files (read again by :meth:`reload_dhcp`)."""
        state_dir = self.names.state_dir
        write_atomic(state_dir / topo.DHCP_HOSTS_FILE, topo.dhcp_hosts(scenario), durable=False)
        write_atomic(state_dir / topo.DHCP_OPTS_FILE, topo.dhcp_opts(scenario), durable=False)

    def reload_dhcp(self, scenario: Scenario) -> bool:
        """Make dnsmasq read its hosts and options files again; False when it never ran.

        Not with SIGHUP: dnsmasq 2.90 (Debian 12) dies of a general protection fault on
        SIGHUP once it has served a lease, whatever the configuration. It is restarted
        instead; its leases file keeps the leases of the ports still there (a client that
        asks meanwhile, a few ms, retries), not those of a detached port: Neutron releases a
        deleted port's lease, else its address could not go to the next port.
        """
        state_dir = self.names.state_dir
        pid = _read_pid(state_dir / "dnsmasq.pid")
        if pid is None:
            return False
        if pid_alive(pid) and str(state_dir).encode() in _cmdline(pid):
            _terminate([pid])
        _keep_leases(state_dir / "dnsmasq.leases", {p.mac.lower() for p in scenario.ports})
        self.run(
            "dhcp",
            [self.programs["dnsmasq"], *topo.dnsmasq_args(scenario, state_dir)],
            "DHCP server restart",
        )
        return True

    def dhclient_argv(
        self, port: GuestPort, family: int = 4, *, stateless: bool = False
    ) -> list[str]:
        """The lab's DHCP client for ``port``: ISC dhclient with the lab's script, which
        gives every route of an IPv4 lease the port's metric; it forks once it has a lease.
        ``family`` 6: the DHCPv6 client (``dhclient -6``, the same script, its own files;
        ``-S`` on a stateless subnet: an information request, no address)."""
        state_dir = self.names.state_dir
        if family == 4:
            stem, extra = "dhclient", ["-e", f"IF_METRIC={port.metric}"]
        else:
            stem = "dhclient6"
            extra = ["-e", f"IF_INFO={state_dir / topo.dhcp6_info_file(port)}"]
        return [
            self.programs["dhclient"],
            f"-{family}",
            *(["-S"] if stateless else []),
            "-1",
            "-cf",
            str(state_dir / "dhclient.conf"),
            "-sf",
            str(state_dir / "dhclient-script"),
            "-lf",
            str(state_dir / f"{stem}.{port.name}.leases"),
            "-pf",
            str(state_dir / f"{stem}.{port.name}.pid"),
            *extra,
            port.name,
        ]

    def lease(self, port: GuestPort) -> None:
        """Run the lab's DHCP client for ``port`` until it has a lease (it stays running)."""
        self.run("guest", self.dhclient_argv(port), f"DHCP client on {port.name}", timeout=30)

    # -- up --------------------------------------------------------------------------------
    def up(self, scenario: Scenario) -> UpResult:
        """Build the lab for ``scenario``; on any failure or interruption remove it again."""
        require_root()
        if self.exists():
            state = self.state() or {}
            what = f" (scenario {state['scenario']})" if "scenario" in state else ""
            raise LabExistsError(
                f"a lab named {self.names.prefix!r} already exists{what}; remove "
                f"it with `multihome lab down --name {self.names.prefix}`, or "
                "pick another --name"
            )
        started = time.monotonic()
        try:
            _make_state_dir(self.names.state_dir)  # the lock: one `up` per name at a time
        except FileExistsError as exc:
            raise LabExistsError(
                f"a lab named {self.names.prefix!r} is being built by another command; "
                "pick another --name"
            ) from exc
        try:
            self._build(scenario)
            seconds = time.monotonic() - started
            self._write_state(scenario, complete=True, seconds=seconds)
            return UpResult(self.names, scenario, seconds)
        except BaseException:
            self.down()
            raise

    def _write_state(self, scenario: Scenario, *, complete: bool, seconds: float = 0.0) -> None:
        state = {
            "prefix": self.names.prefix,
            "scenario": scenario.name,
            "number": scenario.number,
            "complete": complete,
            "namespaces": list(self.names.namespaces),
            "up_seconds": round(seconds, 3),
            "created_by_pid": os.getpid(),
        }
        (self.names.state_dir / STATE_FILE).write_text(json_text(state), encoding="utf-8")

    def _build(self, scenario: Scenario) -> None:
        state_dir = self.names.state_dir
        (state_dir / SCENARIO_FILE).write_text(scenario.text, encoding="utf-8")
        self._write_state(scenario, complete=False)
        for namespace in self.names.namespaces:
            done = subprocess.run(
                [self.programs["ip"], "netns", "add", namespace],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise LabError(f"cannot create namespace {namespace}: {done.stderr.strip()}")
        failpoint("namespaces")
        self._sysctls(scenario)
        failpoint("sysctls")
        self._links(scenario)
        if scenario.ipv6:
            # Each NIC's router-advertised default gets the NIC's metric, as the IPv4 lease's
            # routes do (NetworkManager's per-device metric): eth0's wins in main.
            self.run(
                "guest",
                [
                    self.programs["sysctl"],
                    "-q",
                    "-w",
                    *(
                        f"net.ipv6.conf.{p.name}.ra_defrtr_metric={p.metric}"
                        for p in scenario.ports
                    ),
                ],
                "guest router-advertisement metrics",
            )
        failpoint("links")
        guest_iproute2 = self.names.guest_etc / "iproute2"
        source = next((p for p in IPROUTE2_CONFIG if p.is_dir()), None)
        if source is None:
            guest_iproute2.mkdir(parents=True)
        else:
            shutil.copytree(source, guest_iproute2, symlinks=True)
        failpoint("etc")
        self.run(
            "switch",
            [self.programs["nft"], "-f", "-"],
            "port security",
            stdin=topo.render_portsec(scenario),
        )
        self.run(
            "router",
            [self.programs["nft"], "-f", "-"],
            "router NAT",
            stdin=topo.render_router_nat(scenario),
        )
        failpoint("firewall")
        self._services(scenario)
        failpoint("services")
        self._guest(scenario)
        failpoint("guest")

    def _sysctls(self, scenario: Scenario) -> None:
        """Explicit values: a new namespace copies the host's defaults."""
        quiet = {"net.ipv6.conf.all.disable_ipv6": 1, "net.ipv6.conf.default.disable_ipv6": 1}
        plain = {**quiet, "net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.default.rp_filter": 0}
        guest = dict(quiet)
        for scope in ("all", "default"):
            for knob, value in scenario.guest_sysctls.items():
                guest[f"net.ipv4.conf.{scope}.{knob}"] = value
        # No ICMP redirects: the metadata route below goes back out of the port it came in
        # by, and a guest taking the redirect would cache a route of the router's.
        router: dict[str, int] = {
            **plain,
            "net.ipv4.ip_forward": 1,
            "net.ipv4.conf.all.send_redirects": 0,
            "net.ipv4.conf.default.send_redirects": 0,
        }
        internet = dict(plain)
        dhcp = dict(plain)
        if scenario.ipv6:
            # A cloud image's guest: router advertisements accepted, SLAAC addresses from the
            # MAC (EUI-64, as Neutron computes them), no privacy addresses (port security
            # would drop them). The router and the internet host skip DAD (static addresses).
            for scope in ("all", "default"):
                guest.update(
                    {
                        f"net.ipv6.conf.{scope}.disable_ipv6": 0,
                        f"net.ipv6.conf.{scope}.forwarding": 0,
                        f"net.ipv6.conf.{scope}.accept_ra": 1,
                        f"net.ipv6.conf.{scope}.use_tempaddr": 0,
                        f"net.ipv6.conf.{scope}.addr_gen_mode": 0,
                    }
                )
                dhcp6 = [dhcp] if any(n.serves_dhcpv6 for n in scenario.networks) else []
                for values in (router, internet, *dhcp6):
                    values[f"net.ipv6.conf.{scope}.disable_ipv6"] = 0
                    values[f"net.ipv6.conf.{scope}.accept_dad"] = 0
                router[f"net.ipv6.conf.{scope}.forwarding"] = 1
        per_node = {
            "guest": guest,
            "switch": quiet,
            "router": router,
            "dhcp": dhcp,
            "internet": internet,
        }
        for node, values in per_node.items():
            self.run(
                node,
                [self.programs["sysctl"], "-q", "-w", *(f"{k}={v}" for k, v in values.items())],
                "sysctls",
            )

    def _links(self, scenario: Scenario) -> None:
        names = self.names
        for namespace in names.namespaces:
            with netlink(namespace) as ipr:
                ipr.link("set", index=_index(ipr, "lo"), state="up")
        switch_fd = os.open(NETNS_RUN / names.switch, os.O_RDONLY)
        internet_fd = os.open(NETNS_RUN / names.internet, os.O_RDONLY)
        try:
            self._wire(scenario, switch_fd, internet_fd)
        finally:
            os.close(switch_fd)
            os.close(internet_fd)

    def _wire(self, scenario: Scenario, switch_fd: int, internet_fd: int) -> None:
        names = self.names
        with netlink(names.switch) as sw:
            for index, _network in enumerate(scenario.networks):
                sw.link(
                    "add",
                    ifname=topo.bridge(index),
                    kind="bridge",
                    br_stp_state=0,
                    br_forward_delay=0,
                )
                sw.link("set", index=_index(sw, topo.bridge(index)), state="up")
        with netlink(names.guest) as guest:
            for port in scenario.ports:
                guest.link(
                    "add",
                    ifname=port.name,
                    kind="veth",
                    address=port.mac,
                    peer={"ifname": topo.tap(port), "net_ns_fd": switch_fd},
                )
                guest.link("set", index=_index(guest, port.name), state="up")
        with netlink(names.router) as rtr:
            for index, network in enumerate(scenario.networks):
                if network.gateway is None:
                    continue
                leg = topo.router_leg(scenario, index)
                rtr.link(
                    "add",
                    ifname=leg,
                    kind="veth",
                    peer={"ifname": topo.router_leg_peer(index), "net_ns_fd": switch_fd},
                )
                _up_with_address(rtr, leg, str(network.gateway), network.cidr.prefixlen)
                if network.gateway6 is not None:
                    rtr.addr(
                        "add", index=_index(rtr, leg), address=str(network.gateway6), prefixlen=64
                    )
            rtr.link(
                "add",
                ifname=topo.UPLINK,
                kind="veth",
                peer={"ifname": "eth0", "net_ns_fd": internet_fd},
            )
            _up_with_address(
                rtr, topo.UPLINK, str(topo.ROUTER_UPLINK.ip), topo.ROUTER_UPLINK.network.prefixlen
            )
            if scenario.ipv6:
                rtr.addr(
                    "add",
                    index=_index(rtr, topo.UPLINK),
                    address=str(topo.ROUTER_UPLINK6.ip),
                    prefixlen=topo.ROUTER_UPLINK6.network.prefixlen,
                )
            # The router serves metadata too, as Neutron's does (its metadata proxy): a guest
            # whose 169.254.169.254 host route is gone reaches it through its default.
            server = next(
                (n.dhcp_server for n in scenario.networks if n.gateway and n.dhcp_server), None
            )
            if server is not None:
                rtr.route("add", dst=f"{METADATA_ADDRESS}/32", gateway=str(server))
        with netlink(names.dhcp) as dhcp:
            dhcp.addr("add", index=_index(dhcp, "lo"), address=str(METADATA_ADDRESS), prefixlen=32)
            for index, network in enumerate(scenario.networks):
                if network.dhcp_server is None:
                    continue
                leg = topo.dhcp_leg(index)
                dhcp.link(
                    "add",
                    ifname=leg,
                    kind="veth",
                    peer={"ifname": topo.dhcp_leg_peer(index), "net_ns_fd": switch_fd},
                )
                _up_with_address(dhcp, leg, str(network.dhcp_server), network.cidr.prefixlen)
                if network.dhcp_server6 is not None:
                    dhcp.addr(
                        "add",
                        index=_index(dhcp, leg),
                        address=str(network.dhcp_server6),
                        prefixlen=64,
                    )
        with netlink(names.internet) as inet:
            _up_with_address(
                inet,
                "eth0",
                str(topo.INTERNET_INTERFACE.ip),
                topo.INTERNET_INTERFACE.network.prefixlen,
            )
            inet.route("add", dst=str(PUBLIC_RANGE), gateway=str(topo.ROUTER_UPLINK.ip))
            if scenario.ipv6:
                inet.addr(
                    "add",
                    index=_index(inet, "eth0"),
                    address=str(topo.INTERNET_INTERFACE6.ip),
                    prefixlen=topo.INTERNET_INTERFACE6.network.prefixlen,
                )
                inet.route(
                    "add",
                    dst=str(topo.TENANT_RANGE6),
                    gateway=str(topo.ROUTER_UPLINK6.ip),
                    family=socket.AF_INET6,
                )
        with netlink(names.switch) as sw:
            for port in scenario.ports:
                _enslave(sw, topo.tap(port), topo.bridge(topo.net_index(scenario, port.network)))
            for index, network in enumerate(scenario.networks):
                if network.gateway is not None:
                    _enslave(sw, topo.router_leg_peer(index), topo.bridge(index))
                if network.dhcp_server is not None:
                    _enslave(sw, topo.dhcp_leg_peer(index), topo.bridge(index))

    def _services(self, scenario: Scenario) -> None:
        state_dir = self.names.state_dir
        if scenario.ipv6:
            (state_dir / "radvd.conf").write_text(
                topo.radvd_conf(
                    topo.router_advertised(scenario),
                    managed=topo.managed_legs(scenario),
                    other=topo.other_legs(scenario),
                ),
                encoding="utf-8",
            )
            self.run("router", [self.programs["radvd"], *topo.radvd_args(state_dir)], "radvd")
        if any(n.dhcp for n in scenario.networks):
            self.write_dhcp(scenario)
            self.run(
                "dhcp",
                [self.programs["dnsmasq"], *topo.dnsmasq_args(scenario, state_dir)],
                "DHCP server",
            )
        self.write_metadata(scenario)
        drive = state_dir / CONFIG_DRIVE_DIR / "openstack" / "latest"
        drive.mkdir(parents=True)
        shutil.copyfile(state_dir / NETWORK_DATA_FILE, drive / NETWORK_DATA_FILE)
        shutil.copyfile(state_dir / META_DATA_FILE, drive / META_DATA_FILE)
        self._echo(
            "dhcp",
            "metadata",
            str(METADATA_ADDRESS),
            files={
                METADATA_PATH: state_dir / NETWORK_DATA_FILE,
                META_DATA_PATH: state_dir / META_DATA_FILE,
            },
        )
        self._echo("internet", "internet", str(topo.INTERNET_INTERFACE.ip))
        if scenario.ipv6:
            self._echo("internet", "internet6", str(topo.INTERNET_INTERFACE6.ip))

    def _echo(
        self, node: str, name: str, bind: str, files: Mapping[str, Path] | None = None
    ) -> None:
        state_dir = self.names.state_dir
        command = [
            sys.executable,
            str(ECHO_SCRIPT),
            "--bind",
            bind,
            "--port",
            str(topo.HTTP_PORT),
            "--pid-file",
            str(state_dir / f"{name}.pid"),
            "--log",
            str(state_dir / f"{name}.log"),
        ]
        for url, path in (files or {}).items():
            command += ["--file", f"{url}={path}"]
        self.run(node, command, f"{name} HTTP service")

    def _guest(self, scenario: Scenario) -> None:
        state_dir = self.names.state_dir
        conf = state_dir / "dhclient.conf"
        conf.write_text(topo.DHCLIENT_CONF, encoding="utf-8")
        script = state_dir / "dhclient-script"
        script.write_text(topo.dhclient_script(self.programs["ip"]), encoding="utf-8")
        script.chmod(0o755)
        errors: list[str] = []

        def lease(port: GuestPort) -> None:
            try:
                self.lease(port)
            except LabError as exc:
                errors.append(str(exc))

        def lease6(port: GuestPort) -> None:
            try:  # dhclient -6 binds to the link-local address: wait for its DAD
                self._wait_for_addresses({port.name: set()}, defaults=False, what="link-local")
                stateless = scenario.network(port.network).stateless
                argv = self.dhclient_argv(port, 6, stateless=stateless)
                self.run("guest", argv, f"DHCPv6 client on {port.name}", 30)
            except LabError as exc:
                errors.append(str(exc))

        threads = [
            threading.Thread(target=lease, args=(port,), daemon=True)
            for port in topo.lab_clients(scenario)
        ] + [
            threading.Thread(target=lease6, args=(port,), daemon=True)
            for port in topo.lab_clients6(scenario)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise LabError("; ".join(errors))
        failpoint("guest-dhcp")
        ip = self.programs["ip"]
        for port in scenario.ports:
            network = scenario.network(port.network)
            prefix = network.cidr.prefixlen
            extra = port.ips[1:] if scenario.port_dhcp(port) else port.ips
            for number, address in enumerate(extra):
                command = [ip, "-4", "addr", "add", f"{address}/{prefix}", "dev", port.name]
                if not scenario.port_dhcp(port) and number == 0:
                    command += ["metric", str(port.metric)]
                self.run("guest", command, f"static address on {port.name}")
            if not scenario.port_dhcp(port) and network.gateway is not None and port.ips:
                self.run(
                    "guest",
                    [
                        ip,
                        "-4",
                        "route",
                        "add",
                        "default",
                        "via",
                        str(network.gateway),
                        "dev",
                        port.name,
                        "proto",
                        "static",
                        "metric",
                        str(port.metric),
                    ],
                    f"static route on {port.name}",
                )
        if scenario.ipv6:
            wanted = {p.name: {str(ip) for ip in p.ips6} for p in scenario.ports if p.ips6}
            self._wait_for_addresses(wanted, defaults=True, what="SLAAC or DHCPv6 address")
        self._echo("guest", "guest", "::" if scenario.ipv6 else "0.0.0.0")

    def _wait_for_addresses(
        self, wanted: Mapping[str, set[str]], *, defaults: bool, what: str
    ) -> None:
        """Until every port of ``wanted`` (name -> its IPv6 addresses) has them past DAD, a
        link-local address past DAD, and (``defaults``) its advertised default: a lab that
        is up answers on every address at once."""
        deadline = time.monotonic() + SLAAC_TIMEOUT
        with netlink(self.names.guest) as ipr:
            while True:
                missing = _ipv6_missing(ipr, wanted, defaults=defaults)
                if not missing:
                    return
                if time.monotonic() > deadline:
                    raise LabError(
                        f"no {what}{' or router-advertised default' if defaults else ''} on "
                        f"{', '.join(missing)} within {SLAAC_TIMEOUT:g} s; see "
                        f"{self.names.state_dir / 'radvd.log'}"
                    )
                time.sleep(0.05)

    # -- down ------------------------------------------------------------------------------
    def down(self) -> DownResult:
        """Remove every process, namespace and file of this lab; safe to repeat."""
        started = time.monotonic()
        with _signals_ignored():
            namespaces = self.existing_namespaces()
            # What multihome (apply, agent) ran inside the guest kept under /run: the state
            # directories that record the guest namespace's inode (found while it is alive,
            # so that inode is the guest's), which go with it.
            guest_state = [
                d for ns in namespaces if ns == self.names.guest for d in _multihome_state_dirs(ns)
            ]
            pids = sorted({pid for ns in namespaces for pid in netns_pids(ns)})
            _terminate(pids)
            for namespace in namespaces:
                subprocess.run(
                    [self.programs["ip"], "netns", "delete", namespace],
                    capture_output=True,
                    check=False,
                )
            paths: list[str] = []
            for path in (self.names.guest_etc, self.names.state_dir, *guest_state):
                if path.exists():
                    shutil.rmtree(path, ignore_errors=True)
                    paths.append(str(path))
            from multihome.transaction.statedir import STATE_BASE

            for parent in (topo.STATE_ROOT, STATE_BASE):
                with suppress(OSError):
                    Path(parent).rmdir()  # only when empty: other labs (or multihome) use it
        left = self.existing_namespaces()
        if left:
            raise LabError(
                f"could not remove namespace(s) {', '.join(left)}; see "
                "`ip netns pids NAME`, then `ip netns delete NAME`"
            )
        return DownResult(tuple(namespaces), len(pids), tuple(paths), time.monotonic() - started)

    # -- status ----------------------------------------------------------------------------
    def status(self) -> LabStatus:
        state = self.state()
        namespaces = {ns: (NETNS_RUN / ns).exists() for ns in self.names.namespaces}
        processes: list[Process] = []
        problems: list[str] = []
        scenario: Scenario | None = None
        if state is not None:
            with suppress(InputError, OSError):  # not LabInterrupted
                scenario = self.scenario()
            if not state.get("complete"):
                problems.append(
                    "the lab is being built, or its `up` was interrupted; run "
                    f"`multihome lab down --name {self.names.prefix}`"
                )
        for name, node in self._daemons(scenario):
            pid = _read_pid(self.names.state_dir / f"{name}.pid")
            alive = pid is not None and pid_alive(pid)
            processes.append(Process(name, node, pid, alive))
            if state is not None and not alive:
                problems.append(f"{name} ({node}) is not running")
        for namespace, present in namespaces.items():
            if state is not None and not present:
                problems.append(f"namespace {namespace} is missing")
        addresses: tuple[str, ...] = ()
        routes: tuple[str, ...] = ()
        rules: tuple[str, ...] = ()
        if namespaces[self.names.guest]:
            ipv6 = scenario is not None and scenario.ipv6
            addresses = self._lines([*([] if ipv6 else ["-4"]), "-brief", "addr", "show"])
            routes = self._lines(["-4", "route", "show"])
            rules = self._lines(["-4", "rule", "show"])
            if ipv6:  # an IPv6 lab: both families, IPv4 first
                routes += self._lines(["-6", "route", "show"])
                rules += self._lines(["-6", "rule", "show"])
        if state is None and any(namespaces.values()):
            problems.append(
                "namespaces of this lab exist without its state; remove them with "
                f"`multihome lab down --name {self.names.prefix}`"
            )
        return LabStatus(
            self.names.prefix,
            str(state["scenario"]) if state else None,
            namespaces,
            tuple(processes),
            addresses,
            routes,
            rules,
            tuple(problems),
        )

    def _daemons(self, scenario: Scenario | None) -> list[tuple[str, str]]:
        daemons = [("internet", "internet"), ("metadata", "dhcp"), ("guest", "guest")]
        if scenario is None:
            return daemons
        if any(n.dhcp for n in scenario.networks):
            daemons.append(("dnsmasq", "dhcp"))
        if scenario.ipv6:
            daemons += [("radvd", "router"), ("internet6", "internet")]
        daemons += [(f"dhclient.{port.name}", "guest") for port in topo.lab_clients(scenario)]
        daemons += [  # dhclient -6 -S (stateless) is done once it has the information
            (f"dhclient6.{p.name}", "guest")
            for p in topo.lab_clients6(scenario)
            if not scenario.network(p.network).stateless
        ]
        return daemons

    def _lines(self, args: list[str]) -> tuple[str, ...]:
        done = subprocess.run(
            [self.programs["ip"], "-n", self.names.guest, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
        return tuple(" ".join(line.split()) for line in done.stdout.splitlines() if line.strip())


CLONE_NEWNET = 0x40000000


IFA_F_TENTATIVE = 0x40
IFA_F_DADFAILED = 0x08
RTPROT_RA = 9


def _ipv6_missing(ipr: Any, wanted: Mapping[str, set[str]], *, defaults: bool) -> list[str]:
    """The ports of ``wanted`` (name -> its IPv6 addresses) that lack one of them past DAD,
    a link-local address past DAD, or (``defaults``) their router-advertised default."""
    index = {name: _index(ipr, name) for name in wanted}
    done: set[str] = set()
    link_local: set[int] = set()
    for msg in ipr.get_addr(family=socket.AF_INET6):
        flags = msg.get_attr("IFA_FLAGS") or msg["flags"]
        if flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED):
            continue
        address = str(msg.get_attr("IFA_ADDRESS"))
        done.add(f"{msg['index']} {address}")
        if address.startswith("fe80:"):
            link_local.add(msg["index"])
    routed = {
        msg.get_attr("RTA_OIF")
        for msg in ipr.get_routes(family=socket.AF_INET6, table=254)
        if msg["dst_len"] == 0 and msg["proto"] == RTPROT_RA
    }
    return [
        name
        for name, addresses in wanted.items()
        if (defaults and index[name] not in routed)
        or index[name] not in link_local
        or any(f"{index[name]} {address}" not in done for address in addresses)
    ]


def _keep_leases(path: Path, macs: set[str]) -> None:
    """Drop from dnsmasq's leases file (``EXPIRY MAC IP NAME CLIENT-ID`` per line) every
    lease of a MAC not in ``macs`` (dnsmasq is not running)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return
    kept = [line for line in lines if len(line.split()) < 2 or line.split()[1].lower() in macs]
    if kept != lines:
        write_atomic(path, "".join(f"{line}\n" for line in kept), durable=False)


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


@contextmanager
def netlink(namespace: str) -> Iterator[Any]:
    """A pyroute2 ``IPRoute`` whose socket lives in ``namespace``.

    The calling thread enters the namespace only to open the socket and returns at once
    (pyroute2's own ``netns=`` forks a helper per socket, which stalls for seconds at times).
    """
    from pyroute2 import IPRoute

    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(NETNS_RUN / namespace, os.O_RDONLY)
    except OSError:
        os.close(home)
        raise
    try:
        _setns(target)
        try:
            ipr = IPRoute()
        finally:
            _setns(home)  # never fails: an fd of the namespace this thread came from
    finally:
        os.close(target)
        os.close(home)
    try:
        yield ipr
    finally:
        ipr.close()


def _index(ipr: Any, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise LabError(f"interface {ifname} did not appear")
    return int(found[0])


def _up_with_address(ipr: Any, ifname: str, address: str, prefixlen: int) -> None:
    index = _index(ipr, ifname)
    ipr.addr("add", index=index, address=address, prefixlen=prefixlen)
    ipr.link("set", index=index, state="up")


def _enslave(ipr: Any, ifname: str, bridge: str) -> None:
    ipr.link("set", index=_index(ipr, ifname), master=_index(ipr, bridge), state="up")


def _make_state_dir(path: Path) -> None:
    """Create ``path``; another lab's ``down`` may remove an empty parent meanwhile."""
    for _ in range(5):
        try:
            path.parent.mkdir(mode=0o755, exist_ok=True)
            path.mkdir(mode=0o700)
            return
        except FileNotFoundError:
            continue
    path.mkdir(mode=0o700, parents=True)


def netns_pids(namespace: str) -> list[int]:
    """Pids of the processes running in ``namespace`` (what ``ip netns pids`` prints)."""
    try:
        target = os.stat(NETNS_RUN / namespace)
    except OSError:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            found = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if (found.st_dev, found.st_ino) == (target.st_dev, target.st_ino):
            pids.append(int(entry))
    return pids


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8").split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _terminate(pids: Sequence[int], grace: float = 2.0) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL what is left."""
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in pids):
        time.sleep(0.02)
    for pid in pids:
        if pid_alive(pid):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def _signals_ignored() -> Iterator[None]:
    """Let a teardown finish even when the user presses Ctrl-C again."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


@contextmanager
def interruptible(
    undone: str = "everything the lab had built is removed", *, late: bool = True
) -> Iterator[None]:
    """Turn SIGINT, SIGTERM and SIGHUP into :class:`LabInterrupted`, so that ``up`` (and
    ``demo``, ``attach-port``) clean up after themselves and the message says what happened
    (``undone``). With ``late``, a signal whose exception was lost (raised inside a
    finalizer, where Python ignores it) is raised when the block ends, whose caller undoes
    what was built; without it (``undone`` says steps were undone) it stays lost."""

    fired: list[LabInterrupted] = []

    def handler(signum: int, _frame: object) -> None:
        fired.append(LabInterrupted(f"interrupted by {signal.Signals(signum).name}; {undone}"))
        raise fired[-1]

    def unraisable(hook: Any) -> None:
        """A signal that lands in a finalizer (``__del__``): Python ignores the exception
        raised there and prints a traceback; it is raised again on the way out instead."""
        if not any(hook.exc_value is exc for exc in fired):
            previous_hook(hook)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {sig: signal.signal(sig, handler) for sig in _SIGNALS}
    previous_hook = sys.unraisablehook
    if late:
        sys.unraisablehook = unraisable
    try:
        yield
        if fired and late:  # its exception was lost (a finalizer, a broad except): it stands
            raise fired[0]
    finally:
        sys.unraisablehook = previous_hook
        for sig, previous in old.items():
            signal.signal(sig, previous)


def _multihome_state_dirs(namespace: str) -> list[Path]:
    """The multihome state directories below / of the named namespace (while it exists;
    see multihome-safety(8))."""
    from multihome.transaction.statedir import of_inode

    try:
        inode = os.stat(NETNS_RUN / namespace).st_ino
    except OSError:
        return []
    return [Path(state.path) for state in of_inode("/", inode)]
