"""render/base.py and the registry: the per-port view every renderer gets (``build_input``),
the files every backend writes (names, sysctls), the rule text NetworkManager and ifcfg
share, and each backend's installed-or-not check.

Every persistence backend writes the policy's per-port sysctls to sysctl.d. Found by the
reboot tests: after persist and a reboot the rules and tables were back, but the
ARP-flux and reverse-path settings (docs/design.md, rule 5) were not: networkd, netplan and
NetworkManager have no setting for them, and no renderer wrote them anywhere.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path, PurePosixPath

import pytest
from hosts import host, port

from multihome.config import Config
from multihome.model import TABLE_MAIN, HostState, Rule
from multihome.policy import compute_policy
from multihome.render import REGISTRY, RenderInput, build_input
from multihome.render.base import SYSCTL_PATH, rule_selector_text

CONFIG = Config()


def parse_sysctl_d(text: str) -> dict[str, str]:
    """sysctl.d(5): ``key = value`` lines, comments with '#' or ';'."""
    values = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", ";")):
            key, value = (part.strip() for part in line.split("=", 1))
            values[key] = value
    return values


@pytest.mark.parametrize("backend", sorted(REGISTRY))
def test_every_backend_persists_the_policys_sysctls(howto: HostState, backend: str) -> None:
    """The sysctl.d file says exactly what `multihome apply` sets, for both ports."""
    desired = compute_policy(howto, CONFIG)
    files = REGISTRY[backend].render(build_input(howto, desired))
    written = parse_sysctl_d(files[PurePosixPath(SYSCTL_PATH)].content)
    assert written == {s.name: s.value for s in desired.sysctls}
    assert {"net.ipv4.conf.eth1.arp_ignore", "net.ipv4.conf.eth0.rp_filter"} <= set(written)


def test_a_single_port_host_gets_no_sysctl_file() -> None:
    """One port needs no policy, and so no sysctls: no file (persist removes an old one)."""
    single = host(port("eth0", 2, "192.168.0.107/24", "192.168.0.1", 100))
    desired = compute_policy(single, CONFIG)
    assert desired.sysctls == ()
    files = REGISTRY["networkd"].render(build_input(single, desired))
    assert PurePosixPath(SYSCTL_PATH) not in files


def test_the_rules_of_each_port_are_the_policys() -> None:
    """Each port carries exactly the policy's rules for its table plus the main-suppress
    rule, and together the ports carry every desired rule (three ports here)."""
    three = host(
        *(
            port(f"eth{i}", i + 2, f"192.168.0.{107 + i}/24", "192.168.0.1", 100 + i)
            for i in range(3)
        )
    )
    desired = compute_policy(three, CONFIG)
    inp = build_input(three, desired)
    assert [p.name for p in inp.ports] == ["eth0", "eth1", "eth2"]
    assert {r for p in inp.ports for r in p.rules} == set(desired.rules)
    for managed in inp.ports:
        assert {r.table for r in managed.rules} == {managed.table.id, TABLE_MAIN}


def test_where_each_ports_routes_come_from(howto_input: RenderInput) -> None:
    """The primary keeps its DHCP routes in main, so every copy in its table is static; a
    secondary's DHCP client writes into its table (``dhcp_table``), so none of its routes
    needs writing down."""
    eth0, eth1 = howto_input.ports
    assert (eth0.role, eth0.dhcp, eth0.dhcp_table) == ("primary", True, None)
    assert eth0.static_routes == eth0.routes and len(eth0.routes) == 3
    assert (eth1.role, eth1.dhcp, eth1.dhcp_table) == ("secondary", True, eth1.table.id)
    assert eth1.static_routes == () and len(eth1.routes) == 3
    assert (eth0.mac, eth1.mac) == ("52:54:00:00:00:02", "52:54:00:00:00:03")


def test_rule_text_for_networkmanager_and_ifcfg() -> None:
    """``ip rule``-like selectors with an explicit ``from`` and the table number."""
    src = ipaddress.ip_network("192.168.0.112/32")
    assert rule_selector_text(Rule(4, 10002, 10292, src=src)) == (
        "priority 10002 from 192.168.0.112 table 10292"
    )
    assert rule_selector_text(Rule(4, 10001, TABLE_MAIN, suppress_prefixlength=0)) == (
        "priority 10001 from 0.0.0.0/0 suppress_prefixlength 0 table 254"
    )
    assert rule_selector_text(Rule(6, 10003, 7, oifname="eth1", fwmark=3, fwmask=255)) == (
        "priority 10003 from ::/0 oif eth1 fwmark 0x3/0xff table 7"
    )


def test_a_backend_is_available_when_its_programs_are_under_root(tmp_path: Path) -> None:
    """Installed-or-not is decided from files under ``--root`` only: networkd needs its
    daemon; the message names what is missing."""
    networkd = REGISTRY["networkd"]
    missing = networkd.available(tmp_path)
    assert missing is not None and "systemd-networkd" in missing
    daemon = tmp_path / "usr/lib/systemd/systemd-networkd"
    daemon.parent.mkdir(parents=True)
    daemon.touch()
    assert networkd.available(tmp_path) is None
