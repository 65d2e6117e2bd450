"""Table and protocol names for iproute2: ``rt_tables.d/multihome.conf``, ``rt_protos.d``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from multihome.files import HEADER, under_root, write_atomic
from multihome.model import PROTO_MULTIHOME, Table

RT_TABLES_FILE = Path("/etc/iproute2/rt_tables.d/multihome.conf")
RT_PROTOS_FILE = Path("/etc/iproute2/rt_protos.d/multihome.conf")


def render_rt_tables(tables: Iterable[Table]) -> str:
    lines = [HEADER]
    lines += [f"{t.id}\t{t.name}\t# {t.ifname}\n" for t in sorted(tables)]
    return "".join(lines)


def render_rt_protos() -> str:
    return f"{HEADER}{PROTO_MULTIHOME}\tmultihome\n"


def register_names(root: Path, tables: Iterable[Table]) -> list[Path]:
    """Write the name files under ``root``; return the ones that changed."""
    changed = []
    for path, content in ((RT_TABLES_FILE, render_rt_tables(tables)),
                          (RT_PROTOS_FILE, render_rt_protos())):
        target = under_root(root, path)
        if write_atomic(target, content):
            changed.append(target)
    return changed
