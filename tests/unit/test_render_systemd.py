"""render/systemd.py: the ``multihome@.service`` template, one enabled instance per port,
the udev rule that starts an instance for a port that appears, and the networkd setting
that keeps networkd from deleting what the unit makes (only where networkd runs)."""

from __future__ import annotations

import configparser
from dataclasses import replace

from multihome.render import RenderInput
from multihome.render.systemd import (
    NETWORKD_CONF_PATH,
    UDEV_RULE_PATH,
    UNIT_PATH,
    WANTS_DIR,
    render,
)


def test_an_enabled_instance_per_port(howto_input: RenderInput) -> None:
    """Each port's instance is a symlink to the template in multi-user.target.wants."""
    files = render(howto_input)
    links = {p.name: s for p, s in files.items() if s.symlink}
    assert sorted(links) == ["multihome@eth0.service", "multihome@eth1.service"]
    assert {(str(p.parent), s.content) for p, s in files.items() if s.symlink} == {
        (str(WANTS_DIR), "../multihome@.service")
    }


def test_the_unit_applies_the_port_with_the_installed_program(howto_input: RenderInput) -> None:
    """The template runs the program the facts name, for its instance's port only, once."""
    facts = replace(howto_input.facts, program="/opt/mh/bin/multihome")
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.read_string(render(replace(howto_input, facts=facts))[UNIT_PATH].content)
    assert unit["Service"]["ExecStart"] == "/opt/mh/bin/multihome apply --quiet --interface %I"
    assert unit["Service"]["Type"] == "oneshot"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_the_udev_rule_skips_loopback_and_plumbing(howto_input: RenderInput) -> None:
    """Network devices that appear start their instance, except lo and the plumbing the
    policy ignores (docker, veth, bridges...)."""
    rule = render(howto_input)[UDEV_RULE_PATH].content.splitlines()[-1]
    assert 'SUBSYSTEM=="net"' in rule and 'ACTION=="add"' in rule
    assert 'ENV{SYSTEMD_WANTS}+="multihome@$name.service"' in rule
    skipped = rule.split('KERNEL!="', 1)[1].split('"', 1)[0].split("|")
    assert "lo" in skipped and "docker*" in skipped and "veth*" in skipped


def test_networkd_is_told_to_keep_foreign_rules_only_where_it_runs(
    howto_input: RenderInput,
) -> None:
    """networkd deletes rules and routes it did not make when it reconfigures a link: where
    it runs, a drop-in turns that off; elsewhere no such file is written."""
    assert NETWORKD_CONF_PATH not in render(howto_input)
    facts = replace(howto_input.facts, has_networkd=True)
    conf = configparser.ConfigParser()
    conf.read_string(render(replace(howto_input, facts=facts))[NETWORKD_CONF_PATH].content)
    assert conf["Network"]["ManageForeignRoutingPolicyRules"] == "no"
    assert conf["Network"]["ManageForeignRoutes"] == "no"
