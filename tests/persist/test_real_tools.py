"""The rendered files checked by the real tools: netplan generate, nmcli --offline,
systemd-analyze verify, udevadm test, and iproute2 replaying the ifcfg lines."""

from __future__ import annotations

import configparser
import shlex
from dataclasses import replace
from pathlib import Path

import pytest
from ifcfg_replay import (
    SCRIPTS,
    replay_routes,
    replay_rules,
    route_lines,
    routing_rules,
    rule_files,
)
from inifiles import sections
from persist_scenarios import SCENARIOS, input_of
from persist_util import (
    MACS,
    MULTIHOME,
    Namespaces,
    desired_rule_tuple,
    need,
    ns_routes,
    ns_rules,
    rule_tuple,
    run,
)

from multihome.model import net_text
from multihome.render import REGISTRY, FileSpec, RenderInput
from multihome.render import systemd as systemd_renderer
from multihome.render.base import is_ra_default

CLOUD_INIT_NETPLAN = """network:
  version: 2
  ethernets:
    eth0: {dhcp4: true, match: {macaddress: "fa:16:3e:00:00:01"}, set-name: eth0}
    eth1: {dhcp4: true, match: {macaddress: "fa:16:3e:00:00:02"}, set-name: eth1}
"""


def write_tree(root: Path, files: dict[object, FileSpec]) -> None:
    for path, spec in files.items():
        target = root / str(path).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if spec.symlink:
            target.symlink_to(spec.content)
        else:
            target.write_text(spec.content)
            target.chmod(spec.mode)


def networkd_rule(keys: dict[str, str]) -> tuple[object, ...]:
    table = keys["Table"]
    return (
        int(keys["Priority"]),
        keys.get("From", "all"),
        keys.get("To"),
        keys.get("IncomingInterface"),
        keys.get("OutgoingInterface"),
        "main" if table in ("main", "254") else table,
        int(keys["SuppressPrefixLength"]) if "SuppressPrefixLength" in keys else None,
    )


def _default_of(gateway: str | None) -> str:
    return (
        "::/0" if gateway is not None and (":" in gateway or gateway == "_ipv6ra") else "0.0.0.0/0"
    )


# -- netplan -----------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_netplan_generate_gives_the_policys_rules_and_routes(scenario: str, tmp_path: Path) -> None:
    """netplan generate accepts the YAML; its .network files plus multihome's drop-ins hold
    exactly the policy's rules, the static routes with their tables, and the DHCP table."""
    need("netplan")
    inp = input_of(scenario, "netplan")
    (tmp_path / "etc/netplan").mkdir(parents=True)
    cloud_init = "".join(
        line
        for line in CLOUD_INIT_NETPLAN.splitlines(keepends=True)
        if not line.startswith("    eth") or line.split(":")[0].strip() in inp.facts.netplan_ids
    )  # the ports cloud-init configured (a hot-plugged one has only multihome's definition)
    (tmp_path / "etc/netplan/50-cloud-init.yaml").write_text(cloud_init)
    (tmp_path / "etc/netplan/50-cloud-init.yaml").chmod(0o600)
    write_tree(tmp_path, REGISTRY["netplan"].render(inp))
    proc = run("netplan", "generate", "--root-dir", str(tmp_path))
    assert "Error" not in proc.stderr
    for port in inp.ports:
        generated = tmp_path / f"run/systemd/network/10-netplan-{port.name}.network"
        dropin = (
            tmp_path / f"etc/systemd/network/10-netplan-{port.name}.network.d" / "50-multihome.conf"
        )
        assert generated.exists() and dropin.exists(), port.name
        parsed = sections(generated.read_text()) + sections(dropin.read_text())
        rules = sorted(networkd_rule(k) for s, k in parsed if s == "RoutingPolicyRule")
        assert rules == sorted(desired_rule_tuple(r) for r in port.rules)
        routes = sorted(
            (
                k.get("Destination", _default_of(k.get("Gateway"))),
                k.get("Gateway"),
                int(k.get("Table", "254")),
            )
            for s, k in parsed
            if s == "Route"
        )
        # The IPv6 default follows the advertising router (networkd's _ipv6ra); a static
        # IPv6 port of multihome's own definition keeps its gateway in main too.
        own = port.name not in inp.facts.netplan_ids
        assert routes == sorted(
            (
                str(r.dst),
                "_ipv6ra" if is_ra_default(r) else None if r.gateway is None else str(r.gateway),
                r.table,
            )
            for r in (*(port.main6_via if own else ()), *port.static_routes)
        )
        network = [k for s, k in parsed if s == "Network"]
        addresses = {a for k in network for a in k.get("Address", "").split()}
        assert {str(a.interface) for a in port.static6} <= addresses
        if port.static_only6:
            assert any(k.get("IPv6AcceptRA") == "no" for k in network)
        tables = [k["RouteTable"] for s, k in parsed if "RouteTable" in k]
        assert tables == ([] if port.dhcp_table is None else [str(port.dhcp_table)])
        assert any(s == "Network" and k.get("DHCP") == "ipv4" for s, k in parsed)


def test_netplan_rejects_a_broken_file_naming_line_and_column(tmp_path: Path) -> None:
    """The real tool is a real check: a damaged 90-multihome.yaml fails with file:line:col."""
    need("netplan")
    files = REGISTRY["netplan"].render(input_of("howto", "netplan"))
    write_tree(tmp_path, files)
    own = tmp_path / "etc/netplan/90-multihome.yaml"
    own.write_text(own.read_text().replace("table: 10244", "table: [10244"))
    proc = run("netplan", "generate", "--root-dir", str(tmp_path), check=False)
    assert proc.returncode != 0
    assert "90-multihome.yaml:" in proc.stderr


def test_netplan_networkmanager_renderer_is_warned_about() -> None:
    """With renderer NetworkManager, netplan 0.106 drops routing-policy: the renderer says so."""
    inp = input_of("howto", "netplan")
    nm = replace(inp, facts=replace(inp.facts, netplan_renderer="NetworkManager"))
    assert any("drops routing-policy" in n for n in REGISTRY["netplan"].notes(nm))
    assert REGISTRY["netplan"].notes(inp) == []


# -- NetworkManager ----------------------------------------------------------------------------


def keyfile_items(text: str) -> set[tuple[str, str, str]]:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return {(s, k, v) for s in parser.sections() for k, v in parser[s].items()}


def nm_round_trip(text: str) -> str:
    return run(
        "nmcli", "--offline", "connection", "modify", "connection.autoconnect", "yes", input=text
    ).stdout


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_keyfiles_survive_nmcli_round_trip(scenario: str) -> None:
    """nmcli --offline reads every keyfile and writes every key back unchanged (NM drops
    invalid values silently, so a lost key means a broken keyfile)."""
    need("nmcli")
    files = REGISTRY["networkmanager"].render(input_of(scenario, "networkmanager"))
    keyfiles = {p: s for p, s in files.items() if p.suffix == ".nmconnection"}
    assert len(keyfiles) == len(SCENARIOS[scenario])
    for path, spec in keyfiles.items():
        ours = keyfile_items(spec.content)
        back = keyfile_items(nm_round_trip(spec.content))
        assert ours - back == set(), path
        assert any(k.startswith("routing-rule") for _, k, _ in ours)


def test_round_trip_catches_a_value_nm_drops() -> None:
    """The comparison can fail: an invalid routing rule vanishes in NM's round trip."""
    need("nmcli")
    files = REGISTRY["networkmanager"].render(input_of("howto", "networkmanager"))
    text = next(s.content for p, s in files.items() if p.name == "multihome-eth1.nmconnection")
    broken = text.replace("suppress_prefixlength 0", "suppress_prefixlength zero")
    assert keyfile_items(broken) - keyfile_items(nm_round_trip(broken))


# -- systemd and udev --------------------------------------------------------------------------


def test_unit_passes_systemd_analyze_verify_without_a_word(tmp_path: Path) -> None:
    """systemd-analyze verify accepts an instance of multihome@.service with no output at all
    (typos only warn, so any stderr counts as a failure)."""
    need("systemd-analyze")
    instance = tmp_path / "multihome@eth1.service"
    instance.write_text(systemd_renderer.unit(MULTIHOME))
    proc = run("systemd-analyze", "verify", str(instance), check=False)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert "apply --quiet --interface %I" in instance.read_text()


def test_verify_is_a_real_check(tmp_path: Path) -> None:
    """A typo in the unit makes systemd-analyze verify talk (the how-to's `Unit]` too)."""
    need("systemd-analyze")
    instance = tmp_path / "multihome@eth1.service"
    instance.write_text(systemd_renderer.unit(MULTIHOME).replace("Type=oneshot", "Type=oneshoot"))
    assert run("systemd-analyze", "verify", str(instance), check=False).stderr
    instance.write_text(systemd_renderer.unit(MULTIHOME).replace("[Unit]", "Unit]"))
    assert run("systemd-analyze", "verify", str(instance), check=False).stderr


def test_udev_rule_wants_an_instance_for_a_port_only(
    namespaces: Namespaces, tmp_path: Path
) -> None:
    """udevadm test: a new port eth1 pulls in multihome@eth1.service; a veth does not."""
    need("udevadm")
    ns = namespaces.add("udev")
    run(
        "ip",
        "-n",
        ns,
        "link",
        "add",
        "eth1",
        "address",
        MACS["eth1"],
        "type",
        "veth",
        "peer",
        "vethx",
    )
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "90-multihome.rules").write_text(systemd_renderer.udev_rule())

    def wants(dev: str) -> list[str]:
        script = (
            f"mount --bind {shlex.quote(str(rules))} /etc/udev/rules.d && "
            f"udevadm test --action=add /sys/class/net/{dev} 2>&1"
        )
        out = run("ip", "netns", "exec", ns, "unshare", "-m", "sh", "-c", script).stdout
        return [line for line in out.splitlines() if line.startswith("SYSTEMD_WANTS=")]

    assert wants("eth1") == ["SYSTEMD_WANTS=multihome@eth1.service"]
    assert wants("vethx") == []


# -- ifcfg ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_ifcfg_lines_replayed_by_iproute2_give_the_policy(
    scenario: str, namespaces: Namespaces
) -> None:
    """The route-/route6- lines replayed as network-scripts' ifup-routes does (`ip -4|-6 route
    add $line`, its file order) and the ROUTING_RULE_N/ROUTING_RULE6_N keys as ifcfg-rh reads
    them: in a namespace with the scenario's ports, exactly the policy's rules and routes."""
    need("ip")
    inp: RenderInput = input_of(scenario, "ifcfg")
    files = REGISTRY["ifcfg"].render(inp)
    ns = namespaces.add("ifcfg")
    for port in inp.ports:
        run(
            "ip",
            "-n",
            ns,
            "link",
            "add",
            port.name,
            "address",
            MACS[port.name],
            "type",
            "veth",
            "peer",
            f"peer-{port.name}",
        )
        for dev in (port.name, f"peer-{port.name}"):
            run("ip", "-n", ns, "link", "set", dev, "up")
        for addr in port.addresses:
            run("ip", "-n", ns, "addr", "add", str(addr.interface), "dev", port.name, "nodad")
    # ifup-routes' files and order per port (eth0 first), then the rules ifcfg-rh reads
    # (tests/persist/ifcfg_replay.py says from where).
    texts = {path: spec.content for path, spec in files.items()}
    assert rule_files(texts) == []
    for port in inp.ports:
        replay_routes(ns, route_lines(texts, port.name))
    installed: set[tuple[str, str]] = set()
    for port in inp.ports:
        replay_rules(ns, routing_rules(texts[SCRIPTS / f"ifcfg-multihome-{port.name}"]), installed)
    for family in (4, 6):
        got = sorted(
            rule_tuple(r) for r in ns_rules(ns, family) if 10000 <= int(r["priority"]) <= 10099
        )
        assert got == sorted(desired_rule_tuple(r) for r in inp.desired.rules if r.family == family)
    for port in inp.ports:
        table = {
            (r["dst"], r.get("gateway"))
            for family in (4, 6)
            for r in ns_routes(ns, port.table.id, family)
        }
        wanted = {
            (
                "default" if r.is_default else net_text(r.dst),
                None if r.gateway is None else str(r.gateway),
            )
            for r in port.static_routes
        }
        assert table == wanted, port.name
