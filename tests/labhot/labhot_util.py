"""Helpers of the live-lab tests: the CLI, a lab per test, the agent in its guest, and checks
made with `ip`, `nft` and `curl` directly (never with the code under test).

(A uniquely named module, so that it does not clash with other areas' test helpers.)
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The lab's own test tools (tests/lab/labtools.py), shared rather than copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
from labtools import NETNS_RUN, force_remove, leftovers, ns_run, run_cli
from netnsid import state_dir_of

__all__ = [
    "NETNS_RUN",
    "LiveLab",
    "force_remove",
    "leftovers",
    "missing_programs",
    "new_name",
    "ns_run",
    "run_cli",
    "wait_until",
]

PROTO_MULTIHOME = ("222", "multihome")
PROGRAMS = ("ip", "nft", "dnsmasq", "dhclient", "curl", "ping", "sysctl")


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> float:
    """Poll ``predicate`` until true; the seconds it took, or fail saying ``what``."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


@dataclass
class LiveLab:
    """A lab (one unique prefix) and what a test started in it."""

    name: str
    tmp: Path
    agent: subprocess.Popen[str] | None = None
    extra: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def guest(self) -> str:
        return f"{self.name}-vm"

    def cli(self, verb: str, *args: str) -> subprocess.CompletedProcess[str]:
        """``multihome lab VERB --name NAME ARGS``."""
        return run_cli("lab", verb, "--name", self.name, *args)

    def ok(self, verb: str, *args: str) -> str:
        done = self.cli(verb, *args)
        assert done.returncode == 0, f"lab {verb} {args}: {done.stdout}{done.stderr}"
        return done.stdout

    def probe(self) -> dict[str, Any]:
        return dict(json.loads(self.ok("probe", "--json")))

    def ip_json(self, *args: str) -> list[dict[str, Any]]:
        done = subprocess.run(
            ["ip", "-n", self.guest, "-j", *args], capture_output=True, text=True, check=True
        )
        return json.loads(done.stdout) if done.stdout.strip() else []

    def rules(self) -> list[dict[str, Any]]:
        return self.ip_json("-4", "rule")

    def routes(self, table: str = "all") -> list[dict[str, Any]]:
        return self.ip_json("-4", "route", "show", "table", table)

    def owned(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Rules and routes marked with multihome's protocol."""
        rules = [r for r in self.rules() if str(r.get("protocol")) in PROTO_MULTIHOME]
        routes = [r for r in self.routes() if str(r.get("protocol")) in PROTO_MULTIHOME]
        return rules, routes

    def main_defaults(self) -> list[str]:
        return sorted(r["dev"] for r in self.routes("main") if r.get("dst") == "default")

    def addresses(self, ifname: str) -> list[str]:
        data = self.ip_json("-4", "addr", "show", "dev", ifname)
        return [a["local"] for entry in data for a in entry.get("addr_info", [])]

    def http(self, node: str, url: str, *extra: str) -> str | None:
        done = ns_run(
            f"{self.name}-{node}",
            "curl",
            "-s",
            "--noproxy",
            "*",
            "--connect-timeout",
            "1",
            "--max-time",
            "2",
            *extra,
            url,
        )
        return done.stdout.strip() if done.returncode == 0 else None

    def start_agent(self, *args: str) -> subprocess.Popen[str]:
        """`multihome agent` in the guest (its state under the test's folder), ready."""
        # The child writes into its own copy of the descriptor: ours closes at once.
        with (self.tmp / "agent.log").open("a") as log:
            self.agent = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    self.guest,
                    sys.executable,
                    "-m",
                    "multihome",
                    "--root",
                    str(self.tmp / "root"),
                    "agent",
                    "--dhcp-grace",
                    "0.3",
                    *args,
                ],
                stdout=log,
                stderr=log,
                text=True,
            )
        state = self.run_dir() / "agent.json"
        agent = self.agent

        def ready() -> bool:
            assert agent.poll() is None, self.agent_log()
            try:
                return bool(json.loads(state.read_text()).get("pid") == agent.pid)
            except (OSError, ValueError):
                return False

        wait_until(ready, 20, "the agent is ready")
        return self.agent

    def guest_processes(self, program: str) -> list[list[str]]:
        """argv of each ``program`` process running in the guest (read from /proc)."""
        pids = subprocess.run(
            ["ip", "netns", "pids", self.guest], capture_output=True, text=True, check=False
        ).stdout.split()
        found = []
        for pid in pids:
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().rstrip("\0").split("\0")
            except OSError:
                continue
            if os.path.basename(argv[0]) == program:
                found.append(argv)
        return found

    def run_dir(self) -> Path:
        """The agent's folder: ``{root}/run/multihome/netns-<cookie of the guest namespace>``."""
        return state_dir_of(self.tmp / "root", self.guest)

    def agent_log(self) -> str:
        path = self.tmp / "agent.log"
        return path.read_text() if path.exists() else ""

    def stop_agent(self) -> None:
        for process in [p for p in (self.agent, *self.extra) if p is not None]:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)


def new_name() -> str:
    return f"mhhot-{secrets.token_hex(3)}"


def missing_programs() -> list[str]:
    return [p for p in PROGRAMS if shutil.which(p) is None]
