"""The event fuzzer's lab: scenario 4 fixed by `multihome apply`, `multihome agent` running
in the guest, the events a cloud VM sees, and the invariant, checked with the kernel itself.

One :class:`EventLab` is one running lab. Its event methods (``flap``, ``renew``,
``dhcp_restore``, ``attach``, ...) are what the state machine's rules and the regression
tests call; each one is recorded in ``steps`` as the Python line that replays it, so a
failure prints a sequence that can be pasted into ``test_regressions.py`` as it is.

The invariant (:meth:`EventLab.check`) reads only ``ip -j rule``, ``ip -j route show table
all``, ``ip -j route get`` and ``ip -j addr`` in the guest, never multihome's code, and
compares them with the test's own model of the lab (:class:`PortModel`): which port has
which address and which gateway, which foreign rules and routes the test added.

(A uniquely named module, so that it does not clash with other areas' test helpers.)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The live-lab tests' tools (tests/labhot/labhot_util.py), shared rather than copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "labhot"))
import pytest
from labhot_util import LiveLab, force_remove, missing_programs

__all__ = [
    "OFF_SUBNET",
    "EventLab",
    "PortModel",
    "skip_unless_able",
]

OFF_SUBNET = "198.51.100.10"
"""An off-subnet destination (the lab's internet host)."""
METADATA = "169.254.169.254"
DHCP_SERVER = "192.168.0.100"
NETWORK_GATEWAY = "192.168.0.1"
OTHER_ROUTER = "192.168.0.254"
PROTO_MULTIHOME = ("222", "multihome")
MAX_PORTS = 4
MIN_PORTS = 1
"""Detach only while more ports than this remain."""
QUIET = 0.8
"""Seconds the guest's kernel state and the agent's state file must stay unchanged."""
QUIET_AFTER_START = 3.0
"""The same after the agent (re)started: a DHCP client it starts again asks for its lease
after a second or two (INIT-REBOOT), with nothing changing meanwhile."""
SETTLE_BOUND = 20.0
"""Seconds within which the agent must have settled after an event."""


def skip_unless_able() -> None:
    """Skip unless root with the lab's programs (`make deps` installs them)."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    missing = missing_programs()
    if missing:
        pytest.skip(f"missing programs {missing}; run `make deps`")


@dataclass
class PortModel:
    """What the test knows about one guest port, independently of multihome."""

    name: str
    ip: str
    gateway: str
    metric: int
    public: str | None
    dhcp: bool
    """Addressed by DHCP (else static, from the metadata service)."""
    lab_client: bool
    """The lab's own dhclient runs for it (``lab renew`` and ``lab expire`` act on it)."""


def _scenario4() -> dict[str, PortModel]:
    """Scenario 4's two ports (docs/multihome-lab.8.md), as the test expects them."""
    return {
        "eth0": PortModel(
            "eth0",
            "192.168.0.107",
            NETWORK_GATEWAY,
            100,
            "203.0.113.107",
            dhcp=True,
            lab_client=True,
        ),
        "eth1": PortModel(
            "eth1",
            "192.168.0.112",
            NETWORK_GATEWAY,
            101,
            "203.0.113.112",
            dhcp=True,
            lab_client=True,
        ),
    }


def rule_args(rule: dict[str, Any]) -> list[str]:
    """The ``ip rule`` selector and action of a rule as ``ip -j rule`` shows it."""
    args = ["priority", str(rule["priority"])]
    if rule.get("src", "all") != "all":
        args += ["from", f"{rule['src']}/{rule.get('srclen', 32)}"]
    if "dst" in rule:
        args += ["to", f"{rule['dst']}/{rule.get('dstlen', 32)}"]
    for key in ("iif", "oif", "fwmark"):
        if key in rule:
            args += [key, str(rule[key])]
    args += ["lookup", str(rule["table"])]
    if "suppress_prefixlen" in rule:
        args += ["suppress_prefixlength", str(rule["suppress_prefixlen"])]
    return args


def canonical(entry: dict[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True)


def owned(entry: dict[str, Any]) -> bool:
    return str(entry.get("protocol")) in PROTO_MULTIHOME


@dataclass
class EventLab:
    """A running lab with the agent in its guest, the test's model of it, and the steps."""

    live: LiveLab
    ports: dict[str, PortModel] = field(default_factory=_scenario4)
    foreign_rules: list[dict[str, Any]] = field(default_factory=list)
    foreign_routes: list[tuple[str, str]] = field(default_factory=list)
    """(table, destination) of each blackhole route the "foreign tool" added."""
    detached: dict[str, str] = field(default_factory=dict)
    """ifname -> address of ports detached (and not attached again)."""
    steps: list[str] = field(default_factory=list)
    quiet: float = QUIET
    """The quiet period the next ``settle`` waits for."""

    # -- life cycle ----------------------------------------------------------------------
    @classmethod
    def start(cls, prefix: str = "mhfz") -> EventLab:
        """Scenario 4 up, `multihome apply` in the guest, `multihome agent` running."""
        from labhot_util import new_name

        name = new_name().replace("mhhot", prefix)
        tmp = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        lab = cls(LiveLab(name, tmp))
        try:
            lab.live.ok("up", "--scenario", "4")
            applied = lab.live.cli("exec", "--", "multihome", "--root", str(tmp / "root"), "apply")
            assert applied.returncode == 0, applied.stdout + applied.stderr
            lab.live.start_agent()
            lab.settle()
        except BaseException:
            lab.close()
            raise
        return lab

    def close(self) -> None:
        """Stop the agent, remove the lab by its name and the test's folder."""
        try:
            self.live.stop_agent()
        finally:
            force_remove(self.live.name)
            shutil.rmtree(self.live.tmp, ignore_errors=True)

    def _step(self, line: str) -> None:
        self.steps.append(line)

    # -- kernel access (ip, never multihome) ---------------------------------------------
    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["ip", "-n", self.live.guest, *args], capture_output=True, text=True, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"ip {' '.join(args)}: {done.stderr.strip()}")
        return done

    def ip_batch(self, lines: list[str]) -> None:
        """Several ``ip`` commands in one process (as fast as the kernel takes them)."""
        done = subprocess.run(
            ["ip", "-4", "-n", self.live.guest, "-batch", "-"],
            input="\n".join(lines) + "\n",
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"ip -batch {lines}: {done.stderr.strip()}"

    def rules(self) -> list[dict[str, Any]]:
        return self.live.rules()

    def routes(self, table: str = "all") -> list[dict[str, Any]]:
        """The routes of ``table`` (none when the kernel has no such table)."""
        done = self.ip("-j", "-4", "route", "show", "table", table, check=False)
        if done.returncode != 0 or not done.stdout.strip():
            return []
        return list(json.loads(done.stdout))

    def addresses(self) -> dict[str, list[dict[str, Any]]]:
        """ifname -> its IPv4 addresses (``local``, ``prefixlen``, ``metric``)."""
        found: dict[str, list[dict[str, Any]]] = {}
        for link in self.live.ip_json("-4", "addr"):
            found[link["ifname"]] = [
                {k: a[k] for k in ("local", "prefixlen", "metric") if k in a}
                for a in link.get("addr_info", [])
            ]
        return found

    def links(self) -> dict[str, str]:
        return {link["ifname"]: link.get("operstate", "") for link in self.live.ip_json("link")}

    def route_get(self, dst: str, *selector: str) -> dict[str, Any] | str:
        """``ip -j route get DST SELECTOR``: the kernel's choice, or its error text."""
        done = self.ip("-j", "route", "get", dst, *selector, check=False)
        if done.returncode != 0:
            return done.stderr.strip() or f"exit {done.returncode}"
        return dict(json.loads(done.stdout)[0])

    def table_of(self, ifname: str) -> str:
        """The table multihome gave ``ifname``: the one its owned ``oif`` rule looks up."""
        for rule in self.rules():
            if rule.get("oif") == ifname and owned(rule):
                return str(rule["table"])
        raise AssertionError(f"no multihome oif rule for {ifname}: {self.rules()}")

    # -- events --------------------------------------------------------------------------
    def flap(self, port: str, down_for: float = 0.3) -> None:
        """The link goes down and up (`lab flap`): the kernel flushes its routes."""
        self._step(f"lab.flap({port!r}, down_for={down_for})")
        self.live.ok("flap", port, "--down-for", str(down_for))

    def double_flap(self, port: str) -> None:
        """Down, up, down, up, back to back in one process (a bouncing link)."""
        self._step(f"lab.double_flap({port!r})")
        self.ip_batch([f"link set dev {port} {s}" for s in ("down", "up", "down", "up")])

    def renew(self, port: str, router: str | None = None) -> None:
        """The lab's DHCP client renews (`lab renew`): every route of the lease comes back
        into main; with ``router``, dnsmasq hands out that router from now on."""
        self._step(f"lab.renew({port!r}, router={router!r})")
        args = ["renew", port] + (["--router", router] if router else [])
        self.live.ok(*args)
        if router:
            self.ports[port].gateway = router

    def dhcp_restore(self, port: str, routes: tuple[str, ...]) -> None:
        """A DHCP client's script runs again but puts back only ``routes`` (some of
        ``default``, ``metadata``; none at all is a renewal that restores nothing), with the
        port's metric, as the lab's dhclient script writes them."""
        self._step(f"lab.dhcp_restore({port!r}, {routes!r})")
        model = self.ports[port]
        src = f"dev {port} proto dhcp src {model.ip} metric {model.metric}"
        lines = [f"addr replace {model.ip}/24 dev {port} metric {model.metric}"]
        if "default" in routes:
            lines.append(f"route replace default via {model.gateway} {src}")
        if "metadata" in routes:
            lines.append(f"route replace {METADATA} via {DHCP_SERVER} {src}")
        self.ip_batch(lines)

    def expire(self, port: str) -> None:
        """The lease is lost (`lab expire`): the address goes; the agent starts its own
        DHCP client after its grace period."""
        self._step(f"lab.expire({port!r})")
        self.live.ok("expire", port)
        self.ports[port].lab_client = False

    def readd_address(self, port: str) -> None:
        """The address is removed and added again, as it was (prefix and metric): the
        kernel drops every route that used it, in every table."""
        self._step(f"lab.readd_address({port!r})")
        lines = []
        for address in self.addresses().get(port, []):
            metric = f" metric {address['metric']}" if "metric" in address else ""
            spec = f"{address['local']}/{address['prefixlen']} dev {port}"
            lines += [f"addr del {spec}", f"addr add {spec}{metric}"]
        if lines:
            self.ip_batch(lines)

    def attach(self, dhcp: bool = True) -> str:
        """A port is hot-plugged with a floating IP (`lab attach-port`); the agent
        addresses it (DHCP, or static from the metadata service with ``dhcp=False``)."""
        self._step(f"lab.attach(dhcp={dhcp})")
        args = ["attach-port", "--floating-ip", "auto", "--json"] + ([] if dhcp else ["--no-dhcp"])
        port = json.loads(self.live.ok(*args))["port"]
        ip = port["ips"][0]
        self.ports[port["name"]] = PortModel(
            port["name"],
            ip,
            NETWORK_GATEWAY,
            int(port.get("metric", 0)),
            port["floating_ips"].get(ip),
            dhcp=dhcp,
            lab_client=False,
        )
        self.detached.pop(port["name"], None)
        return str(port["name"])

    def detach(self, port: str) -> None:
        """A port is detached (`lab detach-port`): the NIC goes."""
        self._step(f"lab.detach({port!r})")
        self.live.ok("detach-port", port)
        self.detached[port] = self.ports.pop(port).ip

    def flush_table(self, port: str) -> None:
        """An admin empties the port's table by hand (none: a single port has no table)."""
        self._step(f"lab.flush_table({port!r})")
        if any(r.get("oif") == port and owned(r) for r in self.rules()):
            self.ip("-4", "route", "flush", "table", self.table_of(port))

    def delete_rule(self, which: int) -> None:
        """An admin deletes one of multihome's rules by hand (``which`` picks it, modulo the
        number of owned rules, in ``ip rule`` order; none: a single port needs none)."""
        self._step(f"lab.delete_rule({which})")
        mine = [r for r in self.rules() if owned(r)]
        if mine:
            self.ip("-4", "rule", "del", *rule_args(mine[which % len(mine)]))

    def restart_agent(self, kill: bool = False, flap_while_down: str | None = None) -> None:
        """The agent stops (SIGTERM, or SIGKILL with ``kill``) and starts again; with
        ``flap_while_down``, that port flaps while no agent runs."""
        self._step(f"lab.restart_agent(kill={kill}, flap_while_down={flap_while_down!r})")
        agent = self.live.agent
        if agent is not None and agent.poll() is None:
            if kill:
                agent.send_signal(signal.SIGKILL)
                agent.wait(10)
            else:
                self.live.stop_agent()
        if flap_while_down:
            self.live.ok("flap", flap_while_down, "--down-for", "0.2")
        self.live.start_agent()
        self.quiet = QUIET_AFTER_START

    def foreign(self, priority: int, mark: int) -> None:
        """Another tool adds its own rule (``fwmark MARK`` at ``priority``, looking up its
        own table) and a blackhole route in that table, and one in main."""
        self._step(f"lab.foreign({priority}, {mark})")
        table = str(4000 + mark)
        self.ip(
            "-4", "rule", "add", "priority", str(priority), "fwmark", hex(mark), "lookup", table
        )
        self.ip("-4", "route", "add", "blackhole", f"10.99.{mark}.0/24", "table", table)
        self.ip("-4", "route", "add", "blackhole", f"10.98.{mark}.0/24", "proto", "static")
        self.foreign_rules.append(
            {"priority": priority, "src": "all", "fwmark": hex(mark), "table": table}
        )
        self.foreign_routes += [(table, f"10.99.{mark}.0/24"), ("main", f"10.98.{mark}.0/24")]

    # -- quiescence ----------------------------------------------------------------------
    def _view(self) -> tuple[str, str, str, str, bool]:
        """The guest's rules, routes, addresses and links, the agent's state file, and
        whether every port the model expects has its address."""
        addresses = self.addresses()
        state = ""
        with contextlib.suppress(OSError):
            state = (self.live.run_dir() / "agent.json").read_text()
        complete = all(
            any(a["local"] == p.ip for a in addresses.get(p.name, [])) for p in self.ports.values()
        )
        return (
            canonical({"r": self.rules()}),
            canonical({"r": self.routes()}),
            canonical(addresses) + canonical(self.links()),
            state,
            complete,
        )

    def settle(self) -> float:
        """Wait until the agent is done: every expected address present and the kernel's
        state and the agent's state file unchanged for QUIET seconds; the seconds it took.
        Fails when that does not happen within SETTLE_BOUND (an agent that never stops
        changing things, or a port never addressed, is a finding)."""
        start = time.monotonic()
        last = self._view()
        since = start
        while True:
            time.sleep(0.1)
            now = time.monotonic()
            view = self._view()
            if view != last:
                last, since = view, now
            elif view[-1] and now - since >= self.quiet:
                self.quiet = QUIET
                return now - start
            if now - start > SETTLE_BOUND:
                raise AssertionError(
                    f"not settled within {SETTLE_BOUND} s (every address present: {view[-1]})"
                    + self.evidence()
                )

    # -- the invariant ---------------------------------------------------------------------
    def problems(self) -> list[str]:
        """Every way the guest's kernel state breaks the invariant (empty: it holds)."""
        found: list[str] = []
        agent = self.live.agent
        if agent is None or agent.poll() is not None:
            found.append("the agent is not running")
        addresses = self.addresses()
        rules = self.rules()
        for port in self.ports.values():
            if not any(a["local"] == port.ip for a in addresses.get(port.name, [])):
                found.append(f"{port.name} lacks its address {port.ip}")
                continue
            found += self._egress(port)
        found += self._unbound()
        found += self._duplicates(rules)
        found += self._stale(rules)
        found += self._foreign(rules)
        return found

    def _egress(self, port: PortModel) -> list[str]:
        """Traffic from the port's address (and through its device) leaves the port,
        off-subnet through its own gateway."""
        found = []
        wanted: dict[str, str | None] = {OFF_SUBNET: port.gateway, port.gateway: None}
        # The metadata host through the port itself: a DHCP port's lease has the host
        # route; a static port's table gets it from another port's route in main
        # (test_regressions.py, test_static_port_metadata_leaves_its_own_port).
        wanted[METADATA] = "any"
        for dst, via in wanted.items():
            for selector in (("from", port.ip), ("oif", port.name)):
                got = self.route_get(dst, *selector)
                what = f"ip route get {dst} {' '.join(selector)}"
                if isinstance(got, str):
                    found.append(f"{what}: {got}")
                    continue
                if got.get("dev") != port.name:
                    found.append(f"{what}: leaves {got.get('dev')}, not {port.name}: {got}")
                elif via is None and "gateway" in got:
                    found.append(f"{what}: via {got['gateway']}, not on-link: {got}")
                elif via not in (None, "any") and got.get("gateway") != via:
                    found.append(f"{what}: via {got.get('gateway')}, not {via}: {got}")
        return found

    def _unbound(self) -> list[str]:
        """Traffic bound to no address reaches off-subnet through a port, with that port's
        own address as its source (else its replies come back to the wrong port)."""
        got = self.route_get(OFF_SUBNET)
        what = f"ip route get {OFF_SUBNET}"
        if isinstance(got, str):
            return [f"{what}: {got}"]
        port = self.ports.get(str(got.get("dev")))
        if port is None or got.get("prefsrc") != port.ip:
            return [f"{what}: source {got.get('prefsrc')} leaves {got.get('dev')}: {got}"]
        return []

    def _duplicates(self, rules: list[dict[str, Any]]) -> list[str]:
        """No rule twice (same selector and table, whatever the priority or protocol, one of
        them multihome's); no table of multihome's with two defaults or two ports' routes."""
        selectors = Counter(
            canonical({k: v for k, v in r.items() if k not in ("priority", "protocol")})
            for r in rules
        )
        found = [
            f"rule {rule_args(r)} is there {selectors[text]} times"
            for r in rules
            if owned(r)
            and selectors[text := canonical({k: v for k, v in r.items()
                                             if k not in ("priority", "protocol")})] > 1
        ]  # fmt: skip
        tables = {str(r["table"]) for r in rules if owned(r)} - {"main", "local", "default"}
        for table in sorted(tables):
            routes = self.routes(table)
            defaults = [r for r in routes if r.get("dst") == "default"]
            if len(defaults) > 1:
                found.append(f"table {table} has {len(defaults)} defaults: {defaults}")
            devs = {r.get("dev") for r in routes if "dev" in r}
            if len(devs) > 1:
                found.append(f"table {table} holds routes of several ports: {sorted(devs)}")
        return found

    def _stale(self, rules: list[dict[str, Any]]) -> list[str]:
        """No rule of multihome's names a detached port or its address (unless a port
        attached later took the name or the address again)."""
        gone = set(self.detached) | set(self.detached.values())
        gone -= set(self.ports) | {p.ip for p in self.ports.values()}
        return [
            f"multihome rule for a detached port is left: {rule}"
            for rule in rules
            if owned(rule) and gone & {rule.get("src"), rule.get("iif"), rule.get("oif")}
        ]

    def _foreign(self, rules: list[dict[str, Any]]) -> list[str]:
        found = []
        present = Counter(
            canonical({k: r[k] for k in ("priority", "src", "fwmark", "table") if k in r})
            for r in rules
            if "fwmark" in r
        )
        for rule in self.foreign_rules:
            if present[canonical(rule)] != 1:
                found.append(f"foreign rule {rule} is there {present[canonical(rule)]} times")
        for table, dst in self.foreign_routes:
            if not any(r.get("dst") == dst for r in self.routes(table)):
                found.append(f"foreign route {dst} in table {table} is gone")
        return found

    def check(self) -> None:
        """Settle, then assert the invariant (the message holds the evidence)."""
        self.settle()
        found = self.problems()
        assert not found, "invariant broken:\n  " + "\n  ".join(found) + self.evidence()

    def final_check(self) -> None:
        """The invariant, then the lab's probes: every floating IP answers, every address
        egresses as its own floating IP, every port pings its gateway."""
        self.check()
        probe = self.live.probe()
        found = [
            f"inbound {i['public']} ({i['port']}): {i}" for i in probe["inbound"] if not i["ok"]
        ]
        seen = probe["outcome"]["egress"]
        for port in self.ports.values():
            if port.public is not None and seen.get(port.ip) != port.public:
                found.append(f"{port.ip} egresses as {seen.get(port.ip)}, not {port.public}")
        found += [
            f"ping from {p} to its gateway fails"
            for p, ok in probe["outcome"]["gateway"].items()
            if not ok
        ]
        assert not found, "probes fail:\n  " + "\n  ".join(found) + self.evidence()

    def evidence(self) -> str:
        """The steps so far, the guest's rules and routes, and the agent log's tail."""
        rules = self.ip("-4", "rule", check=False).stdout
        routes = self.ip("-4", "route", "show", "table", "all", check=False).stdout
        routes = "\n".join(line for line in routes.splitlines() if "table local" not in line)
        log = "\n".join(self.live.agent_log().splitlines()[-25:])
        return (
            "\nsteps:\n    "
            + "\n    ".join(self.steps)
            + f"\nrules:\n{rules}routes:\n{routes}\nagent log (tail):\n{log}"
        )
