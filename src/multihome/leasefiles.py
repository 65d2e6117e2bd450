"""Which DHCP lease files a host has, and their signature (paths, sizes, modification times).

:class:`multihome.source.leases.LeaseReader` reads and parses the files listed here; the
no-op apply (:mod:`multihome.noop`) compares their signature with the one recorded after the
last apply without parsing them, so this module imports no parser, no model, no typing and
no ``pathlib`` (paths are text, as ``pathlib`` writes them: :mod:`multihome.files`).
"""

from __future__ import annotations

import errno
import os
import time

from multihome.files import anchored, join, name_of, normal, rooted

TYPE_CHECKING = False  # typing is for the type checker only (start-up time)
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from _typeshed import StrPath

    from multihome.transaction.statedir import StateDir

#: dhclient's, NetworkManager's (dhclient format) lease files, below the root.
DHCLIENT_GLOBS = (
    "var/lib/dhcp/dhclient*.leases",
    "var/lib/dhclient/*.lease",
    "var/lib/dhclient/*.leases",
    "var/lib/NetworkManager/*.lease",
    "run/NetworkManager/*.lease",
)
#: Folders of lease files named by interface index: systemd-networkd's, NetworkManager's.
NETWORKD_LEASES = "/run/systemd/netif/leases"
NM_DEVICES = "/run/NetworkManager/devices"


#: A folder's listing kept in :data:`Listings` (the folder's device, inode, modification
#: time -> its matches per pattern).
Listings = dict[str, tuple[tuple[int, int, int], dict[str, list[str]]]]
#: A listing is kept only when the folder's modification time is this much older than the
#: moment it was taken: the kernel stamps a folder with a coarse clock (a tick of up to
#: 10 ms), so a change in the same tick as the listing could leave the stamp as it was.
SETTLED_NS = 100_000_000


def dhclient_files(
    root: StrPath,
    extra: Iterable[StrPath],
    processes: Iterable[str],
    listings: Listings | None = None,
) -> Iterator[str]:
    """The dhclient-format files below ``root``, then ``extra`` (files or globs, absolute),
    then ``processes`` (the running dhclients' files: :func:`dhclient_lease_files`).

    With ``listings`` (the agent's, kept across reads), a folder whose modification time
    has not changed since its listing is not listed again: one ``stat`` instead of a glob."""
    for pattern in DHCLIENT_GLOBS:
        yield from _matches(root, pattern, listings)
    for path in extra:
        text = normal(os.fspath(path))
        if any(c in text for c in "*?["):
            yield from _matches(*anchored(text), listings)
        else:
            yield text
    yield from processes


def glob_sorted(folder: StrPath, pattern: str) -> list[str]:
    """``sorted(Path(folder).glob(pattern))`` (as text) for a ``pattern`` within one folder.

    The lease folders' patterns are names with one ``*`` (``dhclient*.leases``,
    ``*``): for them the folder is listed once and each name compared with its prefix and
    suffix. ``Path.glob`` compiled a regular expression for every pattern and walked its
    selectors, about 2% of a 16-port apply (every apply lists these folders twice: the no-op
    check's signature, then the reader). Any other pattern goes to ``Path.glob``. As there,
    a missing or unreadable folder has no matches, and hidden names match ``*``."""
    head, star, tail = pattern.partition("*")
    if not star or "*" in tail or any(c in pattern for c in "/?["):
        return _path_glob(folder, pattern)
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EBADF):
            return []
        raise
    least = len(head) + len(tail)
    # One folder, names without a slash: the texts sort as the paths would.
    return sorted(
        join(folder, name)
        for name in names
        if len(name) >= least and name.startswith(head) and name.endswith(tail)
    )


def _path_glob(folder: StrPath, pattern: str) -> list[str]:
    """``sorted(Path(folder).glob(pattern))`` as text: the patterns the fast forms do not
    take (a host's usual lease folders never need it)."""
    from pathlib import Path

    return [str(path) for path in sorted(Path(folder).glob(pattern))]


def _matches(base: StrPath, pattern: str, listings: Listings | None) -> list[str]:
    """``sorted(Path(base).glob(pattern))``, from ``listings`` while the folder is unchanged."""
    folder, _, name = pattern.rpartition("/")
    if any(c in folder for c in "*?["):
        return _path_glob(base, pattern)
    where = join(base, folder)
    if listings is None:
        return glob_sorted(where, name)
    taken = time.time_ns()  # before the stat: a change after it stamps a later time
    try:
        stat = os.stat(where)
    except OSError:
        listings.pop(where, None)
        return []
    stamp = (stat.st_dev, stat.st_ino, stat.st_mtime_ns)
    kept = listings.get(where)
    if kept is None or kept[0] != stamp:
        kept = (stamp, {})
        if taken - stat.st_mtime_ns >= SETTLED_NS:
            listings[where] = kept
        else:
            listings.pop(where, None)
    found = kept[1].get(name)
    if found is None:
        found = kept[1][name] = glob_sorted(where, name)
    return found


def indexed_files(root: StrPath) -> list[tuple[str, str, int]]:
    """The networkd and NetworkManager files below ``root``: (path, the folder, ifindex)."""
    found = []
    for base in (NETWORKD_LEASES, NM_DEVICES):
        for path in glob_sorted(rooted(root, base), "*"):
            name = name_of(path)
            if name.isdigit():
                found.append((path, base, int(name)))
    return found


def dhclient_lease_files() -> list[str]:
    """The ``-lf`` file of every dhclient process in this network namespace."""
    try:
        own = os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return []
    found: list[str] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if _read_all(f"/proc/{entry.name}/comm").strip() != b"dhclient":
                continue
            argv = _read_all(f"/proc/{entry.name}/cmdline").split(b"\0")
            if os.stat(f"/proc/{entry.name}/ns/net").st_ino != own:
                continue
        except OSError:
            continue
        # zip, not itertools.pairwise: importing itertools costs every no-op apply 0.5 M
        # instructions (of ~85 M at 256 ports)
        for flag, value in zip(argv, argv[1:], strict=False):  # noqa: RUF007
            if flag == b"-lf" and value:
                found.append(normal(os.fsdecode(value)))
    return found


def _read_all(path: str) -> bytes:
    """The whole of the file ``path``, read with ``os.read``: :func:`dhclient_lease_files`
    reads the ``comm`` of every process on the host, twice per apply, and ``open()``'s
    buffered file object cost several times the read itself."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def agent_lease_files(root: StrPath, state: StateDir | None = None) -> tuple[str, ...]:
    """The lease files of the DHCP clients the agent started in this network namespace;
    ``state``: its state directory, when the caller has it (not looked up again)."""
    if state is not None:
        return (state.file("dhclient.*.leases"),)
    from multihome.transaction.statedir import StateDir  # agent.state's run_dir, lighter

    try:
        return (StateDir.current(root).file("dhclient.*.leases"),)
    except OSError:
        return ()


def signature(paths: Iterable[StrPath]) -> str:
    """The files' paths, sizes and modification times: it changes when a lease does."""
    parts = []
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            continue
        parts.append(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}")
    return "\n".join(parts)


def host_signature(root: StrPath, state: StateDir | None = None) -> str:
    """The signature of every lease file a one-shot command (apply) below ``root`` reads:
    that of ``host_reader(root).files()`` (:mod:`multihome.source.portfacts`); ``state``:
    this namespace's state directory below ``root``, when the caller has it."""
    dhclient = dhclient_files(root, agent_lease_files(root, state), dhclient_lease_files())
    return signature([*dhclient, *(path for path, _base, _index in indexed_files(root))])
