"""Benchmark: the agent's reconcile latency, idle CPU and memory, in namespaces.

Builds a guest namespace (eth0, eth1 on 192.168.0.0/24, a default per port in main) and a
peer namespace (bridge = gateway), starts ``multihome agent`` in the guest, then disturbs the
guest N times per kind and measures, from just before the disturbing netlink call to the
moment the corrected state is visible in the kernel:

* ``default``: a DHCP client's default via eth1 added to main -> removed again;
* ``flap``: eth1 set up again after a down that flushed its table -> table default back;
* ``hotplug``: a third port (veth, address, default in main) -> its table default and rules;
* ``detach``: that port deleted -> no owned rule mentions it.

``--dual-stack``: every port also has a global IPv6 address on 2001:db8::/64 and the default a
router advertisement gives it (via the router's link-local address ``fe80::1``, ``proto ra``,
metric 1024+i as ``ra_defrtr_metric`` makes the kernel install it), and the events are the
router's:

* ``ra-lifetime0``: eth1's RA default removed from main, as the kernel does when the router
  lifetime reaches 0 -> eth1's table has no IPv6 default any more;
* ``ra-default``: the RA default added again, as the kernel (or networkd) does on the next
  advertisement -> eth1's table has it again;
* ``flap``: eth1 down (the kernel drops its routes and its global address) and up, then what
  the router's answer to the port's solicitation gives it (SLAAC's address, the RA default)
  -> eth1's table has both defaults again;
* ``hotplug`` and ``detach`` of a dual-stack port: both families' rules and defaults.

The measuring side does not poll blindly: it wakes on the namespace's own netlink events
(a raw rtnetlink socket) and checks the condition with one dump per wake-up. Then it reads
the agent's CPU time over an idle period and its resident memory.

Run as root: ``.venv/bin/python bench/agent_latency.py [--events 100] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lab import ROUTER6, ROUTER_LIFETIME
from pyroute2 import IPRoute

from docs import machine, replace_results, timed_environment
from multihome.backend.rtnl import (
    IFINFOMSG,
    IFLA_OPERSTATE,
    NLMSGHDR,
    RTM_NEWLINK,
    Message,
    align,
    attributes,
)

GATEWAY = "192.168.0.1"
KINDS = ("default", "flap", "hotplug", "detach")
#: The kinds of ``--dual-stack`` (docs/benchmarks-agent.md, "dual-stack ports").
KINDS6 = ("ra-lifetime0", "ra-default", "flap", "hotplug", "detach")
GROUPS = 0x1 | 0x10 | 0x40 | 0x80  # link, IPv4 addresses, routes, rules
GROUPS6 = 0x100 | 0x400 | 0x40000  # IPv6 addresses, routes, rules
#: The IPv6 prefix of the ports' segment (the router's link-local address is ROUTER6).
PREFIX6 = "2001:db8::"
IFA_F_NODAD = 0x02
TABLE_LOW, TABLE_HIGH = 10000, 10999


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


# -- inside the guest namespace --------------------------------------------------------------
QUIET = 0.03
"""Seconds without a notification after which the condition is checked (and, once it holds,
the repair is over)."""


def notifications(data: bytes) -> Iterator[Message]:
    """The netlink messages of one datagram ``data``, each with its header's type, flags and
    port id (the netlink socket whose request made the change; 0: the kernel's own)."""
    offset = 0
    while offset + NLMSGHDR.size <= len(data):
        length, kind, flags, _seq, pid = NLMSGHDR.unpack_from(data, offset)
        if length < NLMSGHDR.size:
            break
        yield Message(kind, flags, data[offset + NLMSGHDR.size : offset + length], pid)
        offset += align(length)


def senders(data: bytes) -> set[int]:
    """The port ids in the headers of the notifications in ``data``: the netlink socket whose
    request made each change (0: a change the kernel made itself)."""
    return {message.pid for message in notifications(data)}


def describe(data: bytes) -> str:
    """The notifications in ``data`` as the agent logs them, each with its port id."""
    from multihome.agent.events import event_from

    texts = []
    for message in notifications(data):
        event = event_from(message, 0.0)
        texts.append(f"{event.describe() if event else message.type} (port {message.pid})")
    return "; ".join(texts)


def running_links(data: bytes) -> list[int]:
    """Indexes of the links that the RTM_NEWLINK messages in ``data`` show up and running."""
    found = []
    for message in notifications(data):
        if message.type == RTM_NEWLINK:
            _family, _type, index, flags, _change = IFINFOMSG.unpack_from(message.body)
            oper = attributes(message.body, IFINFOMSG.size).get(IFLA_OPERSTATE, b"")
            if flags & 1 and oper[:1] in (b"\x00", b"\x06"):  # IFF_UP; UNKNOWN or UP
                found.append(index)
    return found


class Watcher:
    """Notes when each rtnetlink notification of this namespace arrives (a thread that does
    nothing else, so the arrival times measure a repair between the kernel's own events,
    even while the main thread is busy in a netlink call); at every quiet moment the main
    thread checks a condition with a dump, after the events, delaying nothing."""

    def __init__(self, trace: bool = False) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((0, GROUPS | GROUPS6))
        self.stamps: list[float] = []
        self.senders: list[set[int]] = []
        """The port ids of each datagram's notifications (beside ``stamps``)."""
        self.trace: list[tuple[float, str]] | None = [] if trace else None
        self.up_at: dict[int, float] = {}
        """ifindex -> when a notification first showed the link up and running (operstate
        UP: the kernel may report it a while after the link was set up)."""
        self.arrived = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            data = self.sock.recv(1 << 16)
            now = time.monotonic()
            with self.arrived:
                self.stamps.append(now)
                self.senders.append(senders(data))
                if self.trace is not None:
                    self.trace.append((now, describe(data)))
                for index in running_links(data):
                    self.up_at.setdefault(index, now)
                self.arrived.notify_all()

    def reset(self) -> None:
        """Forget the notifications so far (after a pause in which nothing happened)."""
        with self.arrived:
            self.stamps.clear()
            self.senders.clear()
            if self.trace is not None:
                self.trace.clear()
            self.up_at.clear()

    def until(self, condition: Callable[[], bool], timeout: float = 10.0) -> float:
        """Monotonic time at which ``condition`` was seen to hold, checked each time no
        notification came for ``QUIET`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the agent did not correct the state in time")
            with self.arrived:
                seen = len(self.stamps)
                self.arrived.wait_for(lambda n=seen: len(self.stamps) > n, min(left, QUIET))
                if len(self.stamps) > seen:
                    continue
            if condition():
                return time.monotonic()


def address4(number: int) -> str:
    """Port ``number``'s IPv4 address (eth0 .107 and eth1 .112 as in the how-to)."""
    return {0: "192.168.0.107", 1: "192.168.0.112"}.get(number, f"192.168.0.{20 + number}")


def address6(number: int) -> str:
    """Port ``number``'s global IPv6 address (what SLAAC gives it: here, a fixed one)."""
    return f"{PREFIX6}{address4(number).rsplit('.', 1)[1]}"


def inner(  # noqa: PLR0915 - one linear script
    events: int,
    peer: str,
    pace: float,
    ports: int,
    kinds: tuple[str, ...] = ("default",),
    dual_stack: bool = False,
    trace: Path | None = None,
) -> dict[str, Any]:
    ipr = IPRoute()
    watch = Watcher(trace is not None)
    plug = f"eth{ports}"

    def index(name: str) -> int:
        return int(ipr.link_lookup(ifname=name)[0])

    def main_default_on(ifindex: int) -> bool:
        return any(
            r.get("RTA_OIF") == ifindex
            for r in ipr.get_routes(family=socket.AF_INET, table=254, dst_len=0)
        )

    def advertised(ifindex: int, number: int) -> None:
        """What a router advertisement gives port ``number``: its SLAAC address (unless it
        has it) and the RA default (the kernel's form, its metric ``ra_defrtr_metric``)."""
        have = ipr.get_addr(family=socket.AF_INET6, index=ifindex, scope=0)
        if not have:
            ipr.addr(
                "add",
                index=ifindex,
                address=address6(number),
                prefixlen=64,
                family=socket.AF_INET6,
                flags=IFA_F_NODAD,  # usable at once, as after DAD
            )
        ipr.route(
            "add",
            family=socket.AF_INET6,
            dst="::",
            dst_len=0,
            gateway=ROUTER6,
            oif=ifindex,
            priority=1024 + number,
            proto=9,  # ra
        )

    def withdrawn(ifindex: int, number: int) -> None:
        """The router lifetime reached 0: the kernel removes the RA default."""
        ipr.route(
            "del",
            family=socket.AF_INET6,
            dst="::",
            dst_len=0,
            gateway=ROUTER6,
            oif=ifindex,
            priority=1024 + number,
        )

    def table6_default_on(ifindex: int, name: str) -> bool:
        table = table_of(name)
        return table is not None and any(
            r.get("RTA_OIF") == ifindex
            for r in ipr.get_routes(family=socket.AF_INET6, table=table, dst_len=0)
        )

    def table_of(name: str) -> int | None:
        for rule in ipr.get_rules(family=socket.AF_INET):
            table = rule.get("FRA_TABLE") or rule["table"]
            if rule.get("FRA_OIFNAME") == name and TABLE_LOW <= table <= TABLE_HIGH:
                return int(table)
        return None

    def table_default_on(ifindex: int, name: str) -> bool:
        table = table_of(name)
        return table is not None and any(
            r.get("RTA_OIF") == ifindex
            for r in ipr.get_routes(family=socket.AF_INET, table=table, dst_len=0)
        )

    def rules_on(name: str, family: int = socket.AF_INET) -> bool:
        return any(
            name in (r.get("FRA_OIFNAME"), r.get("FRA_IIFNAME"))
            for r in ipr.get_rules(family=family)
        )

    def port_done(ifindex: int, name: str) -> bool:
        """Both families' defaults in the port's table (IPv6 too with ``--dual-stack``)."""
        return table_default_on(ifindex, name) and (
            not dual_stack or table6_default_on(ifindex, name)
        )

    kernel: dict[str, list[float]] = {kind: [] for kind in kinds}
    observed: dict[str, list[float]] = {kind: [] for kind in kernel}
    disturbing: dict[str, list[float]] = {kind: [] for kind in kernel}

    def measure(
        kind: str,
        disturb: Callable[[], None],
        condition: Callable[[], bool],
        port: Callable[[], int] | None = None,
    ) -> None:
        """From the last notification of the disturbance to the last of the repair (the
        last of a change the agent made: the kernel's own notifications, such as a link's
        second operational-state report tens of ms after it came up, and this observer's
        are not the repair's); and as this observer saw it (from before the disturbing call
        to the corrected state read back). The disturbance's last notification: the last of
        a change this process asked for (a hot-plug's default after its address; a
        dual-stack flap's router answer, IPv6's counterpart of the DHCP reply the targets
        do not count), and for a port brought up no earlier than the first that shows it
        running (which the kernel may send a while later)."""
        watch.reset()
        start = time.monotonic()
        disturb()
        disturbing[kind].append((time.monotonic() - start) * 1000)
        done = watch.until(condition)
        observed[kind].append((done - start - QUIET) * 1000)
        link = None if port is None else port()
        with watch.arrived:  # the reading thread appends a stamp and its senders together
            stamps = list(zip(watch.stamps, watch.senders, strict=True))
            up = None if link is None else watch.up_at.get(link)
        own = ipr.getsockname()[0]
        starts = [stamps[0][0]] + ([] if up is None else [up])
        starts += [at for at, pids in stamps if own in pids]  # the changes this process asked
        first = max(starts)
        agents = [at for at, pids in stamps if pids - {0, own}]
        kernel[kind].append((max(agents or [stamps[-1][0]]) - first) * 1000)
        if trace is not None and watch.trace is not None:
            with trace.open("a") as out:
                out.write(f"{kind}: {kernel[kind][-1]:.2f} ms from +{(first - start) * 1000:.2f}\n")
                out.writelines(
                    f"  +{(at - start) * 1000:8.2f} ms  {text}\n" for at, text in watch.trace
                )
        time.sleep(pace)

    eth1 = index("eth1")
    watch.until(lambda: port_done(eth1, "eth1") and not main_default_on(eth1), 20)
    time.sleep(pace)

    for _ in range(events if "ra-lifetime0" in kinds else 0):
        measure(
            "ra-lifetime0",
            lambda: withdrawn(eth1, 1),
            lambda: not table6_default_on(eth1, "eth1"),
        )
        measure(
            "ra-default",
            lambda: advertised(eth1, 1),
            lambda: table6_default_on(eth1, "eth1"),
        )

    for _ in range(events if "default" in kinds else 0):
        measure(
            "default",
            lambda: ipr.route(
                "add", dst="0.0.0.0/0", gateway=GATEWAY, oif=eth1, priority=101, proto=16
            ),
            lambda: not main_default_on(eth1),
        )

    def up_again(ifindex: int, number: int) -> None:
        ipr.link("set", index=ifindex, state="up")
        if dual_stack:  # the router answers the port's solicitation
            advertised(ifindex, number)

    for _ in range(events if "flap" in kinds else 0):
        ipr.link("set", index=eth1, state="down")
        watch.until(lambda: not table_default_on(eth1, "eth1"))
        time.sleep(pace)
        measure(
            "flap",
            lambda: up_again(eth1, 1),
            lambda: port_done(eth1, "eth1"),
            lambda: eth1,
        )

    peer_fd = os.open(f"/run/netns/{peer}", os.O_RDONLY)
    switch = IPRoute(netns=peer)
    bridge = int(switch.link_lookup(ifname="br0")[0])

    def attach(number: int) -> None:
        ipr.link(
            "add",
            ifname=plug,
            kind="veth",
            address="fa:16:3e:00:01:00",
            peer={"ifname": f"b{number % 1000}", "net_ns_fd": peer_fd},
        )
        far = int(switch.link_lookup(ifname=f"b{number % 1000}")[0])
        switch.link("set", index=far, master=bridge, state="up")  # carrier for the port
        new = index(plug)
        ipr.addr("add", index=new, address=address4(ports), prefixlen=24)
        ipr.link("set", index=new, state="up")
        ipr.route("add", dst="0.0.0.0/0", gateway=GATEWAY, oif=new, priority=100 + ports, proto=16)
        if dual_stack:
            advertised(new, ports)

    try:
        for number in range(events if "hotplug" in kinds else 0):
            measure(
                "hotplug",
                lambda n=number: attach(n),
                lambda: (
                    rules_on(plug)
                    and (not dual_stack or rules_on(plug, socket.AF_INET6))
                    and port_done(index(plug), plug)
                ),
                lambda: index(plug),
            )
            measure(
                "detach",
                lambda: ipr.link("del", index=index(plug)),
                lambda: not rules_on(plug) and not rules_on(plug, socket.AF_INET6),
            )
    finally:
        switch.close()
        os.close(peer_fd)
    return {"kernel": kernel, "observed": observed, "disturbing": disturbing}


# -- outside: the namespaces and the agent ----------------------------------------------------
def build(guest: str, peer: str, ports: int, dual_stack: bool = False) -> None:
    """The guest with ``ports`` ports on one segment (eth0 .107 and eth1 .112 as in the
    how-to, eth2... .22...), a DHCP-style default per port in main (metric 100+i); the peer
    with the bridge that is their gateway. ``dual_stack``: each port also has its global IPv6
    address (``nodad``: usable at once, as after DAD) and the RA default via the bridge's
    ``fe80::1`` (metric 1024+i); the guest accepts no real advertisement (none is sent)."""
    sh("ip", "netns", "add", guest)
    sh("ip", "netns", "add", peer)
    six = "0" if dual_stack else "1"
    for knob in (
        f"net.ipv6.conf.all.disable_ipv6={six}",
        f"net.ipv6.conf.default.disable_ipv6={six}",
        "net.ipv6.conf.default.accept_ra=0",
        "net.ipv6.conf.default.accept_dad=0",
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.default.rp_filter=0",
    ):
        sh("ip", "netns", "exec", guest, "sysctl", "-qw", knob)
    outside = ["link add br0 type bridge", "addr add 192.168.0.1/24 dev br0", "link set br0 up"]
    if dual_stack:
        outside.append(f"addr add {ROUTER6}/64 dev br0")
    inside = ["link set lo up"]
    for number in range(ports):
        address = address4(number)
        sh(
            "ip", "link", "add", f"eth{number}", "netns", guest,
            "address", f"fa:16:3e:00:00:{number:02x}",
            "type", "veth", "peer", f"p{number}", "netns", peer,
        )  # fmt: skip
        outside += [f"link set p{number} master br0", f"link set p{number} up"]
        inside += [
            f"addr add {address}/24 dev eth{number}",
            f"link set eth{number} up",
            f"route add default via {GATEWAY} dev eth{number} proto dhcp metric {100 + number}",
        ]
        if dual_stack:
            inside += [
                f"addr add {address6(number)}/64 dev eth{number} nodad",
                f"route add ::/0 via {ROUTER6} dev eth{number} proto ra "
                f"metric {1024 + number} expires {ROUTER_LIFETIME} hoplimit 64 pref medium",
            ]
    for namespace, lines in ((peer, outside), (guest, inside)):
        subprocess.run(
            ["ip", "-n", namespace, "-batch", "-"],
            input="".join(line + "\n" for line in lines),
            text=True,
            check=True,
            capture_output=True,
        )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kib(pid: int) -> dict[str, int]:
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def outer(
    events: int,
    idle: float,
    pace: float,
    ports: int = 2,
    profile: Path | None = None,
    keep_log: Path | None = None,
    kinds: tuple[str, ...] = KINDS,
    dual_stack: bool = False,
    trace: Path | None = None,
) -> dict[str, Any]:
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark creates network namespaces")
    suffix = secrets.token_hex(3)
    guest, peer = f"mhagent-bench-{suffix}-g", f"mhagent-bench-{suffix}-p"
    multihome = str(Path(sys.executable).parent / "multihome")
    agent: subprocess.Popen[str] | None = None
    # The agent's --root on tmpfs, as /run is on a real system (its state file lives there).
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="mhagent-bench-", dir=shm) as tmp:
        try:
            build(guest, peer, ports, dual_stack)
            log = Path(tmp, "agent.log").open("w")  # noqa: SIM115 - the agent's stdout
            agent = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    guest,
                    *([sys.executable, "-m", "cProfile", "-o", str(profile)] if profile else []),
                    multihome,
                    "--root",
                    tmp,
                    "agent",
                    "--source",
                    "kernel",
                    "--no-dhcp",
                ],
                stdout=log,
                stderr=log,
                text=True,
            )
            deadline = time.monotonic() + 30
            # {root}/run/multihome/net-<inode>/agent.json: the namespace's own folder
            while not (found := sorted(Path(tmp).glob("run/multihome/*/agent.json"))):
                if time.monotonic() > deadline or agent.poll() is not None:
                    sys.exit(f"the agent did not start:\n{Path(log.name).read_text()[-3000:]}")
                time.sleep(0.05)
            state = found[0]
            started = memory_kib(agent.pid)
            busy = cpu_seconds(agent.pid)
            measured = subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    guest,
                    sys.executable,
                    __file__,
                    "--inner",
                    "--events",
                    str(events),
                    "--peer",
                    peer,
                    "--pace",
                    str(pace),
                    "--ports",
                    str(ports),
                    "--kinds",
                    ",".join(kinds),
                    *(["--dual-stack"] if dual_stack else []),
                    *(["--trace", str(trace)] if trace is not None else []),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if measured.returncode != 0:
                sys.exit(
                    f"measurement failed:\n{measured.stderr}\n{log.name}:\n"
                    f"{Path(log.name).read_text()[-3000:]}"
                )
            latencies: dict[str, dict[str, list[float]]] = json.loads(measured.stdout)
            busy = cpu_seconds(agent.pid) - busy
            time.sleep(1.0 if idle else 0.0)
            before = cpu_seconds(agent.pid)
            time.sleep(idle)
            idle_cpu = cpu_seconds(agent.pid) - before
            memory = memory_kib(agent.pid)
            status = json.loads(state.read_text())
            if keep_log is not None:
                shutil.copyfile(log.name, keep_log)
        finally:
            if agent is not None and agent.poll() is None:
                agent.send_signal(signal.SIGTERM)
                agent.wait(10)
            for namespace in (guest, peer):
                sh("ip", "netns", "del", namespace, check=False)
    summary: dict[str, Any] = {
        "ports": ports,
        "events_per_kind": events,
        "dual_stack": dual_stack,
        "namespaces": [guest, peer],
        "kinds": {},
    }
    for kind, values in latencies["kernel"].items():
        summary["kinds"][kind] = {
            "n": len(values),
            "p50_ms": round(statistics.median(values), 2),
            "p99_ms": round(percentile(values, 0.99), 2),
            "max_ms": round(max(values), 2),
            "mean_ms": round(statistics.fmean(values), 2),
            "observed_p50_ms": round(statistics.median(latencies["observed"][kind]), 2),
            "observed_p99_ms": round(percentile(latencies["observed"][kind], 0.99), 2),
            "disturbing_p50_ms": round(statistics.median(latencies["disturbing"][kind]), 3),
        }
    summary["raw"] = latencies
    summary["idle"] = {
        "seconds": idle,
        "cpu_seconds": round(idle_cpu, 3),
        "cpu_percent": round(100 * idle_cpu / idle, 3) if idle else 0.0,
    }
    summary["memory_kib"] = {
        "rss_at_start": started.get("VmRSS"),
        "rss_after": memory.get("VmRSS"),
        "peak": memory.get("VmHWM"),
    }
    summary["agent"] = {"repairs": status.get("repairs"), "errors": status.get("errors")}
    # The agent's CPU time while disturbed, per event: what a repair costs, whatever the
    # load of the machine does to its latency (the down half of a flap included).
    disturbances = sum(len(values) for values in latencies["kernel"].values())
    summary["agent"]["cpu_ms_per_event"] = round(1000 * busy / max(1, disturbances), 1)
    return summary


def report(
    summaries: list[dict[str, Any]], host: dict[str, str], pace: float, dual_stack: bool = False
) -> str:
    """The Markdown results section of docs/benchmarks-agent.md (``dual_stack``: the
    section of the dual-stack ports)."""
    lines = ["## Results, dual-stack ports" if dual_stack else "## Results", ""]
    lines += [f"- {key}: {value}" for key, value in host.items()]
    lines += [
        f"- events per kind: {summaries[0]['events_per_kind']}, {pace:g} s apart",
        "",
        *(
            [
                "Every port also has a global IPv6 address and a router advertisement's "
                "default; `ra-lifetime0`: eth1's RA default removed (router lifetime 0), "
                "corrected when its table has no IPv6 default; `ra-default`: the RA default "
                "back, corrected when the table has it again; `flap`, `hotplug`: corrected "
                "when both families' defaults (and rules) are in the port's table; `detach`: "
                "when no rule of either family names the port.",
                "",
            ]
            if dual_stack
            else []
        ),
        "From the first netlink notification of the disturbance to the last one of the "
        "repair (their arrival, noted by a thread that does nothing else: the observer's own "
        "dumps are not counted), in ms; `observed`: from before the disturbing call to the "
        "corrected state read back by the observer.",
        "",
        "| ports | kind | p50 | p99 | max | observed p50 | observed p99 | target p99 | met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for summary in summaries:
        for kind, row in summary["kinds"].items():
            target = TARGETS[kind]
            met = "yes" if row["p99_ms"] < target else "**no**"
            lines.append(
                f"| {summary['ports']} | {kind} | {row['p50_ms']} | {row['p99_ms']} | "
                f"{row['max_ms']} | {row['observed_p50_ms']} | {row['observed_p99_ms']} | "
                f"< {target} | {met} |"
            )
    lines += [
        "",
        "| ports | CPU per event | idle CPU | RSS at start | RSS after | repairs | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for summary in summaries:
        idle, memory, agent = summary["idle"], summary["memory_kib"], summary["agent"]
        lines.append(
            f"| {summary['ports']} | {agent.get('cpu_ms_per_event', '?')} ms | "
            f"{idle['cpu_seconds']} s in {idle['seconds']:g} s | "
            f"{memory['rss_at_start'] / 1024:.1f} MiB | {memory['rss_after'] / 1024:.1f} MiB | "
            f"{agent['repairs']} | {agent['errors']} |"
        )
    return "\n".join(lines) + "\n"


#: p99 targets (ms), from the netlink event to the last kernel change of the repair.
TARGETS = {
    "default": 20.0,
    "flap": 20.0,
    "hotplug": 50.0,
    "detach": 20.0,
    "ra-lifetime0": 20.0,
    "ra-default": 20.0,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100, help="events per kind")
    parser.add_argument("--idle", type=float, default=10.0, help="idle seconds measured")
    parser.add_argument(
        "--pace",
        type=float,
        default=0.2,
        help="seconds between events (the agent pauses when it sees more "
        "than 50 repairs in 5 s: a fight with another tool)",
    )
    parser.add_argument("--ports", default="2", help="guest sizes, comma-separated [2]")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--docs",
        type=Path,
        help="regenerate the results section of this Markdown file (docs/benchmarks-agent.md)",
    )
    parser.add_argument(
        "--profile", type=Path, help="run the agent under cProfile, its statistics to this file"
    )
    parser.add_argument("--log", type=Path, help="keep the agent's log (FILE.<ports>.log)")
    parser.add_argument(
        "--trace",
        type=Path,
        help="write every measured event's notifications, their arrival and port id, to "
        "FILE.<ports>.txt (the agent's changes carry its socket's port id, the kernel's 0)",
    )
    parser.add_argument(
        "--dual-stack",
        action="store_true",
        help="dual-stack ports and the router's events (its own results section)",
    )
    parser.add_argument(
        "--kinds",
        help=f"only these kinds, comma-separated [{','.join(KINDS)}; "
        f"with --dual-stack {','.join(KINDS6)}]; hotplug and detach come together",
    )
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    known = KINDS6 if args.dual_stack else KINDS
    kinds = tuple(args.kinds.split(",")) if args.kinds else known
    unknown = [kind for kind in kinds if kind not in known]
    if unknown:
        parser.error(f"--kinds: unknown {','.join(unknown)} (known: {','.join(known)})")
    # Each hot-plugged port is detached again before the next one: a detach is measured on
    # the port a hot-plug brought, so either kind brings the other.
    kinds += tuple(
        k for k in ("hotplug", "detach") if k not in kinds and {"hotplug", "detach"} & set(kinds)
    )
    if args.inner:
        print(
            json.dumps(
                inner(
                    args.events,
                    args.peer,
                    args.pace,
                    int(args.ports),
                    kinds,
                    args.dual_stack,
                    args.trace,
                )
            )
        )
        return
    timed_environment()
    # SIGTERM (a killed `make bench`) ends like Ctrl-C: the agent stopped, namespaces deleted
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(1))
    summaries = []
    for ports in [int(p) for p in args.ports.split(",") if p]:
        log = None if args.log is None else args.log.with_suffix(f".{ports}.log")
        trace = None if args.trace is None else args.trace.with_suffix(f".{ports}.txt").resolve()
        summary = outer(
            args.events,
            args.idle,
            args.pace,
            ports,
            args.profile,
            log,
            kinds,
            args.dual_stack,
            trace,
        )
        summaries.append(summary)
        print(f"{ports} ports: {'kind':<12} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        for kind, row in summary["kinds"].items():
            print(
                f"{ports} ports: {kind:<12} {row['n']:>4} {row['p50_ms']:>8} "
                f"{row['p99_ms']:>8} {row['max_ms']:>8}"
            )
        idle = summary["idle"]
        memory = summary["memory_kib"]
        print(f"{ports} ports: agent CPU per event: {summary['agent']['cpu_ms_per_event']} ms")
        print(
            f"{ports} ports: idle: {idle['cpu_seconds']} s CPU in {idle['seconds']} s "
            f"({idle['cpu_percent']} %); RSS {memory['rss_after']} KiB (peak {memory['peak']})"
        )
    host = machine()
    if args.json:
        args.json.write_text(json.dumps({"machine": host, "sizes": summaries}, indent=2) + "\n")
    if args.docs:
        script = "bench/agent_latency.py" + (" --dual-stack" if args.dual_stack else "")
        text = report(summaries, host, args.pace, args.dual_stack)
        replace_results(args.docs, script, text)


if __name__ == "__main__":
    main()
