"""Where the OpenStack metadata comes from: a config drive, or the metadata service.

* config drive: a filesystem labelled ``config-2`` (found with ``blkid``), mounted read-only on
  a private temporary directory and unmounted right after reading; or a directory holding the
  drive's tree (``openstack/latest/...``), or a block device/image given explicitly;
* metadata service: ``http://169.254.169.254/openstack/latest/...`` over HTTP, with bounded
  retries and timeouts, never through a proxy.

Every reader returns a :class:`Metadata` or raises :class:`MetadataUnavailable` (nothing there,
or not reachable: "wait / use the kernel's view") or :class:`~multihome.errors.InputError`
(there, but malformed). Neither ever leads to a deletion.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multihome.errors import InputError, MetadataUnavailable
from multihome.reader import MAX_BYTES
from multihome.source.network_data import (
    MetaData,
    NetworkData,
    parse_meta_data,
    parse_network_data,
)

CONFIG_DRIVE_LABEL = "config-2"
METADATA_URL = "http://169.254.169.254"
NETWORK_DATA = "openstack/latest/network_data.json"
META_DATA = "openstack/latest/meta_data.json"


@dataclass(frozen=True)
class Metadata:
    """What one read of the metadata gave, and where it came from."""

    network: NetworkData
    meta: MetaData
    origin: str
    """``config drive /dev/sr0``, ``config drive DIR`` or ``metadata service URL``."""


@dataclass(frozen=True)
class Retry:
    """Bounded retries: ``attempts`` tries, ``timeout`` seconds each, ``delay`` doubling."""

    attempts: int = 3
    timeout: float = 2.0
    delay: float = 0.25
    total: float = 10.0
    """Seconds one whole answer may take: a service that drips an endless or huge body
    within each ``timeout`` is cut off (and not retried)."""


# -- config drive ------------------------------------------------------------------------
def read_tree(root: Path, origin: str) -> Metadata:
    """Read the metadata from a config drive's directory tree (mounted, or a copy)."""
    network_path = root / NETWORK_DATA
    raw = _read_limited(network_path)
    if raw is None:
        raise MetadataUnavailable(f"{origin}: no {NETWORK_DATA}")
    network = parse_network_data(raw, f"{origin}: {NETWORK_DATA}")
    meta_raw = _read_limited(root / META_DATA)
    meta = parse_meta_data(meta_raw, f"{origin}: {META_DATA}") if meta_raw else MetaData()
    return Metadata(network=network, meta=meta, origin=origin)


def _read_limited(path: Path) -> bytes | None:
    """At most ``MAX_BYTES + 1`` bytes of the regular file ``path`` (a FIFO or a device on a
    drive is refused, never waited for); None when it is not there."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise MetadataUnavailable(f"{path}: cannot read ({exc.strerror})") from exc
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(f"{path}: not a regular file; the config drive is not usable")
        try:
            return handle.read(MAX_BYTES + 1)
        except OSError as exc:
            raise MetadataUnavailable(f"{path}: cannot read ({exc.strerror})") from exc


def find_config_drive(
    runner: Callable[..., subprocess.CompletedProcess[str]] | None = None,
) -> list[Path]:
    """Block devices whose filesystem is labelled ``config-2`` (``blkid``)."""
    import shutil  # only when a config drive is looked for: the agent imports this module

    run = runner or subprocess.run
    blkid = shutil.which("blkid")
    if blkid is None:
        return []
    try:
        found = run(
            [blkid, "-o", "device", "-t", f"LABEL={CONFIG_DRIVE_LABEL}"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [Path(line) for line in found.stdout.split() if line.startswith("/dev/")]


def read_device(device: Path) -> Metadata:
    """Mount ``device`` (or an image file) read-only, read it, unmount it."""
    import shutil  # lazy, as in find_config_drive: tempfile (with random) only to mount
    import tempfile

    mount = shutil.which("mount")
    umount = shutil.which("umount")
    if mount is None or umount is None:
        raise MetadataUnavailable(f"config drive {device}: mount/umount are not installed")
    options = "ro,nosuid,nodev,noexec" + ("" if device.is_block_device() else ",loop")
    with tempfile.TemporaryDirectory(prefix="multihome-config-drive.") as where:
        try:
            done = subprocess.run(
                [mount, "-o", options, str(device), where],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise MetadataUnavailable(f"config drive {device}: mount failed: {exc}") from exc
        if done.returncode != 0:
            raise MetadataUnavailable(f"config drive {device}: mount failed: {done.stderr.strip()}")
        try:
            return read_tree(Path(where), f"config drive {device}")
        finally:
            subprocess.run([umount, where], capture_output=True, timeout=30, check=False)


def read_config_drive(location: Path | None = None) -> Metadata:
    """Read a config drive: ``location`` (directory, device or image) or the one labelled
    ``config-2``."""
    if location is not None:
        if location.is_dir():
            return read_tree(location, f"config drive {location}")
        if location.exists():
            return read_device(location)
        raise MetadataUnavailable(f"config drive {location}: no such file or directory")
    devices = find_config_drive()
    if not devices:
        raise MetadataUnavailable(f"no filesystem labelled {CONFIG_DRIVE_LABEL}")
    return read_device(devices[0])


# -- metadata service -------------------------------------------------------------------
def read_service(
    url: str = METADATA_URL, retry: Retry | None = None, sleep: Callable[[float], None] = time.sleep
) -> Metadata:
    """Fetch from the metadata service at ``url``, with bounded retries."""
    retry = retry or Retry()
    base = url.rstrip("/")
    origin = f"metadata service {base}"
    raw = _fetch(f"{base}/{NETWORK_DATA}", retry, sleep)
    network = parse_network_data(raw, f"{base}/{NETWORK_DATA}")
    try:
        meta_raw = _fetch(f"{base}/{META_DATA}", Retry(1, retry.timeout, 0), sleep)
        meta = parse_meta_data(meta_raw, f"{base}/{META_DATA}")
    except MetadataUnavailable:
        meta = MetaData()
    return Metadata(network=network, meta=meta, origin=origin)


def _fetch(url: str, retry: Retry, sleep: Callable[[float], None]) -> bytes:
    import urllib.error
    import urllib.request

    # Never through a proxy: 169.254.169.254 is link-local, a proxy cannot reach it.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    problem = "no attempt"
    delay = retry.delay
    for attempt in range(1, max(1, retry.attempts) + 1):
        try:
            with opener.open(url, timeout=retry.timeout) as answer:
                return _body(answer, url, retry.total)
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code}"
            if exc.code == 404:
                break  # the service answers, the document does not exist: do not insist
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            problem = str(reason)
        if attempt < retry.attempts:
            sleep(delay)
            delay *= 2
    raise MetadataUnavailable(f"{url}: {problem} (after {retry.attempts} attempt(s))")


def _body(answer: Any, url: str, total: float) -> bytes:
    """At most ``MAX_BYTES + 1`` bytes of the answer (the parser refuses more, naming the
    limit), read within ``total`` seconds."""
    deadline = time.monotonic() + total
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_BYTES:
        if time.monotonic() > deadline:
            raise MetadataUnavailable(
                f"{url}: the answer took longer than {total:g} s ({size} bytes so far); a "
                "metadata service answers in well under a second: check it, or use a config "
                "drive"
            )
        chunk: bytes = answer.read1(min(65536, MAX_BYTES + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


# -- choosing ----------------------------------------------------------------------------
def read_metadata(location: str | None = None, retry: Retry | None = None) -> Metadata:
    """Read the metadata from ``location`` (URL, directory, device or image), or discover it:
    the config drive first, then the metadata service."""
    if location is not None:
        if location.startswith(("http://", "https://")):
            return read_service(location, retry)
        return read_config_drive(Path(location))
    try:
        return read_config_drive()
    except MetadataUnavailable as drive_problem:
        try:
            return read_service(METADATA_URL, retry)
        except MetadataUnavailable as service_problem:
            raise MetadataUnavailable(f"{drive_problem}; {service_problem}") from None
