"""The configuration file: defaults, valid files, and errors that name file, key and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from multihome.config import Config, load_config, parse_config
from multihome.errors import ExitCode, InputError


def test_missing_default_file_means_defaults(tmp_path: Path) -> None:
    """No /etc/multihome/config.yaml: the defaults."""
    config = load_config(tmp_path / "config.yaml")
    assert config == Config()
    assert config.table_range == (10000, 10999)
    assert config.priority_range == (10000, 10099)


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    """--config pointing nowhere is bad input, exit 2."""
    with pytest.raises(InputError, match="no such file") as caught:
        load_config(tmp_path / "nope.yaml", explicit=True)
    assert caught.value.exit_code == ExitCode.BAD_INPUT


def test_full_file_is_parsed() -> None:
    """Every key, parsed into typed values."""
    config = parse_config(
        "primary: eth0\n"
        "interfaces: {include: [eth0, eth1], exclude: [eth2]}\n"
        "tables: {range: [500, 599], names: {eth1: port2}}\n"
        "priorities: {range: [20000, 20009]}\n"
        "rules: [from, oif]\n"
        "sysctls: {rp_filter: 0, arp_filter: null}\n"
        "probe: 203.0.113.9\n",
        "c.yaml",
    )
    assert config.primary == "eth0"
    assert config.include == ("eth0", "eth1") and config.exclude == ("eth2",)
    assert config.table_range == (500, 599)
    assert config.table_name("eth1") == "port2" and config.table_name("eth0") == "mh-eth0"
    assert config.priority_range == (20000, 20009)
    assert config.rule_kinds == ("from", "oif")
    assert config.sysctls["rp_filter"] == 0 and config.sysctls["arp_filter"] is None
    assert str(config.probe) == "203.0.113.9"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("primary: [eth0\n", r"c.yaml:2:1: malformed YAML"),
        ("- a\n- b\n", r"c.yaml:1:1: \(top level\): expected a mapping"),
        ("colour: blue\n", r"unknown key 'colour'; use one of"),
        ("tables: {range: [200, 300]}\n", r"includes reserved table id 253"),
        ("tables: {range: [0, 10]}\n", r"tables.range: \[0, 10\] is out of bounds"),
        ("tables: {range: [10, 5]}\n", r"is out of bounds; use first <= last"),
        ("tables: {names: {eth1: main}}\n", r"tables.names.eth1: 'main' is not a usable"),
        ("priorities: {range: [100, 101]}\n", r"holds fewer than 5 priorities"),
        ("rules: [oif]\n", r"'from' is required"),
        ("rules: [from, sideways]\n", r"unknown rule kind 'sideways'"),
        ("sysctls: {rp_filter: 7}\n", r"sysctls.rp_filter: 7 is not valid; use an integer"),
        ("sysctls: {tcp_fastopen: 1}\n", r"unknown key 'tcp_fastopen'"),
        ("interfaces: {include: [eth0], exclude: [eth0]}\n", r"both list eth0"),
        ("interfaces: {include: [a/b]}\n", r"'a/b' is not an interface name"),
        ("primary: eth2\ninterfaces: {exclude: [eth2]}\n", r"also in interfaces.exclude"),
        ("probe: here\n", r"probe: 'here' is not an IP address"),
    ],
)
def test_bad_files_name_the_file_the_key_and_the_fix(text: str, message: str) -> None:
    """Each mistake gives a InputError (exit 2) whose message points at it."""
    with pytest.raises(InputError, match=message) as caught:
        parse_config(text, "c.yaml")
    assert str(caught.value).startswith("c.yaml")
    assert caught.value.exit_code == ExitCode.BAD_INPUT


def test_empty_file_means_defaults() -> None:
    """An empty file is valid."""
    assert parse_config("", "c.yaml").table_range == Config().table_range


def test_sysctls_false_leaves_every_knob_alone() -> None:
    """`sysctls: false` (containers) turns every knob off, as ``apply --no-sysctls`` does;
    `true` or a string is refused with the key's position."""
    config = parse_config("sysctls: false\n", "c.yaml")
    assert config.sysctls_off == ("rp_filter", "arp_ignore", "arp_announce", "arp_filter")
    assert Config().without_sysctls().sysctls == config.sysctls
    assert Config().sysctls_off == ()
    with pytest.raises(InputError, match=r"c\.yaml:1"):
        parse_config("sysctls: true\n", "c.yaml")
