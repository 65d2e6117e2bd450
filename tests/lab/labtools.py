"""Helpers of the lab's tests: the CLI, commands in namespaces, and leftover checks.

(A uniquely named module, so that it does not clash with other areas' test helpers.)
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multihome.lab.scenario import Scenario
from multihome.lab.topology import tap as switch_port

SUFFIXES = ("vm", "sw", "rtr", "dhcp", "inet")
STATE_ROOT = Path("/run/multihome-lab")
NETNS_RUN = Path("/run/netns")


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """Run ``multihome ARGS`` (this checkout's, as a separate process; ``env`` added)."""
    return subprocess.run(
        [sys.executable, "-m", "multihome", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def run_json(*args: str) -> Any:
    """Run ``multihome ARGS --json`` and parse its output."""
    done = run_cli(*args, "--json")
    assert done.stdout, f"no output from {args}: rc {done.returncode} {done.stderr}"
    return json.loads(done.stdout)


def ns_run(namespace: str, *command: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    """Run a command inside a namespace, independently of the code under test."""
    return subprocess.run(
        ["ip", "netns", "exec", namespace, *command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def leftovers(name: str) -> list[str]:
    """Everything of lab ``name`` still on the host: namespaces, folders, processes."""
    found = [f"namespace {name}-{s}" for s in SUFFIXES if (NETNS_RUN / f"{name}-{s}").exists()]
    for path in (STATE_ROOT / name, Path("/etc/netns") / f"{name}-vm"):
        if path.exists():
            found.append(f"path {path}")
    marker = str(STATE_ROOT / name).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state not in ("Z", "X"):
            text = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"process {entry}: {text[:120]}")
    return found


def force_remove(name: str) -> None:
    """Remove lab ``name`` by its names, whatever state it is in."""
    run_cli("lab", "down", "--name", name, timeout=60)
    for suffix in SUFFIXES:
        namespace = f"{name}-{suffix}"
        if (NETNS_RUN / namespace).exists():
            pids = subprocess.run(
                ["ip", "netns", "pids", namespace], capture_output=True, text=True, check=False
            ).stdout.split()
            for pid in pids:
                subprocess.run(["kill", "-9", pid], capture_output=True, check=False)
            subprocess.run(["ip", "netns", "delete", namespace], capture_output=True, check=False)
    shutil.rmtree(STATE_ROOT / name, ignore_errors=True)
    shutil.rmtree(Path("/etc/netns") / f"{name}-vm", ignore_errors=True)


def new_name() -> str:
    return f"mhlab-{secrets.token_hex(3)}"


# -- probes a cloud user makes (shared with tests/reboot's lab-wired guest) -------------------


def _url(address: str) -> str:
    return f"http://[{address}]/" if ":" in address else f"http://{address}/"


def http(namespace: str, address: str, *extra: str) -> str | None:
    """The echo's answer (the caller's address as the guest saw it), None when none came."""
    done = ns_run(
        namespace,
        "curl",
        "-s",
        "--connect-timeout",
        "1.5",
        "--max-time",
        "2",
        *extra,
        _url(address),
    )
    return done.stdout.strip() if done.returncode == 0 else None


def watch(switch: str, taps: list[str], sources: list[str]) -> None:
    """Count, per switch port and source address, the guest's HTTP replies."""
    lines = ["table bridge watch {"]
    rules = []
    for t, tap in enumerate(taps):
        for s, source in enumerate(sources):
            family = "ip6" if ":" in source else "ip"
            lines.append(f"\tcounter r_{t}_{s} {{ }}")
            rules.append(
                f'\t\tiifname "{tap}" {family} saddr {source} tcp sport 80 counter name r_{t}_{s}'
            )
    lines += ["\tchain pre {", "\t\ttype filter hook prerouting priority -300; policy accept;"]
    lines += [*rules, "\t}", "}"]
    subprocess.run(
        ["ip", "netns", "exec", switch, "nft", "-f", "-"],
        input="\n".join(lines) + "\n",
        text=True,
        check=True,
        capture_output=True,
        timeout=10,
    )


def counters(switch: str, table: str) -> dict[str, int]:
    """Packets per named counter of ``table`` in the switch."""
    data = json.loads(
        ns_run(switch, "nft", "-j", "list", "counters", "table", "bridge", table).stdout
    )
    return {
        item["counter"]["name"]: int(item["counter"]["packets"])
        for item in data["nftables"]
        if "counter" in item
    }


INTERNET4 = "198.51.100.10"
INTERNET6 = "2001:db8:ffff::10"
#: Port security's counters of dropped IPv4, IPv6 and neighbour discovery (per port).
DROPS = ("_ip", "_ip6", "_nd")


@dataclass
class Probes:
    """What a cloud user sees of lab ``name``'s guest from its internet host, whatever runs
    as the guest (the lab's namespace, a booted nspawn guest, a namespace per "boot" plugged
    into the switch's ``tapN``), for a scenario whose ports each have one fixed IPv4 address
    with a floating IP and one IPv6 global address. Which switch port a reply leaves the
    guest through is counted per source address (:func:`watch`, before port security); port
    security's own counters say what it dropped. Nothing asks multihome whether it worked."""

    name: str
    scenario: Scenario
    watching: bool = field(default=False)

    @property
    def switch(self) -> str:
        return f"{self.name}-sw"

    @property
    def internet(self) -> str:
        return f"{self.name}-inet"

    @property
    def ports(self) -> list[str]:
        return [p.name for p in self.scenario.ports]

    @property
    def taps(self) -> list[str]:
        return [switch_port(p) for p in self.scenario.ports]

    def addresses(self, port: str) -> tuple[str, str, str]:
        """``port``'s fixed IPv4 address, its floating IP and its IPv6 global address."""
        spec = next(p for p in self.scenario.ports if p.name == port)
        ip = spec.ips[0]
        return str(ip), str(spec.floating_ips[ip]), str(spec.ips6[0])

    @property
    def sources(self) -> list[str]:
        """The guest's addresses its replies come from (IPv4 fixed, IPv6 global)."""
        return [a for p in self.ports for a in self.addresses(p)[::2]]

    def replies(self) -> dict[tuple[str, str], int]:
        """Replies (TCP from port 80) seen per (switch port, source address)."""
        if not self.watching:
            watch(self.switch, self.taps, self.sources)
            self.watching = True
        got = counters(self.switch, "watch")
        return {
            (t, source): got[f"r_{i}_{s}"]
            for i, t in enumerate(self.taps)
            for s, source in enumerate(self.sources)
        }

    def drops(self) -> dict[str, int]:
        """Port security's drop counters of IPv4, IPv6 and ND, per port."""
        return {k: v for k, v in counters(self.switch, "portsec").items() if k.endswith(DROPS)}

    def check_second_port_dead(self) -> None:
        """Before the fix: the first port answers in both families; the second neither, its
        replies leave by the first port's switch port, where port security drops them."""
        first, second = self.ports[:2]
        _, floating0, v6_0 = self.addresses(first)
        _, floating1, v6_1 = self.addresses(second)
        seen, dropped = self.replies(), self.drops()
        assert http(self.internet, v6_0) == INTERNET6
        assert http(self.internet, floating0) == INTERNET4
        assert http(self.internet, v6_1) is None
        assert http(self.internet, floating1) is None
        now, after = self.replies(), self.drops()
        for kind in ("_ip", "_ip6"):
            assert after[first + kind] > dropped[first + kind], (kind, dropped, after)
        tap0, tap1 = self.taps[:2]
        assert now[(tap0, v6_1)] > seen[(tap0, v6_1)] and now[(tap1, v6_1)] == seen[(tap1, v6_1)]

    def check_every_address_answers(self) -> None:
        """After the fix: every floating IP and every IPv6 global address answers the
        internet host, each reply counted on its own switch port only, and port security
        drops nothing."""
        seen, dropped = self.replies(), self.drops()
        for port in self.ports:
            _, floating, v6 = self.addresses(port)
            assert http(self.internet, floating) == INTERNET4, port
            assert http(self.internet, v6) == INTERNET6, port
        now = self.replies()
        for own, port in zip(self.taps, self.ports, strict=True):
            for source in self.addresses(port)[::2]:
                for other in self.taps:
                    grew = now[(other, source)] > seen[(other, source)]
                    assert grew == (other == own), (port, source, other, now)
        assert self.drops() == dropped
