"""All file I/O of multihome: atomic writes (tmp + fsync + rename) under a ``--root`` prefix.

Paths are text here (:func:`normal`, :func:`join`, :func:`rooted`, :func:`absolute`,
:func:`anchored`, :func:`parent`, :func:`name_of`: what ``pathlib`` makes of them, with
``str`` methods), and every helper takes a ``Path`` as well: the no-op apply
(:mod:`multihome.noop`) runs them without importing ``pathlib``, which brings ``re``,
``fnmatch``, ``enum``, ``urllib.parse`` and ``ipaddress`` along (a quarter of its
instructions at 256 ports).
``tests/unit/test_files_paths.py`` compares each text form with ``pathlib``'s own result.
"""

from __future__ import annotations

import errno
import os
import stat

from multihome.errors import InputError

# Not ``typing.TYPE_CHECKING``: the no-op apply imports neither typing nor pathlib.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from _typeshed import StrPath

#: Where the README's install links multihome's program (and cloud user-data's pip install):
#: the one place that says so. A unit names the program actually installed
#: (:func:`installed_program`); this is only the last resort.
PROGRAM = "/usr/local/bin/multihome"
#: Where the Debian package installs the program.
PACKAGED_PROGRAM = "/usr/bin/multihome"
#: The places an install or a package puts the program, in order of preference.
PROGRAMS = (PROGRAM, PACKAGED_PROGRAM)

#: The configuration file (below ``--root``) when ``--config`` is not given.
DEFAULT_CONFIG_PATH = "/etc/multihome/config.yaml"
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


def normal(path: str) -> str:
    """The text of ``PurePosixPath(path)``: empty and ``.`` parts and a trailing slash
    dropped, runs of slashes made one (but a leading ``//``, which POSIX leaves to the
    system, kept), ``..`` kept (not resolved); ``.`` for nothing."""
    if path.startswith("/"):
        head = "//" if path.startswith("//") and not path.startswith("///") else "/"
    else:
        head = ""
    return head + "/".join(part for part in path.split("/") if part and part != ".") or "."


def join(base: StrPath, name: StrPath) -> str:
    """The text of ``PurePosixPath(base) / name`` (an absolute ``name`` replaces ``base``)."""
    text = os.fspath(name)
    if text.startswith("/"):
        return normal(text)
    folder, rest = normal(os.fspath(base)), normal(text)
    if rest == ".":
        return folder
    if folder == ".":
        return rest
    return folder + rest if folder.endswith("/") else f"{folder}/{rest}"


def rooted(root: StrPath, path: StrPath) -> str:
    """``path`` (absolute, as on the target system) below ``root``, as text (the one
    definition: :func:`under_root` is its ``Path``)."""
    return join(root, os.fspath(path).lstrip("/"))


def under_root(root: StrPath, path: StrPath) -> Path:
    """``path`` (absolute, as on the target system) below ``root`` (:func:`rooted`)."""
    from pathlib import Path

    return Path(rooted(root, path))


def absolute(path: StrPath) -> str:
    """The text of ``Path(path).absolute()``: below the working directory unless absolute,
    ``..`` and links left as they are (``os.path.abspath`` would resolve ``..``)."""
    text = normal(os.fspath(path))
    return text if text.startswith("/") else join(os.getcwd(), text)


def anchored(path: StrPath) -> tuple[str, str]:
    """``PurePosixPath(path)``'s ``anchor`` (``/``, ``//`` or nothing) and the rest of it
    (text, relative to the anchor; ``.`` for none)."""
    text = normal(os.fspath(path))
    rest = text.lstrip("/")
    return text[: len(text) - len(rest)], rest or "."


def parent(path: StrPath) -> str:
    """The text of ``PurePosixPath(path).parent`` (a root's, and ``.``'s, is itself)."""
    anchor, rest = anchored(path)
    if rest == ".":
        return anchor or rest
    return anchor + rest.rpartition("/")[0] or "."


def name_of(path: StrPath) -> str:
    """The text of ``PurePosixPath(path).name``: the last part (empty for a root and ``.``)."""
    text = normal(os.fspath(path))
    return "" if text == "." else text.rpartition("/")[2]


#: The errors ``Path.exists`` and ``Path.is_dir`` take for "no" (pathlib's ``_IGNORED_ERRNOS``).
_ABSENT = (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP)


def _mode(path: StrPath) -> int | None:
    """``os.stat(path).st_mode``; None where ``Path.exists`` says False (pathlib's ignored
    errors, a path with a NUL); other errors raised as there."""
    try:
        return os.stat(path).st_mode
    except OSError as exc:
        if exc.errno not in _ABSENT:
            raise
        return None
    except ValueError:
        return None


def exists(path: StrPath) -> bool:
    """``Path(path).exists()``."""
    return _mode(path) is not None


def is_dir(path: StrPath) -> bool:
    """``Path(path).is_dir()``."""
    mode = _mode(path)
    return mode is not None and stat.S_ISDIR(mode)


def check_root(root: StrPath, option: str = "--root") -> None:
    """Refuse a ``--root`` that cannot be a folder: it, or the nearest of its parents that
    exists, is not a directory (a file given by mistake). A root that does not exist yet is
    fine: what multihome writes under it creates its folders."""
    given = here = normal(os.fspath(root))
    mode = _mode(here)
    while mode is None and parent(here) != here:
        here = parent(here)
        mode = _mode(here)
    if mode is not None and not stat.S_ISDIR(mode):
        where = "" if here == given else f" ({here} is)"
        fix = "give the folder that stands for the system's / (a guest's or an image's tree)"
        error = InputError(f"{option} {root}: not a directory{where}; {fix}")
        error.source, error.fix = option, fix
        raise error


def read_text(path: StrPath) -> str | None:
    """The file's text, or None when it does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _temporary(path: StrPath) -> tuple[int, str]:
    """A new file beside ``path`` to rename over it (``tempfile.mkstemp`` without the 35 ms
    of imports it brings: shutil, bz2, lzma)."""
    folder, name = parent(path), name_of(path)
    while True:
        tmp = join(folder, f".{name}.{os.urandom(6).hex()}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), tmp
        except FileExistsError:
            continue


def make_dirs(path: StrPath, mode: int = 0o755) -> None:
    """Create ``path`` and its missing parents with exactly ``mode`` (not the umask's: a
    umask of 000, as some launchers leave, must not make a directory others can write to).
    Directories that exist already are left as they are."""
    missing = []
    probe = normal(os.fspath(path))
    while not is_dir(probe):
        missing.append(probe)
        above = parent(probe)
        if above == probe:
            break
        probe = above
    for directory in reversed(missing):
        try:
            os.mkdir(directory, mode)
        except FileExistsError:
            continue  # made by another process in between
        os.chmod(directory, mode)


def write_atomic(path: StrPath, content: str, mode: int = 0o644, *, durable: bool = True) -> bool:
    """Write ``content`` to ``path`` atomically; return False when it already had it.

    ``durable``: fsync the file and its folder, so that it survives a power loss (scratch
    files under /run need not)."""
    if read_text(path) == content:
        return False
    folder = parent(path)
    try:
        make_dirs(folder)
        fd, tmp = _temporary(path)
    except OSError as exc:
        raise InputError(
            f"{folder}: cannot write here ({exc.strerror}); pass a writable --root or run as root"
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
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except BaseException:
        remove_file(tmp)
        raise
    return True


def remove_file(path: StrPath) -> bool:
    """Remove ``path``; return False when it was not there."""
    try:
        os.unlink(path)
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


def installed_program(root: StrPath) -> str | None:
    """The path (as on the target) of the multihome program a unit written below ``root``
    should run: the program running now when the target has it at the same path, else the
    first of :data:`PROGRAMS` installed there; None when the target has none."""
    for candidate in [*running_programs(), *PROGRAMS]:
        if _executable(under_root(root, candidate)):
            return candidate
    return None


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)
