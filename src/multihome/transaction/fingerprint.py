"""The fingerprint of an in-sync namespace: a no-op ``apply`` without reading the state.

After an apply (or a no-op) whose plan is done, multihome records in the namespace's state
directory a digest of the kernel state (:meth:`Backend.fingerprint`: links, addresses, routes,
rules and sysctls, from the raw dumps) together with a digest of everything else the plan
depends on (multihome's version, the configuration, the name files, the DHCP lease files the
ports' facts are read from, and when the first of those leases expires). The next ``apply`` that
finds both digests unchanged knows, without decoding the state or computing the policy, that
the plan is empty: the policy and the plan are pure functions of exactly these inputs.

The recorded state must be the one the plan was made for. It is recorded only when the
kernel sent no notification between the read and the fingerprint but those of the apply's own
route and rule changes, which the kernel drops for the watching socket (nothing else touched
links, addresses, routes or rules meanwhile: :meth:`Backend.watch`), and the sysctls read for
the fingerprint are the ones the apply left; otherwise nothing is recorded and the next apply
does the full read.
"""

from __future__ import annotations

import os
import stat
import time

# hashlib's own blake2b, without hashlib's OpenSSL binding (a shared library to load at
# every start; nothing here needs another algorithm).
from _blake2 import blake2b

from multihome._version import __version__
from multihome.files import DEFAULT_CONFIG_PATH, normal, read_text, rooted
from multihome.names import RT_PROTOS_FILE, RT_TABLES_FILE
from multihome.transaction.statedir import FINGERPRINT, StateDir

# Not ``typing.TYPE_CHECKING``: the no-op decision (multihome.noop) imports this module,
# and neither typing nor the model nor the backend.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from _typeshed import StrPath

    from multihome.backend import Backend
    from multihome.model import HostState
    from multihome.plan import Change


#: How much of the configuration file is read: one byte more than the parser accepts
#: (:data:`multihome.reader.MAX_BYTES`), so that it can say the file is too long.
CONFIG_LIMIT = (1 << 20) + 1


def config_source(config_path: StrPath | None, root: StrPath) -> tuple[str, bytes | None] | None:
    """The configuration file an apply reads (``--config``, else the default below ``root``;
    as ``pathlib`` writes it: :func:`~multihome.files.normal`) and its bytes: None for a
    default file that does not exist (the defaults apply); None as a whole when the file
    cannot be read as a regular file (the parser says why)."""
    if config_path is None:
        path = rooted(root, DEFAULT_CONFIG_PATH)
    else:
        path = normal(os.fspath(config_path))
    if config_path is None and not os.path.lexists(path):
        return path, None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks = []
        left = CONFIG_LIMIT
        while left > 0 and (chunk := os.read(fd, left)):
            chunks.append(chunk)
            left -= len(chunk)
        return path, b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def inputs(
    source: tuple[str, bytes | None] | None, root: StrPath, facts: str = "", options: str = ""
) -> str | None:
    """A digest of what the plan depends on besides the kernel state: multihome's version,
    the configuration (``source``: :func:`config_source`, the path and bytes it is parsed
    from: the policy is a pure function of them, so no parser is needed here), ``options``
    (those of the command line that change the policy: ``--no-sysctls``), ``facts`` (what
    the ports' facts come from: the lease files' signature) and the name files. None when
    the configuration could not be read (nothing is trusted, nothing recorded)."""
    if source is None:
        return None
    path, config = source
    digest = blake2b(digest_size=20)
    size = -1 if config is None else len(config)
    digest.update(f"{__version__}\n{path}\n{size}\n".encode())
    digest.update(config or b"")
    digest.update(f"\n{options}\n{facts}\n".encode())
    for name in (RT_TABLES_FILE, RT_PROTOS_FILE):
        digest.update(f"{name}\n{read_text(rooted(root, name))!r}\n".encode())
    return digest.hexdigest()


def trusted(state_dir: StateDir, inputs_digest: str | None) -> str | None:
    """The kernel digest recorded after the last apply, if its inputs were ``inputs_digest``
    and no lease it read has expired since; else None (the full read is needed)."""
    saved = state_dir.read_json(FINGERPRINT)
    if not saved or inputs_digest is None or saved.get("inputs") != inputs_digest:
        return None
    valid_until = saved.get("valid_until")
    if isinstance(valid_until, int | float) and time.time() >= valid_until:
        return None  # a lease expired since: the facts may have changed
    kernel = saved.get("kernel")
    return kernel if isinstance(kernel, str) else None


def unchanged(backend: Backend, state_dir: StateDir, inputs_digest: str | None) -> bool:
    """True when the namespace is as recorded after the last apply: nothing to change."""
    kernel = trusted(state_dir, inputs_digest)
    return kernel is not None and kernel == backend.fingerprint().digest


def record(
    backend: Backend,
    state_dir: StateDir,
    inputs_digest: str | None,
    before: HostState,
    changes: Sequence[Change],
    valid_until: float | None = None,
) -> bool:
    """Record the fingerprint of the state after ``changes`` were made to ``before`` (read
    after :meth:`Backend.watch`); False, and nothing recorded, when anything else changed.
    ``inputs_digest``: :func:`inputs`; ``valid_until``: the first lease expiry."""
    from multihome.model import Sysctl

    if inputs_digest is None:
        return False
    # Only what the apply changed is asked again: whatever else changed since the read
    # shows in the notifications (taken after it; the apply's own are not among them),
    # and nothing is recorded then.
    found = backend.fingerprint(since_read=True)
    if backend.notifications() != []:
        return False
    sysctls = dict(before.sysctls)
    sysctls.update((c.obj.name, c.obj.value) for c in changes if isinstance(c.obj, Sysctl))
    # Sysctls send no notification. A backend whose fingerprint reads them again (the
    # in-memory one) is checked here; NetlinkBackend's ``since_read`` fingerprint takes them
    # from the read plus the apply's writes, so this holds by construction there, and a
    # sysctl another tool wrote meanwhile is recorded as it was: the recorded digest then
    # differs from the kernel's and the next apply reads everything
    # (tests/netns/test_fingerprint_netns.py).
    if dict(found.sysctls) != sysctls:
        return False
    state_dir.write_json(
        FINGERPRINT,
        {
            "kernel": found.digest,
            "inputs": inputs_digest,
            "valid_until": valid_until,
        },
    )
    return True
