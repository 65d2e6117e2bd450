"""Benchmark: the agent's reconcile latency, idle CPU and memory, in namespaces.

Builds a guest namespace (eth0, eth1 on 192.168.0.0/24, a default per port in main) and a
peer namespace (bridge = gateway), starts ``multihome agent`` in the guest, then disturbs the
guest N times per kind and measures, from just before the disturbing netlink call to the
moment the corrected state is visible in the kernel:

* ``default``: a DHCP client's default via eth1 added to main -> removed again;
* ``flap``: eth1 set up again after a down that flushed its table -> table default back;
* ``hotplug``: a third port (veth, address, default in main) -> its table default and rules;
* ``detach``: that port deleted -> no owned rule mentions it.

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
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute

GATEWAY = "192.168.0.1"
GROUPS = 0x1 | 0x10 | 0x40 | 0x80  # link, IPv4 addresses, routes, rules
TABLE_LOW, TABLE_HIGH = 10000, 10999


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


# -- inside the guest namespace --------------------------------------------------------------
class Watcher:
    """Wakes on rtnetlink events of this namespace and re-checks a condition each time."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((0, GROUPS))
        self.sock.setblocking(False)

    def drain(self) -> None:
        while True:
            try:
                self.sock.recv(1 << 16)
            except BlockingIOError:
                return

    def until(self, condition: Callable[[], bool], timeout: float = 10.0) -> float:
        """Monotonic time at which ``condition`` first held (checked after each event)."""
        deadline = time.monotonic() + timeout
        while True:
            if condition():
                return time.monotonic()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the agent did not correct the state in time")
            readable, _, _ = select.select([self.sock], [], [], min(left, 0.5))
            if readable:
                self.drain()


def inner(events: int, peer: str, pace: float) -> dict[str, Any]:  # noqa: PLR0915 - one linear script
    ipr = IPRoute()
    watch = Watcher()

    def index(name: str) -> int:
        return int(ipr.link_lookup(ifname=name)[0])

    def main_default_on(ifindex: int) -> bool:
        return any(r.get("RTA_OIF") == ifindex for r in ipr.get_routes(table=254, dst_len=0))

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

    def rules_on(name: str) -> bool:
        return any(
            name in (r.get("FRA_OIFNAME"), r.get("FRA_IIFNAME"))
            for r in ipr.get_rules(family=socket.AF_INET)
        )

    def settle() -> None:
        time.sleep(pace)
        watch.drain()

    eth1 = index("eth1")
    watch.until(lambda: table_default_on(eth1, "eth1") and not main_default_on(eth1), 20)
    settle()
    results: dict[str, list[float]] = {"default": [], "flap": [], "hotplug": [], "detach": []}

    for _ in range(events):
        start = time.monotonic()
        ipr.route("add", dst="0.0.0.0/0", gateway=GATEWAY, oif=eth1, priority=101, proto=16)
        done = watch.until(lambda: not main_default_on(eth1))
        results["default"].append((done - start) * 1000)
        settle()

    for _ in range(events):
        ipr.link("set", index=eth1, state="down")
        watch.until(lambda: not table_default_on(eth1, "eth1"))
        settle()
        start = time.monotonic()
        ipr.link("set", index=eth1, state="up")
        done = watch.until(lambda: table_default_on(eth1, "eth1"))
        results["flap"].append((done - start) * 1000)
        settle()

    peer_fd = os.open(f"/run/netns/{peer}", os.O_RDONLY)
    switch = IPRoute(netns=peer)
    bridge = int(switch.link_lookup(ifname="br0")[0])
    try:
        for number in range(events):
            start = time.monotonic()
            ipr.link(
                "add",
                ifname="eth2",
                kind="veth",
                address="fa:16:3e:00:00:0c",
                peer={"ifname": f"b{number % 1000}", "net_ns_fd": peer_fd},
            )
            far = int(switch.link_lookup(ifname=f"b{number % 1000}")[0])
            switch.link("set", index=far, master=bridge, state="up")  # carrier for eth2
            eth2 = index("eth2")
            ipr.addr("add", index=eth2, address="192.168.0.120", prefixlen=24)
            ipr.link("set", index=eth2, state="up")
            ipr.route("add", dst="0.0.0.0/0", gateway=GATEWAY, oif=eth2, priority=102, proto=16)
            done = watch.until(lambda i=eth2: rules_on("eth2") and table_default_on(i, "eth2"))
            results["hotplug"].append((done - start) * 1000)
            settle()
            start = time.monotonic()
            ipr.link("del", index=eth2)
            done = watch.until(lambda: not rules_on("eth2"))
            results["detach"].append((done - start) * 1000)
            settle()
    finally:
        switch.close()
        os.close(peer_fd)
    return results


# -- outside: the namespaces and the agent ----------------------------------------------------
def build(guest: str, peer: str) -> None:
    sh("ip", "netns", "add", guest)
    sh("ip", "netns", "add", peer)
    for knob in (
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.default.rp_filter=0",
    ):
        sh("ip", "netns", "exec", guest, "sysctl", "-qw", knob)
    sh("ip", "-n", peer, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", peer, "addr", "add", "192.168.0.1/24", "dev", "br0")
    sh("ip", "-n", peer, "link", "set", "br0", "up")
    for number, (ifname, address, metric) in enumerate(
        (("eth0", "192.168.0.107", 100), ("eth1", "192.168.0.112", 101))
    ):
        sh(
            "ip",
            "link",
            "add",
            ifname,
            "netns",
            guest,
            "address",
            f"fa:16:3e:00:00:0{number}",
            "type",
            "veth",
            "peer",
            f"p{number}",
            "netns",
            peer,
        )
        sh("ip", "-n", peer, "link", "set", f"p{number}", "master", "br0")
        sh("ip", "-n", peer, "link", "set", f"p{number}", "up")
        sh("ip", "-n", guest, "addr", "add", f"{address}/24", "dev", ifname)
        sh("ip", "-n", guest, "link", "set", ifname, "up")
        sh(
            "ip",
            "-n",
            guest,
            "route",
            "add",
            "default",
            "via",
            GATEWAY,
            "dev",
            ifname,
            "proto",
            "dhcp",
            "metric",
            str(metric),
        )
    sh("ip", "-n", guest, "link", "set", "lo", "up")


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


def outer(events: int, idle: float, pace: float) -> dict[str, Any]:
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
            build(guest, peer)
            log = Path(tmp, "agent.log").open("w")  # noqa: SIM115 - the agent's stdout
            agent = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    guest,
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
            # The agent's folder is its namespace's own (run/multihome/netns-<cookie>/); this
            # root serves only the guest namespace.
            deadline = time.monotonic() + 30
            while not (found := sorted(Path(tmp).glob("run/multihome/*/agent.json"))):
                if time.monotonic() > deadline:
                    sys.exit(f"the agent wrote no state file under {tmp}")
                time.sleep(0.05)
            state = found[0]
            started = memory_kib(agent.pid)
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
            latencies: dict[str, list[float]] = json.loads(measured.stdout)
            time.sleep(1.0)
            before = cpu_seconds(agent.pid)
            time.sleep(idle)
            idle_cpu = cpu_seconds(agent.pid) - before
            memory = memory_kib(agent.pid)
            status = json.loads(state.read_text())
        finally:
            if agent is not None and agent.poll() is None:
                agent.send_signal(signal.SIGTERM)
                agent.wait(10)
            for namespace in (guest, peer):
                sh("ip", "netns", "del", namespace, check=False)
    summary: dict[str, Any] = {"events_per_kind": events, "kinds": {}}
    for kind, values in latencies.items():
        summary["kinds"][kind] = {
            "n": len(values),
            "p50_ms": round(statistics.median(values), 2),
            "p99_ms": round(percentile(values, 0.99), 2),
            "max_ms": round(max(values), 2),
            "mean_ms": round(statistics.fmean(values), 2),
        }
    summary["idle"] = {
        "seconds": idle,
        "cpu_seconds": round(idle_cpu, 3),
        "cpu_percent": round(100 * idle_cpu / idle, 3),
    }
    summary["memory_kib"] = {
        "rss_at_start": started.get("VmRSS"),
        "rss_after": memory.get("VmRSS"),
        "peak": memory.get("VmHWM"),
    }
    summary["agent"] = {"repairs": status.get("repairs"), "errors": status.get("errors")}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100, help="events per kind")
    parser.add_argument("--idle", type=float, default=10.0, help="idle seconds measured")
    parser.add_argument(
        "--pace",
        type=float,
        default=0.1,
        help="seconds between events (the agent pauses when it sees more "
        "than 50 repairs in 5 s: a fight with another tool)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        print(json.dumps(inner(args.events, args.peer, args.pace)))
        return
    summary = outer(args.events, args.idle, args.pace)
    print(f"{'kind':<9} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for kind, row in summary["kinds"].items():
        print(f"{kind:<9} {row['n']:>4} {row['p50_ms']:>8} {row['p99_ms']:>8} {row['max_ms']:>8}")
    idle = summary["idle"]
    memory = summary["memory_kib"]
    print(
        f"idle: {idle['cpu_seconds']} s CPU in {idle['seconds']} s "
        f"({idle['cpu_percent']} %); RSS {memory['rss_after']} KiB (peak {memory['peak']})"
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
