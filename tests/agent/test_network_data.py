"""network_data.json parsing: Nova's format into typed objects; malformed, truncated,
oversized and hostile documents (fuzzed with hypothesis) give a clean InputError only."""

from __future__ import annotations

import ipaddress
import json

import pytest
from agent_util import network_data
from hypothesis import given, settings
from hypothesis import strategies as st

from multihome.errors import InputError
from multihome.reader import MAX_BYTES
from multihome.source import parse_meta_data, parse_network_data

GOOD = json.dumps(network_data(static=("eth2",))).encode()


def test_parses_nova_document() -> None:
    """DHCP and static networks, MACs lower-cased, the static port's address and gateway."""
    data = parse_network_data(GOOD.replace(b"fa:16:3e:00:00:0c", b"FA:16:3E:00:00:0C"), "t")
    assert [link.mac for link in data.links] == [
        "fa:16:3e:00:00:0a",
        "fa:16:3e:00:00:0b",
        "fa:16:3e:00:00:0c",
    ]
    link = data.link_by_mac("FA:16:3E:00:00:0C")
    assert link is not None and link.vif_id == "port-eth2"
    (static,) = data.networks_of(link.id)
    assert static.static and not static.dhcp
    assert static.address == ipaddress.ip_interface("192.168.0.120/24")
    assert static.gateway == ipaddress.ip_address("192.168.0.1")
    assert all(n.dhcp for n in data.networks if n.link != link.id)


def test_prefix_forms_and_ipv6() -> None:
    """A netmask, a prefix length and an address with /prefix all give the same prefix."""
    doc = {
        "links": [{"id": "a", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:01"}],
        "networks": [
            {
                "id": "n0",
                "type": "ipv4",
                "link": "a",
                "ip_address": "10.0.0.5",
                "netmask": "255.255.255.128",
            },
            {"id": "n1", "type": "ipv4", "link": "a", "ip_address": "10.0.1.5/25"},
            {
                "id": "n2",
                "type": "ipv6",
                "link": "a",
                "ip_address": "2001:db8::5",
                "netmask": "ffff:ffff:ffff:ffff::",
                "routes": [{"network": "::", "netmask": "::", "gateway": "2001:db8::1"}],
            },
        ],
    }
    data = parse_network_data(json.dumps(doc).encode(), "t")
    assert [str(n.address) for n in data.networks] == [
        "10.0.0.5/25",
        "10.0.1.5/25",
        "2001:db8::5/64",
    ]
    assert data.networks[2].family == 6 and str(data.networks[2].gateway) == "2001:db8::1"


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (b"", "malformed JSON"),
        (GOOD[: len(GOOD) // 2], "malformed JSON"),
        (b"[]", "(top level)"),
        (b'{"links": {}}', "links"),
        (
            b'{"links": [{"id": "a", "type": "phy", "ethernet_mac_address": "zz"}]}',
            "links[0].ethernet_mac_address",
        ),
        (
            b'{"links": [], "networks": [{"id": "n", "type": "ipv4_dhcp", "link": "x"}]}',
            "networks[0].link",
        ),
        (GOOD.replace(b'"255.255.255.0"', b'"255.0.255.0"'), "not a contiguous netmask"),
        (GOOD.replace(b'"192.168.0.120"', b'"192.168.0.999"'), "ip_address"),
        (GOOD.replace(b'"gateway": "192.168.0.1"', b'"gateway": "2001:db8::1"'), "gateway"),
        (GOOD.replace(b'"mtu": 1500', b'"mtu": 1e400'), "mtu"),
        (b'{"links": NaN}', "NaN"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"a": 1' + b" " * MAX_BYTES + b"}", "bytes"),
        (b"\xff\xfe{}", "UTF-8"),
        (b'{"links": [' + b'{"id": "a", "type": "phy"},' * 600 + b"{}]}", "more than"),
    ],
)
def test_bad_documents_are_input_errors(raw: bytes, where: str) -> None:
    """Each broken document is an InputError naming the source and the place."""
    with pytest.raises(InputError) as caught:
        parse_network_data(raw, "/md/network_data.json")
    message = str(caught.value)
    assert message.startswith("/md/network_data.json") and where in message, message
    assert "--source kernel" in message


@pytest.mark.parametrize(
    "kind",
    [
        "ipv4",
        "ipv6",
        "ipv4_dhcp",
        "ipv6_dhcp",
        "ipv6_slaac",
        "ipv6_dhcpv6-stateful",
        "ipv6_dhcpv6-stateless",
    ],
)
def test_every_network_type_nova_writes_is_accepted(kind: str) -> None:
    """The seven types Nova writes (``nova/virt/netutils.py``) parse; a static one needs its
    address, a DHCP/SLAAC one carries none."""
    network: dict[str, object] = {"id": "n0", "type": kind, "link": "a"}
    if kind in ("ipv4", "ipv6"):
        network["ip_address"] = "10.0.0.5/24" if kind == "ipv4" else "2001:db8::5/64"
    doc = {"links": [{"id": "a", "type": "phy"}], "networks": [network]}
    (parsed,) = parse_network_data(json.dumps(doc).encode(), "t").networks
    assert parsed.type == kind and parsed.static == (kind in ("ipv4", "ipv6"))


def test_unknown_network_type_names_the_network_and_the_types() -> None:
    """``ipv5`` is refused (it used to pass as a network without an address): the message
    names the network, its JSON path, every type Nova writes and the way on."""
    doc = {
        "links": [{"id": "a", "type": "phy"}],
        "networks": [
            {"id": "n0", "type": "ipv4_dhcp", "link": "a"},
            {"id": "private-v4", "type": "ipv5", "link": "a"},
        ],
    }
    with pytest.raises(InputError) as caught:
        parse_network_data(json.dumps(doc).encode(), "/md/network_data.json")
    assert str(caught.value) == (
        "/md/network_data.json: networks[1].type: network 'private-v4' has type 'ipv5', which "
        "is none of ipv4, ipv4_dhcp, ipv6, ipv6_dhcp, ipv6_dhcpv6-stateful, "
        "ipv6_dhcpv6-stateless, ipv6_slaac; the metadata is malformed; check the port in "
        "Neutron, or use --source kernel"
    )
    assert caught.value.exit_code == 2


def test_duplicate_json_keys_are_refused() -> None:
    """A key given twice in one object is refused, not silently "the last one wins"."""
    with pytest.raises(InputError, match=r"t: duplicate key 'links' in one object; .*--source"):
        parse_network_data(b'{"links": [], "links": []}', "t")


def test_meta_data() -> None:
    """meta_data.json gives uuid and name; anything else in it is ignored."""
    meta = parse_meta_data(b'{"uuid": "u-1", "name": "vm", "keys": [1, 2]}', "t")
    assert (meta.uuid, meta.name, meta.hostname) == ("u-1", "vm", None)
    with pytest.raises(InputError):
        parse_meta_data(b'{"uuid": 5}', "t")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(
                [
                    "links",
                    "networks",
                    "services",
                    "id",
                    "type",
                    "link",
                    "ip_address",
                    "netmask",
                    "routes",
                    "network",
                    "gateway",
                    "ethernet_mac_address",
                    "mtu",
                    "address",
                    "vlan_id",
                ]
            )
            | st.text(max_size=8),
            children,
            max_size=6,
        )
    ),
    max_leaves=40,
)


def _parse_or_input_error(raw: bytes) -> None:
    try:
        parse_network_data(raw, "fuzz")
    except InputError as exc:
        assert str(exc).startswith("fuzz")


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_fuzz_structured_documents(doc: object) -> None:
    """Any JSON value, shaped like network_data.json or not: parsed or InputError."""
    _parse_or_input_error(json.dumps(doc).encode())


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=len(GOOD)), st.binary(max_size=16))
def test_fuzz_truncated_and_spliced(cut: int, junk: bytes) -> None:
    """A valid document truncated anywhere, with junk spliced in: parsed or InputError."""
    _parse_or_input_error(GOOD[:cut] + junk + GOOD[cut:][: len(GOOD) // 3])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_fuzz_bytes(raw: bytes) -> None:
    """Arbitrary bytes: InputError (or, rarely, a valid document)."""
    _parse_or_input_error(raw)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["links", "networks"]),
    st.integers(0, 2),
    st.sampled_from(
        [
            "id",
            "type",
            "link",
            "ethernet_mac_address",
            "ip_address",
            "netmask",
            "routes",
            "mtu",
            "vif_id",
        ]
    ),
    JSON,
)
def test_fuzz_one_field(section: str, index: int, key: str, value: object) -> None:
    """A valid document with one field replaced by anything: parsed or InputError."""
    doc = network_data(static=("eth2",))
    entries = doc[section]
    entries[index % len(entries)][key] = value
    _parse_or_input_error(json.dumps(doc).encode())
