"""``multihome lab``: the built-in miniature OpenStack tenant network (verbs and output only)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

import click

from multihome.errors import ExitCode, InputError, LabError, LabExistsError, LabInterrupted
from multihome.files import json_output
from multihome.lab.probe import ProbeReport
from multihome.lab.probe import probe as run_probe
from multihome.lab.runtime import (
    MINIMAL_PROGRAMS,
    NETNS_RUN,
    PROBE_PROGRAMS,
    REQUIRED_PROGRAMS,
    Lab,
    find_programs,
    interruptible,
    require_pyroute2,
    require_root,
)
from multihome.lab.scenario import Outcome, Scenario, builtin_scenarios, load_scenario
from multihome.lab.topology import (
    DEFAULT_PREFIX,
    INTERNET_INTERFACE,
    INTERNET_INTERFACE6,
    ROUTER_SNAT,
    LabNames,
)
from multihome.options import format_option, output_format

Paint = Callable[..., str]
NAME_HELP = "Lab name: the prefix of every namespace and file it makes."
NODES = ("guest", "switch", "router", "dhcp", "internet")

LAB_EPILOG = """\b
Examples:
  sudo multihome lab demo                    the how-to's failure and the fix, dual-stack
  sudo multihome lab up --scenario 4         build the how-to's two-port VM
  sudo multihome lab up --scenario 6         the same VM dual-stack (IPv6 from radvd)
  sudo multihome lab probe                   what works and what does not
  sudo multihome lab exec -- ip route        a command inside the guest
  sudo multihome lab exec -- multihome apply the fix, inside the guest
  sudo multihome lab attach-port --floating-ip auto   hot-plug a port (then detach-port)
  sudo multihome lab flap eth1               link down and up; also: renew, expire
  sudo multihome lab down                    remove everything the lab made
  multihome lab list                         the scenarios
"""


@click.group(epilog=LAB_EPILOG)
def lab() -> None:
    """A miniature OpenStack tenant network in network namespaces.

    A guest VM (eth0, eth1, ...) gets its addresses and routes from a real DHCP server
    (dnsmasq, with option 121 like Neutron), behind a switch with Neutron-style port
    security (anti-spoofing, allowed address pairs, drop counters) and a tenant router
    with floating IPs (1:1 NAT) and SNAT, next to an "internet" host 198.51.100.10 whose
    HTTP service answers with the caller's address (like ifconfig.me). Each scenario of
    the how-to can be built, probed, fixed with `multihome apply` and removed. Addresses
    are documentation ranges that never leave the namespaces; the host is not touched.
    """


def _exit(code: int) -> NoReturn:
    """Exit with ``code``. (``click.exceptions.Exit`` is swallowed by ``cli.main`` in
    non-standalone mode, which would turn every failure into exit 0.)"""
    sys.exit(code)


def _open(name: str, needed: Sequence[str] = tuple(REQUIRED_PROGRAMS)) -> Lab:
    names = LabNames.checked(name)
    programs = find_programs(needed)
    if tuple(needed) != MINIMAL_PROGRAMS:  # removing or entering a lab needs ip only
        require_pyroute2()
    return Lab(names, programs)


def _paint(color: bool) -> Paint:
    def paint(text: str, **style: Any) -> str:
        return click.style(text, **style) if color else text

    return paint


def _color() -> bool:
    obj = click.get_current_context().find_root().obj
    return bool(getattr(obj, "color", sys.stdout.isatty()))


def _echo_json(data: Mapping[str, object]) -> None:
    click.echo(json_output(data), nl=False)


def _name_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--name",
        "name",
        default=DEFAULT_PREFIX,
        show_default=True,
        metavar="PREFIX",
        help=NAME_HELP,
    )(function)


@lab.command("list", epilog="\b\nExamples:\n  multihome lab list\n  multihome lab list --json")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(as_json: bool) -> None:
    """List the scenarios (one per section of the how-to)."""
    scenarios = builtin_scenarios()
    if as_json:
        _echo_json({"scenarios": [s.to_json() for s in scenarios]})
        return
    for scenario in scenarios:
        click.echo(f"{scenario.number}  {scenario.name:<26} {scenario.title}")


@lab.command(
    epilog="\b\nExamples:\n  sudo multihome lab up\n"
    "  sudo multihome lab up --scenario 3 --name lab3\n"
    "  sudo multihome lab up --scenario ./my-scenario.yaml"
)
@click.option(
    "--scenario",
    "wanted",
    default="4",
    show_default=True,
    metavar="N|NAME|FILE",
    help="Scenario number or name (multihome lab list), or a scenario file.",
)
@_name_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def up(wanted: str, name: str, as_json: bool) -> None:
    """Build a lab for a scenario (about a second); `lab down` removes it.

    If anything fails or the command is interrupted, everything built so far is removed.
    """
    scenario = load_scenario(wanted)
    lab_ = _open(name)
    result = None
    try:
        with interruptible():
            result = lab_.up(scenario)
    except LabInterrupted:
        if result is not None:  # the signal came just after `up` finished
            lab_.down()
        raise
    if as_json:
        _echo_json(
            {
                "prefix": name,
                "scenario": scenario.name,
                "number": scenario.number,
                "namespaces": dict(
                    zip(
                        ("guest", "switch", "router", "dhcp", "internet"),
                        lab_.names.namespaces,
                        strict=True,
                    )
                ),
                "seconds": round(result.seconds, 3),
            }
        )
        return
    paint = _paint(_color())
    click.echo(
        paint(
            f"lab {name!r} is up: scenario {scenario.number}, {scenario.title} "
            f"({result.seconds:.1f} s)",
            bold=True,
        )
    )
    click.echo(_indent(scenario.story))
    _print_topology(scenario, paint)
    click.echo(
        "\nnext:  multihome lab probe"
        + _name_arg(name)
        + "    multihome lab exec"
        + _name_arg(name)
        + " -- ip route"
        + "    multihome lab down"
        + _name_arg(name)
    )


def _name_arg(name: str) -> str:
    return "" if name == DEFAULT_PREFIX else f" --name {name}"


def _indent(text: str, by: str = "  ") -> str:
    return "\n".join(by + line for line in text.splitlines())


def _print_topology(scenario: Scenario, paint: Paint) -> None:
    host = f"{INTERNET_INTERFACE.ip}" + (f", {INTERNET_INTERFACE6.ip}" if scenario.ipv6 else "")
    router = "tenant router (radvd)" if scenario.ipv6 else "tenant router"
    click.echo(
        f"  internet host {host} (HTTP echo)  <-  {router}  <-  "
        "switch with port security  <-  guest:"
    )
    for port in scenario.ports:
        network = scenario.network(port.network)
        addresses = []
        for ip in port.ips:
            public = scenario.public_address(port, ip)
            addresses.append(f"{ip}" + (f" (public {public})" if public else ""))
        how6 = {
            "ipv6": "static",
            "ipv6_slaac": "SLAAC",
            "ipv6_dhcpv6-stateless": "SLAAC, DHCPv6 info",
        }.get(scenario.ipv6_type(port), "DHCPv6")
        addresses += [f"{ip} ({how6})" for ip in port.ips6]
        how = "DHCP" if scenario.port_dhcp(port) else "static" if port.ips else "no IPv4"
        gateway = f"gateway {network.gateway}" if network.gateway else "no gateway"
        pairs = (
            f", allowed address pairs {', '.join(map(str, port.allowed_address_pairs))}"
            if port.allowed_address_pairs
            else ""
        )
        click.echo(
            f"    {paint(port.name, bold=True)} {', '.join(addresses)}  [{network.name} "
            f"{network.cidr}{f' {network.cidr6}' if network.cidr6 else ''}, {gateway}, {how}, "
            f"metric {port.metric}{pairs}]"
        )


@lab.command(
    epilog="\b\nExamples:\n  sudo multihome lab down\n  sudo multihome lab down --name lab3"
)
@_name_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def down(name: str, as_json: bool) -> None:
    """Remove the lab: every namespace, every process in them, every file (idempotent)."""
    require_root()
    result = _open(name, MINIMAL_PROGRAMS).down()
    if as_json:
        _echo_json(
            {
                "prefix": name,
                "namespaces": list(result.namespaces),
                "processes": result.processes,
                "paths": list(result.paths),
                "seconds": round(result.seconds, 3),
            }
        )
        return
    if not result.anything:
        click.echo(f"no lab named {name!r}: nothing to remove")
        return
    click.echo(
        f"lab {name!r} removed: {len(result.namespaces)} namespace(s), "
        f"{result.processes} process(es), {len(result.paths)} folder(s) "
        f"({result.seconds:.2f} s)"
    )


@lab.command(
    epilog="\b\nExamples:\n  sudo multihome lab status\n"
    "  sudo multihome lab status --json | jq .guest.routes"
)
@_name_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(name: str, as_json: bool) -> None:
    """Show the lab's namespaces, daemons, and the guest's addresses, routes and rules.

    Exits 1 when the lab is not up or something of it is missing.
    """
    report = _open(name, MINIMAL_PROGRAMS).status()
    if as_json:
        _echo_json(report.to_json())
    else:
        paint = _paint(_color())
        if report.scenario is None and not any(report.namespaces.values()):
            click.echo(f"no lab named {name!r} is up (multihome lab up{_name_arg(name)})")
        else:
            click.echo(f"lab {name!r}: scenario {report.scenario or '(unknown)'}")
            for namespace, present in report.namespaces.items():
                click.echo(
                    f"  namespace {namespace:<24} "
                    + (paint("present", fg="green") if present else paint("MISSING", fg="red"))
                )
            for process in report.processes:
                state = (
                    paint("running", fg="green")
                    if process.alive
                    else paint("NOT RUNNING", fg="red")
                )
                click.echo(
                    f"  {process.name:<16} in {process.node:<9} pid {process.pid or '-':<8} {state}"
                )
            for title, lines in (
                ("guest addresses", report.guest_addresses),
                ("guest routes (main)", report.guest_routes),
                ("guest rules", report.guest_rules),
            ):
                click.echo(f"{title}:")
                for line in lines:
                    click.echo(f"  {line}")
            for problem in report.problems:
                click.echo(paint(f"problem: {problem}", fg="red"))
    if not report.up or report.problems:
        _exit(ExitCode.FAILURE)


@lab.command(
    epilog="\b\nExamples:\n  sudo multihome lab probe\n"
    "  sudo multihome lab probe --expect before\n"
    "  sudo multihome lab probe --json | jq .outcome\n"
    "  sudo multihome lab probe --format dot | dot -Tsvg > probe.svg"
)
@_name_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (--format json).")
@format_option("the lab's tenant network (Graphviz) with each probe's path, green or red.")
@click.option(
    "--expect",
    type=click.Choice(["before", "after"]),
    default=None,
    help="Compare with the scenario's expectation before/after `multihome apply`; "
    "exit 1 when they differ.",
)
def probe(name: str, as_json: bool, form: str, expect: str | None) -> None:
    """Probe the lab: what the internet reaches, what the guest egresses as, drops.

    From the internet host: ping and HTTP to every floating IP, HTTP (TCP, no ping: the
    kernel answers an ICMPv6 echo through the port it came in by) to every IPv6 address.
    From the guest: HTTP to the internet host (IPv4 and IPv6) bound to each source address
    (it answers with the public address it saw), and a ping to each port's gateway. From
    the switch: the packets port security dropped during the probe. Timeouts are 1-2 s; all
    probes run at once. `--format dot` draws the tenant network with each probe's path
    (green answered, red failed) and the drops as red edges from the port that sent them.
    """
    form = output_format(as_json, form)
    as_json = form == "json"
    require_root()
    lab_ = _open(name, PROBE_PROGRAMS)
    scenario = lab_.scenario()
    report = run_probe(lab_, scenario)
    problems = scenario.expect[expect].mismatches(report.outcome()) if expect else []
    if form == "dot":
        from multihome.lab.probe import probe_dot

        click.echo(probe_dot(report, scenario), nl=False)
    elif as_json:
        data = report.to_json()
        if expect:
            data["expect"] = {"phase": expect, "ok": not problems, "mismatches": problems}
        _echo_json(data)
    else:
        paint = _paint(_color())
        click.echo(
            f"lab {name!r}, scenario {scenario.number} ({scenario.name}), probed in "
            f"{report.seconds:.1f} s"
        )
        for line in probe_table(report, scenario, paint):
            click.echo(line)
        if expect:
            _print_verdict(expect, problems, paint)
    if problems:
        _exit(ExitCode.FAILURE)


def _print_verdict(phase: str, problems: Sequence[str], paint: Paint) -> None:
    if not problems:
        click.echo(paint(f"as the scenario expects {phase} `multihome apply`", fg="green"))
        return
    click.echo(paint(f"NOT as the scenario expects {phase} `multihome apply`:", fg="red"))
    for problem in problems:
        click.echo(paint(f"  - {problem}", fg="red"))


def _mark(ok: bool | None, paint: Paint, yes: str = "ok", no: str = "FAIL") -> str:
    if ok is None:  # not probed (no ping for IPv6)
        return f"{'-':<5}"
    return paint(f"{yes:<5}", fg="green") if ok else paint(f"{no:<5}", fg="red", bold=True)


def probe_table(report: ProbeReport, scenario: Scenario, paint: Paint) -> list[str]:
    """The probe as an aligned, colored table (IPv6 rows: HTTP only, no ping)."""
    width = max([15, *(len(str(ip)) for p in scenario.ports for ip in p.addresses)])
    host = f"  from the internet host {INTERNET_INTERFACE.ip}"
    if scenario.ipv6:
        host += f", {INTERNET_INTERFACE6.ip}"
    lines = [
        paint(host, bold=True) + " " * max(1, 2 * width + 18 - len(host)) + "ping  http  reached"
    ]
    for item in report.inbound:
        lines.append(
            f"    {item.public:<{width}} -> {item.port} {item.private:<{width}}     "
            f"{_mark(item.ping, paint)} {_mark(item.http, paint)} "
            f"{item.served_by or '-'}"
        )
    if not report.inbound:
        lines.append("    (no floating IP or public address)")
    lines.append(
        paint("  from the guest, bound to each source address", bold=True)
        + "               the internet saw"
    )
    own_public = {
        str(ip): str(scenario.public_address(p, ip) or ROUTER_SNAT)
        for p in scenario.ports
        for ip in p.addresses
    }
    for egress in report.egress:
        own = own_public.get(egress.source)
        if egress.seen is None:
            seen = paint(f"no answer ({egress.error})", fg="red", bold=True)
        elif egress.seen == own:
            seen = paint(f"{egress.seen}", fg="green") + "  (its own public address)"
        else:
            seen = paint(egress.seen, fg="yellow") + f"  (not its own {own})"
        lines.append(
            f"    {egress.port} {egress.source:<{width}}  curl --interface "
            f"{egress.source:<{width}}   {seen}"
        )
    lines.append(paint("  gateway ping from the guest", bold=True))
    for gateway in report.gateway:
        lines.append(
            f"    ping -I {gateway.port} {gateway.gateway:<15}{'':<23}{_mark(gateway.ok, paint)}"
        )
    lines.append(paint("  port security drops during this probe", bold=True) + " (since lab up)")
    ports = sorted({d.port for d in report.drops}, key=lambda p: int(p[3:]))
    for port in ports:
        cells = []
        for drop in (d for d in report.drops if d.port == port):
            text = f"{drop.reason} {drop.during} ({drop.total})"
            if drop.during:
                text = paint(text, fg="red", bold=True)
            elif drop.total:
                text = paint(text, fg="yellow")
            cells.append(text)
        lines.append(f"    {port}: " + "  ".join(cells))
    return lines


@lab.command(
    "exec",
    context_settings={"ignore_unknown_options": True},
    epilog="\b\nExamples:\n  sudo multihome lab exec -- ip route\n"
    "  sudo multihome lab exec -- multihome apply\n"
    "  sudo multihome lab exec --node internet -- curl -s 203.0.113.112\n"
    "  sudo multihome lab exec                 a shell in the guest",
)
@_name_option
@click.option(
    "--node",
    type=click.Choice(NODES),
    default="guest",
    show_default=True,
    help="Which namespace to run in.",
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def exec_(name: str, node: str, command: tuple[str, ...]) -> None:
    """Run COMMAND inside the guest (or another node); without one, a shell.

    The folder of this multihome is put first on PATH, so `multihome` inside is this one.
    The exit status is COMMAND's. The guest shares the host's files (only /etc/iproute2 is
    its own): `multihome persist` and `unpersist` inside refuse to run without a --root of
    the guest's own, since they would change the host's network configuration.
    """
    require_root()
    lab_ = _open(name, MINIMAL_PROGRAMS)
    namespace = lab_.names.namespace(node)
    if not (NETNS_RUN / namespace).exists():
        raise InputError(
            f"no lab named {name!r} is up (namespace {namespace} does not "
            f"exist); start one with `multihome lab up{_name_arg(name)}`"
        )
    argv = list(command) or [os.environ.get("SHELL", "/bin/sh")]
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["MULTIHOME_LAB"] = f"{name}:{node}"
    sys.stdout.flush()
    os.execve(lab_.programs["ip"], lab_.exec_argv(node, argv), env)


@lab.command(epilog="\b\nExamples:\n  sudo multihome lab demo\n  make demo")
@_name_option
@click.option(
    "--keep",
    is_flag=True,
    help="Leave the lab up afterwards (remove it with `multihome lab down`).",
)
def demo(name: str, keep: bool) -> None:
    """The how-to's scenario 4, dual-stack, its failure, and multihome's fix, end to end.

    Builds the lab (scenario 6: scenario 4 with an IPv6 subnet), probes it (the second
    port's floating IP and IPv6 address are dead, port security counts the dropped replies),
    runs `multihome apply` inside the guest, probes again (every floating IP and IPv6
    address answers, each source address leaves with its own public address), and removes
    the lab. Exits 1 when a probe does not show what the scenario expects.
    """
    paint = _paint(_color())
    scenario = load_scenario(str(DEMO_SCENARIO))
    lab_ = _open(name)
    click.echo(paint("multihome lab demo", bold=True) + f": {scenario.title}")
    click.echo(paint(f"  how-to section: {scenario.howto}", dim=True))
    click.echo(_indent(scenario.story))
    problems: list[str] = []
    if lab_.exists():  # checked before any signal handler: never remove someone else's lab
        raise LabExistsError(
            f"a lab named {name!r} exists; remove it with `multihome lab down"
            f"{_name_arg(name)}`, or give the demo another --name"
        )
    owned = False
    with interruptible():
        try:
            owned = True
            result = lab_.up(scenario)
            _step(1, f"built the lab in network namespaces ({result.seconds:.1f} s)", paint)
            _print_topology(scenario, paint)
            click.echo(
                "  the guest's routing table, from its DHCP client (the how-to's)"
                + (" and the router's advertisements:" if scenario.ipv6 else ":")
            )
            for route in lab_.status().guest_routes:
                if ":" not in route or route.startswith("default"):  # IPv6: the defaults
                    click.echo(paint(f"    {route}", fg="cyan"))
            problems += _demo_probe(2, "before", lab_, scenario, paint)
            _step(3, "multihome apply, inside the guest", paint)
            _demo_apply(lab_, paint)
            problems += _demo_probe(4, "after", lab_, scenario, paint)
        except LabExistsError:
            owned = False  # another command took the name meanwhile
            raise
        finally:
            gone = lab_.down() if owned and not keep else None
            if gone is not None and gone.anything:
                _step(
                    5,
                    f"removed the lab ({len(gone.namespaces)} namespaces, "
                    f"{gone.processes} processes, {gone.seconds:.2f} s)",
                    paint,
                )
    if problems:
        click.echo(paint("demo: the probes did NOT show what the scenario expects:", fg="red"))
        for problem in problems:
            click.echo(paint(f"  - {problem}", fg="red"))
        _exit(ExitCode.FAILURE)
    named = _name_arg(name)
    click.echo(
        paint(
            "Every port works through its own floating IP, IPv6 address and gateway. Try it "
            f"yourself: multihome lab up{named}; multihome lab probe{named}; multihome lab "
            f"exec{named} -- multihome apply; multihome lab down{named}",
            bold=True,
        )
    )
    if keep:
        click.echo(f"the lab is still up: multihome lab down{_name_arg(name)}")


#: The demo's scenario: the how-to's scenario 4, dual-stack.
DEMO_SCENARIO = 6


def _step(number: int, text: str, paint: Paint) -> None:
    click.echo(paint(f"\n{number}. {text}", bold=True))


def _demo_probe(number: int, phase: str, lab_: Lab, scenario: Scenario, paint: Paint) -> list[str]:
    _step(number, f"probe {phase} the fix", paint)
    report = run_probe(lab_, scenario)
    for line in probe_table(report, scenario, paint):
        click.echo(line)
    outcome = report.outcome()
    problems = scenario.expect[phase].mismatches(outcome)
    click.echo(_explain(phase, scenario, outcome, report, paint))
    return [f"{phase}: {problem}" for problem in problems]


def _explain(
    phase: str, scenario: Scenario, outcome: Outcome, report: ProbeReport, paint: Paint
) -> str:
    dead = [public for public, ok in outcome.reachable.items() if not ok]
    drops = sum(d.during for d in report.drops if d.reason in ("ip", "ip6"))
    if dead and phase == "before":
        ports = ", ".join(sorted({i.port for i in report.inbound if not i.ok}))
        routed = [p for p in scenario.ports if scenario.network(p.network).gateway is not None]
        primary = min(routed, key=lambda p: p.metric).name if routed else "the first port"
        return paint(
            f"  => {', '.join(dead)} unreachable: the replies for {ports} leave through "
            f"{primary} (the lowest-metric default route) with {ports}'s address, and "
            f"port security dropped {drops} such packet(s) - the how-to's failure.",
            fg="red",
            bold=True,
        )
    if dead:
        return paint(f"  => still unreachable: {', '.join(dead)}", fg="red", bold=True)
    ipv6 = " and IPv6 address" if scenario.ipv6 else ""
    return paint(
        f"  => every floating IP{ipv6} answers, each source address leaves with its own "
        f"public address, {drops} spoofed packet(s) dropped.",
        fg="green",
        bold=True,
    )


def _demo_apply(lab_: Lab, paint: Paint) -> None:
    argv = lab_.exec_argv("guest", [sys.executable, "-m", "multihome", "apply"])
    click.echo(paint(f"  $ ip netns exec {lab_.names.guest} multihome apply", dim=True))
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    colors = {"+": "green", "-": "red", "~": "yellow"}
    for line in (done.stdout + done.stderr).splitlines():
        click.echo(paint(f"    {line}", fg=colors.get(line[:1])))
    if done.returncode != 0:
        raise LabError(f"`multihome apply` inside the guest failed with exit {done.returncode}")


# -- events of the running guest ---------------------------------------------------------
HOT_PROGRAMS = ("ip", "nft", "dnsmasq")
LEASE_PROGRAMS = ("ip", "dhclient", "dnsmasq")


@lab.command(
    "attach-port",
    epilog="\b\nExamples:\n  sudo multihome lab attach-port --floating-ip auto\n"
    "  sudo multihome lab attach-port --ip 192.168.0.120 --floating-ip 203.0.113.120\n"
    "  sudo multihome lab attach-port --no-dhcp     the address only in network_data.json\n"
    "  sudo multihome lab attach-port --ip 192.168.0.120 --ip 2001:db8:3::78   (scenario 8)\n"
    "  sudo multihome lab attach-port --ip 2001:db8:3::79   an IPv6-only port (scenario 8)\n"
    "  sudo multihome lab exec -- ip link           the new NIC, down and unconfigured",
)
@_name_option
@click.option(
    "--network",
    "network",
    default=None,
    metavar="NET",
    help="The scenario network to attach to [default: eth0's].",
)
@click.option(
    "--ip",
    "--fixed-ip",
    "ips",
    multiple=True,
    metavar="ADDR",
    help="The port's fixed IP, once per family (IPv4, IPv6 on a DHCPv6 subnet) [default: the "
    "first free IPv4 address from .10 on, and the network's IPv6 address for the port]; an "
    "IPv6 one alone makes an IPv6-only port.",
)
@click.option(
    "--floating-ip",
    "floating_ip",
    default=None,
    metavar="FIP|auto",
    help="Give the port a floating IP from 203.0.113.0/24 (auto: one is chosen).",
)
@click.option(
    "--no-dhcp",
    "no_dhcp",
    is_flag=True,
    help="No DHCP for this port: its addresses are only in network_data.json (type ipv4, "
    "and ipv6 on a DHCPv6 subnet), like a port on a network with DHCP disabled.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def attach_port(
    name: str,
    network: str | None,
    ips: tuple[str, ...],
    floating_ip: str | None,
    no_dhcp: bool,
    as_json: bool,
) -> None:
    """Attach a new port to the running guest, like `openstack server add port`.

    The cloud's side first: the port's security chain and drop counters on the switch, its
    floating IP on the router, its DHCP host entry (dnsmasq restarts), its entry in the
    network_data.json that 169.254.169.254 serves; then the NIC: the next free ethN
    appears in the guest, down and unconfigured, as a hot-plugged NIC does. Nothing in the
    guest configures it: that is what `multihome agent` is for. The config drive is not
    changed (Nova writes it at boot). On any failure or interruption it is all undone.
    """
    from multihome.lab.hotplug import PortRequest, split_ips
    from multihome.lab.hotplug import attach_port as attach

    ip, ip6 = split_ips(ips)
    require_root()
    lab_ = _open(name, HOT_PROGRAMS)
    request = PortRequest(
        network=network, ip=ip, ip6=ip6, floating_ip=floating_ip, dhcp=not no_dhcp
    )
    with interruptible("the port is not attached (every step was undone)", late=False):
        port = attach(lab_, request)
    if as_json:
        _echo_json({"prefix": name, "port": port.to_json()})
        return
    fips = ", ".join(f"floating IP {f}" for f in port.floating_ips.values()) or "no floating IP"
    how = "DHCP" if port.dhcp else "no DHCP: static, from network_data.json only"
    addresses = ", ".join(map(str, port.addresses))
    click.echo(
        f"attached {port.name} to lab {name!r}: {addresses} on {port.network}, "
        f"MAC {port.mac}, {fips}, {how}"
    )
    click.echo(
        f"  the guest's {port.name} is down and unconfigured, as after a Nova interface "
        "attach; `multihome agent` in the guest brings it up and addresses it"
    )


@lab.command(
    "detach-port",
    epilog="\b\nExamples:\n  sudo multihome lab detach-port eth2\n"
    "  sudo multihome lab detach-port eth1 --name lab3",
)
@_name_option
@click.argument("ifname", metavar="IF")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def detach_port(name: str, ifname: str, as_json: bool) -> None:
    """Detach port IF from the running guest (any port, also one of the scenario's).

    The NIC goes first (the lab's DHCP client for it stops), then the port's security
    chain and counters, its floating IP, its DHCP host entry and its network_data.json
    entry.
    """
    from multihome.lab.hotplug import detach_port as detach

    require_root()
    lab_ = _open(name, HOT_PROGRAMS)
    with interruptible("the port may be half removed: run the same command again", late=False):
        port = detach(lab_, ifname)
    if as_json:
        _echo_json({"prefix": name, "port": port.to_json()})
        return
    fips = "".join(f", floating IP {f}" for f in port.floating_ips.values())
    click.echo(
        f"detached {port.name} ({', '.join(map(str, port.addresses))}{fips}) from lab "
        f"{name!r}: NIC, port security, "
        "DHCP host entry and metadata entry removed"
    )


@lab.command(
    epilog="\b\nExamples:\n  sudo multihome lab flap eth1\n"
    "  sudo multihome lab flap eth1 --down-for 3"
)
@_name_option
@click.argument("ifname", metavar="IF")
@click.option(
    "--down-for",
    "down_for",
    type=click.FloatRange(0, 60),
    default=0.5,
    show_default=True,
    metavar="SECONDS",
    help="How long the link stays down.",
)
def flap(name: str, ifname: str, down_for: float) -> None:
    """Set the guest's port IF down and up again (a link flap).

    The kernel flushes every route through IF while it is down (the port's table's too),
    while the rules stay: the state `multihome agent` must repair.
    """
    from multihome.lab.hotplug import flap as do_flap

    require_root()
    lab_ = _open(name, MINIMAL_PROGRAMS)
    port = do_flap(lab_, ifname, down_for)
    click.echo(f"{port.name} of lab {name!r}: down, and up again after {down_for:g} s")


@lab.command(
    epilog="\b\nExamples:\n  sudo multihome lab renew eth1\n"
    "  sudo multihome lab renew eth1 --router 192.168.0.254\n"
    "  sudo multihome lab renew eth1 --router 192.168.0.1    back to the gateway"
)
@_name_option
@click.argument("ifname", metavar="IF")
@click.option(
    "--router",
    "router",
    default=None,
    metavar="ADDR",
    help="From now on, DHCP hands IF this router (the tenant router answers on it too); "
    "the network's gateway restores the normal one.",
)
def renew(name: str, ifname: str, router: str | None) -> None:
    """Make the guest's DHCP client of IF renew its lease.

    The lab's ISC dhclient for IF is restarted with its lease file: it asks for the same
    lease again (INIT-REBOOT) and its script re-installs the lease's routes in main,
    the default route included, as a DHCP client does on every renewal. Only for the
    clients the lab started at `up` (a hot-plugged port's client is the guest's own).
    """
    from multihome.lab.hotplug import renew as do_renew

    require_root()
    lab_ = _open(name, LEASE_PROGRAMS)
    done = do_renew(lab_, ifname, router)
    click.echo(
        f"{done.port.name} of lab {name!r} renewed its lease in {done.seconds:.2f} s "
        f"({done.port.ips[0]}, router {done.router or 'none'})"
    )


@lab.command(
    epilog="\b\nExamples:\n  sudo multihome lab expire eth1\n  sudo multihome lab renew eth1"
)
@_name_option
@click.argument("ifname", metavar="IF")
def expire(name: str, ifname: str) -> None:
    """The DHCP lease of IF is lost: its client stops and its address goes.

    The lab's dhclient for IF is stopped without a release, and its script runs as at the
    lease's expiry (reason EXPIRE), which removes the address and with it every route
    through it. `multihome lab renew IF` starts the client again.
    """
    from multihome.lab.hotplug import expire as do_expire

    require_root()
    lab_ = _open(name, LEASE_PROGRAMS)
    port = do_expire(lab_, ifname)
    click.echo(
        f"{port.name} of lab {name!r} lost its lease: DHCP client stopped, {port.ips[0]} "
        f"removed (multihome lab renew {port.name}{_name_arg(name)} gets it back)"
    )
