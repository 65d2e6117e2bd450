"""Real reboots of a guest with a static IPv6 port (``network_data.json`` type ``ipv6``: DHCP
disabled, no router advertisement on its link) beside a dual-stack port.

eth0 is on br0 of the cloud (dnsmasq's DHCPv4, radvd's SLAAC and default), eth1 alone on
br1, which has the metadata's gateway (2001:db8:2::1) and no advertising router; the far host
2001:db8:ff::10 lives in the cloud's namespace, whose guard drops (and counts) a port's source
arriving from the other port's link, as Neutron's port security would.

With networkd, NetworkManager and the systemd unit the guest's own configuration names eth0
only; at the first boot the agent's own code (``multihome.agent.addressing.configure_static``)
addresses eth1 from the metadata, as ``multihome agent`` does for a port the metadata lists as
DHCP-disabled, and persist writes multihome's own definition of eth1 (networkd's
``50-multihome-eth1.network``, NetworkManager's ``multihome-eth1`` profile, the systemd unit's
drop-in for ``multihome@eth1``: address and routes before its wait). With netplan,
cloud-init's 50-cloud-init.yaml names eth1 with its address and gateway (as cloud-init renders
a network of type ``ipv6``) and persist adds the table and the rules. Then eth1's address does
not answer (its reply leaves by eth0's router, the guard drops it) and the family-6 rules are
missing; ``multihome persist --backend B`` runs, the guest powers off and boots again with
fresh namespaces, and the configuration alone must bring back: the address past DAD, main's
routes at the metrics they had (the agent's, 2048 + ifindex), each port's IPv6 table, the
family-6 rules, each address's lookup through its own port, each address answering the far
host (HTTP, the lab's echo in the guest) through its own port, and an empty plan. Checked
with the host's ``ip -j`` in the guest's namespace and the guard's counters.

multihome's own netplan definition of a port (one no file of the distribution names) is not
rebooted here: it matches the port by ``macaddress``, which netplan 0.106 renders as
networkd's ``PermanentMACAddress=``, and the guest's veths have no permanent MAC (a VM's
virtio NIC has); tests/persist/test_daemons_static6.py proves those files with networkd.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dualstack_guest import addresses6, band6, configure, expected6, routers, table6
from lab_guest import ECHO_UNIT
from persist_util import need, run
from radvd import stop
from reboot_guest import GATEWAY, Guest, guest_environment, wait_until
from test_daemons_ipv6 import start_ra
from test_daemons_static6 import (
    AGENT_ADDRESSES,
    FAR6,
    GATEWAY6,
    NETWORK_DATA,
    PREFIX6,
    STATIC6,
    guard_drops,
    static6_link,
)

pytestmark = pytest.mark.slow

METADATA = "/root/network_data.json"
#: No "Wired connection" profile grabs a port that no profile names (as a server's
#: NetworkManager is configured: NetworkManager-config-server sets it); the agent addresses it.
NM_NO_AUTO_DEFAULT = "[main]\nno-auto-default=*\n"
TYPES = {1: "unicast", 9: "throw"}
#: cloud-init's netplan for eth1's network of type ``ipv6`` (as cloud-init 22.4 renders one;
#: matched by name, as the other netplan reboot tests: see reboot_guest.NETPLAN_PORT).
NETPLAN_STATIC6 = f"""    eth1:
      addresses:
      - {STATIC6}/64
      routes:
      - to: ::/0
        via: {GATEWAY6}
"""

Tables = dict[int, set[tuple[object, ...]]]


@pytest.fixture
def static6_guest(rootfs: Path, tmp_path: Path) -> Iterator[Guest]:
    """A prepared guest: eth0 on br0 (DHCPv4, radvd), eth1 on br1 (its gateway only), the
    far host and the guard in the cloud, the metadata and the echo service in the guest."""
    need("radvd", "nft", "curl")
    with guest_environment(tmp_path, rootfs) as guest:
        static6_link(guest.switch)
        radvd = start_ra(guest.switch, tmp_path)
        try:
            guest.bridges = {"eth1": "br1"}
            guest.write(METADATA, json.dumps(NETWORK_DATA))
            guest.write("/etc/systemd/system/lab-echo.service", ECHO_UNIT)
            guest.systemctl("enable", "lab-echo.service")
            yield guest
        finally:
            stop(radvd)


def main6(guest: Guest, port: str) -> set[tuple[object, ...]]:
    """The port's IPv6 routes in main as ``(dst, gateway, metric)`` (not its link-local one)."""
    return {
        (r["dst"], r.get("gateway"), r.get("metric"))
        for r in guest.ip("-6", "route", "show", "table", "main", "dev", port)
        if r["dst"] != "fe80::/64"
    }


def planned_tables6(plan: dict[str, Any]) -> Tables:
    """The IPv6 routes the plan puts into each port's table, as :func:`table6` shows them."""
    tables: Tables = {}
    for c in plan["changes"]:
        if c["kind"] == "route" and ":" in c["dst"] and c["table"] != 254:  # "::/0": default
            dst = "default" if c["dst"] == "::/0" else c["dst"]
            tables.setdefault(c["table"], set()).add((TYPES[c["type"]], dst, c["gateway"]))
    return tables


def answers(guest: Guest, address: str) -> bool:
    """The far host's HTTP request to ``address`` is answered (the echo names the far host):
    the reply came back through the port the request went in by."""
    got = run("ip", "netns", "exec", guest.switch, "curl", "-g", "-s", "-m", "3",
              "--interface", FAR6, f"http://[{address}]/", check=False)  # fmt: skip
    return got.returncode == 0 and got.stdout.strip() == FAR6


def static6_problems(
    guest: Guest,
    rules: list[tuple[object, ...]],
    tables: dict[str, int],
    routes: Tables,
    main: set[tuple[object, ...]],
) -> list[str]:
    """What differs from the policy and eth1's static configuration (empty: right)."""
    problems = []
    got = band6(guest)
    if got != rules:
        problems.append(f"IPv6 rules {got}, want {rules}")
    addrs, via = addresses6(guest), routers(guest)
    if addrs.get("eth1") != STATIC6:
        problems.append(f"eth1: {STATIC6} not there past DAD: {addrs}")
    if main6(guest, "eth1") != main:
        problems.append(f"eth1: IPv6 routes in main {main6(guest, 'eth1')}, want {main}")
    gateways = {"eth0": via.get("eth0"), "eth1": GATEWAY6}
    for port, table in sorted(tables.items()):
        if table6(guest, table) != routes[table]:
            problems.append(f"{port}: table {table}: {table6(guest, table)}, want {routes[table]}")
        if port not in addrs:
            problems.append(f"{port}: no IPv6 address past DAD")
            continue
        hop = [(r.get("dev"), r.get("gateway"))
               for r in guest.ip("-6", "route", "get", FAR6, "from", addrs[port])]  # fmt: skip
        if hop != [(port, gateways[port])]:
            problems.append(f"{port}: route get {FAR6} from {addrs[port]}: {hop}")
    return problems


@pytest.mark.parametrize(
    ("backend", "stack"),
    [
        ("networkd", "networkd"),
        ("networkmanager", "networkmanager"),
        ("systemd", "networkd"),
        ("netplan", "netplan"),
    ],
)
def test_the_static_ipv6_port_comes_back_at_boot(
    static6_guest: Guest, backend: str, stack: str
) -> None:
    """Before persist eth1's static address does not answer (its reply leaves by eth0's
    router, the guard counts the drop) and its rules are missing; after `multihome persist
    --backend BACKEND` and a reboot the persisted configuration alone puts back eth1's
    address (past DAD), its routes in main at the metrics they had (the agent's, 2048 +
    ifindex; netplan: cloud-init's file, networkd's), both IPv6 tables and the family-6
    rules: each port's address answers the far host through its own port, nothing is
    dropped, and multihome's plan is empty."""
    guest = static6_guest
    configure(guest, stack, ["eth0"])
    if stack == "netplan":  # cloud-init's file names the static port too
        yaml = guest.root / "etc/netplan/50-cloud-init.yaml"
        yaml.write_text(yaml.read_text() + NETPLAN_STATIC6)
    if stack == "networkmanager":
        guest.write("/etc/NetworkManager/conf.d/90-no-auto-default.conf", NM_NO_AUTO_DEFAULT)
    guest.boot()
    wait_until(
        lambda: (
            "eth0" in addresses6(guest)
            and "eth0" in routers(guest)
            and guest.defaults("main") == [(GATEWAY, "eth0")]
        ),
        40,
        "eth0's DHCP default, SLAAC address and RA default",
        guest,
    )
    if stack != "netplan":
        guest.sh("PYTHONPATH=/opt/multihome/src", "python3", "-c", AGENT_ADDRESSES, METADATA)
    wait_until(lambda: addresses6(guest).get("eth1") == STATIC6, 10, "eth1's address", guest)
    ifindex = guest.ip("link", "show", "eth1")[0]["ifindex"]
    main = main6(guest, "eth1")
    if stack != "netplan":  # the agent's routes (netplan's: networkd's metrics)
        assert main == {("default", GATEWAY6, 2048 + ifindex), (PREFIX6, None, 2048 + ifindex)}
    plan = json.loads(guest.sh("multihome", "plan", "--source", "kernel", "--json").stdout)
    rules = expected6(plan)
    tables = {i["name"]: i["table"]["id"] for i in plan["interfaces"] if i["table"]}
    routes = planned_tables6(plan)
    # the table-first band: from, oif, iif per port and the suppress rule
    assert len(rules) == 7 and set(tables) == {"eth0", "eth1"}, rules
    assert {("unicast", "default", GATEWAY6), ("unicast", PREFIX6, None)} <= routes[
        tables["eth1"]
    ], routes
    before = static6_problems(guest, rules, tables, routes, main)
    assert any(p.startswith("IPv6 rules") for p in before), before
    assert f"eth1: route get {FAR6} from {STATIC6}: [('eth0', '{routers(guest)['eth0']}')]" in (
        before
    )
    dropped = guard_drops(guest.switch)
    assert answers(guest, addresses6(guest)["eth0"])
    assert not answers(guest, STATIC6)  # the bug: eth1's reply leaves by eth0's router
    assert guard_drops(guest.switch) > dropped
    out = guest.sh("multihome", "persist", "--backend", backend).stdout
    assert out.startswith(f"backend: {backend} ("), out
    guest.poweroff()
    # multihome@ instances pull in network-online.target: a loaded machine's boot may
    # wait out systemd-networkd-wait-online (its own bound: 120 s) before it finishes.
    guest.boot(timeout=180)
    try:
        wait_until(
            lambda: not static6_problems(guest, rules, tables, routes, main), 60, "IPv6", guest
        )
    except AssertionError as exc:
        units = guest.sh("systemctl", "status", "multihome@eth1", check=False)
        raise AssertionError(
            f"{exc}: {static6_problems(guest, rules, tables, routes, main)}\n{units.stdout}"
        ) from None
    if backend == "systemd":  # the drop-in's address and routes, then the wait and apply
        state = guest.sh("systemctl", "is-active", "multihome@eth0", "multihome@eth1")
        assert state.stdout.split() == ["active", "active"], state.stdout
    dropped = guard_drops(guest.switch)
    for address in addresses6(guest).values():
        assert answers(guest, address), address
    assert guard_drops(guest.switch) == dropped
    again = json.loads(guest.sh("multihome", "plan", "--source", "kernel", "--json").stdout)
    assert again["changes"] == [], again["changes"]
    guest.poweroff()
    print(f"\nreboot-static6[{backend}]: " + "; ".join(f"boot {t.boot:.2f}s" for t in guest.times))
