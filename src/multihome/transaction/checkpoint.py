"""Checkpoints of what multihome owns, the cumulative record, and the changes that go back.

A checkpoint (saved right before an apply changes the kernel) holds the owned rules and routes,
the foreign routes the apply moves out of main, the prior values of the sysctls it sets and the
prior content of the name files it writes. Restoring it is a diff against the current state
(so it is exact, idempotent, and works from any half-way point).

The record accumulates over applies what ``reset`` needs to put back: every foreign route
moved out of main, and the first prior value of every sysctl multihome changed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

from multihome.backend import Backend, ChangeFailed
from multihome.config import Config
from multihome.files import HEADER, read_text, remove_file, under_root, write_atomic
from multihome.model import PROTO_BOOT, PROTO_MULTIHOME, TABLE_MAIN, HostState, Route, Sysctl
from multihome.names import RT_PROTOS_FILE, RT_TABLES_FILE
from multihome.plan import Change, make_plan
from multihome.policy import DesiredState, owned_routes, owned_rules, stray_routes
from multihome.transaction.statedir import (
    CHECKPOINT,
    PREVIOUS,
    RECORD,
    StateDir,
    boot_id,
    compose,
    json_text,
    list_text,
    new_id,
    object_text,
    route_from_json,
    route_to_json,
    rule_from_json,
    rule_to_json,
)
from multihome.values import field, frozen, replace

TYPE_CHECKING = False  # typing is for the type checker only (start-up time)
if TYPE_CHECKING:
    from typing import Any

NAME_FILES = (RT_TABLES_FILE, RT_PROTOS_FILE)


@frozen
class Checkpoint:
    """The owned state right before one apply (what ``rollback`` goes back to)."""

    id: str
    created: float
    boot: str
    table_range: tuple[int, int]
    priority_range: tuple[int, int]
    rules: tuple[Any, ...] = ()
    """Owned rules (:class:`~multihome.model.Rule`)."""
    routes: tuple[Route, ...] = ()
    """Owned routes."""
    moved: tuple[Route, ...] = ()
    """Foreign routes the apply takes out of main (put back by a restore)."""
    sysctls: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Prior values of the sysctls the apply sets."""
    files: Mapping[str, str | None] = field(default_factory=lambda: MappingProxyType({}))
    """Prior content (None: absent) of the name files, by path on the target system."""

    def ownership(self) -> Config:
        """A configuration that owns exactly what the apply's configuration owned."""
        return replace(Config(), table_range=self.table_range, priority_range=self.priority_range)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "id": self.id,
            "created": self.created,
            "boot_id": self.boot,
            "table_range": list(self.table_range),
            "priority_range": list(self.priority_range),
            "rules": [rule_to_json(r) for r in self.rules],
            "routes": [route_to_json(r) for r in self.routes],
            "moved": [route_to_json(r) for r in self.moved],
            "sysctls": dict(self.sysctls),
            "files": dict(self.files),
        }

    def text(self) -> str:
        """:meth:`to_json` as the state files hold it (:func:`~.statedir.json_text`), made
        of each route's and rule's text encoded once (:func:`~.statedir.object_text`)."""
        return compose(
            {
                "version": "1",
                "id": json_text(self.id),
                "created": json_text(self.created),
                "boot_id": json_text(self.boot),
                "table_range": json_text(list(self.table_range)),
                "priority_range": json_text(list(self.priority_range)),
                "rules": list_text(self.rules),
                "routes": list_text(self.routes),
                "moved": list_text(self.moved),
                "sysctls": json_text(dict(self.sysctls)),
                "files": json_text(dict(self.files)),
            }
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Checkpoint:
        return cls(
            id=str(data["id"]),
            created=float(data["created"]),
            boot=str(data["boot_id"]),
            table_range=(int(data["table_range"][0]), int(data["table_range"][1])),
            priority_range=(int(data["priority_range"][0]), int(data["priority_range"][1])),
            rules=tuple(rule_from_json(r) for r in data.get("rules", [])),
            routes=tuple(route_from_json(r) for r in data.get("routes", [])),
            moved=tuple(route_from_json(r) for r in data.get("moved", [])),
            sysctls=MappingProxyType(dict(data.get("sysctls", {}))),
            files=MappingProxyType(dict(data.get("files", {}))),
        )


def capture(
    state: HostState,
    changes: Sequence[Change],
    config: Config,
    root: Path,
    checkpoint_id: str | None = None,
) -> Checkpoint:
    """The checkpoint of ``state`` before ``changes`` are made."""
    owned = owned_routes(state, config)
    moved = tuple(
        sorted(
            (
                c.obj
                for c in changes
                if isinstance(c.obj, Route) and c.action == "remove" and c.obj not in owned
            ),
            key=lambda r: r.order,
        )
    )
    sysctls = {
        c.obj.name: state.sysctls[c.obj.name]
        for c in changes
        if isinstance(c.obj, Sysctl) and c.obj.name in state.sysctls
    }
    files = {str(path): read_text(under_root(root, path)) for path in NAME_FILES}
    return Checkpoint(
        id=checkpoint_id or new_id(),
        created=time.time(),
        boot=boot_id(),
        table_range=config.table_range,
        priority_range=config.priority_range,
        rules=tuple(sorted(owned_rules(state, config), key=lambda r: r.order)),
        routes=tuple(sorted(owned, key=lambda r: r.order)),
        moved=moved,
        sysctls=MappingProxyType(sysctls),
        files=MappingProxyType(files),
    )


def load(state_dir: StateDir) -> Checkpoint | None:
    data = state_dir.read_json(CHECKPOINT)
    return None if data is None else Checkpoint.from_json(data)


def save(state_dir: StateDir, saved: Checkpoint, text: str | None = None) -> None:
    """Save ``saved`` (``text``: its :meth:`~Checkpoint.text`, when the caller has it) before
    its apply changes anything; the checkpoint it replaces is kept
    (``snapshot.previous.json``) until the next save, for :func:`discard`."""
    try:
        os.replace(state_dir.file(CHECKPOINT), state_dir.file(PREVIOUS))
    except FileNotFoundError:
        state_dir.remove(PREVIOUS)  # no checkpoint: nothing to go back to after a failure
    state_dir.write_text(CHECKPOINT, saved.text() if text is None else text)


def discard(state_dir: StateDir, apply_id: str) -> None:
    """The apply ``apply_id`` failed and was undone: a failed apply never replaces the last
    good checkpoint, so the one its :func:`save` replaced comes back (or none, if none was)."""
    current = state_dir.read_json(CHECKPOINT)
    if current is None or current.get("id") != apply_id:
        return
    try:
        os.replace(state_dir.file(PREVIOUS), state_dir.file(CHECKPOINT))
    except FileNotFoundError:
        state_dir.remove(CHECKPOINT)


# -- going back ---------------------------------------------------------------------------
def _put_back(
    current: HostState, routes: Iterable[Route]
) -> tuple[list[Change], list[str], HostState]:
    """Changes that add ``routes`` back where they are missing and their slot is free. A
    slot held by multihome's own default in main (the policy put the primary's default back
    there from the port's facts) goes to the route it stood for: the changes remove ours
    first, and the state returned no longer holds it."""
    present = set(current.routes)
    ours = {
        r.slot: r for r in current.routes if r.table == TABLE_MAIN and r.proto == PROTO_MULTIHOME
    }
    slots = {r.slot for r in current.routes} - set(ours)
    changes: list[Change] = []
    notes: list[str] = []
    displaced: set[Route] = set()
    for route in sorted(routes, key=lambda r: (r.is_default, r.order)):
        if route in present:
            continue
        if route.ifname and current.link(route.ifname) is None:
            notes.append(f"not put back (interface {route.ifname} is gone): {route.describe()}")
            continue
        if route.family == 4 and route.slot in slots:
            notes.append(f"not put back (another route holds its place): {route.describe()}")
            continue
        slots.add(route.slot)
        if route.slot in ours:
            displaced.add(ours[route.slot])
            changes.append(Change("remove", ours[route.slot]))
        changes.append(Change("add", route))
    if displaced:
        current = replace(current, routes=tuple(r for r in current.routes if r not in displaced))
    return changes, notes, current


def _towards(
    current: HostState,
    config: Config,
    rules: Iterable[Any],
    routes: Iterable[Route],
    sysctls: Mapping[str, str],
) -> list[Change]:
    """make_plan's ordered diff from ``current`` to the given owned rules/routes/sysctls."""
    desired = DesiredState(
        interfaces=(),
        skipped=(),
        ignored=(),
        tables=(),
        routes=frozenset(r for r in routes if not r.ifname or current.link(r.ifname)),
        rules=frozenset(rules),
        sysctls=tuple(Sysctl(n, v) for n, v in sorted(sysctls.items()) if n in current.sysctls),
        main_removals=frozenset(),
        primary=None,
    )
    return list(make_plan(current, desired, config).changes)


def restore_changes(current: HostState, saved: Checkpoint) -> tuple[list[Change], list[str]]:
    """The changes that bring ``current`` back to ``saved`` (empty when it is there)."""
    changes, notes, left = _put_back(current, saved.moved)
    changes += _towards(left, saved.ownership(), saved.rules, saved.routes, saved.sysctls)
    return changes, notes


def restore_files(root: Path, saved: Checkpoint) -> list[Path]:
    """Put the name files back as they were; return the ones that changed."""
    changed = []
    for path, content in sorted(saved.files.items()):
        target = under_root(root, path)
        if content is None:
            if remove_file(target):
                changed.append(target)
        elif write_atomic(target, content):
            changed.append(target)
    return changed


def execute(backend: Backend, changes: Sequence[Change]) -> tuple[int, list[str]]:
    """Make ``changes`` one by one, going on after a failure; return (done, problems)."""
    done = 0
    problems: list[str] = []
    for change in changes:
        try:
            backend.apply([change])
            done += 1
        except ChangeFailed as failure:
            problems.append(f"{change.describe()}: {failure.reason}")
    return done, problems


# -- the record -----------------------------------------------------------------------------
@frozen
class Record:
    """What every apply so far moved or changed: what ``reset`` puts back."""

    moved: tuple[Route, ...] = ()
    sysctls: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "moved": [route_to_json(r) for r in self.moved],
            "sysctls": dict(self.sysctls),
        }

    @classmethod
    def load(cls, state_dir: StateDir) -> Record:
        return cls.from_json(state_dir.read_json(RECORD) or {})

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Record:
        return cls(
            moved=tuple(route_from_json(r) for r in data.get("moved", [])),
            sysctls=MappingProxyType(dict(data.get("sysctls", {}))),
        )

    def save(self, state_dir: StateDir) -> None:
        state_dir.write_json(RECORD, self.to_json())

    def add(self, saved: Checkpoint) -> Record:
        """This record plus what the apply of ``saved`` moves and changes (first value wins)."""
        moved = {r.key: r for r in self.moved}
        for route in saved.moved:
            moved.setdefault(route.key, route)
        sysctls = dict(saved.sysctls)
        sysctls.update(self.sysctls)
        return Record(
            tuple(sorted(moved.values(), key=lambda r: r.order)),
            MappingProxyType(dict(sorted(sysctls.items()))),
        )

    def prune(self, current: HostState) -> Record:
        """Forget moved routes that are back in main (nothing left to put back)."""
        present = set(current.routes)
        return Record(tuple(r for r in self.moved if r not in present), self.sysctls)


def record(state_dir: StateDir, saved: Checkpoint) -> None:
    """Add to the record in ``state_dir`` what the apply of ``saved`` moves and changes
    (:meth:`Record.add`), written only when it grew. An apply that moves nothing new (every
    re-apply after a reset or an undo) leaves it as it is without decoding its routes: the
    record's routes are compared as the texts the file holds (256 routes decoded and
    compared at 256 ports, 3% of a full apply, before)."""
    data = state_dir.read_json(RECORD) or {}
    if _holds(data, saved):
        return
    recorded = Record.from_json(data)
    if (grown := recorded.add(saved)) != recorded:  # a repair rarely moves anything new
        grown.save(state_dir)


def _holds(data: Mapping[str, Any], saved: Checkpoint) -> bool:
    """Whether the record's JSON ``data`` already has every route ``saved`` moves (the very
    same route, by its text) and a prior value of every sysctl it sets: then
    :meth:`Record.add` gives the record back (the first value wins)."""
    sysctls = data.get("sysctls", {})
    if any(name not in sysctls for name in saved.sysctls):
        return False
    if not saved.moved:
        return True
    texts = {json_text(route) for route in data.get("moved", [])}
    return all(object_text(route) in texts for route in saved.moved)


def reconstruct_moved(current: HostState, config: Config, record: Record) -> list[Route]:
    """Defaults that must go back to main but are missing from the record (state lost).

    An owned default copy for an interface that has no default of its family left in main
    stands for a moved route; its original protocol is unknown, so it goes back as ``proto
    boot``. A multipath default in main counts for every device among its next hops (the
    policy never moves it: each port's table holds a copy of its path, design.md section 5).
    """
    recorded = {r.ifname for r in record.moved if r.is_default}
    in_main = {
        (r.family, device)
        for r in current.routes
        if r.table == TABLE_MAIN and r.is_default
        for device in (r.ifname, *r.devices)
    }
    found: dict[tuple[int, str | None], Route] = {}
    for route in sorted(owned_routes(current, config), key=lambda r: (r.metric, r.order)):
        if (
            not route.is_default
            or route.ifname in recorded
            or (route.family, route.ifname) in in_main
        ):
            continue
        found.setdefault(
            (route.family, route.ifname), replace(route, table=TABLE_MAIN, proto=PROTO_BOOT)
        )
    return list(found.values())


def reset_changes(
    current: HostState, config: Config, record: Record, registered: Iterable[int] = ()
) -> tuple[list[Change], list[str]]:
    """The changes that remove everything multihome owns and put back what it moved.

    Besides what it owns by its marks (:func:`~multihome.policy.owned_routes`), the
    protocol-222 routes in the ``registered`` tables (those multihome's rt_tables.d file
    lists: an earlier ``tables.range`` gave them out) go too; other protocol-222 routes
    outside the range are left alone with a note.
    """
    moved = list(record.moved) + reconstruct_moved(current, config, record)
    changes, notes, left = _put_back(current, moved)
    changes += _towards(left, config, (), (), record.sysctls)
    tables = set(registered)
    stray = stray_routes(current, config)
    changes += [
        Change("remove", r)
        for r in sorted(stray, key=lambda r: (r.table, r.is_default, r.order), reverse=True)
        if r.table in tables
    ]
    unknown = sorted({r.table for r in stray if r.table not in tables})
    if unknown:
        notes.append(
            f"left alone: route(s) with multihome's protocol (222) in table(s) "
            f"{', '.join(map(str, unknown))}, outside tables.range and not registered by "
            "multihome (`multihome doctor` says more)"
        )
    return changes, notes


def remove_name_files(root: Path) -> list[Path]:
    """Remove the rt_tables.d/rt_protos.d files multihome wrote (recognised by its header)."""
    removed = []
    for path in NAME_FILES:
        target = under_root(root, path)
        text = read_text(target)
        if text is not None and text.startswith(HEADER) and remove_file(target):
            removed.append(target)
    return removed
