"""The network manager running in this network namespace: which one, whether it reads the
files under a ``--root``, and how to talk to it (its own control tool, in its mount namespace).

Used by ``persist`` (to make the running manager load what it wrote) and ``doctor`` (to find
a persisted configuration the running manager has not loaded). A manager counts only when it
runs in this network namespace *and* its configuration directory is the very directory under
``root`` (same inode): ``--root /mnt/image``, a test's temporary root or the host's daemons
seen from a namespace never qualify, so nothing reloads a daemon that does not read the files.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multihome.files import under_root

#: /proc/PID/comm of systemd-networkd (cut at 15 characters).
NETWORKD_COMM = "systemd-network"
#: Where networkd reads .network files and drop-ins written by persist (and netplan's output).
NETWORKD_DIRS = ("/etc/systemd/network", "/run/systemd/network")
#: How long a control command may take before it counts as failed.
TIMEOUT = 20.0


@dataclass(frozen=True)
class Manager:
    """A network manager process that reads its configuration from ``root``."""

    name: str
    pid: int
    own_mounts: bool
    """True when it runs in another mount namespace (a container, a test): commands enter it."""

    def command(self, *argv: str) -> list[str]:
        """``argv`` run where the manager's control socket and bus are."""
        if self.own_mounts:
            return ["nsenter", "-t", str(self.pid), "-m", "--", *argv]
        return list(argv)

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """Run a control command; never raises for its exit status (the caller reports it)."""
        try:
            return subprocess.run(
                self.command(*argv), capture_output=True, text=True, timeout=TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return subprocess.CompletedProcess(list(argv), 127, "", str(exc))


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _ns(pid: str, kind: str, proc: Path) -> int | None:
    try:
        return os.stat(proc / pid / "ns" / kind).st_ino
    except OSError:
        return None


def find_networkd(root: Path, proc: Path = Path("/proc")) -> Manager | None:
    """systemd-networkd in this network namespace reading ``root``'s networkd directories."""
    mine, mounts = _ns("self", "net", proc), _ns("self", "mnt", proc)
    if mine is None:
        return None
    for entry in sorted(proc.iterdir(), key=lambda p: p.name):
        if not entry.name.isdigit() or _ns(entry.name, "net", proc) != mine:
            continue
        try:
            if (entry / "comm").read_text().strip() != NETWORKD_COMM:
                continue
        except OSError:
            continue
        theirs = entry / "root"
        if any(
            _same(under_root(theirs, d), under_root(root, d))
            for d in NETWORKD_DIRS
            if under_root(root, d).is_dir()
        ):
            own_mounts = _ns(entry.name, "mnt", proc) != mounts
            return Manager("systemd-networkd", int(entry.name), own_mounts)
    return None


def networkd_links(manager: Manager) -> dict[str, dict[str, Any]]:
    """``networkctl --json=short status`` per link name (empty when networkd does not answer)."""
    result = manager.run("networkctl", "--json=short", "status")
    if result.returncode != 0:
        return {}
    try:
        data = json.loads(result.stdout)
    except ValueError:
        return {}
    interfaces = data.get("Interfaces", []) if isinstance(data, dict) else []
    return {str(i.get("Name")): i for i in interfaces if isinstance(i, dict)}


def own_route_tables(link: dict[str, Any]) -> set[int]:
    """The tables holding routes networkd configured itself on this link (from its .network
    files and drop-ins, or its DHCP lease), as opposed to ``foreign`` ones it found there."""
    return {
        int(r["Table"])
        for r in link.get("Routes", [])
        if isinstance(r, dict) and r.get("ConfigSource") not in (None, "foreign") and "Table" in r
    }


def networkd_not_loaded(manager: Manager, tables: Mapping[str, int]) -> list[str]:
    """Ports (of ``tables``: port -> its table) networkd manages without a route of its own in
    the port's table: the running networkd has not loaded the files that put them there."""
    links = networkd_links(manager)
    return sorted(
        port
        for port, table in tables.items()
        if port in links
        and links[port].get("AdministrativeState") == "configured"
        and table not in own_route_tables(links[port])
    )
