"""An independent view of a network namespace's identity: its ``SO_NETNS_COOKIE`` (read with
a raw socket option in the namespace, not with the code under test) and the state directory
multihome must use for it."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

SO_NETNS_COOKIE = 71  # asm-generic (x86, arm64); Linux 5.14+

_READ = (
    "import socket, sys; s = socket.socket(socket.AF_UNIX); "
    f"print(int.from_bytes(s.getsockopt(socket.SOL_SOCKET, {SO_NETNS_COOKIE}, 8), sys.byteorder))"
)


def own_cookie() -> int:
    """The cookie of this process's network namespace."""
    with socket.socket(socket.AF_UNIX) as sock:
        raw = sock.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8)
    return int.from_bytes(raw, sys.byteorder)


def cookie_of(namespace: str) -> int:
    """The cookie of the named namespace (``ip netns exec``)."""
    done = subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, "-c", _READ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return int(done.stdout)


def state_dir_of(root: Path, namespace: str) -> Path:
    """``{root}/run/multihome/netns-<cookie>``: the named namespace's state directory."""
    return root / "run" / "multihome" / f"netns-{cookie_of(namespace)}"
