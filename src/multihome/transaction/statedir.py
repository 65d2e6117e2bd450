"""The per-namespace state directory and the JSON codecs of the objects kept in it."""

from __future__ import annotations

# The C module: socket.py builds enums of every constant at import (8% of the instructions
# of the no-op apply, which uses this module); a plain socket is all that is needed here.
import _json
import _socket
import errno
import fcntl
import os
import sys
import time

from multihome.errors import InputError
from multihome.files import (
    absolute,
    exists,
    is_dir,
    join,
    make_dirs,
    name_of,
    normal,
    parent,
    read_text,
    remove_file,
    rooted,
    write_atomic,
)

# Not ``typing.TYPE_CHECKING``: this module is on the no-op apply's path (multihome.noop),
# which imports neither typing nor the model (only the codecs below need it).
TYPE_CHECKING = False
if TYPE_CHECKING:  # the plan (and the policy) only where changes are decoded
    import ipaddress
    import logging
    from collections.abc import Iterable
    from typing import Any

    from _typeshed import StrPath

    from multihome.model import Route, Rule
    from multihome.plan import Change

STATE_BASE = "/run/multihome"
#: Tries to create a state directory whose shared parent another clean-up keeps removing.
ENSURE_ATTEMPTS = 5

LOCK = "lock"
LOCK_OWNER = "lock-owner.json"
CHECKPOINT = "snapshot.json"  # the checkpoint; the file keeps its old name (compatibility)
PREVIOUS = "snapshot.previous.json"  # the checkpoint it replaced, back if its apply fails
JOURNAL = "journal.json"
RECORD = "record.json"
PENDING = "pending.json"
CONFIRM = "confirm"
ROLLBACK_REQUEST = "rollback-request"
RESULT = "result.json"
WATCHDOG_PID = "watchdog.json"
WATCHDOG_LOG = "watchdog.log"
SWEPT = "swept"
FINGERPRINT = "fingerprint.json"


#: ``SO_NETNS_COOKIE`` (Linux 5.14+, asm-generic value): the network namespace's cookie, a
#: 64-bit number the kernel never gives to another namespace until it reboots. Python's
#: socket module does not export it everywhere.
SO_NETNS_COOKIE: int = getattr(_socket, "SO_NETNS_COOKIE", 71)
#: What identifies the namespace a state directory belongs to (see :class:`NamespaceId`).
IDENTITY = "namespace.json"
#: How many other namespaces' folders one session start inspects at most (bounded cost).
SWEEP_LIMIT = 256
#: A namespace's sessions sweep at most this often (seconds); the time is in :data:`SWEPT`.
SWEEP_INTERVAL = 60.0


def _log() -> logging.Logger:
    """This module's logger (logging only when there is something to say)."""
    import logging

    return logging.getLogger(__name__)


class _Frozen:
    """A small frozen value: equal, hashed and shown by its ``__slots__`` fields. Not a
    dataclass: ``dataclasses`` imports ``inspect`` (with ``ast``, ``dis``, ``tokenize``), a
    fifth of the instructions of the no-op apply, which uses this module."""

    __slots__: tuple[str, ...] = ()

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _Frozen)
            and type(other) is type(self)
            and (self._fields() == other._fields())
        )

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{n}={v!r}" for n, v in zip(self.__slots__, self._fields(), strict=True)
        )
        return f"{type(self).__name__}({fields})"


class NamespaceId(_Frozen):
    """What identifies a network namespace while the machine is up.

    The inode of ``/proc/self/ns/net`` is unique only among the namespaces alive right now:
    the kernel gives a deleted namespace's inode to a new one within a few creations. The
    cookie is never reused until the next boot, so a state directory is named after it and
    records all three (cookie, inode, boot id) to recognise state whose namespace is gone.
    """

    __slots__ = ("boot", "cookie", "inode")
    cookie: int | None
    """``SO_NETNS_COOKIE``; None on kernels before 5.14 (then the inode names the folder)."""
    inode: int
    """The inode of the namespace file (unique among live namespaces only)."""
    boot: str
    """The kernel's boot id."""

    def __init__(self, cookie: int | None, inode: int, boot: str) -> None:
        object.__setattr__(self, "cookie", cookie)
        object.__setattr__(self, "inode", inode)
        object.__setattr__(self, "boot", boot)

    @property
    def key(self) -> str:
        """``netns-<cookie>``, or ``net-<inode>`` where the kernel has no cookies."""
        return f"netns-{self.cookie}" if self.cookie is not None else f"net-{self.inode}"

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "cookie": self.cookie, "inode": self.inode, "boot_id": self.boot}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NamespaceId | None:
        """The identity in ``data``; None when it is not one (a damaged file)."""
        cookie, inode, boot = data.get("cookie"), data.get("inode"), data.get("boot_id")
        if not isinstance(inode, int) or not isinstance(boot, str):
            return None
        return cls(cookie if isinstance(cookie, int) else None, inode, boot)


def netns_cookie() -> int | None:
    """The cookie of this thread's network namespace; None where the kernel has none."""
    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
        try:
            raw = sock.getsockopt(_socket.SOL_SOCKET, SO_NETNS_COOKIE, 8)
        finally:
            sock.close()
    except OSError as exc:
        if exc.errno in (errno.ENOPROTOOPT, errno.EINVAL):
            return None
        raise
    return int.from_bytes(raw, sys.byteorder)


def current_namespace(proc: StrPath = "/proc") -> NamespaceId:
    """The identity of the network namespace this process runs in."""
    try:
        inode = os.stat(join(proc, "self/ns/net")).st_ino
        cookie = netns_cookie()
    except OSError as exc:
        raise InputError(
            f"{proc}/self/ns/net: cannot identify the network namespace "
            f"({exc.strerror}); mount /proc"
        ) from exc
    return NamespaceId(cookie, inode, boot_id(proc))


def netns_key(proc: StrPath = "/proc") -> str:
    """``netns-<cookie>``: what names the state directory of this process's namespace."""
    return current_namespace(proc).key


def boot_id(proc: StrPath = "/proc") -> str:
    """The kernel's boot id: state from an earlier boot describes a kernel that is gone."""
    return (read_text(join(proc, "sys/kernel/random/boot_id")) or "unknown").strip()


def new_id() -> str:
    """A new apply's (and its snapshot's) id: its time and 8 random hex digits."""
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{os.urandom(4).hex()}"


class StateDir(_Frozen):
    """The state directory of one network namespace below one ``--root``."""

    __slots__ = ("identity", "netns", "path")
    path: str
    """The folder (text, as ``pathlib`` writes it: see :mod:`multihome.files`)."""
    netns: str
    identity: NamespaceId | None
    """The namespace's identity, written into the folder when it is created."""

    def __init__(self, path: StrPath, netns: str, identity: NamespaceId | None = None) -> None:
        object.__setattr__(self, "path", normal(os.fspath(path)))
        object.__setattr__(self, "netns", netns)
        object.__setattr__(self, "identity", identity)

    @classmethod
    def current(cls, root: StrPath) -> StateDir:
        """The state directory of the namespace this process runs in.

        A folder found there that belongs to another namespace (an earlier boot's namespace
        with the same cookie, or, without cookies, a deleted one with the same inode) is
        never used: it is removed, with a log line."""
        identity = current_namespace()
        found = cls.of(root, identity.key)
        state = cls(found.path, found.netns, identity)
        owner = state.recorded()
        if owner != identity and exists(state.path):
            state.discard(_stale_reason(owner, identity))
        return state

    @classmethod
    def of(cls, root: StrPath, netns: str) -> StateDir:
        """The state directory of the namespace whose key is ``netns`` (``netns-<cookie>``)."""
        return cls(rooted(absolute(root), join(STATE_BASE, netns)), netns)

    def recorded(self) -> NamespaceId | None:
        """The identity written in the folder; None when absent or damaged."""
        data = self.read_json(IDENTITY)
        return None if data is None else NamespaceId.from_json(data)

    def discard(self, reason: str) -> None:
        """Remove the whole folder (state of a namespace that no longer exists)."""
        import shutil  # rare: not on every apply's import path (with bz2 and lzma)

        try:
            shutil.rmtree(self.path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise InputError(
                f"{self.path}: state of another network namespace ({reason}) that cannot be "
                f"removed ({exc.strerror}); remove it, or run as root"
            ) from exc
        _log().warning(
            "removed %s: state of a network namespace that no longer exists (%s)", self.path, reason
        )

    def ensure(self) -> None:
        """Create the folder (0700; its parents 0755 whatever the umask) when it is missing."""
        if is_dir(self.path):
            return
        for attempt in range(ENSURE_ATTEMPTS):
            try:
                self._create()
                return
            except FileNotFoundError:
                # The shared parent (/run/multihome) was removed between its creation and
                # ours: another namespace's clean-up (`lab down`) removes it once empty.
                if attempt + 1 < ENSURE_ATTEMPTS:
                    continue
                raise InputError(
                    f"{self.path}: cannot create the state directory (its parent "
                    f"{parent(self.path)} kept disappearing); retry"
                ) from None
            except OSError as exc:
                raise InputError(
                    f"{self.path}: cannot create the state directory "
                    f"({exc.strerror}); run as root or pass a writable --root"
                ) from exc

    def _create(self) -> None:
        folder = parent(self.path)
        make_dirs(folder)
        if self.identity is None:
            make_dirs(self.path, 0o700)
            return
        # Created complete (with its identity) by a rename: nobody sees it without one.
        import json  # once per namespace (its spaced form): not on the no-op's path
        import shutil  # once per namespace: not on every apply's import path
        import tempfile

        tmp = normal(tempfile.mkdtemp(prefix=f".{name_of(self.path)}.", dir=folder))
        try:
            text = json.dumps(self.identity.to_json(), sort_keys=True) + "\n"
            write_atomic(join(tmp, IDENTITY), text, 0o600)
            os.rename(tmp, self.path)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise

    def file(self, name: str) -> str:
        """The file ``name`` in the folder (text)."""
        return join(self.path, name)

    def exists(self, name: str) -> bool:
        return exists(self.file(name))

    def read_json(self, name: str) -> dict[str, Any] | None:
        """The file's JSON object, or None when absent or unreadable (a torn write)."""
        text = read_text(self.file(name))
        if text is None:
            return None
        try:
            data = json_value(text)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def write_json(self, name: str, data: dict[str, Any], *, durable: bool = False) -> None:
        """Write ``name`` atomically; not fsynced unless ``durable``: everything here is
        about this boot's kernel state, under /run, and a folder or a journal from an earlier
        boot is never used (:meth:`current`, ``journal.recover``), so a flush to the disk
        protects nothing a power loss leaves (four flushes per apply cost more than its kernel
        changes on a busy disk). Other processes see the rename at once either way."""
        self.write_text(name, json_text(data), durable=durable)

    def write_text(self, name: str, text: str, *, durable: bool = False) -> None:
        """Write ``name``, the JSON ``text`` made by :func:`json_text` (or composed of such
        texts, :func:`compose`), atomically (not fsynced unless ``durable``: see
        :meth:`write_json`)."""
        self.ensure()
        write_atomic(self.file(name), text + "\n", 0o600, durable=durable)

    def touch(self, name: str, content: str = "") -> None:
        """Write ``name`` atomically, not fsynced (see :meth:`write_json`)."""
        self.ensure()
        write_atomic(self.file(name), content, 0o600, durable=False)

    def remove(self, name: str) -> bool:
        return remove_file(self.file(name))


def _stale_reason(owner: NamespaceId | None, current: NamespaceId) -> str:
    if owner is None:
        return "it records no namespace identity"
    if owner.boot != current.boot:
        return f"from an earlier boot ({owner.boot})"
    if owner.inode == current.inode:
        return (
            f"namespace inode {owner.inode} now belongs to namespace cookie "
            f"{current.cookie}, not to cookie {owner.cookie}"
        )
    return f"namespace cookie {owner.cookie} is gone"


def live_namespace_inodes(proc: StrPath = "/proc", named: StrPath = "/run/netns") -> set[int]:
    """Inodes of the network namespaces some process is in or that have an ``ip netns`` name.

    A namespace held only by an open descriptor or a bind mount elsewhere is not seen; its
    state directory is spared only while someone holds its lock."""
    inodes: set[int] = set()
    for folder, suffix in ((proc, "/ns/net"), (named, "")):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if suffix and not entry.name.isdigit():
                continue
            try:
                inodes.add(os.stat(entry.path + suffix).st_ino)
            except OSError:
                continue  # the process exited meanwhile, or a stale name
    return inodes


def sweep_due(state: StateDir, interval: float = SWEEP_INTERVAL) -> bool:
    """True (and noted in the folder) when this namespace has not swept for ``interval``
    seconds: an agent opens a session for every repair and need not sweep each time."""
    marker = state.file(SWEPT)
    try:
        if time.time() - os.stat(marker).st_mtime < interval:
            return False
        os.utime(marker)
    except OSError:
        state.touch(SWEPT)
    return True


def sweep(
    root: StrPath, current: NamespaceId, *, limit: int = SWEEP_LIMIT, live: set[int] | None = None
) -> list[str]:
    """Remove the state directories (below ``root``) of namespaces that no longer exist.

    Gone: from an earlier boot; or recording this namespace's inode with another cookie (the
    kernel gave the inode of a deleted namespace to this one); or recording an inode that no
    live namespace has (:func:`live_namespace_inodes`, read once, only when needed); or
    without an identity (a folder from before cookies) whose inode is not live or is this
    namespace's. A folder whose lock someone holds is left alone. At most ``limit`` folders
    are looked at. Returns the removed folders."""
    base = rooted(absolute(root), STATE_BASE)
    try:
        names = sorted(e.name for e in os.scandir(base) if e.is_dir(follow_symlinks=False))
    except OSError:
        return []
    removed: list[str] = []
    for name in names[:limit]:
        if name == current.key or not name.startswith(("netns-", "net-")):
            continue
        state = StateDir(join(base, name), name)
        owner = state.recorded()
        reason: str | None = _stale_reason(owner, current)
        if owner is not None and owner.boot == current.boot and owner.inode != current.inode:
            if live is None:
                live = live_namespace_inodes()
            if owner.inode in live:
                reason = None  # alive (or its inode reused by a namespace we cannot name)
        elif owner is None:
            inode = name.removeprefix("net-")
            if inode.isdigit() and int(inode) != current.inode:
                if live is None:
                    live = live_namespace_inodes()
                if int(inode) in live:
                    reason = None
                else:
                    reason = f"a folder from before cookies; namespace inode {inode} is gone"
        if reason is None or flock_held(state.file(LOCK)):
            continue
        try:
            state.discard(reason)
        except InputError as exc:
            _log().warning("%s", exc)
            continue
        removed.append(state.path)
    return removed


def of_inode(root: StrPath, inode: int) -> list[StateDir]:
    """The state directories below ``root`` that record namespace inode ``inode`` (this
    boot), or are named after it: while that namespace is alive, its own folder and those of
    dead namespaces that had its inode."""
    base = rooted(absolute(root), STATE_BASE)
    found = []
    boot = boot_id()
    try:
        entries = sorted(e.name for e in os.scandir(base) if e.is_dir(follow_symlinks=False))
    except OSError:
        return []
    for name in entries:
        state = StateDir(join(base, name), name)
        owner = state.recorded()
        if name == f"net-{inode}" or (owner and owner.inode == inode and owner.boot == boot):
            found.append(state)
    return found


def flock_held(path: StrPath) -> bool:
    """True when someone holds the ``flock`` of ``path`` (a probe: takes and drops it)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


# -- codecs -----------------------------------------------------------------------------
# JSON without the json package: it imports re (and with it enum), which the no-op apply
# (multihome.noop) reads and writes its few state files without. The C functions below are
# what ``json.loads`` and ``json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode``
# run (tests/unit/test_statedir_json.py compares them).
#: A string's JSON text, as ``json.dumps`` (``ensure_ascii``) gives it, without its dispatch.
_string_text = _json.encode_basestring_ascii


def _unserializable(value: object) -> object:
    """``JSONEncoder.default``: what cannot be encoded is an error (the same words)."""
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


def json_text(data: Any) -> str:
    """``data`` as the state files hold it: compact, keys sorted (``json.dumps(data,
    separators=(",", ":"), sort_keys=True)``)."""
    if isinstance(data, str):
        return _string_text(data)
    encode = _json.make_encoder(
        {}, _unserializable, _string_text, None, ":", ",", True, False, True
    )
    return "".join(encode(data, 0))


class _Decoding:
    """The options of ``json.loads`` (a ``JSONDecoder``'s), as the C scanner reads them."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {
        "-Infinity": -float("inf"),
        "Infinity": float("inf"),
        "NaN": float("nan"),
    }.__getitem__


#: ``JSONDecoder.scan_once``: one JSON value at an index of a text, and the index after it.
_scan = _json.make_scanner(_Decoding())  # type: ignore[arg-type]  # (typeshed: a JSONDecoder)
#: JSON's whitespace (``json.decoder.WHITESPACE``), around the value.
_BLANK = " \t\n\r"


def json_value(text: str) -> Any:
    """``json.loads(text)``: the value of the JSON ``text``; ValueError when it is not one
    (``json.JSONDecodeError`` is a ValueError; the message may differ)."""
    start = len(text) - len(text.lstrip(_BLANK))
    try:
        value, end = _scan(text, start)
    except StopIteration:
        raise ValueError(f"not JSON: expecting a value at {start}") from None
    if text[end:].strip(_BLANK):
        raise ValueError(f"not JSON: extra data at {end}")
    return value


def compose(members: dict[str, str]) -> str:
    """The JSON text of an object whose members' values are already JSON texts, keys sorted
    (:func:`json_text` of the same object decoded)."""
    return "{" + ",".join(f"{_string_text(k)}:{v}" for k, v in sorted(members.items())) + "}"


#: Where :func:`object_text` keeps an object's text, in the object's own ``__dict__`` (as
#: the model's cached keys are kept): a frozen value's text never changes.
_TEXT = "_state_text"


def object_text(obj: Route | Rule) -> str:
    """The JSON text of a route or rule as the state files hold it (:func:`route_to_json`,
    :func:`rule_to_json`), computed once per object: the agent's reads give back the same
    objects for the kernel's unchanged routes and rules, so a repair's checkpoint and
    journal encode only what is new (at 16 ports the checkpoint holds ~100 of them, encoded
    twice per repair before)."""
    text = obj.__dict__.get(_TEXT)
    if text is None:
        # (by the class's name: the model is not imported here, see TYPE_CHECKING above)
        route: Any = obj
        text = _route_text(route) if type(obj).__name__ == "Route" else _rule_text(route)
        obj.__dict__[_TEXT] = text
    return text


def _route_text(route: Route) -> str:
    """:func:`json_text` of :func:`route_to_json`; a single-path route's put together
    directly (an apply journals ~1500 new ones at 256 ports: no dictionary, no encoder)."""
    if route.nexthops:
        return json_text(route_to_json(route))
    dst, gateway, prefsrc = route.texts
    ifname = route.ifname
    return (
        f'{{"dev":{"null" if ifname is None else _string_text(ifname)},"dst":{_string_text(dst)},'
        f'"gateway":{"null" if route.gateway is None else _string_text(gateway)},'
        f'"metric":{int(route.metric)},'
        f'"prefsrc":{"null" if route.prefsrc is None else _string_text(prefsrc)},'
        f'"proto":{int(route.proto)},"scope":{int(route.scope)},"table":{int(route.table)},'
        f'"type":{int(route.type)}}}'
    )


def _rule_text(rule: Rule) -> str:
    """:func:`json_text` of :func:`rule_to_json`; a rule with only the selectors multihome
    writes (no position, no port, uid, mark mask, goto, ...) put together directly."""
    if (
        rule.position
        or rule.fwmask is not None
        or rule.ipproto is not None
        or rule.sport is not None
        or rule.dport is not None
        or rule.uid is not None
        or rule.goto is not None
        or rule.suppress_ifgroup is not None
        or rule.l3mdev
        or rule.invert
        or rule.tos
    ):
        return json_text(rule_to_json(rule))
    src, dst = rule.texts
    fwmark, suppress = rule.fwmark, rule.suppress_prefixlength
    iif, oif = rule.iifname, rule.oifname  # (inline, not a helper's call each: 1,538 per apply)
    return (
        f'{{"action":{int(rule.action)},"dst":{"null" if rule.dst is None else _string_text(dst)},'
        f'"family":{int(rule.family)},"fwmark":{"null" if fwmark is None else int(fwmark)},'
        f'"iif":{"null" if iif is None else _string_text(iif)},'
        f'"oif":{"null" if oif is None else _string_text(oif)},'
        f'"priority":{int(rule.priority)},"proto":{int(rule.proto)},'
        f'"src":{"null" if rule.src is None else _string_text(src)},'
        f'"suppress_prefixlength":{"null" if suppress is None else int(suppress)},'
        f'"table":{int(rule.table)}}}'
    )


def list_text(objects: Iterable[Route | Rule]) -> str:
    """The JSON text of a list of routes or rules (:func:`object_text` each)."""
    return "[" + ",".join(map(object_text, objects)) + "]"


def route_to_json(route: Route) -> dict[str, Any]:
    return route.to_json()


def route_from_json(data: dict[str, Any]) -> Route:
    import ipaddress  # here (the model has it anyway): not on the no-op apply's path

    from multihome.model import NextHop, Route

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
        nexthops=tuple(
            NextHop(
                gateway=None
                if hop.get("gateway") is None
                else ipaddress.ip_address(hop["gateway"]),
                ifname=hop.get("dev"),
                weight=int(hop.get("weight", 1)),
            )
            for hop in data.get("nexthops", ())
        ),
    )


def rule_to_json(rule: Rule) -> dict[str, Any]:
    """Every field of ``rule`` (the model's JSON, whose ``rule_action`` is ``action`` here as
    in the files written before, plus the kernel list position when known)."""
    data = rule.to_json()
    data["action"] = data.pop("rule_action")
    if rule.position:
        data["position"] = rule.position
    return data


def rule_from_json(data: dict[str, Any]) -> Rule:
    """The rule :func:`rule_to_json` wrote (and the older files without the newer fields)."""
    import ipaddress  # here (the model has it anyway): not on the no-op apply's path

    from multihome.model import Rule

    def net(key: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        value = data.get(key)
        return None if value is None else ipaddress.ip_network(value)

    def optional(key: str) -> int | None:
        value = data.get(key)
        return None if value is None else int(value)

    def span(key: str) -> tuple[int, int] | None:
        value = data.get(key)
        return None if value is None else (int(value[0]), int(value[1]))

    return Rule(
        family=int(data["family"]),
        priority=int(data["priority"]),
        table=int(data["table"]),
        src=net("src"),
        dst=net("dst"),
        iifname=data.get("iif"),
        oifname=data.get("oif"),
        suppress_prefixlength=optional("suppress_prefixlength"),
        fwmark=optional("fwmark"),
        fwmask=optional("fwmask"),
        action=int(data.get("action", data.get("rule_action", 1))),
        proto=int(data["proto"]),
        ipproto=optional("ipproto"),
        sport=span("sport"),
        dport=span("dport"),
        uid=span("uid"),
        goto=optional("goto"),
        l3mdev=bool(data.get("l3mdev", False)),
        suppress_ifgroup=optional("suppress_ifgroup"),
        invert=bool(data.get("invert", False)),
        tos=int(data.get("tos") or 0),
        position=int(data.get("position") or 0),
    )


def change_to_json(change: Change) -> dict[str, Any]:
    from multihome.model import Route, Sysctl

    obj = change.obj
    if isinstance(obj, Sysctl):
        body: dict[str, Any] = {"name": obj.name, "value": obj.value}
    elif isinstance(obj, Route):
        body = route_to_json(obj)
    else:
        body = rule_to_json(obj)
    return {"action": change.action, "kind": change.kind, "obj": body, "old": change.old}


def change_text(change: Change) -> str:
    """:func:`change_to_json` as the state files hold it (:func:`json_text`, keys sorted;
    the route's or rule's text encoded once, :func:`object_text`), put together directly:
    an apply journals thousands of changes (2560 at 256 ports)."""
    obj = change.obj
    kind = type(obj).__name__
    head = _CHANGE_HEADS.get((change.action, kind))
    if head is None:
        head = _change_head(change.action, kind)
    if kind == "Sysctl":
        sysctl: Any = obj
        body = f'{{"name":{_string_text(sysctl.name)},"value":{_string_text(sysctl.value)}}}'
    else:
        routing: Any = obj  # a Route or a Rule: its text is usually kept already
        body = routing.__dict__.get(_TEXT) or object_text(routing)
    old = "null" if change.old is None else _string_text(change.old)
    return f'{head}{body},"old":{old}}}'


def _change_head(action: str, kind: str) -> str:
    """The start of a change's text, up to its object: action and kind (:func:`change_text`)."""
    return f'{{"action":{_string_text(action)},"kind":{_string_text(kind.lower())},"obj":'


#: :func:`_change_head` of every action and kind a plan has (a constant table, not a cache).
_CHANGE_HEADS = {
    (action, kind): _change_head(action, kind)
    for action in ("add", "remove", "set")
    for kind in ("Route", "Rule", "Sysctl")
}


def change_from_json(data: dict[str, Any]) -> Change:
    from multihome.model import Sysctl
    from multihome.plan import Change

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
