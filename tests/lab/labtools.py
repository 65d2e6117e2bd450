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
from pathlib import Path
from typing import Any

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
