"""The rollback watchdog: ``python -m multihome.safety.watchdog --state-dir D --root R --id I``.

Started by an apply with a confirmation window (see :mod:`multihome.safety.window`), in a
new session (``setsid``), it forks once more and the parent exits: the grandchild is
re-parented to init (or the nearest subreaper), is no session leader, has no controlling
terminal and ignores SIGHUP, so neither a closed terminal nor a dropped SSH session nor the
end of the apply process stops it. It holds the namespace's lock (an inherited ``flock``
descriptor) and the timer: at the deadline, on ``rollback-request`` or on SIGTERM it restores
the checkpoint; on ``confirm`` it leaves the changes. It runs in the apply's network namespace
(inherited) and refuses to act on a state directory of another one.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from multihome.processes import pid_alive
from multihome.safety.window import roll_back
from multihome.transaction import journal
from multihome.transaction.statedir import (
    CONFIRM,
    JOURNAL,
    LOCK_OWNER,
    PENDING,
    ROLLBACK_REQUEST,
    WATCHDOG_PID,
    StateDir,
    netns_key,
)

POLL = 0.1
#: How long a rollback waits for an apply that is still making its changes (seconds).
APPLY_WAIT = 300.0
log = logging.getLogger("multihome.watchdog")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="multihome-watchdog")
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--id", required=True)
    args = parser.parse_args(argv)
    if os.fork():
        os._exit(0)  # the apply reaps this parent at once; the grandchild goes on
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGPIPE, signal.SIGTSTP):
        signal.signal(sig, signal.SIG_IGN)
    terminated: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: terminated.append(signum))
    os.chdir("/")
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format=f"%(asctime)s watchdog[{os.getpid()}] %(message)s",
    )
    state = StateDir(args.state_dir, args.state_dir.name)
    if netns_key() != state.netns:
        log.error(
            "%s belongs to network namespace %s, this process runs in %s: refusing",
            state.path,
            state.netns,
            netns_key(),
        )
        return 1
    state.write_json(
        LOCK_OWNER,
        {
            "pid": os.getpid(),
            "since": time.time(),
            "argv": sys.argv,
            "purpose": f"the confirmation watchdog of apply {args.id}",
        },
    )
    state.write_json(WATCHDOG_PID, {"id": args.id, "pid": os.getpid()})
    log.info("watching apply %s", args.id)
    try:
        return watch(state, args.root, args.id, terminated)
    except Exception:
        log.error("failed: %s", traceback.format_exc())
        return 1


def watch(state: StateDir, root: Path, apply_id: str, terminated: list[int]) -> int:
    """Wait for the window to end; roll back on request, SIGTERM or the deadline."""
    waited_for_apply = 0.0
    while True:
        pending = state.read_json(PENDING)
        if pending is None or pending.get("id") != apply_id:
            log.info("apply %s: window ended elsewhere", apply_id)
            return 0
        reason = None
        if state.exists(ROLLBACK_REQUEST):
            text = (
                Path(state.file(ROLLBACK_REQUEST)).read_text(errors="replace").strip()
                or "rollback requested"
            )
            reason = text
        elif state.exists(CONFIRM):
            journal.finish_window(state, apply_id, "confirmed", "confirmed")
            log.info("apply %s confirmed", apply_id)
            return 0
        elif terminated:
            reason = "the watchdog got SIGTERM before a confirmation"
        elif time.time() >= float(pending.get("deadline", 0)):
            reason = f"no confirmation within {pending.get('timeout', '?')} s"
        if reason is not None:
            running = state.read_json(JOURNAL)
            busy = (
                running is not None
                and isinstance(running.get("pid"), int)
                and pid_alive(running["pid"])
            )
            if busy and waited_for_apply < APPLY_WAIT:
                time.sleep(POLL)  # the apply is still making its changes
                waited_for_apply += POLL
                continue
            log.info("apply %s: rolling back: %s", apply_id, reason)
            _roll_back(state, root, apply_id, reason)
            return 0
        time.sleep(POLL)


def _roll_back(state: StateDir, root: Path, apply_id: str, reason: str) -> None:
    from multihome.backend.netlink import NetlinkBackend

    backend = NetlinkBackend()
    try:
        roll_back(state, root, apply_id, backend, reason)
    finally:
        backend.close()
    log.info("apply %s rolled back", apply_id)


if __name__ == "__main__":
    sys.exit(main())
