"""Processes: this one's privileges, whether another is alive, which programs are DHCP clients."""

from __future__ import annotations

import os

from multihome.errors import NotPermittedError

# Not ``typing.TYPE_CHECKING``: on the no-op apply's path (no typing, no pathlib).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from _typeshed import StrPath

#: The abstract unix socket whose binding is the lock of a whole network namespace (whatever
#: ``--root``; :mod:`multihome.transaction.lock`): abstract names are per network namespace,
#: and the kernel releases one when the last descriptor of its socket closes, also when its
#: holder is killed.
NAMESPACE_LOCK = "multihome/lock"

#: Program names of the DHCP clients a guest may run (``dhcpcd5`` is Raspberry Pi OS's name).
DHCP_CLIENTS = ("dhclient", "dhcpcd", "udhcpc", "dhcpcd5")


def require_root(
    what: str = "changing routes and rules",
    fix: str = "run it with sudo, or use `multihome plan` to see the changes",
) -> None:
    """Raise :class:`NotPermittedError` (``what`` needs root; ``fix``) unless running as root."""
    if os.geteuid() != 0:
        raise NotPermittedError(f"{what} needs root (CAP_NET_ADMIN); {fix}")


def pid_alive(pid: int, proc: StrPath = "/proc") -> bool:
    """True when process ``pid`` exists and has not exited: a zombie (``Z``, exited but not
    yet reaped) or a dead task (``X``) is not alive."""
    if pid <= 0:
        return False  # 0 and negatives name process groups, never one process
    try:
        with open(f"{os.fspath(proc)}/{pid}/stat", encoding="utf-8") as handle:
            stat = handle.read()
    except OSError:
        return False
    # The state follows the command name, which may itself contain ")".
    return stat.rpartition(")")[2].split()[:1] not in (["Z"], ["X"])
