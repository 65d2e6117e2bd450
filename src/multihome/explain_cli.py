"""``multihome explain``: how the kernel routes one flow, rule by rule, and whether the
kernel agrees (the I/O around the pure :mod:`multihome.explain`)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from multihome.errors import ExitCode, InputError

if TYPE_CHECKING:
    from multihome.backend import Lookup
    from multihome.backend.netlink import NetlinkBackend
    from multihome.config import Config
    from multihome.explain import Explainer, Explanation, Flow, TableLookup
    from multihome.model import HostState, IPAddress, Route, Rule

#: The per-interface IPv4 settings route decisions depend on beyond what the state carries.
ROUTE_KNOBS = ("forwarding", "rp_filter", "accept_local", "src_valid_mark", "bc_forwarding")
#: The same for IPv6 (forwarding; use_tempaddr for source selection).
ROUTE_KNOBS6 = ("forwarding", "use_tempaddr")
#: "The internet" for ``multihome explain ADDRESS``: the lab's internet host (TEST-NET-2), and
#: for an IPv6 ADDRESS the configuration's ``probe6`` default (documentation prefix).
DEFAULT_DESTINATION = ipaddress.IPv4Address("198.51.100.10")
DEFAULT_DESTINATION6 = ipaddress.IPv6Address("2001:db8:ffff::10")
PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1}
#: Who installs routes and rules with each protocol number (rtnetlink.h, rt_protos).
OWNERS = {
    2: "kernel",
    3: "boot (ip without proto, ifupdown)",
    4: "static (ip, networkd, NetworkManager)",
    9: "router advertisement",
    16: "dhcp (dhclient, networkd, NetworkManager)",
    11: "zebra",
    12: "bird",
    18: "keepalived",
    42: "babel",
    186: "bgp",
    188: "ospf",
}

EPILOG = """\b
Examples:
  multihome explain 192.168.0.112
      replies from 192.168.0.112 to the internet (198.51.100.10)
  multihome explain --from 192.168.0.112 --to 169.254.169.254
  multihome explain --to 8.8.8.8 --oif eth1          like `ping -I eth1 8.8.8.8`
  multihome explain --from 203.0.113.9 --to 192.168.0.112 --iif eth1 --proto tcp --dport 22
      a packet arriving on eth1
  multihome explain --from 10.0.0.5 --to 1.1.1.1 --mark 0x10 --json
  multihome explain 2001:db8:1::12
      replies from an IPv6 address to 2001:db8:ffff::10
  multihome explain --to fe80::1 --oif eth1          a link-local peer on eth1
  multihome explain 192.168.0.112 --dot | dot -Tsvg > path.svg
\b
Exit status: 0 explain and the kernel agree, 1 they disagree (a bug in multihome: please
report it with the --json output), 2 bad input.
"""


def read_route_sysctls(ifnames: list[str], proc_sys: Path = Path("/proc/sys")) -> dict[str, str]:
    """``net.ipv4.conf.{all,IF}.{forwarding,rp_filter,...}`` and
    ``net.ipv6.conf.{all,IF}.{forwarding,use_tempaddr}`` of this namespace."""
    values: dict[str, str] = {}
    for family, knobs in (("ipv4", ROUTE_KNOBS), ("ipv6", ROUTE_KNOBS6)):
        for ifname in ["all", *ifnames]:
            for knob in knobs:
                path = proc_sys / "net" / family / "conf" / ifname.replace(".", "/") / knob
                try:
                    values[f"net.{family}.conf.{ifname}.{knob}"] = path.read_text().strip()
                except OSError:
                    continue
    return values


def ask_kernel(backend: NetlinkBackend, flow: Flow, *, uid_given: bool = True) -> Lookup:
    """The kernel's answer for ``flow`` (RTM_GETROUTE with every field of the flow; the uid
    only when given, else the kernel takes the caller's). A received packet (``iif``) has no
    socket: uid 0, as ``ip6_route_input`` looks it up (RTM_GETROUTE would take the given uid
    for IPv6, or none at all; IPv4's input path ignores it)."""
    if flow.iif is not None:
        uid: int | None = 0
    else:
        uid = flow.uid if uid_given else None
    return backend.route_get(
        flow.dst,
        flow.src,
        oif=flow.oif,
        iif=flow.iif,
        mark=flow.mark,
        ipproto=flow.ipproto,
        sport=flow.sport,
        dport=flow.dport,
        uid=uid,
    )


def owner_of(item: Rule | Route, config: Config) -> str:
    """Who made a rule or route: multihome (its protocol in its band or tables), the tool
    behind a well-known protocol number, or another tool."""
    from multihome.model import PROTO_MULTIHOME, Rule
    from multihome.policy import is_owned_route, is_owned_rule, is_persisted_rule

    if isinstance(item, Rule):
        if is_owned_rule(item, config):
            return "multihome"
        if is_persisted_rule(item, config):
            return "multihome (persisted)"
    elif is_owned_route(item, config):
        return "multihome"
    if item.proto == PROTO_MULTIHOME:
        return "another tool (multihome's protocol outside its band)"
    return OWNERS.get(item.proto, f"another tool (protocol {item.proto})")


def decisive(
    state: HostState,
    src: IPAddress,
    dst: IPAddress,
    config: Config,
    explainer: Explainer | None = None,
) -> str | None:
    """The rule (and route) that decides the path from ``src`` to ``dst``, with owners, as a
    sentence for findings; None when no rule decides (nothing matched) or the two addresses
    are of different families. ``explainer``: one of ``state``, to share its indexes among
    many findings."""
    from multihome.explain import Explainer, Flow

    if src.version != dst.version:
        return None
    walk = explainer if explainer is not None else Explainer(state)
    result = walk(Flow(dst=dst, src=src))
    if result.rule is None:
        return None
    text = f"decided by rule `{result.rule.describe()}` [{owner_of(result.rule, config)}]"
    if result.route is not None:
        text += f", route `{result.route.describe()}` [{owner_of(result.route, config)}]"
    return text + f"; `multihome explain {src}` shows every step"


@dataclass(frozen=True)
class Verdict:
    """The kernel's answer and whether explain's matches it."""

    kernel: Lookup
    source: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    agrees: bool

    def describe(self) -> str:
        if self.kernel.error is not None:
            return f"error: {_errno_text(self.kernel.error)}"
        return _result_text(self.kernel.ifname, self.kernel.gateway, self.source)


def compare(explanation: Explanation, kernel: Lookup) -> Verdict:
    """Whether explain's device, gateway and source (or error) are the kernel's."""
    flow = explanation.flow
    # A given source is the packet's (IPv6 reports the route's own choice beside it).
    source = flow.src or kernel.prefsrc if kernel.error is None else None
    if kernel.error is not None or explanation.error is not None:
        agrees = kernel.error == explanation.error
    else:  # a multipath route: the kernel's answer is one of the choices
        agrees = explanation.allows(kernel.ifname, kernel.gateway, source)
    return Verdict(kernel, source, agrees)


def _errno_text(code: int) -> str:
    from multihome.explain import ERROR_NAMES

    return f"{ERROR_NAMES.get(code, os.strerror(code))} ({os.strerror(code)})"


def _result_text(ifname: str | None, gateway: Any, src: Any) -> str:
    parts = [f"dev {ifname}"]
    if gateway is not None:
        parts.append(f"via {gateway}")
    parts.append(f"src {src if src is not None else '(none)'}")
    return " ".join(parts)


def _parse_address(value: str | None, option: str) -> IPAddress | None:
    if value is None:
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise InputError(
            f"{option} {value!r} is not an IP address; give one such as 192.168.0.112 "
            "or 2001:db8:1::12"
        ) from None


def build_flow(
    address: str | None,
    src: str | None,
    dst: str | None,
    iif: str | None,
    oif: str | None,
    mark: str | None,
    proto: str | None,
    dport: int | None,
    sport: int | None,
    uid: int | None,
) -> Flow:
    """The flow the options describe; :class:`InputError` names the option at fault."""
    from multihome.explain import Flow

    if address is not None and src is not None:
        raise InputError(
            f"both ADDRESS {address} and --from {src} given; ADDRESS means "
            "--from ADDRESS --to 198.51.100.10, so give one of them"
        )
    source = _parse_address(address, "ADDRESS") or _parse_address(src, "--from")
    target = _parse_address(dst, "--to")
    if target is None:
        if address is None:
            raise InputError(
                "no destination: give --to DST, or an ADDRESS to explain its "
                "replies to the internet"
            )
        assert source is not None
        target = DEFAULT_DESTINATION if source.version == 4 else DEFAULT_DESTINATION6
    if source is not None and source.version != target.version:
        raise InputError(
            f"--from {source} and --to {target} are of different families; give two IPv4 "
            "or two IPv6 addresses"
        )
    if iif is not None and oif is not None:
        raise InputError(
            "--iif and --oif exclude each other: --iif is a packet received on "
            "a port, --oif one sent by a socket bound to a port"
        )
    if (dport is not None or sport is not None) and proto is None:
        raise InputError("--dport/--sport need --proto tcp or --proto udp")
    value = 0
    if mark is not None:
        try:
            value = int(mark, 0)
        except ValueError:
            raise InputError(f"--mark {mark!r} is not a number; give it as 16 or 0x10") from None
        if not 0 <= value <= 0xFFFFFFFF:
            raise InputError(f"--mark {mark} is out of range: 0 to 0xffffffff")
    return Flow(
        dst=target,
        src=source,
        iif=iif,
        oif=oif,
        mark=value,
        ipproto=PROTOCOLS[proto or "udp"],
        sport=sport or 0,
        dport=dport or 0,
        uid=os.getuid() if uid is None else uid,
    )


@click.command(epilog=EPILOG)
@click.argument("address", required=False, metavar="[ADDRESS]")
@click.option("--from", "src", metavar="SRC", help="Source address (default: the kernel's choice).")
@click.option("--to", "dst", metavar="DST", help="Destination address.")
@click.option("--iif", metavar="IF", help="A packet received on IF (forwarded or delivered).")
@click.option("--oif", metavar="IF", help="A socket bound to IF (SO_BINDTODEVICE, ping -I).")
@click.option("--mark", metavar="N", help="Firewall mark (16 or 0x10).")
@click.option(
    "--proto",
    type=click.Choice(sorted(PROTOCOLS)),
    default=None,
    help="IP protocol [default: udp, as `ip route get` asks].",
)
@click.option("--dport", type=click.IntRange(0, 65535), default=None, help="Destination port.")
@click.option("--sport", type=click.IntRange(0, 65535), default=None, help="Source port.")
@click.option(
    "--uid",
    type=click.IntRange(0, 0xFFFFFFFE),
    default=None,
    help="The socket's user id [default: yours].",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--dot",
    "as_dot",
    is_flag=True,
    help="A picture of the routing (Graphviz dot) with this flow's path in red.",
)
@click.pass_obj
def explain(
    obj: Any,
    address: str | None,
    src: str | None,
    dst: str | None,
    iif: str | None,
    oif: str | None,
    mark: str | None,
    proto: str | None,
    dport: int | None,
    sport: int | None,
    uid: int | None,
    as_json: bool,
    as_dot: bool,
) -> None:
    """Explain a routing decision: every rule the kernel examines for the flow, each table
    looked up, the route chosen and why the others lost, who owns each of them, and the
    result (device, gateway, source), checked against the kernel's own answer.

    ADDRESS alone explains the replies from that address to the internet
    (--from ADDRESS --to 198.51.100.10).
    """
    from multihome.backend.netlink import NetlinkBackend
    from multihome.explain import explain as walk

    flow = build_flow(address, src, dst, iif, oif, mark, proto, dport, sport, uid)
    config = obj.config()
    backend = NetlinkBackend()
    try:
        state = backend.read()
        for name, option in ((flow.iif, "--iif"), (flow.oif, "--oif")):
            if name is not None and state.link(name) is None:
                raise InputError(f"{option} {name}: no such interface here; `ip link` lists them")
        sysctls = read_route_sysctls([link.name for link in state.links])
        explanation = walk(state, flow, sysctls)
        kernel = ask_kernel(backend, flow, uid_given=uid is not None)
    finally:
        backend.close()
    verdict = compare(explanation, kernel)
    if as_dot:
        from multihome.picture import routing_dot

        click.echo(routing_dot(state, config, explanation), nl=False)
    elif as_json:
        from multihome.files import json_output

        click.echo(json_output(_json(explanation, verdict, config)), nl=False)
    else:
        for line in render(explanation, verdict, state, config):
            click.echo(line)
    if not verdict.agrees:
        raise click.exceptions.Exit(ExitCode.FAILURE)


# -- output -------------------------------------------------------------------------------------
def _flow_text(flow: Flow) -> str:
    from multihome.model import IPPROTO_NAMES

    where = (
        f"received on {flow.iif}"
        if flow.iif
        else f"sent by a socket bound to {flow.oif}"
        if flow.oif
        else "sent by this host"
    )
    parts = [
        f"{flow.src or '(source not chosen)'} -> {flow.dst}",
        where,
        IPPROTO_NAMES.get(flow.ipproto, str(flow.ipproto)),
    ]
    if flow.sport or flow.dport:
        parts.append(f"ports {flow.sport} -> {flow.dport}")
    parts.append(f"mark {flow.mark:#x}")
    if flow.iif is None:
        parts.append(f"uid {flow.uid}")
    return ", ".join(parts)


def render(
    explanation: Explanation, verdict: Verdict, state: HostState, config: Config
) -> list[str]:
    """The human explanation: the flow, each rule and table, the result, the kernel's word."""
    del state  # kept for table names from rt_tables (not read yet: numbers are exact)
    names: dict[int, str] = {}
    lines = [
        f"Flow: {_flow_text(explanation.flow)}",
        "",
        "Rules, in the order the kernel examines them:",
    ]
    width = max((len(s.rule.describe(names)) for s in explanation.steps), default=0)
    for step in explanation.steps:
        mark = "->" if step.outcome == "route" else "ok" if step.matched else "  "
        text = step.rule.describe(names).ljust(width)
        lines.append(f"  {mark} {text}  [{owner_of(step.rule, config)}]")
        lines.append(f"       {step.reason}" + ("" if step.matched else " (no match)"))
        if step.lookup is not None:
            lines += _lookup_lines(step.lookup, names, config)
    lines.append("")
    if explanation.error is not None:
        lines.append(f"Result: error: {_errno_text(explanation.error)}")
    elif explanation.choices:
        lines.append(f"Result: {explanation.kind}, the kernel's choice among:")
        lines += [f"  {_result_text(c.ifname, c.gateway, c.src)}" for c in explanation.choices]
    else:
        lines.append(
            f"Result: {explanation.kind} "
            + _result_text(explanation.ifname, explanation.gateway, explanation.src)
        )
    if explanation.rule is not None:
        lines.append(
            f"  decided by rule {explanation.rule.priority} [{owner_of(explanation.rule, config)}]"
        )
    lines += [f"  {note}" for note in explanation.notes]
    lines.append("")
    if verdict.agrees:
        lines.append(f"Kernel (RTM_GETROUTE): {verdict.describe()} -- agrees")
    else:
        lines += [
            f"Kernel (RTM_GETROUTE): {verdict.describe()}",
            "DISAGREEMENT: the kernel routes this flow differently from multihome's "
            "explanation. This is a bug in multihome: please report it with the output of "
            "the same command with --json.",
        ]
    return lines


def _lookup_lines(lookup: TableLookup, names: dict[int, str], config: Config) -> list[str]:
    from multihome.model import table_label

    label = table_label(lookup.table, names)
    if not lookup.exists:
        return [f"       table {label}: does not exist (no routes)"]
    if lookup.route is None:
        lines = [f"       table {label}: no route holds the destination"]
    else:
        verdict = (
            "error route" if lookup.error is not None else "throw" if lookup.throw else "chosen"
        )
        lines = [
            f"       table {label}: {verdict}: {lookup.route.describe(names)} "
            f"[{owner_of(lookup.route, config)}]"
        ]
    lines += [
        f"         lost: {route.describe(names)} [{owner_of(route, config)}]: {why}"
        for route, why in lookup.losers
    ]
    return lines


def _json(explanation: Explanation, verdict: Verdict, config: Config) -> dict[str, Any]:
    data = explanation.to_json()
    for step, item in zip(explanation.steps, data["steps"], strict=True):
        item["owner"] = owner_of(step.rule, config)
        if step.lookup is not None and step.lookup.route is not None:
            item["lookup"]["route"]["owner"] = owner_of(step.lookup.route, config)
            for (route, _why), loser in zip(
                step.lookup.losers, item["lookup"]["losers"], strict=True
            ):
                loser["owner"] = owner_of(route, config)
    kernel = verdict.kernel
    data["kernel"] = {
        "dev": kernel.ifname,
        "gateway": None if kernel.gateway is None else str(kernel.gateway),
        "src": None if verdict.source is None else str(verdict.source),
        "table": kernel.table,
        "error": None if kernel.error is None else os.strerror(kernel.error),
    }
    data["agrees"] = verdict.agrees
    return data


__all__ = [
    "DEFAULT_DESTINATION",
    "ask_kernel",
    "compare",
    "decisive",
    "explain",
    "owner_of",
    "read_route_sysctls",
]
