"""The links' part of the kernel digest (multihome.kerneldigest): a link's IPv4 devconf is
hashed from its message, and a link without one has its knobs read from ``/proc/sys`` by
name, so that a sysctl changed on it still changes the digest."""

from __future__ import annotations

import struct
from pathlib import Path

from multihome.kerneldigest import IFLA_AF_SPEC, IFLA_IFNAME, link_part, links_digest

AF_INET = 2
IFLA_INET_CONF = 1


def attribute(kind: int, payload: bytes) -> bytes:
    """A netlink attribute, padded to 4 bytes."""
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + bytes(-len(data) % 4)


def link_message(name: bytes, devconf: bytes | None) -> bytes:
    """A link message's body (``ifinfomsg`` and attributes): ``name`` (as the kernel sends
    it, NUL-terminated) and, unless None, an ``IFLA_AF_SPEC`` with that IPv4 devconf."""
    body = struct.pack("=BxHiII", 0, 1, 7, 0x1043, 0) + attribute(IFLA_IFNAME, name)
    if devconf is not None:
        inet = attribute(AF_INET, attribute(IFLA_INET_CONF, devconf))
        body += attribute(IFLA_AF_SPEC, inet)
    return body


def test_a_link_with_an_ipv4_devconf_is_hashed_from_its_message() -> None:
    part, name = link_part(link_message(b"eth0\0", bytes(range(8))))
    assert name is None
    assert bytes(range(8)) in part
    other, _ = link_part(link_message(b"eth0\0", bytes(range(1, 9))))
    assert other != part


def test_a_link_without_one_is_named_for_its_knobs() -> None:
    assert link_part(link_message(b"eth0\0", None))[1] == "eth0"
    assert link_part(link_message(b"vlan.10\0", None))[1] == "vlan.10"
    assert link_part(link_message(b"\0", None))[1] == ""


def test_a_knob_of_a_link_without_an_ipv4_devconf_changes_the_digest(tmp_path: Path) -> None:
    knob = tmp_path / "net/ipv4/conf/eth0/rp_filter"
    knob.parent.mkdir(parents=True)
    knob.write_text("1\n")
    links = [link_message(b"eth0\0", None)]
    before = links_digest(links, str(tmp_path))
    assert links_digest(links, str(tmp_path)) == before
    knob.write_text("2\n")
    assert links_digest(links, str(tmp_path)) != before
    # With a devconf in the message the file is not read (the message carries the knobs).
    with_devconf = [link_message(b"eth0\0", bytes(8))]
    knob.write_text("1\n")
    first = links_digest(with_devconf, str(tmp_path))
    knob.write_text("2\n")
    assert links_digest(with_devconf, str(tmp_path)) == first
