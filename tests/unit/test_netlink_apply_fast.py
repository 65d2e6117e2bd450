"""The apply side's fast forms against the general ones they replace: a sysctl's path, a
lookup's request, and the post-apply link messages with the sysctls written put into their
devconf (each compared with the plain code it stands for, on generated inputs)."""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from multihome.backend.netlink import (
    DEVCONF,
    FAMILIES,
    NetlinkBackend,
    _devconf_offset,
    _raw_link,
    _with_devconf,
)
from multihome.backend.rtnl import (
    AF_INET,
    AF_INET6,
    IFINFOMSG,
    IFLA_AF_SPEC,
    IFLA_IFNAME,
    IFLA_INET_CONF,
    RTA_DST,
    RTA_OIF,
    RTA_SRC,
    attr,
    attr_str,
)
from multihome.model import IPAddress, NextHop, Route, Rule, Sysctl, ip_text
from multihome.verify import Check

COMPONENT = st.text(alphabet="abcdef0123456789_-/", min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(st.lists(COMPONENT, min_size=1, max_size=6))
def test_sysctl_path_is_the_models_path(parts: list[str]) -> None:
    """``Sysctl.path`` (one ``str.replace`` for a name without a '/') is the general form:
    split at the dots, a '/' inside a component made a '.' (``eth0/100``), joined by '/'."""
    name = ".".join(parts)
    assert Sysctl(name, "1").path == "/".join(part.replace("/", ".") for part in parts)


def _plain_lookup_body(
    index: dict[str, int], dst: IPAddress, src: IPAddress | None, oif: str | None
) -> bytes | None:
    """The lookup request as it was put together before (one format built per lookup)."""
    bits = dst.max_prefixlen
    size = bits // 8
    layout = f"=BBBBBBBBIHH{size}s"
    values: list[Any] = [FAMILIES[dst.version], bits, 0 if src is None else bits]
    values += (0, 0, 0, 0, 0, 0, 4 + size, RTA_DST, dst.packed)
    if src is not None:
        layout += f"HH{size}s"
        values += (4 + size, RTA_SRC, src.packed)
    if oif is not None:
        if oif not in index:
            return None
        layout += "HHI"
        values += (8, RTA_OIF, index[oif])
    return struct.pack(layout, *values)


ADDRESSES = st.one_of(
    st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
    st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address),
)


@settings(max_examples=200, deadline=None)
@given(ADDRESSES, st.booleans(), st.sampled_from([None, "p1", "gone"]), st.data())
def test_lookup_body_is_the_plain_encoding(
    dst: IPAddress, with_src: bool, oif: str | None, data: st.DataObject
) -> None:
    """Each shape of lookup (family, with or without a source, with or without an output
    interface, a missing interface) is encoded byte for byte as before."""
    src = None
    if with_src:
        bits = dst.max_prefixlen
        src = ipaddress.ip_address(data.draw(st.integers(0, 2**bits - 1)))
        src = ipaddress.IPv4Address(int(src)) if bits == 32 else ipaddress.IPv6Address(int(src))
    backend = NetlinkBackend()
    backend._index = {"p1": 7}
    assert backend._lookup_body(dst, src, oif) == _plain_lookup_body(backend._index, dst, src, oif)


def _link_body(index: int, name: str, conf: list[int], before: int, extra: bytes = b"") -> bytes:
    """A link message: ``before`` other attributes (and ``extra``), its name, and an
    IFLA_AF_SPEC holding an AF_INET6 part and an AF_INET part with the devconf ``conf``."""
    inet = attr(IFLA_INET_CONF, struct.pack(f"={len(conf)}i", *conf))
    spec = attr(AF_INET6, attr(1, b"\0" * 8)) + attr(AF_INET, inet)
    others = b"".join(attr(100 + i, b"\1" * (i % 5 + 1)) for i in range(before))
    return (
        IFINFOMSG.pack(0, 0, index, 1, 0)
        + others
        + extra
        + attr_str(IFLA_IFNAME, name)
        + attr(IFLA_AF_SPEC, spec)
    )


def _plain_devconf_offset(body: bytes) -> int | None:
    """The devconf's offset found by copying each nested part, as before."""
    from multihome.backend.rtnl import NLA_TYPE_MASK, NLATTR

    offset = IFINFOMSG.size
    for wanted in (IFLA_AF_SPEC, AF_INET, IFLA_INET_CONF):
        end = len(body)
        while offset + 4 <= end:
            length, kind = NLATTR.unpack_from(body, offset)
            if length < 4:
                return None
            if kind & NLA_TYPE_MASK == wanted:
                break
            offset += (length + 3) & ~3
        else:
            return None
        if wanted == IFLA_INET_CONF:
            return None if length - 4 < 4 * max(DEVCONF.values()) else offset + 4
        body = body[: offset + length]
        offset += 4
    return None


KNOBS = sorted(DEVCONF)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(0, 40), min_size=1, max_size=4),
    st.integers(10, 30),
    st.dictionaries(
        st.tuples(st.integers(0, 3), st.sampled_from(KNOBS)), st.integers(0, 2), max_size=8
    ),
)
def test_devconf_patch_reads_back_as_written(
    others: list[int], length: int, writes: dict[tuple[int, str], int]
) -> None:
    """The devconf is found where the plain walk finds it (also when the array is too short),
    and the patched messages decode to the values written, the other links' unchanged."""
    bodies = [
        _link_body(i + 1, f"p{i}", list(range(length)), before) for i, before in enumerate(others)
    ]
    for body in bodies:
        assert _devconf_offset(body) == _plain_devconf_offset(body)
    raw = [link for body in bodies if (link := _raw_link(body)) is not None]
    written = {
        f"net.ipv4.conf.p{i}.{knob}": str(value)
        for (i, knob), value in writes.items()
        if i < len(bodies)
    }
    patched = _with_devconf(raw, bodies, written)
    if length < max(DEVCONF.values()):
        assert all(link[7] is None for link in raw)
        assert patched == bodies  # no devconf read: the knobs come from /proc/sys
        return
    assert patched is not None
    for i, body in enumerate(patched):
        conf = _raw_link(body)
        assert conf is not None and conf[7] is not None
        expected = dict(zip(KNOBS, [DEVCONF[k] - 1 for k in KNOBS], strict=True))
        for knob, position in expected.items():
            want = writes.get((i, knob), position)
            assert conf[7][_knob_order().index(knob)] == want


def _knob_order() -> list[str]:
    from multihome.kerneldigest import SYSCTL_KNOBS

    return list(SYSCTL_KNOBS)


def test_devconf_patch_refuses_what_it_cannot_write() -> None:
    """A value that is not a number, or a knob outside the devconf: None (everything is
    dumped again); IPv6 knobs and knobs of ``all`` are left alone."""
    bodies = [_link_body(1, "p0", list(range(20)), 2)]
    raw = [link for body in bodies if (link := _raw_link(body)) is not None]
    assert _with_devconf(raw, bodies, {"net.ipv4.conf.p0.rp_filter": "x"}) is None
    assert _with_devconf(raw, bodies, {"net.ipv4.conf.p0.forwarding": "1"}) is None
    left = {"net.ipv6.conf.p0.accept_ra": "0", "net.ipv4.conf.all.rp_filter": "2"}
    assert _with_devconf(raw, bodies, left) == bodies
    assert _with_devconf(raw, bodies, {"net.ipv4.conf.p0.x.rp_filter": "1"}) == bodies


def _plain_check(
    iface: Any, src: IPAddress | None, name: str, dst: IPAddress, found: Any, want: bool
) -> Check:
    """A check as it was made before (each text formatted per check)."""
    gateway = iface.gateway_for(dst.version) if want else None
    expected = f"dev {iface.name}" + (f" via {ip_text(gateway)}" if gateway is not None else "")
    ok = found is not None and found.ifname == iface.name and (not want or found.gateway == gateway)
    if found is None:
        got = "unreachable"
    else:
        got = f"dev {found.ifname}"
        if found.gateway is not None:
            got += f" via {ip_text(found.gateway)}"
    return Check(
        iface.name,
        "(device)" if src is None else ip_text(src),
        name,
        ip_text(dst),
        ok,
        expected,
        got,
    )


def test_checks_say_what_the_plain_checks_said() -> None:
    """Every kind of answer (the expected one, another port, another gateway, no gateway,
    unreachable), for checks with and without an expected gateway, of both families, gives
    the check the plain code gave."""
    from multihome.backend import Lookup
    from multihome.policy import ManagedInterface
    from multihome.verify import _check, _Question

    v4 = ipaddress.IPv4Address
    v6 = ipaddress.IPv6Address
    iface = ManagedInterface("p1", "secondary", (), None, v4("10.0.1.1"), 101, v6("fe80::1"))
    answers = [
        None,
        Lookup("p1", v4("10.0.1.1"), None, 10001),
        Lookup("p1", v4("10.0.1.2"), None, 10001),
        Lookup("p0", v4("10.0.1.1"), None, 254),
        Lookup("p1", None, None, 10001),
        Lookup("p1", v6("fe80::1"), None, 10001),
        Lookup("p1", v6("fe80::2"), None, 10001),
    ]
    asked = [
        (v4("10.0.1.10"), "egress", v4("198.51.100.10"), True),
        (v4("10.0.1.10"), "gateway", v4("10.0.1.1"), False),
        (None, "bound-to-device", v4("198.51.100.10"), True),
        (v6("2001:db8::10"), "egress", v6("2001:db8:ffff::10"), True),
        (v6("2001:db8::10"), "gateway", v6("fe80::1"), False),
    ]
    for src, name, dst, want in asked:
        gateway = iface.gateway_for(dst.version) if want else None
        question = _Question(
            iface.name,
            "(device)" if src is None else ip_text(src),
            name,
            (dst, src, None),
            ip_text(dst),
            gateway,
            None if gateway is None else ip_text(gateway),
        )
        for found in answers:
            assert _check(question, found) == _plain_check(iface, src, name, dst, found, want)


def test_devconf_headers_seen_elsewhere_in_a_message_fall_back_to_the_walk() -> None:
    """A link message whose other attribute happens to hold the devconf's two headers (the
    search would find them twice) is patched where the walk finds the devconf."""
    plain = _link_body(1, "p0", list(range(20)), 2)
    offset = _devconf_offset(plain)
    assert offset is not None
    headers = plain[offset - 8 : offset]
    extra = attr(100, headers + b"\0" * 80)
    tricky = _link_body(2, "p1", list(range(20)), 2, extra)
    bodies = [plain, tricky]
    raw = [link for body in bodies if (link := _raw_link(body)) is not None]
    assert [link[1] for link in raw] == ["p0", "p1"]
    written = {"net.ipv4.conf.p0.rp_filter": "2", "net.ipv4.conf.p1.rp_filter": "2"}
    patched = _with_devconf(raw, bodies, written)
    assert patched is not None
    position = _knob_order().index("rp_filter")
    for body in patched:
        decoded = _raw_link(body)
        assert decoded is not None and decoded[7] is not None
        assert decoded[7][position] == 2
    assert extra in patched[1]  # the look-alike is left as it was


def _plain_rule_message(rule: Rule) -> bytes:
    """A rule's message as it was put together before: an ``attr`` per attribute."""
    from multihome.backend.netlink import PORT_RANGE, UID_RANGE
    from multihome.backend.rtnl import (
        FIB_RULE_INVERT,
        FIBRULEHDR,
        FRA_DPORT_RANGE,
        FRA_DST,
        FRA_FWMARK,
        FRA_FWMASK,
        FRA_GOTO,
        FRA_IIFNAME,
        FRA_IP_PROTO,
        FRA_L3MDEV,
        FRA_OIFNAME,
        FRA_PRIORITY,
        FRA_PROTOCOL,
        FRA_SPORT_RANGE,
        FRA_SRC,
        FRA_SUPPRESS_IFGROUP,
        FRA_SUPPRESS_PREFIXLEN,
        FRA_TABLE,
        FRA_UID_RANGE,
        attr_u32,
    )

    table = rule.table
    body = [
        FIBRULEHDR.pack(
            FAMILIES[rule.family],
            0 if rule.dst is None else rule.dst.prefixlen,
            0 if rule.src is None else rule.src.prefixlen,
            rule.tos,
            table if table < 256 else 0,
            0,
            0,
            rule.action,
            FIB_RULE_INVERT if rule.invert else 0,
        ),
        attr_u32(FRA_PRIORITY, rule.priority),
        attr_u32(FRA_TABLE, table),
        attr(FRA_PROTOCOL, bytes((rule.proto,))),
    ]
    if rule.src is not None:
        body.append(attr(FRA_SRC, rule.src.network_address.packed))
    if rule.dst is not None:
        body.append(attr(FRA_DST, rule.dst.network_address.packed))
    if rule.iifname:
        body.append(attr_str(FRA_IIFNAME, rule.iifname))
    if rule.oifname:
        body.append(attr_str(FRA_OIFNAME, rule.oifname))
    for kind, number in (
        (FRA_SUPPRESS_PREFIXLEN, rule.suppress_prefixlength),
        (FRA_FWMARK, rule.fwmark),
        (FRA_FWMASK, rule.fwmask),
    ):
        if number is not None:
            body.append(attr_u32(kind, number))
    if rule.ipproto is not None:
        body.append(attr(FRA_IP_PROTO, bytes((rule.ipproto,))))
    for kind, ports in ((FRA_SPORT_RANGE, rule.sport), (FRA_DPORT_RANGE, rule.dport)):
        if ports is not None:
            body.append(attr(kind, PORT_RANGE.pack(*ports)))
    if rule.uid is not None:
        body.append(attr(FRA_UID_RANGE, UID_RANGE.pack(*rule.uid)))
    if rule.goto is not None:
        body.append(attr_u32(FRA_GOTO, rule.goto))
    if rule.l3mdev:
        body.append(attr(FRA_L3MDEV, b"\x01"))
    if rule.suppress_ifgroup is not None:
        body.append(attr_u32(FRA_SUPPRESS_IFGROUP, rule.suppress_ifgroup))
    return b"".join(body)


OPTIONAL = st.one_of(st.none(), st.integers(0, 2**32 - 1))
RANGES = st.one_of(st.none(), st.tuples(st.integers(0, 65535), st.integers(0, 65535)))
NAMES = st.one_of(st.none(), st.text(alphabet="abcdefgh0123456789.-", min_size=1, max_size=15))


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    """Rules of either family with any mix of selectors."""
    family = draw(st.sampled_from([4, 6]))
    bits = 32 if family == 4 else 128
    network = ipaddress.IPv4Network if family == 4 else ipaddress.IPv6Network

    def prefix() -> Any:
        if draw(st.booleans()):
            return None
        length = draw(st.integers(0, bits))
        return network((draw(st.integers(0, 2**bits - 1)), length), strict=False)

    return Rule(
        family=family,
        priority=draw(st.integers(0, 2**32 - 1)),
        table=draw(st.integers(1, 2**32 - 1)),
        src=prefix(),
        dst=prefix(),
        iifname=draw(NAMES),
        oifname=draw(NAMES),
        suppress_prefixlength=draw(st.one_of(st.none(), st.integers(0, 128))),
        fwmark=draw(OPTIONAL),
        fwmask=draw(OPTIONAL),
        action=draw(st.sampled_from([1, 2, 3])),
        proto=draw(st.integers(0, 255)),
        ipproto=draw(st.one_of(st.none(), st.integers(0, 255))),
        sport=draw(RANGES),
        dport=draw(RANGES),
        uid=draw(st.one_of(st.none(), st.tuples(OPTIONAL.filter(bool), OPTIONAL.filter(bool)))),
        goto=draw(OPTIONAL),
        l3mdev=draw(st.booleans()),
        suppress_ifgroup=draw(OPTIONAL),
        invert=draw(st.booleans()),
        tos=draw(st.integers(0, 255)),
    )


@settings(max_examples=300, deadline=None)
@given(rules())
def test_rule_message_is_the_plain_encoding(rule: Rule) -> None:
    """A rule's message, packed by one format, is byte for byte the one an ``attr`` per
    attribute made, whatever selectors it has."""
    assert NetlinkBackend.rule_message(rule) == _plain_rule_message(rule)


def _plain_route_message(route: Route, index: dict[str, int]) -> bytes:
    """A route's message as it was put together before its ``Struct`` per shape: the rtmsg
    header, then an ``attr`` per attribute."""
    from multihome.backend.netlink import RT_TABLE_UNSPEC
    from multihome.backend.rtnl import (
        RTA_GATEWAY,
        RTA_OIF,
        RTA_PREFSRC,
        RTA_PRIORITY,
        RTA_TABLE,
        RTA_VIA,
        RTMSG,
        attr_u32,
        multipath,
    )

    dst, table = route.dst, route.table
    body = [
        RTMSG.pack(
            FAMILIES[dst.version],
            dst.prefixlen,
            0,
            0,
            table if table < 256 else RT_TABLE_UNSPEC,
            route.proto,
            route.scope,
            route.type,
            0,
        ),
        attr_u32(RTA_TABLE, table),
    ]
    if dst.prefixlen:
        body.append(attr(RTA_DST, dst.network_address.packed))
    if route.ifname:
        body.append(attr_u32(RTA_OIF, index[route.ifname]))
    if route.gateway is not None:
        body.append(attr(RTA_GATEWAY, route.gateway.packed))
    if route.nexthops:
        hops = []
        for hop in route.nexthops:
            inner = b""
            if hop.gateway is not None:
                if hop.gateway.version == dst.version:
                    inner = attr(RTA_GATEWAY, hop.gateway.packed)
                else:
                    family = struct.pack("=H", FAMILIES[hop.gateway.version])
                    inner = attr(RTA_VIA, family + hop.gateway.packed)
            hops.append((index[hop.ifname] if hop.ifname else 0, hop.weight, inner))
        body.append(multipath(hops))
    if route.metric:
        body.append(attr_u32(RTA_PRIORITY, route.metric))
    if route.prefsrc is not None:
        body.append(attr(RTA_PREFSRC, route.prefsrc.packed))
    return b"".join(body)


PORTS = {"p0": 2, "p1": 7, "eth10": 300}


@st.composite
def routes(draw: st.DrawFn) -> Route:
    """Routes of either family, with or without each attribute, multipath ones with next hops
    of either family."""
    family = draw(st.sampled_from([4, 6]))
    bits = 32 if family == 4 else 128
    network = ipaddress.IPv4Network if family == 4 else ipaddress.IPv6Network
    length = draw(st.integers(0, bits))
    dst = network((draw(st.integers(0, 2**bits - 1)), length), strict=False)
    same = ADDRESSES.filter(lambda a: a.version == family)
    port = st.sampled_from(sorted(PORTS))
    nexthops: tuple[NextHop, ...] = ()
    ifname = gateway = None
    if draw(st.booleans()):
        hop = st.builds(NextHop, st.one_of(st.none(), ADDRESSES), port, st.integers(1, 256))
        nexthops = tuple(draw(st.lists(hop, min_size=2, max_size=3)))
    else:
        ifname = draw(st.one_of(st.none(), port))
        gateway = draw(st.one_of(st.none(), same))
    return Route(
        table=draw(st.integers(1, 2**32 - 1)),
        dst=dst,
        ifname=ifname,
        gateway=gateway,
        metric=draw(st.integers(0, 2**32 - 1)),
        proto=draw(st.integers(0, 255)),
        scope=draw(st.sampled_from([0, 200, 253, 254])),
        prefsrc=draw(st.one_of(st.none(), same)),
        type=draw(st.sampled_from([1, 2, 6, 7])),
        nexthops=nexthops,
    )


@settings(max_examples=300, deadline=None)
@given(routes())
def test_route_message_is_the_plain_encoding(route: Route) -> None:
    """A route's message, packed by the one ``Struct`` of its shape, is byte for byte the
    one an ``attr`` per attribute made."""
    backend = NetlinkBackend()
    backend._index = dict(PORTS)
    assert backend.route_message(route) == _plain_route_message(route, PORTS)
