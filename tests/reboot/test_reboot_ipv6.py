"""Real reboots of a dual-stack guest: the tenant network also sends router advertisements
(radvd), the guest's ports take SLAAC addresses; after `multihome persist` and every boot the
IPv6 rules and each port's IPv6 table are back (networkd, NetworkManager, the systemd unit),
each address's lookup leaves through its own port, and multihome's plan
is empty. Checked with the host's ``ip -6 -j`` in the guest's namespace."""

from __future__ import annotations

import json
from typing import Any

import pytest
from reboot_guest import NETPLAN_CLOUD_INIT, Guest, advertise_ipv6, wait_until

pytestmark = pytest.mark.slow

PREFIX = "2001:db8:1::/64"
INTERNET6 = "2001:db8:ff::10"
#: networkd's .network of a dual-stack cloud image: each port's RA default with its own
#: metric (equal ones would merge into one multipath route in main).
NETWORKD_DUALSTACK = """[Match]
Name={name}

[Network]
DHCP=ipv4

[DHCPv4]
RouteMetric={metric}

[IPv6AcceptRA]
RouteMetric={metric}
"""


def addresses6(guest: Guest) -> dict[str, str]:
    """Each port's global IPv6 address past DAD."""
    found = {}
    for entry in guest.ip("-6", "addr", "show", "scope", "global"):
        for a in entry["addr_info"]:
            if a.get("local") and not a.get("tentative") and not a.get("dadfailed"):
                found[str(entry["ifname"])] = str(a["local"])
    return found


def routers(guest: Guest) -> dict[str, str]:
    """Each port's router-advertised default in main: its router's link-local address."""
    return {
        str(r["dev"]): str(r["gateway"])
        for r in guest.ip("-6", "route", "show", "default")
        if "gateway" in r and "dev" in r
    }


def expected6(plan: dict[str, Any]) -> list[tuple[object, ...]]:
    """The family-6 rules of ``multihome plan --json`` as ``ip -6 -j rule`` shows them."""
    return sorted(
        (
            c["priority"],
            "all" if c["src"] is None else c["src"].removesuffix("/128"),
            c["dst"] and c["dst"].removesuffix("/128"),
            c["iif"],
            c["oif"],
            "main" if c["table"] == 254 else str(c["table"]),
        )
        for c in plan["changes"]
        if c["kind"] == "rule" and c["family"] == 6
    )


def ipv6_problems(
    guest: Guest, rules: list[tuple[object, ...]], tables: dict[str, int]
) -> list[str]:
    """What differs from the IPv6 policy (empty: right)."""
    got = sorted(
        (
            r["priority"],
            r.get("src", "all"),
            None if r.get("dst") is None else f"{r['dst']}/{r['dstlen']}",
            r.get("iif"),
            r.get("oif"),
            {"254": "main"}.get(str(r["table"]), str(r["table"])),
        )
        for r in guest.ip("-6", "rule")
        if 10000 <= int(r["priority"]) <= 10099
    )
    problems = [] if got == rules else [f"IPv6 rules {got}, want {rules}"]
    addrs, via = addresses6(guest), routers(guest)
    for port, table in sorted(tables.items()):
        routes = {
            (r["dst"], r.get("gateway"))
            for r in guest.ip("-6", "route", "show", "table", str(table))
        }
        if routes != {("default", via.get(port)), (PREFIX, None)}:
            problems.append(f"{port}: IPv6 table {table}: {routes} (router {via.get(port)})")
        if port not in addrs:
            problems.append(f"{port}: no IPv6 address past DAD")
            continue
        hop = [(r.get("dev"), r.get("gateway"))
               for r in guest.ip("-6", "route", "get", INTERNET6, "from", addrs[port])]  # fmt: skip
        if hop != [(port, via.get(port))]:
            problems.append(f"{port}: route get {INTERNET6} from {addrs[port]}: {hop}")
    return problems


#: NetworkManager's dual-stack profile (as cloud-init writes it, EUI-64 as Neutron computes).
NM_DUALSTACK = """[connection]
id=cloud-init {name}
uuid=1dd9a779-d327-56e1-8454-c65e2556c12{index}
type=ethernet
interface-name={name}

[ipv4]
method=auto
route-metric={metric}

[ipv6]
method=auto
addr-gen-mode=eui64
route-metric={metric}
"""


#: cloud-init's netplan for a dual-stack port (Debian 12's netplan.io 0.106, networkd
#: renderer): cloud-init writes ``dhcp6: true`` for an ``ipv6_slaac`` subnet, and the
#: route metric netplan puts in networkd's ``[DHCP]`` section is also the RA routes' metric
#: (networkd 252's ``config_parse_dhcp_or_ra_route_metric``): each port's RA default keeps
#: its own metric, as with the other stacks.
NETPLAN_DUALSTACK = """    {name}:
      dhcp4: true
      dhcp4-overrides:
        route-metric: {metric}
      dhcp6: true
      dhcp6-overrides:
        route-metric: {metric}
      accept-ra: true
      ipv6-address-generation: eui64
"""


def configure(guest: Guest, stack: str) -> None:
    """The guest's own dual-stack configuration for ``stack`` (``netplan``: cloud-init's
    50-cloud-init.yaml, rendered for networkd by netplan's generator at every boot)."""
    if stack == "netplan":
        guest.use_stack("networkd")
        body = "".join(
            NETPLAN_DUALSTACK.format(name=name, metric=100 + i)
            for i, name in enumerate(guest.ports)
        )
        guest.write("/etc/netplan/50-cloud-init.yaml", NETPLAN_CLOUD_INIT.format(ports=body), 0o600)
        return
    guest.use_stack(stack)
    for i, name in enumerate(guest.ports):
        if stack == "networkd":
            path, text, mode = f"/etc/systemd/network/10-{name}.network", NETWORKD_DUALSTACK, 0o644
        else:
            path = f"/etc/NetworkManager/system-connections/cloud-init-{name}.nmconnection"
            text, mode = NM_DUALSTACK, 0o600
        guest.write(path, text.format(name=name, index=i, metric=100 + i), mode)


@pytest.mark.parametrize(
    ("backend", "stack"),
    [
        ("networkd", "networkd"),
        ("networkmanager", "networkmanager"),
        ("systemd", "networkd"),
        ("netplan", "netplan"),
    ],
)
def test_the_ipv6_policy_comes_back_at_every_boot(guest: Guest, backend: str, stack: str) -> None:
    """A dual-stack network: before persist eth1's IPv6 replies would leave by eth0's router;
    after `multihome persist --backend BACKEND` and each of two reboots the family-6 rules
    and both IPv6 tables are back (networkd: its drop-ins; NetworkManager: its keyfiles; the
    systemd unit: its apply once the RA default is there; netplan: 90-multihome.yaml and
    the drop-ins for netplan's own .network files, generated at boot), each address's lookup leaves
    through its port, multihome's plan is empty and the IPv4 rules are there too."""
    advertise_ipv6(guest, PREFIX)
    configure(guest, stack)
    guest.boot()
    wait_until(
        lambda: (
            set(addresses6(guest)) == set(guest.ports)
            and set(routers(guest)) == set(guest.ports)
            and len(guest.defaults("main")) == 2
        ),
        40,
        "SLAAC addresses, RA defaults and DHCP defaults on both ports",
        guest,
    )
    plan = json.loads(guest.sh("multihome", "plan", "--source", "kernel", "--json").stdout)
    rules = expected6(plan)
    tables = {i["name"]: i["table"]["id"] for i in plan["interfaces"] if i["table"]}
    assert len(rules) == 9 and set(tables) == {"eth0", "eth1"}, rules
    rules4 = len([c for c in plan["changes"] if c["kind"] == "rule" and c["family"] == 4])
    assert ipv6_problems(guest, rules, tables)  # the bug is there before persist
    out = guest.sh("multihome", "persist", "--backend", backend).stdout
    assert out.startswith(f"backend: {backend} ("), out
    guest.poweroff()
    for boot in range(2):
        guest.boot()
        try:
            wait_until(lambda: not ipv6_problems(guest, rules, tables), 60, "IPv6", guest)
        except AssertionError as exc:
            units = guest.sh("systemctl", "status", "multihome@eth0", "multihome@eth1", check=False)
            raise AssertionError(
                f"{exc}: {ipv6_problems(guest, rules, tables)}\n{units.stdout}"
            ) from None
        assert len([r for r in guest.ip("rule") if 10000 <= int(r["priority"]) <= 10099]) == rules4
        if boot == 1:
            again = json.loads(guest.sh("multihome", "plan", "--source", "kernel", "--json").stdout)
            assert [c for c in again["changes"] if c["kind"] != "sysctl"] == [], again["changes"]
        guest.poweroff()
