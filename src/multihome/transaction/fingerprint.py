"""The fingerprint of an in-sync namespace: a no-op ``apply`` without reading the state.

After an apply (or a no-op) whose plan is done, multihome records in the namespace's state
directory a digest of the kernel state (:meth:`Backend.fingerprint`: links, addresses, routes,
rules and sysctls, from the raw dumps) together with a digest of everything else the plan
depends on (multihome's version, the configuration, the name files, the DHCP lease files the
ports' facts are read from, and when the first of those leases expires). The next ``apply`` that
finds both digests unchanged knows, without decoding the state or computing the policy, that
the plan is empty: the policy and the plan are pure functions of exactly these inputs.

The recorded state must be the one the plan was made for. It is recorded only when the
notifications the kernel sent between the read and the fingerprint are exactly those of the
apply's own route and rule changes (nothing else touched links, addresses, routes or rules
meanwhile) and the sysctls read for the fingerprint are the ones the apply left; otherwise
nothing is recorded and the next apply does the full read.
"""

from __future__ import annotations

import socket
import time

# hashlib's own blake2b, without hashlib's OpenSSL binding (a shared library to load at
# every start; nothing here needs another algorithm).
from _blake2 import blake2b
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from multihome._version import __version__
from multihome.backend import Backend
from multihome.config import Config
from multihome.files import read_text, under_root
from multihome.model import HostState, Sysctl
from multihome.names import RT_PROTOS_FILE, RT_TABLES_FILE
from multihome.transaction.statedir import FINGERPRINT, StateDir

if TYPE_CHECKING:
    from multihome.plan import Change

_FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}


def inputs(config: Config, root: Path, facts: str = "") -> str:
    """A digest of what the plan depends on besides the kernel state; ``facts``: what the
    ports' facts come from (the lease files' signature)."""
    digest = blake2b(digest_size=20)
    digest.update(f"{__version__}\n{config!r}\n{facts}\n".encode())
    for path in (RT_TABLES_FILE, RT_PROTOS_FILE):
        digest.update(f"{path}\n{read_text(under_root(root, path))!r}\n".encode())
    return digest.hexdigest()


def unchanged(
    backend: Backend, state_dir: StateDir, config: Config, root: Path, facts: str = ""
) -> bool:
    """True when the namespace is as recorded after the last apply: nothing to change."""
    saved = state_dir.read_json(FINGERPRINT)
    if not saved or saved.get("inputs") != inputs(config, root, facts):
        return False
    valid_until = saved.get("valid_until")
    if isinstance(valid_until, int | float) and time.time() >= valid_until:
        return False  # a lease expired since: the facts may have changed
    return saved.get("kernel") == backend.fingerprint().digest


def expected_notifications(changes: Sequence[Change]) -> Counter[str]:
    """The kernel's notifications for ``changes``: one per route or rule change."""
    return Counter(
        f"{c.kind} {'new' if c.action == 'add' else 'del'} {_FAMILIES[c.obj.family]}"
        for c in changes
        if not isinstance(c.obj, Sysctl)
    )


def record(
    backend: Backend,
    state_dir: StateDir,
    config: Config,
    root: Path,
    before: HostState,
    changes: Sequence[Change],
    facts: str = "",
    valid_until: float | None = None,
) -> bool:
    """Record the fingerprint of the state after ``changes`` were made to ``before`` (read
    after :meth:`Backend.watch`); False, and nothing recorded, when anything else changed.
    ``facts`` and ``valid_until``: the lease files' signature, the first lease expiry."""
    found = backend.fingerprint()
    seen = backend.notifications()
    if seen is None or Counter(seen) != expected_notifications(changes):
        return False
    sysctls = dict(before.sysctls)
    sysctls.update((c.obj.name, c.obj.value) for c in changes if isinstance(c.obj, Sysctl))
    if dict(found.sysctls) != sysctls:
        return False
    state_dir.write_json(
        FINGERPRINT,
        {
            "kernel": found.digest,
            "inputs": inputs(config, root, facts),
            "valid_until": valid_until,
        },
    )
    return True
