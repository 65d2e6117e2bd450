"""systemd's notification protocol (``sd_notify(3)``), without a dependency: one datagram to
the AF_UNIX socket named by ``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace).
"""

from __future__ import annotations

import os
import socket


def notify(message: str, environ: dict[str, str] | None = None) -> bool:
    """Send ``message`` (``READY=1``, ``STATUS=...``, ``STOPPING=1``); False when not under a
    notify-type unit or when the socket is gone (never an error: the agent works without)."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET")
    if not address or address[0] not in "/@":
        return False
    target = "\0" + address[1:] if address.startswith("@") else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode("utf-8", "replace"), target)
    except OSError:
        return False
    return True


def watchdog_interval(environ: dict[str, str] | None = None) -> float | None:
    """Half the watchdog period systemd asks for (``WatchdogSec=``), in seconds, or None."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000
