"""The persist manifest, ``/var/lib/multihome/persist.json``: what ``multihome persist`` wrote.

It names the backend and every file persist wrote (absolute paths as on the target). persist
writes it and reads it back, so that it replaces and removes only its own files; doctor reads
it to know whether, and for which network manager, the policy is persisted. It is multihome's
ownership mark for persisted files, as the protocol number is for rules and routes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from multihome.errors import InputError
from multihome.files import json_text, read_text, under_root

MANIFEST = PurePosixPath("/var/lib/multihome/persist.json")


@dataclass(frozen=True)
class Manifest:
    """What an earlier persist wrote (no backend and no files when there was none)."""

    backend: str | None = None
    files: tuple[PurePosixPath, ...] = ()

    def present(self, root: Path) -> list[PurePosixPath]:
        """The files that are still there under ``root`` (a symlink counts)."""
        return [
            path
            for path in self.files
            if under_root(root, path).exists() or under_root(root, path).is_symlink()
        ]

    def text(self) -> str:
        return json_text({"backend": self.backend, "files": [str(p) for p in self.files]})


def manifest_path(root: Path) -> Path:
    return under_root(root, MANIFEST)


def read_manifest(root: Path) -> Manifest:
    """The manifest under ``root``; an InputError (naming the file and the fix) when it is not
    one."""
    path = manifest_path(root)
    text = read_text(path)
    if text is None:
        return Manifest()
    try:
        data = json.loads(text)
        files = tuple(PurePosixPath(p) for p in data["files"] if str(p).startswith("/"))
        backend = data.get("backend")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(
            f"{path}: not a multihome manifest ({exc}); remove it if you removed "
            "multihome's files by hand"
        ) from exc
    return Manifest(backend if isinstance(backend, str) else None, files)
