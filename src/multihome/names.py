"""Table and protocol names for iproute2: ``rt_tables.d/multihome.conf``, ``rt_protos.d``."""

from __future__ import annotations

from multihome.files import HEADER, read_text, rooted, under_root, write_atomic

# Not ``typing.TYPE_CHECKING``: the no-op apply (multihome.noop) reads the name files' paths
# here without importing typing, pathlib or the model.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from _typeshed import StrPath

    from multihome.model import Table

RT_TABLES_FILE = "/etc/iproute2/rt_tables.d/multihome.conf"
RT_PROTOS_FILE = "/etc/iproute2/rt_protos.d/multihome.conf"


def render_rt_tables(tables: Iterable[Table]) -> str:
    lines = [HEADER]
    lines += [f"{t.id}\t{t.name}\t# {t.ifname}\n" for t in sorted(tables)]
    return "".join(lines)


def render_rt_protos() -> str:
    from multihome.model import PROTO_MULTIHOME

    return f"{HEADER}{PROTO_MULTIHOME}\tmultihome\n"


def register_names(root: StrPath, tables: Iterable[Table]) -> list[Path]:
    """Write the name files under ``root``; return the ones that changed."""
    changed = []
    for path, content in (
        (RT_TABLES_FILE, render_rt_tables(tables)),
        (RT_PROTOS_FILE, render_rt_protos()),
    ):
        target = under_root(root, path)
        if write_atomic(target, content):
            changed.append(target)
    return changed


def registered_tables(root: StrPath) -> dict[int, str]:
    """The table ids and names in multihome's own ``rt_tables.d`` file under ``root`` (only
    when the file carries multihome's header): the tables earlier applies gave out."""
    return _registered(read_text(rooted(root, RT_TABLES_FILE)))


def adds_tables(text: str | None, tables: Iterable[Table]) -> bool:
    """``tables`` holds an id that the ``rt_tables.d`` file's ``text`` does not register: the
    file must be written before the first kernel change that may fill that table (reset,
    rollback and doctor know multihome's tables by it); one that only loses tables can wait
    until after the last change."""
    registered = _registered(text)
    return any(table.id not in registered for table in tables)


def _registered(text: str | None) -> dict[int, str]:
    if text is None or not text.startswith(HEADER):
        return {}
    found: dict[int, str] = {}
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 2 and parts[0].isdigit():
            found[int(parts[0])] = parts[1]
    return found
