"""Persistence: choose a backend, read the facts renderers need, write multihome's own files.

All file I/O of ``persist``/``unpersist`` happens here, under a ``--root`` prefix and through
:mod:`multihome.files` (atomic writes). Safety rules:

* only multihome's own files are written or removed: every file carries the "Managed by
  multihome" marker and is listed in the manifest ``/var/lib/multihome/persist.json``; a path
  that exists and is neither is never overwritten (:class:`InputError`, nothing written);
* every check (root usable, backend installed, no foreign file in the way) runs before the
  first write, so bad input changes nothing;
* files of an earlier ``persist`` that the new one does not render any more are removed.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

from multihome.errors import InputError
from multihome.files import (
    PROGRAM,
    installed_program,
    make_dirs,
    read_text,
    remove_file,
    under_root,
    write_atomic,
)
from multihome.manifest import MANIFEST, Manifest, manifest_path, read_manifest
from multihome.model import HostState
from multihome.policy import DesiredState
from multihome.portconfig import NETPLAN_DIRS, Gap, PortConfig, gaps, read_port_config
from multihome.render import REGISTRY, FileSpec, HostFacts, Rendered, Renderer, build_input
from multihome.render.base import MARKER
from multihome.render.netplan import YAML_PATH as NETPLAN_OWN

#: The backend names: the renderer registry's, in its order (the registry is the one list).
BACKENDS = tuple(REGISTRY)


@dataclass(frozen=True)
class Choice:
    """The backend persist uses, and why (said to the user)."""

    renderer: Renderer
    reason: str


@dataclass(frozen=True)
class FileChange:
    """What persist does to one path: ``write``, ``remove`` or ``keep`` (already right)."""

    path: PurePosixPath
    action: str
    old: str | None
    spec: FileSpec | None

    def diff(self) -> str:
        """A unified diff of the change (empty for ``keep``)."""
        if self.action == "keep":
            return ""
        new = (
            ""
            if self.spec is None
            else (f"-> {self.spec.content}\n" if self.spec.symlink else self.spec.content)
        )
        return "".join(
            difflib.unified_diff(
                (self.old or "").splitlines(keepends=True),
                new.splitlines(keepends=True),
                fromfile=f"a{self.path}" if self.old is not None else "/dev/null",
                tofile=f"b{self.path}" if self.spec is not None else "/dev/null",
            )
        )


@dataclass(frozen=True)
class PersistResult:
    """What ``persist`` rendered and what it did (or would do, with ``dry_run``)."""

    choice: Choice
    changes: tuple[FileChange, ...]
    notes: tuple[str, ...]
    dry_run: bool
    facts: HostFacts = field(default_factory=HostFacts)

    @property
    def changed(self) -> bool:
        return any(c.action != "keep" for c in self.changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.choice.renderer.name,
            "reason": self.choice.reason,
            "dry_run": self.dry_run,
            "notes": list(self.notes),
            "activate": self.choice.renderer.activate,
            "files": [{"path": str(c.path), "action": c.action} for c in self.changes],
        }


# -- facts -------------------------------------------------------------------------------------


def read_ports(root: Path, state: HostState) -> PortConfig:
    """What configures each of the host's links under ``root`` (see :mod:`multihome.portconfig`)."""
    return read_port_config(root, ((link.name, link.mac) for link in state.links))


def gather_facts(root: Path, state: HostState, ports: PortConfig | None = None) -> HostFacts:
    """Read what the target's existing configuration says about the ports (under ``root``)."""
    ports = ports or read_ports(root, state)
    program = installed_program(root)
    has_networkd = REGISTRY["networkd"].available(root) is None
    return HostFacts(
        networkd_files=MappingProxyType({k: v.name for k, v in ports.networkd.items()}),
        netplan_ids=MappingProxyType({k: ident for k, (ident, _) in ports.netplan.items()}),
        netplan_renderer=ports.netplan_renderer,
        has_networkd=has_networkd,
        program=program or PROGRAM,
        program_found=program is not None,
    )


# -- choosing a backend --------------------------------------------------------------------------


def choose_backend(root: Path, requested: str, facts: HostFacts) -> Choice:
    """The renderer for ``requested`` (a backend name or ``auto``), or an InputError."""
    if requested != "auto":
        renderer = REGISTRY.get(requested)
        if renderer is None:
            raise InputError(
                f"--backend {requested}: unknown backend; choose auto or one of "
                f"{', '.join(BACKENDS)}"
            )
        missing = renderer.available(root)
        if missing:
            raise InputError(
                f"--backend {requested}: not installed under {root} ({missing}); "
                f"install {renderer.what} or choose another --backend"
            )
        return Choice(renderer, f"requested with --backend {requested}")
    return _detect(root, facts)


def _detect(root: Path, facts: HostFacts) -> Choice:
    def installed(name: str) -> bool:
        return REGISTRY[name].available(root) is None

    def exists(path: str) -> bool:
        return under_root(root, path).exists()

    netplan_yaml = [
        p.name
        for d in NETPLAN_DIRS
        if under_root(root, d).is_dir()
        for p in sorted(under_root(root, d).glob("*.yaml"))
        if p.name != NETPLAN_OWN.name
    ]
    wants = "/etc/systemd/system/multi-user.target.wants/"
    nm_enabled = exists(wants + "NetworkManager.service") or exists(
        "/etc/systemd/system/dbus-org.freedesktop.NetworkManager.service"
    )
    networkd_enabled = exists(wants + "systemd-networkd.service") or exists(
        "/etc/systemd/system/dbus-org.freedesktop.network1.service"
    )
    ifcfg_files = sorted(
        p.name
        for p in under_root(root, "/etc/sysconfig/network-scripts").glob("ifcfg-*")
        if p.name != "ifcfg-lo" and not p.name.startswith("ifcfg-multihome-")
    )
    if netplan_yaml and installed("netplan"):
        if facts.netplan_renderer == "NetworkManager" and installed("networkmanager"):
            return Choice(
                REGISTRY["networkmanager"],
                f"netplan ({', '.join(netplan_yaml)}) renders to NetworkManager, and "
                "netplan 0.106 drops routing-policy there: NetworkManager keyfiles",
            )
        return Choice(
            REGISTRY["netplan"],
            f"netplan configures this system "
            f"({', '.join(netplan_yaml)}, renderer {facts.netplan_renderer})",
        )
    if nm_enabled and installed("networkmanager"):
        if ifcfg_files and installed("ifcfg"):
            return Choice(
                REGISTRY["ifcfg"],
                "NetworkManager is enabled and the ports are "
                f"configured in ifcfg files ({', '.join(ifcfg_files)})",
            )
        return Choice(REGISTRY["networkmanager"], "NetworkManager is enabled")
    if networkd_enabled and installed("networkd"):
        return Choice(REGISTRY["networkd"], "systemd-networkd is enabled")
    if installed("systemd"):
        why = (
            "legacy network-scripts (ifcfg files without NetworkManager) cannot carry the "
            "rules natively"
            if ifcfg_files
            else "no netplan, NetworkManager or networkd configuration found"
        )
        return Choice(
            REGISTRY["systemd"],
            f"{why}: multihome@.service applies the policy at boot and on hot-plug",
        )
    raise InputError(
        f"--backend auto: no supported network configuration found under {root} "
        "(netplan, NetworkManager, systemd-networkd, ifcfg, systemd); pass "
        "--root pointing at the target system or choose --backend explicitly"
    )


# -- planning and writing ------------------------------------------------------------------------


def render_files(
    state: HostState, desired: DesiredState, choice: Choice, facts: HostFacts
) -> tuple[Rendered, list[str]]:
    """The files of ``choice`` for ``desired``, and the notes to show."""
    inp = build_input(state, desired, facts)
    notes = list(choice.renderer.notes(inp))
    if not inp.ports:
        notes.append("no interface needs its own table: only the iproute2 names are written")
    return choice.renderer.render(inp), notes


def plan_changes(root: Path, files: Mapping[PurePosixPath, FileSpec]) -> list[FileChange]:
    """Compare ``files`` with what is under ``root``; refuse to touch foreign files."""
    check_root(root)
    previous = set(read_manifest(root).files)
    changes = []
    for path in sorted(files):
        spec = files[path]
        target = _at(root, path)
        old = _current(target)
        if old is not None and path not in previous and not _ours(target, spec):
            raise InputError(
                f"{target}: exists and is not multihome's (no 'Managed by "
                "multihome' marker, not in the manifest); move it away or "
                "choose another --backend; nothing was written"
            )
        wanted = f"-> {spec.content}\n" if spec.symlink else spec.content
        same = old == wanted and (spec.symlink or _mode(target) == spec.mode)
        changes.append(FileChange(path, "keep" if same else "write", old, spec))
    for path in sorted(previous - set(files)):
        target = _at(root, path)
        old = _current(target)
        if old is not None:
            changes.append(FileChange(path, "remove", old, None))
    for change in changes:
        if change.action != "keep":
            _check_writable(root, change.path)
    return changes


def write_changes(root: Path, changes: Iterable[FileChange], backend: str) -> None:
    """Make ``changes`` and record every file in the manifest."""
    changes = list(changes)
    for change in changes:
        target = _at(root, change.path)
        if change.action == "write" and change.spec is not None:
            if change.spec.symlink:
                _symlink_atomic(target, change.spec.content)
            else:
                write_atomic(target, change.spec.content, change.spec.mode)
                os.chmod(target, change.spec.mode)
        elif change.action == "remove":
            remove_file(target)
            _prune_dirs(root, target.parent)
    owned = tuple(sorted(c.path for c in changes if c.action != "remove"))
    write_atomic(manifest_path(root), Manifest(backend, owned).text())


def persist(
    root: Path,
    state: HostState,
    desired: DesiredState,
    backend: str = "auto",
    *,
    dry_run: bool = False,
    force: bool = False,
) -> PersistResult:
    """Render the policy for ``backend`` and write it under ``root`` (unless ``dry_run``).

    Refuses (InputError, nothing written) when the backend would configure none of a managed
    port's settings (:func:`multihome.portconfig.gaps`); ``force`` makes that a warning."""
    check_root(root)
    ports = read_ports(root, state)
    facts = gather_facts(root, state, ports)
    choice = choose_backend(root, backend, facts)
    managed = sorted(i.name for i in desired.interfaces if i.table is not None)
    missing = gaps(choice.renderer.name, managed, ports)
    if missing and not force:
        raise unconfigured_error(choice, missing)
    files, notes = render_files(state, desired, choice, facts)
    notes += [
        f"{gap.text()} (written anyway: --force-backend); these files do nothing for it"
        for gap in missing
    ]
    changes = plan_changes(root, files)
    if not dry_run:
        write_changes(root, changes, choice.renderer.name)
    return PersistResult(choice, tuple(changes), tuple(notes), dry_run, facts)


def unconfigured_error(choice: Choice, missing: list[Gap]) -> InputError:
    """The refusal when ``choice``'s files would not configure some ports."""
    name = choice.renderer.name
    lines = "".join(f"\n  {gap.text()}" for gap in missing)
    error = InputError(
        f"--backend {name} ({choice.reason}): its files would configure no setting of "
        f"{', '.join(g.port for g in missing)}:{lines}\n"
        "nothing was written; --force-backend writes them anyway (with a warning)"
    )
    error.source = "--backend"
    return error


def unpersist(root: Path, *, dry_run: bool = False) -> list[FileChange]:
    """Remove every file an earlier ``persist`` wrote (and only those)."""
    check_root(root)
    changes = []
    for path in read_manifest(root).files:
        target = _at(root, path)
        old = _current(target)
        if old is None:
            continue
        if not target.is_symlink() and not old.startswith(MARKER):
            continue  # edited by someone since: it is theirs now
        _check_writable(root, path)
        changes.append(FileChange(path, "remove", old, None))
    if not dry_run:
        for change in changes:
            target = _at(root, change.path)
            remove_file(target)
            _prune_dirs(root, target.parent)
        manifest = manifest_path(root)
        if manifest.exists():
            _check_writable(root, MANIFEST)
            remove_file(manifest)
            _prune_dirs(root, manifest.parent)
    return changes


def check_root(root: Path) -> None:
    if not root.is_dir():
        raise InputError(
            f"--root {root}: not a directory; pass the target system's root directory (default /)"
        )


def _check_writable(root: Path, path: PurePosixPath) -> None:
    target = _at(root, path)
    probe = target if target.exists() or target.is_symlink() else target.parent
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe if probe.is_dir() else probe.parent, os.W_OK):
        raise InputError(
            f"--root {root}: {probe} is not writable; run as root or pass a "
            "writable --root; nothing was written"
        )


def _at(root: Path, path: PurePosixPath) -> Path:
    return under_root(root, str(path))


def _current(target: Path) -> str | None:
    if target.is_symlink():
        return f"-> {os.readlink(target)}\n"
    return read_text(target) if target.is_file() else None


def _ours(target: Path, spec: FileSpec) -> bool:
    if target.is_symlink():
        return spec.symlink and os.readlink(target) == spec.content
    return (read_text(target) or "").startswith(MARKER)


def _mode(target: Path) -> int:
    return target.stat().st_mode & 0o777


def _symlink_atomic(target: Path, destination: str) -> None:
    make_dirs(target.parent)
    tmp = target.with_name(f".{target.name}.multihome-tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(destination, tmp)
    os.replace(tmp, target)


def _prune_dirs(root: Path, directory: Path) -> None:
    """Remove the now-empty drop-in directories multihome creates (networkd's)."""
    while (
        directory != root
        and directory.is_dir()
        and (directory.name.endswith(".network.d") or directory.name == "networkd.conf.d")
    ):
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent
