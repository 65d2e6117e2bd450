"""The core engine against the real kernel, in namespaces: `ip netns exec NS multihome ...`."""

from __future__ import annotations

import json
import shutil
import tempfile
from itertools import pairwise
from pathlib import Path

import pytest
from netns_util import HowtoVM, dump, multihome, routes, rules, sh


def _table_of(vm: HowtoVM, ifname: str) -> int:
    for rule in rules(vm.ns):
        if rule.get("oif") == ifname:
            return int(str(rule["table"]))
    raise AssertionError(f"no oif rule for {ifname}: {rules(vm.ns)}")


def test_apply_gives_the_howto_end_state_plus_improvements(vm: HowtoVM) -> None:
    """After apply the tables and rules are the how-to's (and multihome's improvements)."""
    result = multihome(vm.ns, "apply", "--detailed-exit-codes", root=vm.root)
    assert result.returncode == 2, result.stderr + result.stdout
    assert "verify: 6/6 checks pass" in result.stdout
    t1 = _table_of(vm, "eth1")
    got = {
        (r["priority"], r.get("src"), r.get("dst"), r.get("oif"), r.get("iif"), r["table"])
        for r in rules(vm.ns)
        if r.get("protocol") == "222"
    }
    assert (10000, "192.168.0.112", None, None, None, str(t1)) in got  # from: the table first
    assert (10003, "all", None, "eth1", None, str(t1)) in got  # ip rule add oif
    assert (10004, "all", None, None, "eth1", str(t1)) in got  # ip rule add iif
    assert (10001, "all", None, None, None, "main") in got  # main specifics first
    assert not any(rule[2] for rule in got)  # no per-destination rules (design.md 5)
    table = {
        (r["dst"], r.get("gateway"), r["dev"]) for r in routes(vm.ns) if r.get("table") == str(t1)
    }
    assert table == {
        ("default", "192.168.0.1", "eth1"),
        ("169.254.169.254", "192.168.0.100", "eth1"),
        ("192.168.0.0/24", None, "eth1"),
    }
    main_defaults = [r for r in routes(vm.ns) if r["dst"] == "default" and "table" not in r]
    assert [r["dev"] for r in main_defaults] == ["eth0"]
    get = sh("ip", "-n", vm.ns, "-j", "route", "get", "198.51.100.10", "from", "192.168.0.112")
    assert json.loads(get.stdout)[0]["dev"] == "eth1"
    sysctl = sh("ip", "netns", "exec", vm.ns, "sysctl", "-n", "net.ipv4.conf.eth1.arp_ignore")
    assert sysctl.stdout.strip() == "1"
    names = (vm.root / "etc/iproute2/rt_tables.d/multihome.conf").read_text()
    assert f"{t1}\tmh-eth1" in names


def test_second_apply_changes_nothing(vm: HowtoVM) -> None:
    """Idempotent: the second run says so, exit 0 with --detailed-exit-codes."""
    assert multihome(vm.ns, "apply", root=vm.root).returncode == 0
    before = dump(vm.ns)
    again = multihome(vm.ns, "apply", "--detailed-exit-codes", root=vm.root)
    assert again.returncode == 0, again.stderr
    assert "no changes" in again.stdout
    assert dump(vm.ns) == before
    plan = multihome(vm.ns, "plan", "--json", root=vm.root)
    assert json.loads(plan.stdout)["changes"] == []


def test_foreign_rules_routes_and_tables_survive(vm: HowtoVM) -> None:
    """A Docker-like and a VPN-like rule and a custom table are untouched by apply."""
    sh("ip", "-n", vm.ns, "rule", "add", "priority", "100", "from", "172.17.0.0/16", "lookup", "77")
    sh(
        "ip",
        "-n",
        vm.ns,
        "rule",
        "add",
        "priority",
        "5210",
        "fwmark",
        "0x80000/0xff0000",
        "lookup",
        "52",
    )
    sh("ip", "-n", vm.ns, "route", "add", "10.8.0.0/24", "dev", "eth0", "table", "52")
    sh(
        "ip",
        "-n",
        vm.ns,
        "route",
        "add",
        "default",
        "via",
        "192.168.0.1",
        "dev",
        "eth0",
        "table",
        "77",
    )
    foreign_rules = [r for r in rules(vm.ns) if r["priority"] in (100, 5210)]
    foreign_routes = [r for r in routes(vm.ns) if r.get("table") in ("52", "77")]
    assert multihome(vm.ns, "apply", root=vm.root).returncode == 0
    assert [r for r in rules(vm.ns) if r["priority"] in (100, 5210)] == foreign_rules
    assert [r for r in routes(vm.ns) if r.get("table") in ("52", "77")] == foreign_routes


@pytest.mark.parametrize("k", [1, 5, 9, 12, 18, 22])
def test_injected_failure_halfway_leaves_the_namespace_as_it_was(vm: HowtoVM, k: int) -> None:
    """A failure at the k-th change undoes the k-1 before it: the kernel is unchanged."""
    before = dump(vm.ns)
    result = multihome(vm.ns, "apply", root=vm.root, env={"MULTIHOME_FAILPOINT": f"change:{k}"})
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"apply failed at change {k} of 22" in result.stderr
    assert "Traceback" not in result.stderr
    assert dump(vm.ns) == before


def test_status_and_verify_before_and_after(vm: HowtoVM) -> None:
    """status names the how-to's failure; verify fails before and passes after apply."""
    status = json.loads(multihome(vm.ns, "status", "--json", root=vm.root).stdout)
    codes = {p["code"] for p in status["problems"]}
    assert {"reply-wrong-interface", "several-defaults-no-policy"} <= codes
    msg = next(p["message"] for p in status["problems"] if p["code"] == "reply-wrong-interface")
    assert msg.startswith("eth1: replies from 192.168.0.112 leave through eth0")
    before = multihome(vm.ns, "verify", "--json", root=vm.root)
    assert before.returncode == 1 and json.loads(before.stdout)["ok"] is False
    multihome(vm.ns, "apply", root=vm.root)
    after = multihome(vm.ns, "verify", "--json", root=vm.root)
    assert after.returncode == 0, after.stdout
    checks = json.loads(after.stdout)["checks"]
    assert {c["interface"] for c in checks} == {"eth0", "eth1"} and all(c["ok"] for c in checks)
    status = json.loads(multihome(vm.ns, "status", "--json", root=vm.root).stdout)
    # status shows doctor's problems: the routing ones are gone, the lasting ones remain
    codes = {p["code"] for p in status["problems"]}
    assert codes <= {"not-persisted", "dhcp-will-undo"}, status["problems"]
    doctor = json.loads(multihome(vm.ns, "doctor", "--json", root=vm.root).stdout)
    assert status["problems"] == doctor["problems"]


def test_three_ports_converge(vm3: HowtoVM) -> None:
    """Three same-subnet ports: each address resolves through its own port."""
    assert multihome(vm3.ns, "apply", root=vm3.root).returncode == 0
    for dev, addr in (("eth0", "107"), ("eth1", "112"), ("eth2", "115")):
        get = sh(
            "ip", "-n", vm3.ns, "-j", "route", "get", "198.51.100.10", "from", f"192.168.0.{addr}"
        )
        assert json.loads(get.stdout)[0]["dev"] == dev


def test_apply_interface_only_touches_that_interface(vm: HowtoVM) -> None:
    """`apply --interface eth1` makes eth1's changes and the shared main rule only."""
    result = multihome(vm.ns, "apply", "--interface", "eth1", root=vm.root)
    assert result.returncode == 0, result.stderr
    owned = [r for r in rules(vm.ns) if r.get("protocol") == "222"]
    assert not [r for r in owned if r.get("oif") == "eth0"]
    assert [r for r in owned if r.get("oif") == "eth1"]
    bad = multihome(vm.ns, "apply", "--interface", "eth7", root=vm.root)
    assert bad.returncode == 2 and "--interface eth7: no such interface" in bad.stderr


def test_apply_interface_verifies_only_that_interface(vm: HowtoVM) -> None:
    """`apply --interface eth0` first (as multihome@eth0.service at boot, before eth1's unit
    has run) succeeds: it announces and verifies eth0 alone, not eth1's still-missing path."""
    result = multihome(vm.ns, "apply", "--interface", "eth0", root=vm.root)
    assert result.returncode == 0, result.stderr
    assert "FAIL eth1" not in result.stderr
    owned = [r for r in rules(vm.ns) if r.get("protocol") == "222"]
    assert not [r for r in owned if r.get("oif") == "eth1"]
    assert [r for r in owned if r.get("oif") == "eth0"]


BAD_CONFIGS = [
    pytest.param("primary: eth9\n", "primary: interface 'eth9' does not exist", id="unknown-if"),
    pytest.param("interfaces: [eth0\n", "malformed YAML", id="malformed-yaml"),
    pytest.param("tables: {range: [250, 260]}\n", "reserved table id 253", id="reserved-253"),
    pytest.param("tables: {range: [0, 10]}\n", "out of bounds", id="reserved-0"),
    pytest.param("primary: eth0\nprimary: eth1\n", ":2:1: duplicate key 'primary'", id="dup-key"),
    pytest.param(
        "rules: [from]\nprobe: 127.0.0.1\n",
        ":2:8: probe: 127.0.0.1 is a loopback "
        "address: no lookup towards it uses a gateway; give an off-subnet IPv4 address",
        id="probe-loopback",
    ),
    pytest.param("probe: '::1'\n", ":1:8: probe: ::1 is a loopback address", id="probe-loopback6"),
    pytest.param(
        "probe: 0.0.0.0\n", "probe: 0.0.0.0 is the unspecified address", id="probe-unspecified"
    ),
    pytest.param(
        "probe: 224.0.0.251\n", "probe: 224.0.0.251 is a multicast address", id="probe-multicast"
    ),
    pytest.param(
        "probe: 169.254.1.1\n", "probe: 169.254.1.1 is a link-local address", id="probe-link-local"
    ),
    pytest.param(
        "probe: 2001:db8::10\n", "probe: 2001:db8::10 is an IPv6 address", id="probe-ipv6"
    ),
    pytest.param(
        "tables:\n  range:\n    - &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"    - &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in pairwise("abcdefgh")),
        "expands to more than 100000 values through aliases",
        id="alias-bomb",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS)
def test_bad_config_exits_2_and_changes_nothing(
    vm: HowtoVM, tmp_path: Path, text: str, message: str
) -> None:
    """Bad input: a clear error naming the file, exit 2, the kernel untouched."""
    config = tmp_path / "config.yaml"
    config.write_text(text)
    before = dump(vm.ns)
    result = multihome(vm.ns, "--config", str(config), "apply", root=vm.root)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and str(config) in result.stderr
    assert "Traceback" not in result.stderr
    assert dump(vm.ns) == before
    assert not (vm.root / "etc").exists()


def test_priority_band_overlap_exits_2(vm: HowtoVM) -> None:
    """A foreign rule inside the band: exit 2, nothing changed."""
    sh(
        "ip",
        "-n",
        vm.ns,
        "rule",
        "add",
        "priority",
        "10050",
        "from",
        "10.1.0.0/16",
        "lookup",
        "main",
    )
    before = dump(vm.ns)
    result = multihome(vm.ns, "apply", root=vm.root)
    assert result.returncode == 2
    assert "overlaps the existing rule '10050 from 10.1.0.0/16 lookup main'" in result.stderr
    assert dump(vm.ns) == before


def test_not_root_exits_2(vm: HowtoVM) -> None:
    """Without root: exit 2 and the fix, nothing changed (plan still works)."""
    before = dump(vm.ns)
    root = Path(tempfile.mkdtemp(prefix="mhcore-root-"))
    root.chmod(0o755)
    try:
        result = multihome(vm.ns, "apply", root=root, user="65534")
        plan = multihome(vm.ns, "plan", root=root, user="65534")
        assert list(root.iterdir()) == []
    finally:
        shutil.rmtree(root)
    assert result.returncode == 2, result.stderr
    assert "needs root" in result.stderr
    assert dump(vm.ns) == before
    assert plan.returncode == 0 and "+ rule 10000 from 192.168.0.112" in plan.stdout


def test_apply_corrects_neighbours_that_learnt_an_address_through_the_wrong_port(
    vm: HowtoVM,
) -> None:
    """ARP flux before the apply left the gateway believing .112 lives at eth0's MAC; the
    gratuitous ARP that apply sends from eth1 corrects the gateway's cache at once."""
    macs = {
        dev: json.loads(sh("ip", "-n", vm.ns, "-j", "link", "show", dev).stdout)[0]["address"]
        for dev in ("eth0", "eth1")
    }
    sh(
        "ip",
        "-n",
        vm.switch,
        "neigh",
        "replace",
        "192.168.0.112",
        "lladdr",
        macs["eth0"],
        "dev",
        "br0",
        "nud",
        "stale",
    )
    assert multihome(vm.ns, "apply", root=vm.root).returncode == 0
    neigh = json.loads(sh("ip", "-n", vm.switch, "-j", "neigh", "show", "192.168.0.112").stdout)
    assert [n["lladdr"] for n in neigh] == [macs["eth1"]]
