"""Persistence renderers: pure functions ``RenderInput -> {path: FileSpec}``, one module per
backend, found through :data:`REGISTRY`.

Each :class:`Renderer` also knows how to tell whether its backend is installed on a target
system (:meth:`Renderer.available`, which only looks at files under ``root``) and what to run
to make the files take effect without a reboot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from multihome.files import under_root
from multihome.render import ifcfg, netplan, networkd, networkmanager, systemd
from multihome.render.base import (
    FileSpec,
    HostFacts,
    ManagedPort,
    Rendered,
    RenderInput,
    build_input,
)

__all__ = [
    "REGISTRY",
    "FileSpec",
    "HostFacts",
    "ManagedPort",
    "RenderInput",
    "Rendered",
    "Renderer",
    "build_input",
    "get",
]


def _no_notes(_inp: RenderInput) -> list[str]:
    return []


@dataclass(frozen=True)
class Renderer:
    """A persistence backend."""

    name: str
    render: Callable[[RenderInput], Rendered]
    requires: tuple[tuple[str, ...], ...]
    """Groups of paths on the target; the backend is installed when every group has one."""
    what: str
    """The package(s) to install when it is not."""
    activate: str
    """What to run so that the files take effect now (they do at the next boot anyway)."""
    notes: Callable[[RenderInput], list[str]] = _no_notes

    def available(self, root: Path) -> str | None:
        """None when installed under ``root``, else what is missing."""
        for group in self.requires:
            if not any(under_root(root, path).exists() for path in group):
                return f"{' or '.join(group)} not found"
        return None


_NETWORKD = ("/lib/systemd/systemd-networkd", "/usr/lib/systemd/systemd-networkd")
_NM = ("/usr/sbin/NetworkManager", "/usr/bin/NetworkManager")
_SYSTEMCTL = ("/bin/systemctl", "/usr/bin/systemctl")

REGISTRY: dict[str, Renderer] = {
    r.name: r
    for r in (
        Renderer(
            networkd.NAME,
            networkd.render,
            (_NETWORKD,),
            "systemd (systemd-networkd)",
            "networkctl reload",
        ),
        Renderer(
            netplan.NAME,
            netplan.render,
            (("/usr/sbin/netplan", "/usr/bin/netplan"),),
            "netplan.io",
            "netplan generate && networkctl reload",
            notes=netplan.notes,
        ),
        Renderer(
            networkmanager.NAME,
            networkmanager.render,
            (_NM,),
            "network-manager",
            "nmcli connection reload && nmcli connection up multihome-<each port>",
        ),
        Renderer(
            ifcfg.NAME,
            ifcfg.render,
            (_NM, ("/etc/sysconfig/network-scripts",)),
            "NetworkManager with the ifcfg-rh plugin (RHEL 7/8)",
            "nmcli connection reload && nmcli connection up multihome-<each port>",
        ),
        Renderer(
            systemd.NAME,
            systemd.render,
            (_SYSTEMCTL,),
            "systemd",
            "systemctl daemon-reload && udevadm control --reload && "
            "systemctl start multihome@<each port>.service",
            notes=systemd.notes,
        ),
    )
}


def get(name: str) -> Renderer | None:
    return REGISTRY.get(name)
