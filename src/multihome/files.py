"""All file I/O of multihome: atomic writes (tmp + fsync + rename) under a ``--root`` prefix."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path, PurePath

from multihome.errors import InputError

#: Where the README's install links multihome's program (and cloud user-data's pip install):
#: the one place that says so. A unit names the program actually installed
#: (:func:`installed_program`); this is only the last resort.
PROGRAM = "/usr/local/bin/multihome"
#: Where the Debian package installs the program.
PACKAGED_PROGRAM = "/usr/bin/multihome"
#: The places an install or a package puts the program, in order of preference.
PROGRAMS = (PROGRAM, PACKAGED_PROGRAM)

#: The configuration file (below ``--root``) when ``--config`` is not given.
DEFAULT_CONFIG_PATH = Path("/etc/multihome/config.yaml")
HEADER = "# Managed by multihome; do not edit: it is rewritten on every apply/persist.\n"


def json_text(data: object) -> str:
    """``data`` as multihome writes JSON for people, files and diffs: indented by two, keys
    sorted, one trailing newline."""
    import json  # here: the no-op apply reads and writes state files without it

    return json.dumps(data, indent=2, sort_keys=True) + "\n"


#: The version of every JSON document a command prints with ``--json`` (its ``"schema"`` key;
#: docs/multihome.8.md, "JSON output"). Raised when a key changes meaning or disappears.
JSON_SCHEMA = 1


def json_output(data: Mapping[str, object]) -> str:
    """A command's ``--json`` document: ``data`` with its ``"schema"`` version, as
    :func:`json_text`."""
    return json_text({"schema": JSON_SCHEMA, **data})


def under_root(root: Path, path: PurePath | str) -> Path:
    """``path`` (absolute, as on the target system) below ``root``."""
    relative = str(path).lstrip("/")
    return root / relative


def read_text(path: Path) -> str | None:
    """The file's text, or None when it does not exist."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _temporary(path: Path) -> tuple[int, str]:
    """A new file beside ``path`` to rename over it (``tempfile.mkstemp`` without the 35 ms
    of imports it brings: shutil, bz2, lzma)."""
    while True:
        tmp = str(path.parent / f".{path.name}.{os.urandom(6).hex()}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), tmp
        except FileExistsError:
            continue


def make_dirs(path: Path, mode: int = 0o755) -> None:
    """Create ``path`` and its missing parents with exactly ``mode`` (not the umask's: a
    umask of 000, as some launchers leave, must not make a directory others can write to).
    Directories that exist already are left as they are."""
    missing = []
    probe = path
    while not probe.is_dir():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=mode)
        except FileExistsError:
            continue  # made by another process in between
        os.chmod(directory, mode)


def write_atomic(path: Path, content: str, mode: int = 0o644, *, durable: bool = True) -> bool:
    """Write ``content`` to ``path`` atomically; return False when it already had it.

    ``durable``: fsync the file and its folder, so that it survives a power loss (scratch
    files under /run need not)."""
    if read_text(path) == content:
        return False
    try:
        make_dirs(path.parent)
        fd, tmp = _temporary(path)
    except OSError as exc:
        raise InputError(
            f"{path.parent}: cannot write here ({exc.strerror}); pass a "
            "writable --root or run as root"
        ) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        if durable:
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def remove_file(path: Path) -> bool:
    """Remove ``path``; return False when it was not there."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def running_programs() -> list[str]:
    """Where the ``multihome`` program running now may be, best first: the console script
    (``sys.argv[0]``: a venv, pipx, ``/usr/bin`` from the package), then each ``multihome``
    on ``PATH`` (``python -m multihome`` behind a wrapper script). Absolute paths, unchecked."""
    import sys

    argv0 = sys.argv[0] if sys.argv else ""
    found = [os.path.abspath(argv0)] if os.path.basename(argv0) == "multihome" else []
    found += [
        os.path.join(directory, "multihome")
        for directory in os.environ.get("PATH", "").split(os.pathsep)
        if os.path.isabs(directory)
    ]
    return found


def installed_program(root: Path) -> str | None:
    """The path (as on the target) of the multihome program a unit written below ``root``
    should run: the program running now when the target has it at the same path, else the
    first of :data:`PROGRAMS` installed there; None when the target has none."""
    for candidate in [*running_programs(), *PROGRAMS]:
        if _executable(under_root(root, candidate)):
            return candidate
    return None


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)
