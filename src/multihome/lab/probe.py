"""``lab probe``: measure a running lab the way a user of the cloud would, with short timeouts.

* From the internet host: ``ping`` and HTTP to every public address (floating IP, or the
  address itself on an external network); for IPv6, HTTP (TCP) to every global address, no
  ping: the kernel sends an ICMPv6 echo reply out of the interface the request came in on,
  whatever the routing, so a ping would answer even where TCP replies are dropped.
* From the guest: HTTP to the internet host's echo service (IPv4 and IPv6), bound to each
  *source address* (``curl --interface <address>``; binding to the device passes even when
  broken), which answers with the public address it saw.
* From the guest: ``ping -I <port>`` to each port's gateway.
* From the switch: the port-security drop counters, before and after the probes.

All probes run at once (threads around subprocesses), so a probe takes about one timeout.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from multihome.lab import topology as topo
from multihome.lab.runtime import Lab
from multihome.lab.scenario import Outcome, Scenario
from multihome.picture import quote as _q

CONNECT_TIMEOUT = 1.5
MAX_TIME = 2.0
PING_WAIT = 1


@dataclass(frozen=True)
class Inbound:
    """Ping and HTTP from the internet host to one public address."""

    public: str
    private: str
    port: str
    ping: bool | None
    """None: not pinged (IPv6, see the module's text)."""
    http: bool
    served_by: str | None
    """The guest address the HTTP request reached (the echo's X-Local-Address)."""
    family: int = 4

    @property
    def ok(self) -> bool:
        return self.ping is not False and self.http


@dataclass(frozen=True)
class Egress:
    """HTTP from one guest source address to the internet host's echo service."""

    source: str
    port: str
    seen: str | None
    """The public address the internet host saw; None when no answer came."""
    error: str | None
    family: int = 4


@dataclass(frozen=True)
class GatewayPing:
    """``ping -I <port> <gateway>`` from the guest."""

    port: str
    gateway: str
    ok: bool


@dataclass(frozen=True)
class Drops:
    """One port-security counter: packets dropped during the probe, and in total."""

    port: str
    reason: str
    during: int
    total: int


@dataclass(frozen=True)
class ProbeReport:
    """Everything one probe found."""

    scenario: str
    inbound: tuple[Inbound, ...]
    egress: tuple[Egress, ...]
    gateway: tuple[GatewayPing, ...]
    drops: tuple[Drops, ...]
    seconds: float

    def outcome(self) -> Outcome:
        """The findings in the shape of a scenario's expectation."""
        return Outcome(
            reachable={i.public: i.ok for i in self.inbound},
            egress={e.source: e.seen for e in self.egress},
            gateway={g.port: g.ok for g in self.gateway},
            spoof_drops=any(d.during > 0 for d in self.drops if d.reason in ("ip", "ip6")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "seconds": round(self.seconds, 3),
            "inbound": [
                {
                    "family": i.family,
                    "public": i.public,
                    "private": i.private,
                    "port": i.port,
                    "ping": i.ping,
                    "http": i.http,
                    "served_by": i.served_by,
                    "ok": i.ok,
                }
                for i in self.inbound
            ],
            "egress": [
                {
                    "family": e.family,
                    "source": e.source,
                    "port": e.port,
                    "seen": e.seen,
                    "error": e.error,
                }
                for e in self.egress
            ],
            "gateway": [{"port": g.port, "gateway": g.gateway, "ok": g.ok} for g in self.gateway],
            "drops": [
                {"port": d.port, "reason": d.reason, "during": d.during, "total": d.total}
                for d in self.drops
            ],
            "outcome": self.outcome().to_json(),
        }


OK_EDGE = 'color="#2e8b57", fontcolor="#2e8b57"'
FAILED_EDGE = 'color="red", fontcolor="red", penwidth=2.5'
WIRE = 'color="#999999", arrowhead=none'


def probe_dot(report: ProbeReport, scenario: Scenario) -> str:
    """The lab's tenant network as a Graphviz picture with each probe's path: the internet
    host, the router with its floating IPs, each network's switch (port security), the DHCP
    and metadata host, the guest's ports with their addresses; the wires grey, each probe a
    green (answered) or red (failed) path, and the packets port security dropped during the
    probe as red edges from the port that sent them. Pure and deterministic."""
    inet = _q(f"internet {topo.INTERNET_INTERFACE.ip}")
    router = _q("router")
    lines = [
        "digraph lab {",
        "  rankdir=LR;",
        '  node [shape=box, fontname="monospace"];',
        '  edge [fontname="monospace", fontsize=10];',
        f"  label={_q(f'lab scenario {scenario.number} ({scenario.name}): probe paths')};",
        f"  {inet} [shape=ellipse];",
        f"  {router} [shape=box3d];",
        f"  {inet} -> {router} [{WIRE}];",
    ]
    for network in scenario.networks:
        switch = _q(f"switch {network.name} {network.cidr}")
        lines.append(f"  {switch} [shape=box, style=rounded];")
        if network.gateway is not None:
            lines.append(f"  {router} -> {switch} [label={_q(str(network.gateway))}, {WIRE}];")
        if network.dhcp and network.dhcp_server is not None:
            dhcp = _q(f"dhcp/metadata {network.dhcp_server}")
            lines.append(f"  {dhcp} [shape=cylinder];")
            lines.append(f"  {dhcp} -> {switch} [{WIRE}];")
    lines.append('  subgraph cluster_guest { label="guest";')
    for port in scenario.ports:
        lines.append(f"    {_q(port.name)} [shape=component];")
        lines += [f"    {_q(str(ip))} [shape=ellipse];" for ip in port.addresses]
    lines.append("  }")
    for port in scenario.ports:
        switch = _q(f"switch {port.network} {scenario.network(port.network).cidr}")
        lines.append(f"  {_q(port.name)} -> {switch} [{WIRE}];")
        lines += [f"  {_q(str(ip))} -> {_q(port.name)} [{WIRE}];" for ip in port.addresses]
    for item in report.inbound:
        style = OK_EDGE if item.ok else FAILED_EDGE
        what = f"http {'ok' if item.http else 'FAIL'}"
        if item.ping is not None:  # IPv6: not pinged
            what = f"ping {'ok' if item.ping else 'FAIL'}, {what}"
        lines.append(
            f"  {inet} -> {_q(item.private)} [label={_q(f'to {item.public}: {what}')}, {style}];"
        )
    for out in report.egress:
        owner = next((p for p in scenario.ports if p.name == out.port), None)
        wanted = (
            None
            if owner is None
            else scenario.public_address(owner, ipaddress.ip_address(out.source))
        )
        ok = out.seen is not None and (wanted is None or out.seen == str(wanted))
        seen = f"seen as {out.seen}" if out.seen is not None else out.error or "no answer"
        lines.append(
            f"  {_q(out.source)} -> {inet} [label={_q(f'egress {seen}')}, "
            f"{OK_EDGE if ok else FAILED_EDGE}, style=dashed];"
        )
    for ping in report.gateway:
        lines.append(
            f"  {_q(ping.port)} -> {router} [label={_q(f'ping -I {ping.port} {ping.gateway}')}, "
            f"{OK_EDGE if ping.ok else FAILED_EDGE}, style=dotted];"
        )
    wired = {
        p.name: _q(f"switch {p.network} {scenario.network(p.network).cidr}") for p in scenario.ports
    }
    for drop in report.drops:
        if drop.during > 0 and drop.port in wired:
            label = f"{drop.during} dropped ({drop.reason})"
            lines.append(
                f"  {_q(drop.port)} -> {wired[drop.port]} [label={_q(label)}, {FAILED_EDGE}];"
            )
    lines.append("}")
    return "\n".join(lines) + "\n"


def probe(lab: Lab, scenario: Scenario) -> ProbeReport:
    """Run every probe of ``scenario`` against the running ``lab``."""
    started = time.monotonic()
    before = read_counters(lab)
    with ThreadPoolExecutor(max_workers=16) as pool:
        inbound = [
            pool.submit(_inbound, lab, port.name, str(ip), str(public))
            for port in scenario.ports
            for ip in port.addresses
            if (public := scenario.public_address(port, ip)) is not None
        ]
        egress = [
            pool.submit(_egress, lab, port.name, str(ip))
            for port in scenario.ports
            for ip in port.addresses
            if scenario.network(port.network).gateway is not None
        ]
        gateway = [
            pool.submit(_gateway, lab, port.name, str(gw))
            for port in scenario.ports
            if (gw := scenario.network(port.network).gateway) is not None and port.ips
        ]
        results_in = tuple(f.result() for f in inbound)
        results_out = tuple(f.result() for f in egress)
        results_gw = tuple(f.result() for f in gateway)
    after = read_counters(lab)
    drops = tuple(
        Drops(port, reason, total - before.get((port, reason), 0), total)
        for (port, reason), total in sorted(after.items(), key=_counter_order)
    )
    return ProbeReport(
        scenario.name, results_in, results_out, results_gw, drops, time.monotonic() - started
    )


def _counter_order(item: tuple[tuple[str, str], int]) -> tuple[str, int]:
    (port, reason), _ = item
    return (port, topo.DROP_REASONS.index(reason) if reason in topo.DROP_REASONS else 99)


def _run(
    lab: Lab, node: str, command: Sequence[str], timeout: float
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            lab.exec_argv(node, command),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(list(command), 124, "", "timed out")


def _curl(lab: Lab, extra: Sequence[str], url: str) -> list[str]:
    return [
        lab.programs["curl"],
        "-sS",
        "-i",
        "--noproxy",
        "*",
        "--connect-timeout",
        str(CONNECT_TIMEOUT),
        "--max-time",
        str(MAX_TIME),
        *extra,
        url,
    ]


def _ping(lab: Lab, extra: Sequence[str], target: str) -> list[str]:
    return [
        lab.programs["ping"],
        "-n",
        "-q",
        "-c",
        "2",
        "-i",
        "0.2",
        "-W",
        str(PING_WAIT),
        *extra,
        target,
    ]


def _url(address: str) -> str:
    return f"http://[{address}]/" if ":" in address else f"http://{address}/"


def _inbound(lab: Lab, port: str, private: str, public: str) -> Inbound:
    family = 6 if ":" in public else 4
    with ThreadPoolExecutor(max_workers=1) as side:  # ping and HTTP at once
        pinging = (  # IPv6: TCP only (see the module's text)
            side.submit(_run, lab, "internet", _ping(lab, [], public), 5) if family == 4 else None
        )
        http = _run(lab, "internet", _curl(lab, [], _url(public)), timeout=5)
        ping = None if pinging is None else pinging.result().returncode == 0
    status, headers, _ = _parse_http(http.stdout) if http.returncode == 0 else (0, {}, "")
    return Inbound(
        public=public,
        private=private,
        port=port,
        ping=ping,
        http=status == 200,
        served_by=headers.get("x-local-address"),
        family=family,
    )


def _egress(lab: Lab, port: str, source: str) -> Egress:
    family = 6 if ":" in source else 4
    target = topo.INTERNET_INTERFACE6.ip if family == 6 else topo.INTERNET_INTERFACE.ip
    done = _run(lab, "guest", _curl(lab, ["--interface", source], _url(str(target))), timeout=5)
    if done.returncode != 0:
        return Egress(source, port, None, _curl_error(done), family)
    status, _, body = _parse_http(done.stdout)
    if status != 200:
        return Egress(source, port, None, f"HTTP {status}", family)
    return Egress(source, port, body.strip() or None, None, family)


def _curl_error(done: subprocess.CompletedProcess[str]) -> str:
    text = done.stderr.strip().splitlines()
    message = text[-1] if text else f"exit {done.returncode}"
    message = re.sub(r"^\(\d+\)\s*", "", message.removeprefix("curl: "))
    return message.split(" after ")[0]


def _gateway(lab: Lab, port: str, gateway: str) -> GatewayPing:
    done = _run(lab, "guest", _ping(lab, ["-I", port], gateway), timeout=5)
    return GatewayPing(port, gateway, done.returncode == 0)


def _parse_http(raw: str) -> tuple[int, dict[str, str], str]:
    head, _, body = raw.replace("\r\n", "\n").partition("\n\n")
    lines = head.splitlines()
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return 0, {}, ""
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def read_counters(lab: Lab) -> dict[tuple[str, str], int]:
    """(port, reason) -> packets dropped so far, from the switch's named counters."""
    done = _run(
        lab,
        "switch",
        [lab.programs["nft"], "-j", "list", "counters", "table", "bridge", topo.PORTSEC_TABLE],
        timeout=5,
    )
    if done.returncode != 0:
        return {}
    return parse_counters(done.stdout)


def parse_counters(text: str) -> dict[tuple[str, str], int]:
    """Parse ``nft -j list counters``: names are ``<port>_<reason>``."""
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    counters: dict[tuple[str, str], int] = {}
    for item in data.get("nftables", []):
        counter = item.get("counter") if isinstance(item, Mapping) else None
        if not counter:
            continue
        port, _, reason = str(counter.get("name", "")).rpartition("_")
        if port:
            counters[(port, reason)] = int(counter.get("packets", 0))
    return counters
