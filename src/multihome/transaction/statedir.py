"""The per-namespace state directory and the JSON codecs of the objects kept in it."""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multihome.errors import InputError
from multihome.files import read_text, remove_file, under_root, write_atomic
from multihome.model import Route, Rule, Sysctl
from multihome.plan import Change

STATE_BASE = Path("/run/multihome")

LOCK = "lock"
LOCK_OWNER = "lock-owner.json"
CHECKPOINT = "snapshot.json"  # the checkpoint; the file keeps its old name (compatibility)
JOURNAL = "journal.json"
RECORD = "record.json"
PENDING = "pending.json"
CONFIRM = "confirm"
ROLLBACK_REQUEST = "rollback-request"
RESULT = "result.json"
WATCHDOG_PID = "watchdog.json"
WATCHDOG_LOG = "watchdog.log"


def namespace_key(netns: Path) -> str:
    """``net-<inode>`` of the network namespace file ``netns`` (``/proc/self/ns/net``,
    ``/run/netns/NAME``): the name of its folder below :data:`STATE_BASE`. Raises OSError."""
    return f"net-{os.stat(netns).st_ino}"


def netns_key(proc: Path = Path("/proc")) -> str:
    """``net-<inode>``: what identifies the network namespace this process runs in."""
    try:
        return namespace_key(proc / "self/ns/net")
    except OSError as exc:
        raise InputError(
            f"{proc}/self/ns/net: cannot identify the network namespace "
            f"({exc.strerror}); mount /proc"
        ) from exc


def boot_id(proc: Path = Path("/proc")) -> str:
    """The kernel's boot id: state from an earlier boot describes a kernel that is gone."""
    return (read_text(proc / "sys/kernel/random/boot_id") or "unknown").strip()


@dataclass(frozen=True)
class StateDir:
    """The state directory of one network namespace below one ``--root``."""

    path: Path
    netns: str

    @classmethod
    def current(cls, root: Path) -> StateDir:
        """The state directory of the namespace this process runs in."""
        return cls.of(root, netns_key())

    @classmethod
    def of(cls, root: Path, netns: str) -> StateDir:
        """The state directory of the namespace whose key is ``netns`` (``net-<inode>``)."""
        return cls(under_root(root.absolute(), STATE_BASE / netns), netns)

    def ensure(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise InputError(
                f"{self.path}: cannot create the state directory "
                f"({exc.strerror}); run as root or pass a writable --root"
            ) from exc

    def file(self, name: str) -> Path:
        return self.path / name

    def exists(self, name: str) -> bool:
        return self.file(name).exists()

    def read_json(self, name: str) -> dict[str, Any] | None:
        """The file's JSON object, or None when absent or unreadable (a torn write)."""
        text = read_text(self.file(name))
        if text is None:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        self.ensure()
        text = json.dumps(data, separators=(",", ":"), sort_keys=True)  # large at scale
        write_atomic(self.file(name), text + "\n", 0o600)

    def touch(self, name: str, content: str = "") -> None:
        self.ensure()
        write_atomic(self.file(name), content, 0o600)

    def remove(self, name: str) -> bool:
        return remove_file(self.file(name))


# -- codecs -----------------------------------------------------------------------------
def _opt(value: object) -> str | None:
    return None if value is None else str(value)


def route_to_json(route: Route) -> dict[str, Any]:
    return route.to_json()


def route_from_json(data: dict[str, Any]) -> Route:
    return Route(
        table=int(data["table"]),
        dst=ipaddress.ip_network(data["dst"]),
        ifname=data.get("dev"),
        gateway=None if data.get("gateway") is None else ipaddress.ip_address(data["gateway"]),
        metric=int(data.get("metric", 0)),
        proto=int(data["proto"]),
        scope=int(data.get("scope", 0)),
        prefsrc=None if data.get("prefsrc") is None else ipaddress.ip_address(data["prefsrc"]),
        type=int(data.get("type", 1)),
    )


def rule_to_json(rule: Rule) -> dict[str, Any]:
    return {
        "family": rule.family,
        "priority": rule.priority,
        "table": rule.table,
        "src": _opt(rule.src),
        "dst": _opt(rule.dst),
        "iif": rule.iifname,
        "oif": rule.oifname,
        "suppress_prefixlength": rule.suppress_prefixlength,
        "fwmark": rule.fwmark,
        "fwmask": rule.fwmask,
        "action": rule.action,
        "proto": rule.proto,
    }


def rule_from_json(data: dict[str, Any]) -> Rule:
    def net(key: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        value = data.get(key)
        return None if value is None else ipaddress.ip_network(value)

    return Rule(
        family=int(data["family"]),
        priority=int(data["priority"]),
        table=int(data["table"]),
        src=net("src"),
        dst=net("dst"),
        iifname=data.get("iif"),
        oifname=data.get("oif"),
        suppress_prefixlength=data.get("suppress_prefixlength"),
        fwmark=data.get("fwmark"),
        fwmask=data.get("fwmask"),
        action=int(data.get("action", 1)),
        proto=int(data["proto"]),
    )


def change_to_json(change: Change) -> dict[str, Any]:
    obj = change.obj
    if isinstance(obj, Sysctl):
        body: dict[str, Any] = {"name": obj.name, "value": obj.value}
    elif isinstance(obj, Route):
        body = route_to_json(obj)
    else:
        body = rule_to_json(obj)
    return {"action": change.action, "kind": change.kind, "obj": body, "old": change.old}


def change_from_json(data: dict[str, Any]) -> Change:
    kind = data["kind"]
    body = data["obj"]
    obj: Route | Rule | Sysctl
    if kind == "sysctl":
        obj = Sysctl(body["name"], body["value"])
    elif kind == "route":
        obj = route_from_json(body)
    else:
        obj = rule_from_json(body)
    return Change(data["action"], obj, data.get("old"))
