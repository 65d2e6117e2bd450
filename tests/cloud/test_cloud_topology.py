"""The topology file: validated at load, messages name the key and the fix, exit 2."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cloud_support import REPO

from multihome.cloud.topology import parse_topology
from multihome.errors import InputError

GOOD = """\
name: t1
networks:
  - name: net
    subnets:
      - {name: sub, cidr: 192.168.0.0/24, gateway: none, dhcp: false}
servers:
  - name: vm
    image: img
    flavor: small
    ports:
      - {name: p0, network: net, fixed_ip: 192.168.0.10}
"""


def test_good_file_parses_to_canonical_values() -> None:
    """A minimal file gives typed values: no gateway, DHCP off, the subnet inferred."""
    topo = parse_topology(GOOD, "t.yaml")
    assert topo.tag == "multihome:t1"
    assert topo.subnets[0].gateway is None and topo.subnets[0].dhcp is False
    assert topo.ports[0].subnet == "sub" and topo.ports[0].server == "vm"
    assert (
        str(parse_topology(GOOD.replace("gateway: none", "gateway: auto"), "t").subnets[0].gateway)
        == "192.168.0.1"
    )


@pytest.mark.parametrize(
    ("change", "key", "fix"),
    [
        (
            ("cidr: 192.168.0.0/24", "cidr: 192.168.0.1/24"),
            "networks[0].subnets[0].cidr",
            "host bits zero",
        ),
        (
            ("fixed_ip: 192.168.0.10", "fixed_ip: 10.0.0.10"),
            "servers[0].ports[0].fixed_ip",
            "choose an address inside",
        ),
        (
            ("gateway: none", "gateway: 10.0.0.1"),
            "networks[0].subnets[0].gateway",
            "'auto' or 'none'",
        ),
        (("flavor: small", "flavour: small"), "servers[0]", "use one of"),
        (
            (
                "{name: p0, network: net, fixed_ip: 192.168.0.10}",
                "{name: p0, network: net, port_security: false,"
                " allowed_address_pairs: [192.168.0.5]}",
            ),
            "servers[0].ports[0].allowed_address_pairs",
            "port_security: true",
        ),
        (
            (
                "{name: p0, network: net, fixed_ip: 192.168.0.10}",
                "{name: p0, network: net, floating_ip: net}",
            ),
            "servers[0].ports[0].floating_ip",
            "name the external network",
        ),
        (("name: t1", "name: 't 1'"), "name", "letters, digits"),
        (("name: t1", "name: t1\nguest: {wheels: wheels/}"), "guest.wheels", "absolute path"),
        (("name: t1", "name: t1\nguest: {wheels: '/w; rm -rf /'}"), "guest.wheels", "no spaces"),
        (
            ("name: t1", "name: t1\nguest: {index_url: /srv/simple}"),
            "guest.index_url",
            "http://10.0.0.5/simple/",
        ),
        (
            ("name: t1", "name: t1\nguest: {install: none, wheels: /w}"),
            "guest.wheels",
            "set install: pip",
        ),
        (
            ("name: t1", "name: t1\nguest: {wheels: /w, index_url: 'http://m/simple/'}"),
            "guest.index_url",
            "keep one",
        ),
        (("    ports:\n", "    ports: []\n    x:\n"), "servers[0]", "use one of"),
    ],
)
def test_bad_values_name_key_and_fix(change: tuple[str, str], key: str, fix: str) -> None:
    """Each mistake raises InputError naming the file, the line and column, the key path and
    the fix."""
    text = GOOD.replace(*change)
    assert text != GOOD
    with pytest.raises(InputError) as err:
        parse_topology(text, "t.yaml")
    message = str(err.value)
    assert re.match(rf"t\.yaml:{err.value.line}:{err.value.column}: {re.escape(key)}:", message)
    assert err.value.line is not None and err.value.path == key, message
    assert fix in message


def test_rule_parsing() -> None:
    """Rules: ingress from anywhere by default, port ranges, groups, IPv6 ICMP."""
    text = (
        GOOD
        + """\
security_groups:
  - name: g
    rules:
      - {protocol: tcp, port: 22}
      - {protocol: udp, port: '5000-5010', remote: 10.0.0.0/8}
      - {protocol: icmp, remote: '::/0'}
      - {remote_group: g}
"""
    )
    rules = parse_topology(text, "t").security_groups[0].rules
    assert [r.describe() for r in rules] == [
        "ingress IPv4 tcp/22 from 0.0.0.0/0",
        "ingress IPv4 udp/5000-5010 from 10.0.0.0/8",
        "ingress IPv6 ipv6-icmp from ::/0",
        "ingress IPv4 any from group g",
    ]


def test_cli_bad_file_exits_2_without_contacting_a_cloud(tmp_path: Path) -> None:
    """The real command: exit 2, one line naming the key and the fix, no traceback, and no
    cloud needed (nothing was read or changed)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("fixed_ip: 192.168.0.10", "fixed_ip: 192.168.7.10"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["OS_CLOUD"] = "does-not-exist"
    for verb in ("plan", "apply"):
        done = subprocess.run(
            [str(Path(sys.executable).parent / "multihome"), "cloud", verb, "-f", str(bad)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert "servers[0].ports[0].fixed_ip: 192.168.7.10 is in no subnet" in done.stderr
        assert "Traceback" not in done.stderr


def test_secrets_are_never_printed(tmp_path: Path) -> None:
    """A cloud entry with a password that cannot authenticate: the error names what to check
    and never shows the password."""
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        "clouds:\n  broken:\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n"
        "      username: u\n      password: s3cr3t-PASSWORD\n"
        "      project_name: p\n      user_domain_name: Default\n"
        "      project_domain_name: Default\n    region_name: RegionOne\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["OS_CLIENT_CONFIG_FILE"] = str(clouds)
    example = REPO / "examples" / "scenario1-private-with-gateway.yaml"
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "multihome"),
            "cloud",
            "plan",
            "-f",
            str(example),
            "--os-cloud",
            "broken",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "s3cr3t" not in done.stdout + done.stderr
    assert "cannot reach the cloud" in done.stderr
    assert "Traceback" not in done.stderr


def _multihome(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed ``multihome`` with exactly ``env`` (no OS_* of the test's own)."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "multihome"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
        timeout=120,
    )


def _no_cloud_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["HOME"] = str(home)
    return env


def test_plan_without_a_cloud_names_the_cause_and_where_clouds_yaml_was_looked_for(
    tmp_path: Path,
) -> None:
    """No OS_CLOUD, no OS_* variables, no clouds.yaml: `cloud plan -f examples/...` says no
    cloud is configured (not "cannot reach the cloud"), lists the clouds.yaml paths it
    searched (the home's among them) and points to `cloud validate`; exit 2."""
    example = REPO / "examples" / "scenario4-two-ports-two-floating-ips.yaml"
    done = _multihome(
        "cloud", "plan", "-f", str(example), env=_no_cloud_env(tmp_path), cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert "no cloud is configured: no --os-cloud, no OS_CLOUD and no OS_AUTH_URL" in done.stderr
    assert f"{tmp_path}/.config/openstack/clouds.yaml" in done.stderr
    assert "/etc/openstack/clouds.yaml" in done.stderr
    assert "cloud validate -f FILE" in done.stderr
    assert "cannot reach" not in done.stderr and "Traceback" not in done.stderr


def test_validate_checks_every_example_without_a_cloud(tmp_path: Path) -> None:
    """`cloud validate` with no cloud configured: exit 0 for each example, its counts and
    the names it leaves to the cloud (the external network); --json says the same."""
    env = _no_cloud_env(tmp_path)
    for example in sorted((REPO / "examples").glob("scenario*.yaml")):
        done = _multihome("cloud", "validate", "-f", str(example), env=env)
        assert done.returncode == 0, done.stderr
        assert "valid topology" in done.stdout and "networks public" in done.stdout
    example = REPO / "examples" / "scenario2-direct-external-isolated.yaml"
    done = _multihome("cloud", "validate", "-f", str(example), "--json", env=env)
    data = json.loads(done.stdout)
    assert data["valid"] is True and data["topology"] == "scenario2"
    assert data["counts"]["servers"] == 2 and data["counts"]["ports"] == 4
    assert data["references"]["networks"] == ["public"]


def test_validate_refuses_a_bad_file_with_exit_2(tmp_path: Path) -> None:
    """An invalid topology: exit 2, the key and the fix; with --json one error document."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("fixed_ip: 192.168.0.10", "fixed_ip: 192.168.7.10"))
    env = _no_cloud_env(tmp_path)
    done = _multihome("cloud", "validate", "-f", str(bad), env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert "servers[0].ports[0].fixed_ip: 192.168.7.10 is in no subnet" in done.stderr
    done = _multihome("cloud", "validate", "-f", str(bad), "--json", env=env)
    assert done.returncode == 2
    assert json.loads(done.stdout)["error"]["code"] == 2
