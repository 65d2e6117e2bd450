"""Make the running network manager load what ``persist`` wrote, without bouncing the links.

Only a manager that runs in this network namespace and reads the very files under ``--root``
is asked (:mod:`multihome.managers`): ``--root /mnt/image`` or a test's temporary root never
reload a daemon that does not read them, and nothing is reloaded inside ``multihome lab
exec``. Per backend:

* networkd: ``networkctl reload``. systemd 252 reconfigures each link whose .network file
  or drop-ins changed (measured in the lab: it drops and re-requests the DHCP lease, the
  address is gone for 70-80 ms and comes back with the same lease; no carrier or link state
  change); then wait until networkd has a route of its own in every port's table.
* netplan (networkd renderer): ``netplan generate`` (never ``netplan apply``, which may bounce
  links), then as networkd.
* systemd unit: nothing to reload (``apply`` already put the policy in place; the unit
  re-applies it at boot and on hot-plug).
* NetworkManager, ifcfg: not yet (the next boot, or the command printed, activates them).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multihome.managers import (
    Manager,
    find_networkd,
    networkd_links,
    networkd_not_loaded,
    own_route_tables,
)

#: How long to wait for networkd to have reconfigured the ports after the reload.
SETTLE = 20.0


@dataclass(frozen=True)
class Activation:
    """What persist did to make the running manager use the files."""

    state: str
    """``activated``, ``already`` (the manager uses them), ``next-boot``, ``not-needed``,
    ``failed`` or ``skipped`` (--no-activate, --dry-run)."""
    message: str
    manager: str | None = None
    commands: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "manager": self.manager,
            "commands": list(self.commands),
            "message": self.message,
        }


def unsettled(manager: Manager, tables: Mapping[str, int]) -> list[str]:
    """Ports networkd has not finished configuring, or configured with the old files."""
    links = networkd_links(manager)
    return sorted(
        port
        for port, table in tables.items()
        if port in links
        and (
            links[port].get("AdministrativeState") != "configured"
            or table not in own_route_tables(links[port])
        )
    )


def activate(root: Path, backend: str, tables: Mapping[str, int], changed: bool) -> Activation:
    """Make the manager that reads ``root`` load ``backend``'s files; ``tables``: port ->
    table; ``changed``: persist changed a file (else reload only if they are not loaded)."""
    if backend == "systemd":
        return Activation(
            "not-needed", "nothing to reload: the unit re-applies the policy at boot and hot-plug"
        )
    if os.environ.get("MULTIHOME_LAB"):
        return Activation("next-boot", "not activated inside `multihome lab exec`")
    if backend not in ("networkd", "netplan"):
        return Activation(
            "next-boot",
            f"the running {backend} configuration is not reloaded by this version",
        )
    manager = find_networkd(root)
    if manager is None:
        return Activation(
            "next-boot", f"no systemd-networkd in this network namespace reads {root}"
        )
    if not changed and not networkd_not_loaded(manager, tables):
        return Activation("already", "systemd-networkd already uses these files", manager.name)
    commands, failed = _reload(root, manager, netplan=backend == "netplan")
    if failed is not None:
        return failed
    deadline = time.monotonic() + SETTLE
    late = unsettled(manager, tables)
    while late and time.monotonic() < deadline:
        time.sleep(0.1)
        late = unsettled(manager, tables)
    if late:
        return _failed(
            manager,
            commands,
            f"after {SETTLE:.0f} s networkd has no route of its own in the table of "
            f"{', '.join(late)} (not configured yet, or not with these files)",
        )
    return Activation(
        "activated",
        "systemd-networkd reloaded: it reconfigured the ports with the new files",
        manager.name,
        tuple(commands),
    )


def deactivate(root: Path, removed: Sequence[str]) -> Activation:
    """After ``unpersist`` removed ``removed`` (paths as seen under ``root``): make the
    networkd that reads ``root`` forget them (netplan: ``netplan generate`` first, which also
    removes the networkd files it generated from the removed YAML; then ``networkctl
    reload``), so that the distribution's own files configure the ports again now, not at
    the next boot."""
    netplan = any(path.startswith("/etc/netplan/") for path in removed)
    networkd = netplan or any("/systemd/network/" in path for path in removed)
    if not networkd:
        return Activation("not-needed", "no networkd or netplan file was removed")
    if os.environ.get("MULTIHOME_LAB"):
        return Activation("next-boot", "not activated inside `multihome lab exec`")
    manager = find_networkd(root)
    if manager is None:
        return Activation(
            "next-boot", f"no systemd-networkd in this network namespace reads {root}"
        )
    commands, failed = _reload(root, manager, netplan=netplan)
    if failed is not None:
        return failed
    return Activation(
        "activated",
        "systemd-networkd reloaded: the distribution's own files configure the ports again",
        manager.name,
        tuple(commands),
    )


def _reload(root: Path, manager: Manager, *, netplan: bool) -> tuple[list[str], Activation | None]:
    """``netplan generate`` (for netplan) and ``networkctl reload`` in ``manager``'s mount
    namespace: the commands run, and the failure if one failed."""
    commands: list[str] = []
    steps = [["networkctl", "reload"]]
    if netplan:
        steps.insert(0, ["netplan", "generate", "--root-dir", str(root)])
    for step in steps:
        commands.append(" ".join(step))
        # netplan generate writes files: it runs without entering networkd's namespaces.
        runner = Manager(manager.name, manager.pid, False) if step[0] == "netplan" else manager
        done = runner.run(*step)
        if done.returncode != 0:
            return commands, _failed(manager, commands, done.stderr)
    return commands, None


def _failed(manager: Manager, commands: list[str], why: str) -> Activation:
    return Activation(
        "failed",
        f"{commands[-1]} failed ({why.strip() or 'no message'}); the files take effect at the "
        "next boot",
        manager.name,
        tuple(commands),
    )
