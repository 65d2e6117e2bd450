"""How RHEL reads multihome's ifcfg files, replayed with iproute2 in a namespace (there is no
RHEL userspace here: /work/shared/TESTING.md).

What this relies on, read in the sources (search/fetch of the public repositories):

* **initscripts' network-scripts** (fedora-sysv/initscripts): ``ifup-eth`` brings the
  addresses up (dhclient for ``BOOTPROTO=dhcp``), runs ``ifup-ipv6``, whose last step is
  ``ipv6_wait_tentative $DEVICE`` (every global IPv6 address past DAD), then ``ifup-post``,
  which runs ``ifup-routes ${REALDEVICE} ${DEVNAME}`` (``DEVNAME``: the ifcfg file's name
  without ``ifcfg-``, here ``multihome-eth1``). ``ifup-routes`` reads ``route-$1``,
  ``route6-$1``, then ``route-$2``, ``route6-$2``; a file without ``ADDRESSn=`` lines is the
  "older format": ``handle_ip_file`` runs ``/sbin/ip $proto route add $line`` for every line
  not matching ``^[[:space:]]*(\\#.*)?$`` (``$proto`` is ``-6`` for a ``route6-`` file), and
  ``ip $proto route replace $line`` when the add fails. Then ``rule-$1``, ``rule6-$1``,
  ``rule-$2``, ``rule6-$2`` the same way with ``ip rule add``. network-scripts never read
  ``ROUTING_RULE_N=`` or ``ROUTING_RULE6_N=``: under the legacy ``network`` service only
  ``rule-``/``rule6-`` files give rules.
* **NetworkManager's ifcfg-rh plugin** (NetworkManager/NetworkManager,
  ``src/core/settings/plugins/ifcfg-rh/nms-ifcfg-rh-reader.c``): the ``route6-`` file of an
  ifcfg file (``utils_get_route6_path``: the same suffix) is read by
  ``read_route_file(AF_INET6, ...)``; ``parse_route_line`` splits each line on blanks exactly
  as initscripts' ``ip route add $line`` does ("initscripts read the legacy route file
  line-by-line and use it as `ip route add $line`") into ``ipv6.routes`` with ``via``,
  ``dev``, ``metric``, ``table``. ``read_routing_rules_parse`` takes every ``ROUTING_RULE_``
  and ``ROUTING_RULE6_`` key in numbered order (``svGetKeysSorted``), each parsed by
  ``nm_ip_routing_rule_from_string`` with the family of its key (``ROUTING_RULE6_``:
  ``AF_INET6``), and ignores them all when a ``rule-`` or ``rule6-`` file exists ("Policy
  routing rules (ROUTING_RULE*) settings are ignored"), which multihome therefore never
  writes. NetworkManager installs a rule that several profiles carry once. Before 1.22
  (commit c167e0140b, "allow configuring default-routes as manual, static routes"),
  ``parse_route_line`` refused a default route in these files ("ignoring manual default
  route"): the replay stands for NetworkManager 1.22 and later (RHEL 8.2+, RHEL 9).

So the route files replayed here are what both read, and the rules are what
NetworkManager's ifcfg-rh reads (the renderer's target, RHEL 8/9).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import PurePosixPath

from persist_util import run

SCRIPTS = PurePosixPath("/etc/sysconfig/network-scripts")
#: ifup-routes' ``MATCH``: blank lines and comments are skipped.
_SKIP = re.compile(r"^[ \t]*(#.*)?$")
_RULE_KEY = re.compile(r"^ROUTING_RULE(6?)_([0-9]+)$")


def ifcfg_values(text: str) -> dict[str, str]:
    """An ifcfg file's ``KEY=value`` pairs (shell-quoted values unquoted)."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values[key] = shlex.split(value)[0] if value else ""
    return values


def route_lines(files: Mapping[PurePosixPath, str], device: str) -> list[tuple[str, str]]:
    """``(family option, line)`` in the order ifup-routes adds them for ``device`` and its
    ifcfg file ``ifcfg-multihome-<device>``: route-, route6- of the device, then of the name."""
    found = []
    for stem in dict.fromkeys((device, f"multihome-{device}")):
        for prefix, family in (("route", "-4"), ("route6", "-6")):
            text = files.get(SCRIPTS / f"{prefix}-{stem}")
            if text is None:
                continue
            assert "ADDRESS0=" not in text, "the older (ip) format is what multihome writes"
            found += [(family, line) for line in text.splitlines() if not _SKIP.match(line)]
    return found


def rule_files(files: Mapping[PurePosixPath, str]) -> list[PurePosixPath]:
    """``rule-``/``rule6-`` files: with one, ifcfg-rh ignores every ROUTING_RULE key."""
    return [p for p in files if p.parent == SCRIPTS and p.name.startswith(("rule-", "rule6-"))]


def routing_rules(ifcfg_text: str) -> list[tuple[str, str]]:
    """``(family option, rule)`` of the ROUTING_RULE_N / ROUTING_RULE6_N keys, in numbered
    order, as ifcfg-rh reads them."""
    keyed = []
    for key, value in ifcfg_values(ifcfg_text).items():
        match = _RULE_KEY.match(key)
        if match:
            keyed.append((int(match[2]), key, "-6" if match[1] else "-4", value))
    return [(family, value) for _, _, family, value in sorted(keyed)]


def replay_routes(ns: str, lines: list[tuple[str, str]]) -> None:
    """``ip route add $line`` per line (split on blanks, as the shell does), ``replace``
    when the add fails: handle_ip_file's way."""
    for family, line in lines:
        if run("ip", "-n", ns, family, "route", "add", *line.split(), check=False).returncode:
            run("ip", "-n", ns, family, "route", "replace", *line.split())


def replay_rules(ns: str, rules: list[tuple[str, str]], installed: set[tuple[str, str]]) -> None:
    """``ip rule add`` per rule not yet ``installed`` (a rule several profiles carry is
    installed once); ``installed`` is updated."""
    for family, rule in rules:
        if (family, rule) not in installed:
            installed.add((family, rule))
            run("ip", "-n", ns, family, "rule", "add", *rule.split())
