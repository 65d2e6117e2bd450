"""The agent's state file, ``{root}/run/multihome/netns-<cookie>/agent.json``, for ``multihome
status``.

Written atomically at start, after every repair or error, and at stop; never while idle. Its
folder is the network namespace's own state directory (named after its cookie,
:mod:`multihome.transaction.statedir`): agents in several namespaces of one host
(``ip netns exec NS multihome agent``) never share a state file or a DHCP client's lease and
pid files.

The same folder holds the pause marker (:mod:`multihome.transaction.pause`) that ``reset``
and ``rollback`` write so that the agent does not put back what they took away.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from multihome.files import read_text, remove_file
from multihome.transaction.pause import AGENT_STATUS, agent_alive, paused

if TYPE_CHECKING:
    from multihome.transaction.statedir import StateDir

STATE_NAME = AGENT_STATUS


@dataclass(frozen=True)
class Repair:
    """One repair: when, what triggered it, what changed, how long it took."""

    at: str
    trigger: str
    changes: tuple[str, ...]
    latency_ms: float
    """From the first event of the burst to the kernel corrected."""
    announced: int = 0
    """Gratuitous ARPs sent after the changes."""
    verified: str = ""
    """``passed/total`` verification checks after the changes (empty: none ran)."""


@dataclass
class AgentStatus:
    """Counters and the last repair, as written to ``agent.json``."""

    pid: int
    started: str
    source: str = "kernel"
    origin: str | None = None
    running: bool = True
    stopped: str | None = None
    """When the agent stopped cleanly (then ``running`` is false and ``configured`` empty)."""
    events: int = 0
    reconciles: int = 0
    repairs: int = 0
    changes: int = 0
    errors: int = 0
    configured: dict[str, str] = field(default_factory=dict)
    """Ports the agent addressed itself: interface -> ``static ...`` or ``dhcp (pid N)``."""
    configured6: dict[str, str] = field(default_factory=dict)
    """The same for IPv6: ``static IPv6 ...``, ``dhcpv6 (dhclient -6 pid N)``, ``slaac``."""
    last_repair: Repair | None = None
    last_error: str | None = None
    paused: str | None = None
    """Why the agent leaves the namespace alone (a reset or rollback paused it), or None."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.last_repair is not None:
            data["last_repair"]["changes"] = list(self.last_repair.changes)
        return data


def run_dir(root: Path, *, create: bool = False) -> Path:
    """``{root}/run/multihome/netns-<cookie>/``: this network namespace's folder (the
    transaction's state directory, :class:`~multihome.transaction.statedir.StateDir`), made
    (with the namespace's identity in it) when ``create``."""
    from multihome.transaction.statedir import StateDir

    state = StateDir.current(root)
    if create:
        state.ensure()
    return Path(state.path)


def state_path(root: Path) -> Path:
    return run_dir(root) / STATE_NAME


def write_status(state: StateDir, status: AgentStatus) -> None:
    """Write ``agent.json`` in the namespace's state directory ``state`` (the agent looks it
    up once), as every file there is written (:meth:`StateDir.write_json`): atomically, mode
    0600, not fsynced (it describes the running agent of this boot, under /run)."""
    state.write_json(STATE_NAME, status.to_json())


def clear_status(root: Path) -> None:
    remove_file(state_path(root))


def read_status(root: Path) -> dict[str, Any] | None:
    """The agent's last written state, with ``alive`` telling whether its pid still runs and
    ``paused`` the pause marker (or None); None when no agent has written one. A damaged file
    reads as ``{"error": ...}``."""
    text = read_text(state_path(root))
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        return {"error": f"{state_path(root)}: unreadable ({exc})", "alive": False}
    if not isinstance(data, dict):
        return {"error": f"{state_path(root)}: not an object", "alive": False}
    data["alive"] = agent_alive(data)
    data["paused"] = paused(root)
    return data
