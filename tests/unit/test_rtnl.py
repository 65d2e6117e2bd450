"""The rtnetlink codec without a kernel: what the backend encodes, its decoder reads back
unchanged; attributes, padding and the kernel's error messages are parsed as rtnetlink(7)
lays them out."""

from __future__ import annotations

import errno
import ipaddress
import pickle
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multihome.backend import Lookup
from multihome.backend.netlink import (
    NetlinkBackend,
    _address,
    _address_of,
    _interface,
    _kept,
    _network_of,
    _route,
    _rule,
)
from multihome.backend.rtnl import (
    AF_INET,
    AF_INET6,
    NLM_F_ACK_TLVS,
    NLM_F_CAPPED,
    NLMSGERR_ATTR_MSG,
    NLMSGHDR,
    RTMSG,
    attr,
    attr_str,
    attr_u32,
    attributes,
    error,
)
from multihome.kerneldigest import only
from multihome.model import Address, IPAddress, Route, Rule, ip_text
from multihome.nlattrs import _LAYOUTS as LAYOUTS
from multihome.nlattrs import spans
from multihome.values import replace

ROUTES = [
    Route(
        table=10042,
        dst=ipaddress.ip_network("0.0.0.0/0"),
        ifname="p1",
        gateway=ipaddress.ip_address("10.0.1.1"),
        metric=101,
        proto=222,
        prefsrc=ipaddress.ip_address("10.0.1.10"),
    ),
    Route(
        table=10042,
        dst=ipaddress.ip_network("10.0.1.0/24"),
        ifname="p1",
        metric=101,
        proto=222,
        scope=253,
        prefsrc=ipaddress.ip_address("10.0.1.10"),
    ),
    Route(
        table=254,
        dst=ipaddress.ip_network("169.254.169.254/32"),
        ifname="p1",
        gateway=ipaddress.ip_address("10.0.1.100"),
        proto=16,
    ),
    Route(
        table=10043, dst=ipaddress.ip_network("2001:db8::/64"), ifname="p1", metric=1024, proto=222
    ),
]
RULES = [
    Rule(family=4, priority=10001, table=254, suppress_prefixlength=0, proto=222),
    Rule(
        family=4,
        priority=10000,
        table=10042,
        src=ipaddress.ip_network("10.0.1.10/32"),
        dst=ipaddress.ip_network("10.0.1.0/24"),
        proto=222,
    ),
    Rule(family=4, priority=10003, table=10042, oifname="p1", proto=222),
    Rule(family=4, priority=10004, table=10042, iifname="p1", proto=222),
    Rule(family=4, priority=100, table=7, fwmark=0x10, fwmask=0xFF),
    Rule(
        family=6,
        priority=10002,
        table=10043,
        src=ipaddress.ip_network("2001:db8::5/128"),
        proto=222,
    ),
]


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.describe())
def test_route_message_decodes_to_the_same_route(route: Route) -> None:
    """An encoded route (table ids above 255 in RTA_TABLE) decodes back to itself."""
    backend = NetlinkBackend()
    backend._index = {"p1": 7}
    body = backend.route_message(route)
    decoded = _route(body, {7: "p1"})
    assert decoded == route
    assert decoded is not None
    fresh = replace(decoded)  # nothing cached: the texts given by the decoding are computed
    assert "texts" in decoded.__dict__ and "texts" not in fresh.__dict__
    assert (decoded.texts, decoded.family) == (fresh.texts, fresh.family)


@pytest.mark.parametrize(
    "text", ["10.0.1.10/24", "2001:db8:1::10/64", "::ffff:10.0.1.10/96", "fe80::1/64"]
)
def test_an_address_decoded_in_a_read_has_the_key_and_ip_of_a_fresh_one(text: str) -> None:
    """A read decodes addresses with the objects it makes once (``made``): the ``ip`` and
    ``key`` it gives an address are those a fresh copy computes (an IPv4-mapped address is
    written dotted), and the route to the address's subnet gets the same network."""
    address = Address(ifname="p1", interface=ipaddress.ip_interface(text))
    backend = NetlinkBackend()
    backend._index = {"p1": 7}
    made: dict[object, object] = {}
    decoded = _address(backend._address_message(address), {7: "p1"}, 1, made)
    assert decoded == address
    assert decoded is not None
    fresh = replace(decoded)
    assert "key" in decoded.__dict__ and "key" not in fresh.__dict__
    assert (decoded.key, decoded.ip, decoded.family) == (fresh.key, fresh.ip, fresh.family)
    subnet = Route(table=254, dst=address.network, ifname="p1", prefsrc=address.ip)
    route = _route(backend.route_message(subnet), {7: "p1"}, made)
    assert route == subnet
    assert route is not None
    assert route.dst is decoded.interface.network
    assert (route.texts, route.family) == (replace(route).texts, replace(route).family)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.describe())
def test_rule_message_decodes_to_the_same_rule(rule: Rule) -> None:
    """An encoded rule (selectors, interfaces, marks, protocol) decodes back to itself."""
    assert _rule(NetlinkBackend.rule_message(rule)) == rule


def test_a_rule_seen_at_another_place_keeps_its_decoding() -> None:
    """The agent's next read finds a known rule body at another place in the kernel's list (a
    rule was added before it): the copy has the new position, equals the rule, and keeps the
    key and sort order computed for it; the earlier read's rule is left as it was."""
    rule = _rule(NetlinkBackend.rule_message(RULES[1]), 3)
    assert rule is not None
    key, order = rule.key, rule.order
    assert _kept(rule, 3) is rule
    assert _kept(None, 3) is None
    moved = _kept(rule, 7)
    assert moved is not None and moved is not rule
    assert (moved.position, rule.position) == (7, 3)
    assert moved == rule and hash(moved) == hash(rule)
    assert moved.key is key and moved.order is order


def test_route_to_a_missing_interface_is_refused_before_the_kernel() -> None:
    """No ifindex for the route's interface: ENODEV, nothing is encoded."""
    with pytest.raises(OSError) as caught:
        NetlinkBackend().route_message(ROUTES[0])
    assert caught.value.errno == errno.ENODEV


def test_attributes_are_padded_and_parsed_in_order() -> None:
    """Attributes are 4-byte aligned; odd-length payloads are padded; the parser skips the
    padding and keeps every attribute's payload."""
    data = attr_str(3, "p1") + attr_u32(6, 10002) + attr(2, b"\x0a\x00\x01\x0a") + attr(9, b"")
    assert len(data) % 4 == 0
    found = attributes(data, 0)
    assert found[3] == b"p1\0"
    assert struct.unpack("=I", found[6]) == (10002,)
    assert found[2] == b"\x0a\x00\x01\x0a"
    assert found[9] == b""


def test_error_carries_the_kernels_extended_ack_text() -> None:
    """An NLMSG_ERROR with NLM_F_CAPPED|NLM_F_ACK_TLVS: errno and the kernel's message."""
    echoed = NLMSGHDR.pack(40, 32, 0x605, 77, 0)
    payload = struct.pack("=i", -errno.EEXIST) + echoed + attr_str(NLMSGERR_ATTR_MSG, "Rule exists")
    failure = error(errno.EEXIST, payload, NLM_F_CAPPED | NLM_F_ACK_TLVS)
    assert failure.errno == errno.EEXIST
    assert failure.strerror == "File exists (Rule exists)"
    assert error(errno.ENOENT, payload[:4] + echoed, 0).strerror == "No such file or directory"


def walked_spans(
    data: bytes, offset: int, wanted: frozenset[int] | None
) -> list[tuple[int, int, int]]:
    """The plain walk :func:`spans` replaces with remembered layouts: every header read one
    after the other."""
    found = []
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        if wanted is None or kind & 0x3FFF in wanted:
            found.append((kind & 0x3FFF, offset, offset + length))
        offset += (length + 3) & ~3
    return found


def walked(data: bytes, offset: int, wanted: frozenset[int] | None) -> dict[int, bytes]:
    """:func:`walked_spans` as type -> payload, the last one of a type winning."""
    return {
        kind: data[start + 4 : stop] for kind, start, stop in walked_spans(data, offset, wanted)
    }


ATTRIBUTE = st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=12))


@given(
    messages=st.lists(
        st.tuples(st.lists(ATTRIBUTE, max_size=8), st.binary(max_size=6)), min_size=1, max_size=6
    ),
    wanted=st.none() | st.frozensets(st.integers(0, 8), max_size=4),
    offset=st.sampled_from([0, 4]),
)
def test_attributes_as_remembered_are_those_of_a_plain_walk(
    messages: list[tuple[list[tuple[int, bytes]], bytes]],
    wanted: frozenset[int] | None,
    offset: int,
) -> None:
    """Messages of one length but other headers (a remembered layout that does not fit),
    types with the nested/byte-order bits, a truncated or zero-length header at the end:
    :func:`spans` and :func:`attributes` (the backend's and the digest's walk) give what
    walking every header gives, again and again."""
    LAYOUTS.clear()
    datas = [
        b"\xee" * offset + b"".join(attr(kind, payload) for kind, payload in items) + tail
        for items, tail in messages
    ]
    datas += [data[: len(datas[0])].ljust(len(datas[0]), b"\0") for data in datas]
    for data in datas * 2:
        if wanted is None:
            assert attributes(data, offset) == walked(data, offset, None)
            assert list(spans(data, offset)) == walked_spans(data, offset, None)
        else:
            assert attributes(data, offset, wanted) == walked(data, offset, wanted)
            assert list(spans(data, offset, wanted)) == walked_spans(data, offset, wanted)


def test_a_layout_of_the_same_length_but_other_headers_is_walked_again() -> None:
    """Two messages of one length, the second's first attribute longer: the second is not
    cut where the first's payloads were."""
    LAYOUTS.clear()
    first = attr(1, b"abcd") + attr(2, b"efgh")
    second = attr(1, b"abcdefgh") + attr(3, b"")
    assert len(first) == len(second)
    assert attributes(first, 0) == {1: b"abcd", 2: b"efgh"}
    assert attributes(second, 0) == walked(second, 0, None)
    assert attributes(first, 0) == {1: b"abcd", 2: b"efgh"}


@given(
    messages=st.lists(
        st.tuples(st.binary(min_size=12, max_size=12), st.lists(ATTRIBUTE, max_size=8)),
        min_size=1,
        max_size=6,
    ),
    wanted=st.frozensets(st.integers(0, 8), max_size=4),
    header=st.sampled_from([8, 12]),
)
def test_the_digests_kept_parts_are_those_of_a_plain_walk(
    messages: list[tuple[bytes, list[tuple[int, bytes]]]], wanted: frozenset[int], header: int
) -> None:
    """:func:`kerneldigest.only` (its slicer remembered per layout) keeps the first eight
    bytes and the attributes of the wanted types that walking every header finds, in order:
    messages of one layout and of others, none kept, one kept, again and again."""
    LAYOUTS.clear()
    bodies = [
        head[:header] + b"".join(attr(kind, payload) for kind, payload in items)
        for head, items in messages
    ]
    for body in bodies * 2:
        parts = [body[start:stop] for _kind, start, stop in walked_spans(body, header, wanted)]
        assert only(body, header, wanted) == b"".join([body[:8], *parts])


def walked_lookup(body: bytes, names: dict[int, str]) -> Lookup:
    """What a lookup's answer said before :meth:`NetlinkBackend._answer` found its
    attributes by :func:`spans`: every header walked, the last of a type winning."""
    found = walked(body, RTMSG.size, None)
    oif = struct.unpack_from("=I", found[4])[0] if 4 in found else None
    table = struct.unpack_from("=I", found[15])[0] if 15 in found else None
    gateway, prefsrc = found.get(5), found.get(7)
    return Lookup(
        names.get(oif) if oif else None,
        ipaddress.ip_address(gateway) if gateway else None,
        ipaddress.ip_address(prefsrc) if prefsrc else None,
        table,
        body[7],
    )


ADDRESS_BYTES = st.sampled_from([b"", bytes(4), b"\n\0\1\1", b"\n\0\1\n", bytes(range(16))])
LOOKUP_ATTRIBUTE = st.one_of(
    st.tuples(
        st.sampled_from([4, 15, 0x8000 | 4]), st.integers(0, 9).map(lambda n: struct.pack("=I", n))
    ),
    st.tuples(st.sampled_from([5, 7]), ADDRESS_BYTES),
    st.tuples(st.sampled_from([1, 6, 12]), st.binary(max_size=8)),
)


@given(
    answers=st.lists(
        st.tuples(st.integers(1, 7), st.lists(LOOKUP_ATTRIBUTE, max_size=9)),
        min_size=1,
        max_size=6,
    )
)
def test_a_lookup_answer_decodes_as_a_plain_walk_of_it(
    answers: list[tuple[int, list[tuple[int, bytes]]]],
) -> None:
    """Answers of the same and of other shapes, repeated types, an unknown interface, the
    nested bit on a type: :meth:`NetlinkBackend._answer` gives the :class:`Lookup` that
    walking every header gives, again and again."""
    LAYOUTS.clear()
    backend = NetlinkBackend()
    backend._names = {index: f"p{index}" for index in range(10)}
    bodies = [
        RTMSG.pack(AF_INET, 32, 0, 0, 254, 3, 0, kind, 0)
        + b"".join(attr(code, payload) for code, payload in items)
        for kind, items in answers
    ]
    known: dict[bytes, IPAddress] = {}
    for body in bodies * 2:
        assert backend._answer(body, known) == walked_lookup(body, backend._names)


@given(
    family=st.sampled_from([4, 6]),
    data=st.data(),
)
def test_an_interface_made_around_a_known_network_is_the_constructors(
    family: int, data: st.DataObject
) -> None:
    """:func:`_interface` (the read's IPv4/IPv6 interface around a network made once) gives
    what ``IPv4Interface((packed, prefixlen))`` / ``IPv6Interface`` give: the same type,
    attributes, equality, hash, texts, address and network, pickled alike; a second one in
    the same subnet shares the network; a prefix too long is refused as the constructor
    refuses it."""
    size = 4 if family == 4 else 16
    value = data.draw(st.binary(min_size=size, max_size=size))
    prefixlen = data.draw(st.integers(0, 8 * size))
    af = AF_INET if family == 4 else AF_INET6
    made: dict[object, object] = {}
    ours = _interface(af, value, prefixlen, made)
    theirs = ipaddress.ip_interface((value, prefixlen))
    assert type(ours) is type(theirs)
    assert vars(ours) == vars(theirs)
    assert ours._ip == theirs._ip  # type: ignore[union-attr]
    if family == 6:
        assert ours.scope_id is theirs.scope_id is None  # type: ignore[union-attr]
    assert (ours == theirs, hash(ours), str(ours), repr(ours)) == (
        True,
        hash(theirs),
        str(theirs),
        repr(theirs),
    )
    assert (ours.ip, ours.network, ours.netmask, ours.with_prefixlen) == (
        theirs.ip,
        theirs.network,
        theirs.netmask,
        theirs.with_prefixlen,
    )
    assert ip_text(ours) == ip_text(theirs)
    assert pickle.loads(pickle.dumps(ours)) == theirs
    # another address in the subnet (its last bit is a host bit) when the subnet has two
    other = value[:-1] + bytes([value[-1] ^ 1]) if prefixlen < 8 * size else value
    assert _interface(af, other, prefixlen, made).network is ours.network
    with pytest.raises(ValueError, match="not a valid netmask"):
        _interface(af, value, 8 * size + 1, made)


@given(family=st.sampled_from([4, 6]), data=st.data())
def test_a_network_and_an_address_made_from_bytes_are_the_constructors(
    family: int, data: st.DataObject
) -> None:
    """:func:`_network_of` and :func:`_address_of` (the read's subnets, destinations,
    addresses and gateways, made from their bytes) give what ``IPv4Network((packed,
    prefixlen), strict=False)`` / ``ip_address(packed)`` give: the same type, attributes
    (a host network's ``hosts`` too), equality, hash, texts (``ip_text``: IPv4-mapped and
    dotted IPv6 forms included), pickled alike; host bits set, bytes or a prefix of another
    length go to the constructor (which refuses what it refuses)."""
    size = 4 if family == 4 else 16
    mapped = st.binary(min_size=4, max_size=4).map(lambda v: bytes(10) + b"\xff\xff" + v)
    value = data.draw(
        st.binary(min_size=size, max_size=size) | (mapped if family == 6 else st.nothing())
    )
    prefixlen = data.draw(st.integers(0, 8 * size))
    af = AF_INET if family == 4 else AF_INET6
    masked = data.draw(st.booleans())
    if masked:  # the kernel's destinations have no host bits
        number = int.from_bytes(value, "big") >> (8 * size - prefixlen) << (8 * size - prefixlen)
        value = number.to_bytes(size, "big")
    ours_net = _network_of(af, value, prefixlen)
    theirs_net = ipaddress.ip_network((value, prefixlen), strict=False)
    assert type(ours_net) is type(theirs_net)
    mine, theirs = dict(vars(ours_net)), dict(vars(theirs_net))
    assert ("hosts" in mine) == ("hosts" in theirs)
    if "hosts" in mine:
        assert list(mine.pop("hosts")()) == list(theirs.pop("hosts")())
    assert mine == theirs
    assert (ours_net == theirs_net, hash(ours_net), str(ours_net), ip_text(ours_net)) == (
        True,
        hash(theirs_net),
        str(theirs_net),
        ip_text(theirs_net),
    )
    assert pickle.loads(pickle.dumps(ours_net)) == theirs_net
    address, text = _address_of(af, value)
    expected = ipaddress.ip_address(value)
    assert type(address) is type(expected)
    assert (address == expected, hash(address), str(address), text) == (
        True,
        hash(expected),
        str(expected),
        ip_text(expected),
    )
    if family == 6:
        assert address.scope_id is None  # type: ignore[union-attr]
    assert pickle.loads(pickle.dumps(address)) == expected
    with pytest.raises(ValueError):
        _network_of(af, value, 8 * size + 1)
    with pytest.raises(ValueError):
        _address_of(af, value + b"\0")
