"""The boundary: one reader for every file and document multihome is given.

Four inputs come from outside: the configuration file (YAML, :mod:`multihome.config`), the
topology file of ``multihome cloud`` (YAML, :mod:`multihome.cloud.topology`), the lab's scenario
files (YAML, :mod:`multihome.lab.scenario`) and OpenStack's ``network_data.json`` and
``meta_data.json`` (JSON, :mod:`multihome.source.network_data`). Each is loaded here into plain
values held by :class:`Node` cursors that know where they are -- the file, the key path
(``servers[0].ports[1].fixed_ip``) and, for YAML, the line and column -- and the parsers read
typed values from the cursors. Every failure is one :class:`~multihome.errors.InputError`
(exit 2, nothing changed) that reads::

    FILE:LINE:COL: KEY.PATH: what is wrong; how to fix it

The loaders refuse hostile input before a parser sees it: a FIFO or device instead of a file,
more than :data:`MAX_BYTES`, text that is not UTF-8, a key given twice in one mapping, nesting
deeper than :data:`MAX_DEPTH`, and YAML aliases that expand the document to more than
:data:`MAX_NODES` values (a "billion laughs" file of 300 bytes is refused while it is composed,
in milliseconds, instead of expanding to gigabytes). Values quoted in messages are cut to
:data:`SHOWN` characters, so no message is ever longer than a few lines.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import reprlib
import stat
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

from multihome.errors import InputError
from multihome.model import IPAddress, IPNetwork
from multihome.values import field, frozen

TYPE_CHECKING = False  # typing is for the type checker only (start-up time)
if TYPE_CHECKING:
    from typing import Any

    import yaml
else:
    Any = object  # in the bases dict[Any, Any] and list[Any] below

#: Larger files are refused (a configuration or topology file is a few KiB).
MAX_BYTES = 1 << 20
#: Deeper nesting is refused (the deepest legitimate file nests 6 levels).
MAX_DEPTH = 64
#: More values than this, counting every use of a YAML alias in full, are refused.
MAX_NODES = 100_000
#: Values quoted in messages are cut to this many characters.
SHOWN = 60
#: Keys shown as they are in key paths; others are quoted and cut like values.
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_.:/-]{1,60}$")

Mark = tuple[int, int]
"""A position in a file: line and column, both counted from 1."""

_YAML_KINDS: dict[type, str] = {
    dict: "a mapping",
    list: "a list",
    str: "text",
    bool: "true or false",
    int: "an integer",
    float: "a number",
    type(None): "nothing",
}
_JSON_KINDS: dict[type, str] = {
    dict: "an object",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    type(None): "null",
}
_SYNTAX_FIX = "fix the syntax (indentation, colons, brackets)"


class _Repr(reprlib.Repr):
    """reprlib's bounded repr, also for the marked containers the YAML loader builds."""

    def repr_MarkedDict(self, value: dict[Any, Any], level: int) -> str:
        return self.repr_dict(value, level)

    def repr_MarkedList(self, value: list[Any], level: int) -> str:
        return self.repr_list(value, level)


_REPR = _Repr()
_REPR.maxlevel = 2
_REPR.maxstring = SHOWN
_REPR.maxother = SHOWN


class MarkedDict(dict[Any, Any]):
    """A YAML mapping that remembers where each of its keys and values is."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: dict[str, tuple[Mark, Mark]] = {}
        """str(key) -> (position of the key, position of its value)."""


class MarkedList(list[Any]):
    """A YAML sequence that remembers where each of its items is."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: list[Mark] = []


@frozen
class Origin:
    """What every node of one document shares: its name and how to talk about it."""

    source: str
    """The file (or document) named at the start of every message."""
    remedy: str | None = None
    """One fix for every message, for a document the user did not write (the metadata)."""
    kinds: dict[type, str] = field(default_factory=lambda: _YAML_KINDS, compare=False)
    """How value types are named in messages (YAML or JSON words)."""


def shown(value: object) -> str:
    """``value`` as a message quotes it: its repr, cut to :data:`SHOWN` characters."""
    text = _REPR.repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


@frozen
class Node:
    """A value read from a document, with where it is; its methods return typed values or
    raise :class:`~multihome.errors.InputError` naming the file, the position, the key path
    and the fix."""

    origin: Origin
    value: object
    path: str = ""
    """``servers[0].ports[1]``; empty for the whole document."""
    mark: Mark | None = None
    """Where the value is (YAML only); for an absent key, where its mapping is."""

    # -- where ---------------------------------------------------------------------------------
    @property
    def key(self) -> str:
        """The key path as messages show it."""
        return self.path or "(top level)"

    @property
    def absent(self) -> bool:
        """The key is missing or null."""
        return self.value is None

    @property
    def kind(self) -> str:
        """The value's type in the document's words ("a mapping", "an object", "nothing")."""
        return self.origin.kinds.get(type(self.value), type(self.value).__name__)

    @property
    def shown(self) -> str:
        return shown(self.value)

    def fail(self, problem: str, fix: str = "") -> InputError:
        """The error for this value: ``FILE:LINE:COL: PATH: problem; fix``."""
        return InputError.at(
            self.origin.source, problem, self.origin.remedy or fix, path=self.key, mark=self.mark
        )

    def child(self, key: str | int, value: object, mark: Mark | None) -> Node:
        """The node of item ``key`` (an index or a mapping key) of this one."""
        if isinstance(key, int):
            path = f"{self.key}[{key}]"
        else:
            name = key if _PLAIN_KEY.match(key) else shown(key)
            path = f"{self.path}.{name}" if self.path else name
        return Node(self.origin, value, path, mark if mark is not None else self.mark)

    # -- containers ----------------------------------------------------------------------------
    def mapping(
        self,
        allowed: Collection[str] | None = None,
        required: Sequence[str] = (),
        *,
        optional: bool = False,
    ) -> Fields:
        """The value as a mapping with only ``allowed`` keys (any when None) and every
        ``required`` one non-null; absent is an empty mapping when ``optional``."""
        if self.absent and optional:
            return Fields(self, {}, {})
        if not isinstance(self.value, dict):
            what = "an object" if self.origin.kinds is _JSON_KINDS else "a mapping"
            raise self.fail(f"expected {what}, got {self.kind}", "write it as 'key: value' lines")
        marks: dict[str, tuple[Mark, Mark]] = getattr(self.value, "marks", {})
        entries: dict[str, Node] = {}
        key_marks: dict[str, Mark | None] = {}
        for raw_key, value in self.value.items():
            key = str(raw_key)
            key_mark, value_mark = marks.get(key, (None, None))
            if allowed is not None and key not in allowed:
                raise Node(self.origin, raw_key, self.path, key_mark or self.mark).fail(
                    f"unknown key {shown(key)}", f"use one of {', '.join(sorted(allowed))}"
                )
            if key in entries:
                raise Node(self.origin, raw_key, self.path, key_mark or self.mark).fail(
                    f"the key {shown(key)} is given twice", "keep one of them"
                )
            entries[key] = self.child(key, value, value_mark)
            key_marks[key] = key_mark
        fields = Fields(self, entries, key_marks)
        for key in required:
            if fields[key].absent:
                raise fields[key].fail("missing", f"add '{key}:' to {self.key}")
        return fields

    def seq(
        self,
        *,
        limit: int | None = None,
        what: str = "a list",
        fix: str = "write it as '- item' lines or [a, b]",
        optional: bool = True,
    ) -> list[Node]:
        """The value as a list of nodes (absent: empty, when ``optional``); more than
        ``limit`` items are refused."""
        if self.absent and optional:
            return []
        if not isinstance(self.value, list):
            raise self.fail(f"expected {what}, got {self.kind}", fix)
        if limit is not None and len(self.value) > limit:
            raise self.fail(f"{len(self.value)} entries is more than {limit}", fix)
        marks: list[Mark] = getattr(self.value, "marks", [])
        return [
            self.child(index, item, marks[index] if index < len(marks) else None)
            for index, item in enumerate(self.value)
        ]

    # -- scalars -------------------------------------------------------------------------------
    def text(self, default: str | None = None, *, fix: str = "quote the value") -> str:
        """The value as text; absent gives ``default`` (None: the value is required)."""
        if self.absent and default is not None:
            return default
        if not isinstance(self.value, str):
            raise self.fail(f"expected text, got {self.kind}", fix)
        return self.value

    def matching(self, pattern: re.Pattern[str], what: str, fix: str) -> str:
        """Text that matches ``pattern`` (else: "<value> is not <what>; <fix>")."""
        if not isinstance(self.value, str) or not pattern.match(self.value):
            raise self.fail(f"{self.shown} is not {what}", fix)
        return self.value

    def one_of(self, choices: Sequence[str], default: str | None = None, *, what: str = "") -> str:
        """Text that is one of ``choices``."""
        value = self.text(default)
        if value not in choices:
            problem = f"is not {what}" if what else "is not supported"
            raise self.fail(f"{shown(value)} {problem}", f"use one of {', '.join(choices)}")
        return value

    def boolean(self, default: bool | None = None) -> bool:
        """true or false; absent gives ``default`` (None: the value is required)."""
        if self.absent and default is not None:
            return default
        if not isinstance(self.value, bool):
            raise self.fail(f"{self.shown} is not true or false", "write true or false")
        return self.value

    def integer(self, low: int, high: int, *, fix: str = "") -> int:
        """An integer from ``low`` to ``high`` (true and false are not integers)."""
        value = self.value
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(
                f"expected an integer from {low} to {high}, got {self.shown}",
                fix or f"write a whole number from {low} to {high}",
            )
        return value

    def address(self, version: int | None = None, *, fix: str = "") -> IPAddress:
        """An IP address (of ``version`` 4 or 6 when given)."""
        family = f"IPv{version}" if version else "IP"
        try:
            if not isinstance(self.value, str) or len(self.value) > 64:
                raise ValueError(self.value)
            address = ipaddress.ip_address(self.value)
        except ValueError:
            raise self.fail(
                f"{self.shown} is not an {family} address",
                fix or f"write e.g. {'2001:db8::10' if version == 6 else '192.168.0.107'}",
            ) from None
        if version is not None and address.version != version:
            raise self.fail(f"{address} is not an {family} address", fix)
        return address

    def network(
        self, version: int | None = None, *, strict: bool = True, fix: str = ""
    ) -> IPNetwork:
        """A network in CIDR notation (host bits zero when ``strict``)."""
        family = f"an IPv{version} " if version else "a "
        try:
            if not isinstance(self.value, str) or len(self.value) > 64:
                raise ValueError(self.value)
            network = ipaddress.ip_network(self.value, strict=strict)
            if version is not None and network.version != version:
                raise ValueError(self.value)
        except ValueError:
            raise self.fail(
                f"{self.shown} is not {family}network in CIDR notation",
                fix or "write e.g. 192.168.0.0/24" + (" (host bits zero)" if strict else ""),
            ) from None
        return network


class Fields:
    """The entries of a mapping node, as nodes; a missing key gives an absent node that
    points at the mapping."""

    def __init__(
        self, node: Node, entries: dict[str, Node], key_marks: dict[str, Mark | None]
    ) -> None:
        self.node = node
        self._entries = entries
        self._key_marks = key_marks

    def key(self, key: str) -> Node:
        """The key itself as a node (to check a key that is a name, like an interface)."""
        value = self[key]
        return Node(value.origin, key, value.path, self._key_marks.get(key) or value.mark)

    def __getitem__(self, key: str) -> Node:
        found = self._entries.get(key)
        return found if found is not None else self.node.child(key, None, None)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> Iterator[tuple[str, Node]]:
        return iter(self._entries.items())

    def values(self) -> Iterator[Node]:
        return iter(self._entries.values())


# -- files ---------------------------------------------------------------------------------
def read_file(path: Path, *, missing_fix: str, unreadable_fix: str = "") -> str:
    """The text of the regular file at ``path``: never blocks on a FIFO, refuses devices,
    directories, more than :data:`MAX_BYTES` and text that is not UTF-8."""
    unreadable_fix = unreadable_fix or "check the path and its permissions (or run as root)"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise InputError.at(str(path), "no such file", missing_fix) from exc
    except OSError as exc:
        raise InputError.at(str(path), f"cannot read ({exc.strerror})", unreadable_fix) from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise InputError.at(
            str(path), f"not a regular file ({_file_kind(mode)})", "give the path of a file"
        )
    with os.fdopen(fd, "rb") as handle:
        try:
            raw = handle.read(MAX_BYTES + 1)
        except OSError as exc:
            raise InputError.at(str(path), f"cannot read ({exc.strerror})", unreadable_fix) from exc
    return decode(raw, str(path))


def _file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a file"


def decode(raw: bytes, source: str, *, remedy: str | None = None) -> str:
    """``raw`` as UTF-8 text, refusing more than :data:`MAX_BYTES` and invalid bytes (whose
    line and column the message names)."""
    if len(raw) > MAX_BYTES:
        raise InputError.at(
            source,
            (
                f"{len(raw)} bytes"
                if len(raw) > MAX_BYTES + 1
                else f"reading stopped after {MAX_BYTES} bytes: it"
            )
            + f" is more than the {MAX_BYTES} bytes this file may have",
            remedy or "give the right file",
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputError.at(
            source,
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            remedy or "save the file as UTF-8",
            mark=(line, column),
        ) from exc


# -- YAML ----------------------------------------------------------------------------------
def yaml_document(text: str, source: str) -> Node:
    """The YAML ``text`` (named ``source`` in messages) as a node (its value None when the
    document is empty)."""
    import yaml  # lazy: multihome starts at boot and from udev

    loader = None
    try:
        loader = _loader_class()(text, source)
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        problem = exc.problem or str(exc).splitlines()[0]
        raise InputError.at(
            source,
            f"malformed YAML: {problem}",
            _SYNTAX_FIX,
            mark=None if mark is None else (mark.line + 1, mark.column + 1),
        ) from exc
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise InputError.at(
            source,
            f"malformed YAML: character #x{exc.character:04x} is not allowed",
            "remove it (YAML allows printable characters only)",
            mark=(line, column),
        ) from exc
    except yaml.YAMLError as exc:
        raise InputError.at(source, f"malformed YAML: {exc}", _SYNTAX_FIX) from exc
    finally:
        if loader is not None:
            loader.dispose()
    return Node(Origin(source), data, "", loader.root_mark or (1, 1))


def _position(node: yaml.Node) -> Mark:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


_LOADER: type[Any] | None = None


def _loader_class() -> type[Any]:
    """The safe YAML loader with marks, duplicate-key, depth and expansion checks (built on
    first use, so that ``import multihome.reader`` does not import yaml)."""
    global _LOADER  # noqa: PLW0603 -- a class built once, not a cache of data
    if _LOADER is None:
        _LOADER = _make_loader()
    return _LOADER


def _make_loader() -> type[Any]:
    import yaml
    from yaml.events import AliasEvent
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    merge_tag = "tag:yaml.org,2002:merge"

    class Loader(yaml.SafeLoader):
        def __init__(self, stream: str, source: str) -> None:
            self.source = source
            super().__init__(stream)
            self.depth = 0
            self.values = 0
            self.open_anchors: set[str] = set()
            self.expanded: dict[int, tuple[int, int]] = {}
            self.root_mark: Mark | None = None

        def refuse(self, mark: yaml.Mark, problem: str, fix: str) -> InputError:
            return InputError.at(self.source, problem, fix, mark=(mark.line + 1, mark.column + 1))

        def fetch_flow_collection_start(self, token_class: type[yaml.Token]) -> None:
            """``[`` or ``{``: refused beyond :data:`MAX_DEPTH` while scanning (the scanner
            looks far ahead inside deep flow collections, so the composer would see it late)."""
            if self.flow_level >= MAX_DEPTH:
                raise self.refuse(
                    self.get_mark(),
                    f"nested deeper than {MAX_DEPTH} levels",
                    "flatten the document (no multihome file nests that deep)",
                )
            super().fetch_flow_collection_start(token_class)

        def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
            event = self.peek_event()  # type: ignore[no-untyped-call]
            if self.root_mark is None:
                self.root_mark = (event.start_mark.line + 1, event.start_mark.column + 1)
            if self.depth >= MAX_DEPTH:
                raise self.refuse(
                    event.start_mark,
                    f"nested deeper than {MAX_DEPTH} levels",
                    "flatten the document (no multihome file nests that deep)",
                )
            if self.check_event(AliasEvent):
                if event.anchor in self.open_anchors:
                    raise self.refuse(
                        event.start_mark,
                        f"the alias *{event.anchor} refers to a collection that contains it",
                        "remove the alias",
                    )
                node = super().compose_node(parent, index)
                assert node is not None  # an alias always names a node
                size, height = self.expand(node)
                self.values += size
                if self.depth + height > MAX_DEPTH:
                    raise self.refuse(
                        event.start_mark,
                        f"the alias *{event.anchor} nests the document deeper than {MAX_DEPTH} "
                        "levels",
                        "write the values out instead of nesting aliases",
                    )
            else:
                anchor = event.anchor
                if anchor is not None:
                    self.open_anchors.add(anchor)
                self.depth += 1
                try:
                    node = super().compose_node(parent, index)
                finally:
                    self.depth -= 1
                    self.open_anchors.discard(anchor or "")
                self.values += 1
            if self.values > MAX_NODES:
                raise self.refuse(
                    event.start_mark,
                    f"the document expands to more than {MAX_NODES} values"
                    + (" through aliases" if self.anchors else ""),
                    "write a smaller file (aliases are expanded in full)",
                )
            return node

        def expand(self, node: yaml.Node) -> tuple[int, int]:
            """(values, levels) of ``node`` with every alias in it expanded, memoised."""
            known = self.expanded.get(id(node))
            if known is not None:
                return known
            children: list[yaml.Node] = []
            if isinstance(node, SequenceNode):
                children = list(node.value)
            elif isinstance(node, MappingNode):
                children = [n for pair in node.value for n in pair]
            size, height = 1, 1
            for child in children:
                child_size, child_height = self.expand(child)
                size += child_size
                height = max(height, child_height + 1)
            self.expanded[id(node)] = (size, height)
            return size, height

        def construct_marked_map(self, node: MappingNode) -> Iterator[MarkedDict]:
            data = MarkedDict()
            yield data
            first: dict[object, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == merge_tag or not isinstance(key_node, ScalarNode):
                    continue
                key = self.construct_object(key_node)
                if key in first:
                    line = first[key].start_mark.line + 1
                    raise self.refuse(
                        key_node.start_mark,
                        f"duplicate key {shown(key)} (first on line {line})",
                        "keep one of them",
                    )
                first[key] = key_node
            self.flatten_mapping(node)
            for key_node, value_node in node.value:
                key = self.construct_object(key_node, deep=False)
                try:
                    hash(key)
                except TypeError:
                    raise self.refuse(
                        key_node.start_mark, "a key is a collection", "use text keys"
                    ) from None
                data[key] = self.construct_object(value_node, deep=False)
                data.marks[str(key)] = (_position(key_node), _position(value_node))

        def construct_marked_seq(self, node: SequenceNode) -> Iterator[MarkedList]:
            data = MarkedList()
            yield data
            for child in node.value:
                data.append(self.construct_object(child, deep=False))
                data.marks.append(_position(child))

    Loader.add_constructor("tag:yaml.org,2002:map", Loader.construct_marked_map)
    Loader.add_constructor("tag:yaml.org,2002:seq", Loader.construct_marked_seq)
    return Loader


# -- JSON ----------------------------------------------------------------------------------
def json_document(raw: bytes, source: str, *, remedy: str) -> Node:
    """The JSON document ``raw`` as a node, refusing oversized, invalid and hostile input
    (NaN, Infinity, duplicate keys, nesting too deep); every message ends with ``remedy``."""
    text = decode(raw, source, remedy=remedy)
    try:
        data = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique)
    except json.JSONDecodeError as exc:
        raise InputError.at(
            source, f"malformed JSON ({exc.msg})", remedy, mark=(exc.lineno, exc.colno)
        ) from exc
    except RecursionError as exc:
        raise InputError.at(source, "JSON nested too deeply", remedy) from exc
    except ValueError as exc:  # NaN/Infinity, huge integer literals, duplicate keys
        raise InputError.at(source, str(exc), remedy) from exc
    return Node(Origin(source, remedy, _JSON_KINDS), data)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise ValueError(f"duplicate key {shown(key)} in one object")
        data[key] = value
    return data
