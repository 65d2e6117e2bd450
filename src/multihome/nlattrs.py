"""Where the attributes of a netlink message lie: one walk per message shape, remembered.

rtnetlink messages are a fixed header and then attributes (``struct nlattr``: a 16-bit
length, a 16-bit type, the payload padded to 4 bytes), read by walking the headers one after
the other. In Python that costs about 2,000 instructions an attribute, and a read at 256 ports
walks some 30,000 of them (a link message carries about forty, the no-op's digest walks them
too). But a dump's messages come in a few shapes: every veth's link message has the same
attributes of the same sizes, every default route the same six. So :func:`spans` remembers a
walk as a layout: one ``struct.unpack_from`` of every header it met, and their values. A
message of the same length whose headers, read in that one call, are exactly those of a
remembered walk would be walked exactly alike (the walk reads nothing else), so the spans of
that walk are its spans. Anything else is walked, and remembered.

Both sides use it: :mod:`multihome.backend.rtnl` (the backend's decoding) and
:mod:`multihome.kerneldigest` (on the no-op apply's path), so this imports only ``struct``.
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False  # typing is for the type checker only (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable, Container

    #: (type, start of its header, end of its payload) of each attribute kept, in order.
    Spans = tuple[tuple[int, int, int], ...]
    #: A remembered walk: its headers' ``unpack_from``, their values, its spans.
    Layout = tuple[Callable[[bytes, int], tuple[int, ...]], tuple[int, ...], Spans]

NLA_TYPE_MASK = 0x3FFF
#: Every attribute type (a ``range`` tests membership in C).
ANY_ATTRIBUTE = range(NLA_TYPE_MASK + 1)
_NLATTR = struct.Struct("=HH")
#: The walks remembered, by (length of the data, start offset, types kept): a few per key,
#: and a bound on the keys (an agent that runs for years meets odd shapes).
_LAYOUTS: dict[tuple[int, int, Container[int]], list[Layout]] = {}
_LAYOUTS_PER_KEY = 4
_LAYOUT_KEYS = 4096


def spans(data: bytes, offset: int, wanted: Container[int] = ANY_ATTRIBUTE) -> Spans:
    """(type, header start, payload end) of each attribute in ``data`` from ``offset`` on
    whose type (without the nested and byte-order bits) is in ``wanted``, in order. The
    walk stops at a header that does not fit or says less than its own 4 bytes."""
    key = (len(data), offset, wanted)
    known = _LAYOUTS.get(key)
    if known is not None:
        for unpack_headers, headers, found in known:
            if unpack_headers(data, offset) == headers:
                return found
    kept: list[tuple[int, int, int]] = []
    seen: list[int] = []
    steps: list[int] = []
    end = len(data)
    unpack = _NLATTR.unpack_from
    while offset + 4 <= end:
        length, kind = unpack(data, offset)
        seen += (length, kind)
        if length < 4:
            break
        if kind & NLA_TYPE_MASK in wanted:
            kept.append((kind & NLA_TYPE_MASK, offset, offset + length))
        step = (length + 3) & ~3
        steps.append(step)
        offset += step
    else:
        if steps:
            _remember(key, known, steps, tuple(seen), tuple(kept))
    return tuple(kept)


def _remember(
    key: tuple[int, int, Container[int]],
    known: list[Layout] | None,
    steps: list[int],
    headers: tuple[int, ...],
    found: Spans,
) -> None:
    """Keep a walk of :func:`spans` that ended cleanly: ``steps`` between its headers."""
    layout = "=" + "".join(f"HH{step - 4}x" for step in steps[:-1]) + "HH"
    if known is None:
        if len(_LAYOUTS) >= _LAYOUT_KEYS:
            _LAYOUTS.clear()
        known = _LAYOUTS[key] = []
    elif len(known) >= _LAYOUTS_PER_KEY:
        known.pop(0)
    known.append((struct.Struct(layout).unpack_from, headers, found))


def payloads(data: bytes, offset: int, wanted: Container[int] = ANY_ATTRIBUTE) -> dict[int, bytes]:
    """The attributes of :func:`spans` as type -> payload (the last one of a type wins)."""
    return {kind: data[start + 4 : stop] for kind, start, stop in spans(data, offset, wanted)}
