"""Failure injection for tests of the transaction (and of crash recovery).

``MULTIHOME_FAILPOINT=change:K`` makes the K-th kernel change of an apply fail as if the
kernel had refused it; ``MULTIHOME_FAILPOINT=kill:K`` kills the process with SIGKILL just
before the K-th change; ``MULTIHOME_FAILPOINT=stop:K`` stops it (SIGSTOP) just before the K-th
change, once (the variable is removed), so that a test can change the namespace as another
writer would and then continue it (SIGCONT). Unset (always, in production) it costs one
dictionary lookup.
"""

from __future__ import annotations

import os

ENV = "MULTIHOME_FAILPOINT"


def failpoint() -> tuple[str, int] | None:
    """The configured failpoint as (kind, k), or None."""
    value = os.environ.get(ENV)
    if not value:
        return None
    kind, _, number = value.partition(":")
    if kind not in ("change", "kill", "stop") or not number.isdigit() or int(number) < 1:
        return None
    return kind, int(number)


def kill_now() -> None:
    import signal  # only when a test asks for it (signal.py builds enums at import)

    os.kill(os.getpid(), signal.SIGKILL)


def stop_now() -> None:
    """Stop this process until a SIGCONT, once: the failpoint is gone afterwards (an apply
    that plans again does not stop a second time)."""
    import signal  # see kill_now

    os.environ.pop(ENV, None)
    os.kill(os.getpid(), signal.SIGSTOP)
