"""The state directory's codecs (checkpoint, journal, record) round-trip every field of
``Rule`` and ``Route``: a property test over the model's own fields, so that a field added to
the model and not to the codec fails here (the checkpoint once lost a rule's ipproto, ports,
uid range, goto, ...; restoring it put back another rule)."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from multihome.model import NextHop, Route, Rule
from multihome.plan import Change
from multihome.transaction.checkpoint import Checkpoint
from multihome.transaction.statedir import (
    change_from_json,
    change_text,
    change_to_json,
    json_text,
    route_from_json,
    route_to_json,
    rule_from_json,
    rule_to_json,
)

U8 = st.integers(0, 255)
U32 = st.integers(0, 2**32 - 1)
V4 = st.builds(
    lambda a, n: ipaddress.ip_network(f"{ipaddress.IPv4Address(a)}/{n}", strict=False),
    U32,
    st.integers(0, 32),
)
V6 = st.builds(
    lambda a, n: ipaddress.ip_network(f"{ipaddress.IPv6Address(a)}/{n}", strict=False),
    st.integers(0, 2**128 - 1),
    st.integers(0, 128),
)
IFNAME = st.sampled_from(["eth0", "eth1", "ens3.100", "docker0", "wg0"])
SPAN = st.tuples(st.integers(0, 65535), st.integers(0, 65535)).map(lambda t: (min(t), max(t)))
ADDRESS = st.one_of(
    st.builds(ipaddress.IPv4Address, U32), st.builds(ipaddress.IPv6Address, st.integers(0))
)

#: A strategy per field of the model, by its name. A field missing here (and from NOT_STORED)
#: fails the test: give it a strategy and make the codec carry it.
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    # Rule
    "family": st.sampled_from([4, 6]),
    "priority": U32,
    "table": U32,
    "src": st.none() | V4,
    "dst": st.none() | V4,
    "iifname": st.none() | IFNAME,
    "oifname": st.none() | IFNAME,
    "suppress_prefixlength": st.none() | st.integers(0, 128),
    "fwmark": st.none() | U32,
    "fwmask": st.none() | U32,
    "action": st.integers(0, 8),
    "proto": U8,
    "ipproto": st.none() | U8,
    "sport": st.none() | SPAN,
    "dport": st.none() | SPAN,
    "uid": st.none() | st.tuples(U32, U32).map(lambda t: (min(t), max(t))),
    "goto": st.none() | U32,
    "l3mdev": st.booleans(),
    "suppress_ifgroup": st.none() | U32,
    "invert": st.booleans(),
    "tos": U8,
    "position": st.integers(0, 10_000),
    # Route (family comes from dst)
    "ifname": st.none() | IFNAME,
    "gateway": st.none() | ADDRESS,
    "metric": U32,
    "scope": U8,
    "prefsrc": st.none() | ADDRESS,
    "type": st.integers(1, 11),
    "nexthops": st.just(())
    | st.lists(
        st.builds(NextHop, st.none() | ADDRESS, st.none() | IFNAME, st.integers(1, 256)),
        min_size=2,
        max_size=4,
    ).map(tuple),
}
ROUTE_DST = st.one_of(V4, V6)
#: Fields the codecs leave out on purpose, and why (they come back as their default).
NOT_STORED = {
    "expires": "a remaining lifetime (an IPv6 RA route's) means nothing when read back later; "
    "multihome's copies carry none",
}


def _every_field(cls: type[Any], **override: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    names = [f.name for f in dataclasses.fields(cls)]
    missing = [n for n in names if n not in FIELDS and n not in override and n not in NOT_STORED]
    assert not missing, f"{cls.__name__} fields without a strategy here: {missing}"
    return st.builds(
        cls, **{n: override.get(n, FIELDS.get(n)) for n in names if n not in NOT_STORED}
    )


def _rule_strategy() -> st.SearchStrategy[Rule]:
    return _every_field(Rule)


def _route_strategy() -> st.SearchStrategy[Route]:
    return _every_field(Route, dst=ROUTE_DST)


def _fields(obj: Any) -> dict[str, Any]:
    """Every field, the ones outside the identity (``compare=False``) too."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


@settings(max_examples=150, deadline=None)
@given(_rule_strategy())
def test_every_rule_field_round_trips(rule: Rule) -> None:
    """rule_from_json(rule_to_json(r)) is r, field by field, and so through a journal's
    change."""
    back = rule_from_json(rule_to_json(rule))
    assert _fields(back) == _fields(rule)
    change = change_from_json(change_to_json(Change("add", rule)))
    assert isinstance(change.obj, Rule) and _fields(change.obj) == _fields(rule)


@settings(max_examples=150, deadline=None)
@given(_route_strategy())
def test_every_route_field_round_trips(route: Route) -> None:
    """route_from_json(route_to_json(r)) is r, field by field, and so through a change."""
    assert _fields(route_from_json(route_to_json(route))) == _fields(route)
    change = change_from_json(change_to_json(Change("remove", route)))
    assert isinstance(change.obj, Route) and _fields(change.obj) == _fields(route)


@settings(max_examples=100, deadline=None)
@given(_rule_strategy())
def test_the_models_rule_json_carries_every_set_identity_field(rule: Rule) -> None:
    """``Rule.to_json`` (status, plan, explain) leaves out a selector only when it is unset:
    every field that differs from its default is in the document (fwmask once was not)."""
    data = rule.to_json()
    names = {"iifname": "iif", "oifname": "oif", "action": "rule_action"}
    for f in dataclasses.fields(Rule):
        if not f.compare:
            continue
        value = getattr(rule, f.name)
        if value != f.default:
            assert names.get(f.name, f.name) in data, (f.name, value, data)


@settings(max_examples=60, deadline=None)
@given(st.lists(_rule_strategy(), max_size=4), st.lists(_route_strategy(), max_size=4))
def test_the_checkpoint_and_change_texts_are_their_json(
    rules: list[Rule], routes: list[Route]
) -> None:
    """The texts the checkpoint and the journal are written from (each route and rule
    encoded once and kept) are exactly :func:`json_text` of their ``to_json``, also when
    asked twice (the second time from the kept texts)."""
    saved = Checkpoint(
        "id1", 1.5, "boot", (10000, 10999), (10000, 10009), tuple(rules), tuple(routes),
        tuple(routes[:1]), sysctls={"net.ipv4.conf.eth1.rp_filter": "2"},
        files={"/etc/iproute2/rt_tables.d/multihome.conf": None},
    )  # fmt: skip
    for _ in range(2):
        assert saved.text() == json_text(saved.to_json())
        for obj in (*rules, *routes):
            change = Change("add", obj)
            assert change_text(change) == json_text(change_to_json(change))


#: The rule fields left unset in the rules multihome writes (None).
PLAIN_NONE = ("fwmask", "ipproto", "sport", "dport", "uid", "goto", "suppress_ifgroup")


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        _every_field(
            Rule,
            **{name: st.none() for name in PLAIN_NONE},
            l3mdev=st.just(False),
            invert=st.just(False),
            tos=st.just(0),
            position=st.just(0),
        ),
        max_size=4,
    ),
    st.lists(_every_field(Route, dst=ROUTE_DST, nexthops=st.just(())), max_size=4),
)
def test_the_direct_texts_of_plain_routes_and_rules_are_their_json(
    rules: list[Rule], routes: list[Route]
) -> None:
    """The routes and rules an apply journals by the thousand (one path, only the selectors
    multihome writes) are encoded without the JSON encoder: the text is still exactly
    :func:`json_text` of their JSON, and reads back as the same route or rule."""
    for rule in rules:
        text = change_text(Change("add", rule))
        assert text == json_text(change_to_json(Change("add", rule)))
        assert _fields(change_from_json(json.loads(text)).obj) == _fields(rule)
    for route in routes:
        text = change_text(Change("remove", route))
        assert text == json_text(change_to_json(Change("remove", route)))
        assert _fields(change_from_json(json.loads(text)).obj) == _fields(route)


def test_an_older_checkpoint_rule_still_reads() -> None:
    """A rule written before the newer fields existed (no ipproto, ports, ...) reads back
    with their defaults."""
    old = {
        "family": 4,
        "priority": 10002,
        "table": 10244,
        "src": "192.168.0.112/32",
        "dst": None,
        "iif": None,
        "oif": None,
        "suppress_prefixlength": None,
        "fwmark": None,
        "fwmask": None,
        "action": 1,
        "proto": 222,
    }
    rule = rule_from_json(old)
    assert rule == Rule(4, 10002, 10244, src=ipaddress.ip_network("192.168.0.112/32"), proto=222)
