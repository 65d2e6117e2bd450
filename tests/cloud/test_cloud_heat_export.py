"""`cloud export --format heat`: the HOT template, derived from what `cloud apply` creates.

Pure tests of the template's content, and Heat's own template parser on every example (the
Heat venv, no cloud); the real Heat creating, updating and deleting a stack is
test_cloud_heat_stack.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cloud_support import HEAT_CACHE, HEAT_LOCK, HEAT_SERVER, REPO, build_cached_venv, run_cli

from multihome.cloud import desired
from multihome.cloud.heat import heat_tag, render, template
from multihome.cloud.topology import load_topology, parse_topology
from multihome.cloud.userdata import for_server
from multihome.errors import InputError

SCENARIO4 = REPO / "examples" / "scenario4-two-ports-two-floating-ips.yaml"
DUAL_STACK = REPO / "examples" / "dual-stack.yaml"

MIXED = """\
name: mixed
networks:
  - name: front
    subnets:
      - {name: front-v4, cidr: 192.168.0.0/24}
  - name: back
    port_security: false
    subnets:
      - {name: back-v4, cidr: 10.0.0.0/24, gateway: none, dhcp: false,
         dns_nameservers: [10.0.0.53]}
security_groups:
  - name: web
    rules:
      - {protocol: tcp, port: 443}
      - {protocol: tcp, ports: '8000-8080', remote: 203.0.113.0/24}
      - {protocol: any, remote_group: peers}
  - name: peers
    rules:
      - {direction: egress, protocol: udp, port: 53}
routers:
  - {name: edge, external_network: public, subnets: [front-v4]}
servers:
  - name: vm1
    image: debian-12
    flavor: m1.small
    key_name: ops
    config_drive: true
    user_data: multihome
    ports:
      - name: vm1-eth0
        network: front
        fixed_ip: 192.168.0.10
        security_groups: [web, peers]
        floating_ip: public
        allowed_address_pairs: [192.168.0.11, {ip: 192.168.0.0/28, mac: 'FA:16:3E:00:00:01'}]
      - {name: vm1-eth1, network: back, fixed_ip: 10.0.0.10}
      - {name: vm1-eth2, network: provider-net}
  - name: vm2
    image: rocky-9
    flavor: m1.small
    user_data: |
      #cloud-config
      runcmd: [[true]]
    ports:
      - {name: vm2-eth0, network: front}
ports:
  - {name: spare, network: front, fixed_ip: 192.168.0.99}
"""


def _mixed() -> dict[str, Any]:
    return template(parse_topology(MIXED, "mixed.yaml"))


def _of_type(doc: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in doc["resources"].items() if res["type"] == kind}


def test_every_resource_of_apply_is_in_the_template() -> None:
    """One Heat resource per network, subnet, group, rule, router, router interface, port,
    floating IP and server of the topology, each under its own name."""
    topo = parse_topology(MIXED, "mixed.yaml")
    doc = template(topo)
    names = {
        kind: sorted(res["properties"]["name"] for res in _of_type(doc, kind).values())
        for kind in (
            "OS::Neutron::Net",
            "OS::Neutron::Subnet",
            "OS::Neutron::SecurityGroup",
            "OS::Neutron::Router",
            "OS::Neutron::Port",
            "OS::Nova::Server",
        )
    }
    assert names == {
        "OS::Neutron::Net": ["back", "front"],
        "OS::Neutron::Subnet": ["back-v4", "front-v4"],
        "OS::Neutron::SecurityGroup": ["peers", "web"],
        "OS::Neutron::Router": ["edge"],
        "OS::Neutron::Port": ["spare", "vm1-eth0", "vm1-eth1", "vm1-eth2", "vm2-eth0"],
        "OS::Nova::Server": ["vm1", "vm2"],
    }
    assert (
        sum(
            len(g["properties"]["rules"])
            for g in _of_type(doc, "OS::Neutron::SecurityGroup").values()
        )
        == 4
    )
    assert list(_of_type(doc, "OS::Neutron::RouterInterface")) == ["router_edge_subnet_front-v4"]
    assert list(_of_type(doc, "OS::Neutron::FloatingIP")) == ["fip_vm1-eth0"]


def test_subnets_with_and_without_gateway_and_dhcp() -> None:
    """`gateway: none` is Heat's '' (null would give the default gateway); DHCP and DNS
    servers as declared; the network's port security as declared."""
    res = _mixed()["resources"]
    back = res["subnet_back-v4"]["properties"]
    assert back["gateway_ip"] == ""
    assert back["enable_dhcp"] is False
    assert back["dns_nameservers"] == ["10.0.0.53"]
    assert back["network"] == {"get_resource": "net_back"}
    front = res["subnet_front-v4"]["properties"]
    assert front["gateway_ip"] == "192.168.0.1"
    assert front["enable_dhcp"] is True
    assert res["net_back"]["properties"]["port_security_enabled"] is False
    assert res["net_front"]["properties"]["port_security_enabled"] is True


def test_rules_inside_their_groups() -> None:
    """Rules are the group's own (an OS::Neutron::SecurityGroupRule cannot say "any
    protocol"): ports, ranges and prefixes as apply sends them, any protocol by leaving it
    out, a remote group by reference."""
    res = _mixed()["resources"]
    assert res["sg_web"]["properties"]["rules"] == [
        {
            "direction": "ingress",
            "ethertype": "IPv4",
            "protocol": "tcp",
            "port_range_min": 443,
            "port_range_max": 443,
            "remote_ip_prefix": "0.0.0.0/0",
        },
        {
            "direction": "ingress",
            "ethertype": "IPv4",
            "protocol": "tcp",
            "port_range_min": 8000,
            "port_range_max": 8080,
            "remote_ip_prefix": "203.0.113.0/24",
        },
        {
            "direction": "ingress",
            "ethertype": "IPv4",
            "remote_group_id": {"get_resource": "sg_peers"},
            "remote_mode": "remote_group_id",
        },
    ]
    assert res["sg_peers"]["properties"]["description"] == (
        "managed by multihome [multihome-heat:mixed]"
    )


def test_groups_naming_each_other_are_refused() -> None:
    """Two groups whose rules name each other cannot be created by Heat (each needs the
    other first): bad input naming the cycle and the way out; a group naming itself is
    fine (Heat's remote group without an id)."""
    text = MIXED.replace(
        "      - {direction: egress, protocol: udp, port: 53}",
        "      - {direction: egress, protocol: udp, port: 53}\n      - {remote_group: web}\n"
        "      - {remote_group: peers}",
    )
    with pytest.raises(InputError, match=r"web -> peers -> web name each other") as err:
        template(parse_topology(text, "cycle.yaml"))
    assert "cloud apply" in str(err.value) and "cycle.yaml" in str(err.value)
    own = MIXED.replace("remote_group: peers}", "remote_group: web}")
    rule = template(parse_topology(own, "own.yaml"))["resources"]["sg_web"]["properties"]
    assert rule["rules"][2] == {
        "direction": "ingress",
        "ethertype": "IPv4",
        "remote_mode": "remote_group_id",
    }


def test_ports_carry_apply_attributes() -> None:
    """A port's properties are apply's attributes (multihome.cloud.desired) under Heat's
    names: fixed IP on its subnet, groups, address pairs with and without MAC; port security
    off leaves no group; an undeclared network is named for Heat to look up."""
    topo = parse_topology(MIXED, "mixed.yaml")
    res = template(topo)["resources"]
    eth0 = res["port_vm1-eth0"]["properties"]
    assert eth0["fixed_ips"] == [
        {"subnet": {"get_resource": "subnet_front-v4"}, "ip_address": "192.168.0.10"}
    ]
    assert eth0["security_groups"] == [{"get_resource": "sg_web"}, {"get_resource": "sg_peers"}]
    assert eth0["allowed_address_pairs"] == [
        {"ip_address": "192.168.0.11"},
        {"ip_address": "192.168.0.0/28", "mac_address": "fa:16:3e:00:00:01"},
    ]
    assert eth0["tags"] == [heat_tag(topo)]
    assert "security_groups" not in res["port_vm1-eth1"]["properties"]
    assert res["port_vm1-eth2"]["properties"]["network"] == "provider-net"
    spec = next(p for p in topo.ports if p.name == "vm1-eth0")
    attrs = desired.port(spec, heat_tag(topo), lambda kind, name: f"{kind}/{name}")
    assert attrs["allowed_address_pairs"] == eth0["allowed_address_pairs"]
    assert attrs["description"] == eth0["value_specs"]["description"]


def test_floating_ip_after_its_router_interface() -> None:
    """The floating IP comes from the external network's parameter, for the port's fixed IP,
    once the router and its interface on the port's subnet exist (apply's order)."""
    fip = _mixed()["resources"]["fip_vm1-eth0"]
    assert fip["properties"]["floating_network"] == {"get_param": "external_network"}
    assert fip["properties"]["port_id"] == {"get_resource": "port_vm1-eth0"}
    assert fip["properties"]["fixed_ip_address"] == "192.168.0.10"
    assert fip["depends_on"] == ["router_edge", "router_edge_subnet_front-v4"]


def test_servers_boot_from_their_ports_in_order() -> None:
    """Ports in order, config drive, RAW user-data exactly as apply passes it (multihome's
    cloud-config or the literal), the stack's tag; image, flavor and key from parameters."""
    topo = parse_topology(MIXED, "mixed.yaml")
    res = template(topo)["resources"]
    vm1 = res["server_vm1"]["properties"]
    assert vm1["networks"] == [{"port": {"get_resource": f"port_vm1-eth{n}"}} for n in range(3)]
    assert vm1["config_drive"] is True
    assert vm1["user_data_format"] == "RAW"
    assert vm1["user_data"] == for_server(topo, topo.servers[0])
    assert vm1["user_data"].startswith("#cloud-config\n")
    assert vm1["key_name"] == {"get_param": "key_name"}
    assert vm1["tags"] == ["multihome-heat:mixed"]
    vm2 = res["server_vm2"]["properties"]
    assert vm2["user_data"] == "#cloud-config\nruncmd: [[true]]\n"
    assert vm2["config_drive"] is False
    assert "key_name" not in vm2


def test_parameters_default_to_the_topology() -> None:
    """One parameter per distinct image, flavor, key pair and external network, defaulting
    to the topology's value and constrained to exist in the cloud."""
    doc = _mixed()
    params = {name: p["default"] for name, p in doc["parameters"].items()}
    assert params == {
        "image": "debian-12",
        "image_vm2": "rocky-9",
        "flavor": "m1.small",
        "key_name": "ops",
        "external_network": "public",
    }
    assert doc["resources"]["server_vm2"]["properties"]["image"] == {"get_param": "image_vm2"}
    constraints = {
        n: p["constraints"][0]["custom_constraint"] for n, p in doc["parameters"].items()
    }
    assert constraints["external_network"] == "neutron.network"
    assert constraints["key_name"] == "nova.keypair"


def test_nothing_carries_multihome_own_tag() -> None:
    """The stack's resources are Heat's: apply's tag and description marker appear nowhere,
    so `cloud apply` and `cloud destroy` never adopt or delete them."""
    topo = load_topology(SCENARIO4)
    text = render(topo)
    assert f"{topo.tag}]" not in text and f"- {topo.tag}\n" not in text
    assert "multihome-heat:scenario4" in text


def test_cli_prints_or_writes_the_template(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """stdout and -o FILE hold the same YAML, which parses back into the template."""
    code, out, err = run_cli(["cloud", "export", "--format", "heat", "-f", str(SCENARIO4)], capsys)
    assert code == 0, err
    assert out == render(load_topology(SCENARIO4))
    assert yaml.safe_load(out) == template(load_topology(SCENARIO4))
    target = tmp_path / "stack.yaml"
    args = ["cloud", "export", "--format", "heat", "-f", str(SCENARIO4), "-o", str(target)]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert target.read_text() == render(load_topology(SCENARIO4))
    assert out == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "terraform"], "no Terraform export"),
        (["--format", "heat", "-o", "/nonexistent-folder/stack.yaml"], "does not exist"),
    ],
)
def test_cli_refuses_bad_arguments(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An unknown format or an unwritable output: exit 2, a message, no file."""
    code, _out, err = run_cli(["cloud", "export", "-f", str(SCENARIO4), *args], capsys)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_cli_refuses_a_bad_topology(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A topology error is the loader's: file, key, fix; exit 2, nothing written."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(MIXED.replace("fixed_ip: 10.0.0.10", "fixed_ip: 10.9.9.9"))
    target = tmp_path / "stack.yaml"
    code, out, err = run_cli(
        ["cloud", "export", "--format", "heat", "-f", str(bad), "-o", str(target)], capsys
    )
    assert code == 2
    assert "bad.yaml" in err and "fixed_ip" in err and "10.9.9.9" in err
    assert not target.exists() and out == ""


def _heat_validate(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    """heat_server.py validate, with the Heat venv's Python (built once, cached)."""
    python = build_cached_venv(HEAT_LOCK, HEAT_CACHE, "heat-venv") / "bin/python"
    return subprocess.run(
        [str(python), str(HEAT_SERVER), "validate", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_heat_parser_accepts_every_example(tmp_path: Path) -> None:
    """Heat's own template parser (openstack-heat 27.0.1) reads each example's template and
    every resource's properties fit its type's schema (no unknown or missing property); the
    dual-stack example's IPv6 subnet modes, fixed IPs and ICMPv6 rules included."""
    # and without its ICMP rule, so that the ND/RA rules multihome adds are in the template
    no_icmp = tmp_path / "dual-stack-nd.yaml"
    no_icmp.write_text(
        DUAL_STACK.read_text().replace("      - {protocol: icmp, ethertype: [IPv4, IPv6]}\n", "")
    )
    assert load_topology(no_icmp).security_groups[0].nd_rules
    examples = [*sorted((REPO / "examples").glob("scenario*.yaml")), DUAL_STACK, no_icmp]
    targets = []
    for example in examples:
        targets.append(tmp_path / f"{example.stem}.heat.yaml")
        targets[-1].write_text(render(load_topology(example)))
    done = _heat_validate(targets)
    assert done.returncode == 0, done.stderr[-3000:]
    reports = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [r["template"] for r in reports] == [str(t) for t in targets]
    for example, report in zip(examples, reports, strict=True):
        resources = template(load_topology(example))["resources"]
        assert report["resources"] == {name: res["type"] for name, res in resources.items()}


def test_heat_parser_catches_a_bad_property(tmp_path: Path) -> None:
    """The parser check can fail: a misspelt property is refused by Heat's schema."""
    target = tmp_path / "stack.yaml"
    target.write_text(render(load_topology(SCENARIO4)).replace("fixed_ip_address", "fixed_ip"))
    done = _heat_validate([target])
    assert done.returncode != 0
    assert "Unknown Property fixed_ip" in done.stderr
