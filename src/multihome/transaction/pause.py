"""The agent's pause marker: how ``reset`` and ``rollback`` keep a running agent from putting
back, a few milliseconds later, what they took away.

``agent-paused.json`` in the namespace's state directory (who paused, when). ``reset`` and
``rollback`` write it, under the namespace's lock, when an agent runs in the namespace (its
``agent.json`` there names a live pid); the agent checks it under the lock before every repair
and changes nothing while it exists. ``multihome apply`` (without ``--interface``) and
``multihome agent resume`` remove it.
"""

from __future__ import annotations

from multihome.files import read_text, remove_file, write_atomic
from multihome.processes import pid_alive
from multihome.transaction.statedir import StateDir, json_value

# Not ``typing.TYPE_CHECKING``: every apply resumes (multihome.noop imports no typing).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from _typeshed import StrPath

#: The agent's state file (written by :mod:`multihome.agent.state`) and the pause marker.
AGENT_STATUS = "agent.json"
PAUSED = "agent-paused.json"


def agent_alive(data: dict[str, Any]) -> bool:
    """True when the agent state ``data`` (``agent.json``) is that of a running agent."""
    pid = data.get("pid")
    return bool(data.get("running")) and isinstance(pid, int) and pid_alive(pid)


def running_agent(root: StrPath) -> int | None:
    """The pid of the agent running in this namespace, or None."""
    data = StateDir.current(root).read_json(AGENT_STATUS)
    if data is None or not agent_alive(data):
        return None
    pid = data["pid"]
    return pid if isinstance(pid, int) else None


def paused(root: StrPath, state: StateDir | None = None) -> dict[str, Any] | None:
    """The pause marker (``by``, ``at``, ``pid``), or None when the agent is not paused;
    ``state``: this namespace's state directory, when the caller has it (the agent, which
    never changes namespace, looks it up once, not before every repair)."""
    path = (StateDir.current(root) if state is None else state).file(PAUSED)
    text = read_text(path)
    if text is None:
        return None
    try:
        data = json_value(text)
    except ValueError:
        data = None
    return data if isinstance(data, dict) else {"by": "unknown", "at": "?"}


def pause(root: StrPath, by: str, pid: int) -> int | None:
    """Pause the running agent of this namespace (call under the namespace's lock); returns
    its pid, or None when no agent runs (then nothing is written: an agent started later is
    not paused)."""
    import json  # the marker's spaced form; pausing is not on the no-op apply's path
    from datetime import UTC, datetime

    agent = running_agent(root)
    if agent is None:
        return None
    marker = {"by": by, "at": datetime.now(UTC).isoformat(timespec="seconds"), "pid": pid}
    state = StateDir.current(root)
    state.ensure()
    write_atomic(state.file(PAUSED), json.dumps(marker, sort_keys=True) + "\n", 0o600)
    return agent


def resume(root: StrPath, state: StateDir | None = None) -> dict[str, Any] | None:
    """End a pause; returns the marker that was removed (None: the agent was not paused).
    ``state``: this namespace's state directory, when the caller has it (the no-op apply,
    under its lock): not looked up again."""
    if state is None:
        state = StateDir.current(root)
    marker = paused(root, state)
    if marker is not None:
        remove_file(state.file(PAUSED))
    return marker


def describe(by: str) -> str:
    """What a pause by ``by`` means, and how it ends."""
    return (
        f"paused by {by}: the agent leaves this namespace alone until `multihome apply` or "
        "`multihome agent resume`"
    )
