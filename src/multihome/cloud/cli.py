"""``multihome cloud``: provision multi-port VMs on OpenStack from one topology file."""

from __future__ import annotations

import functools
import ipaddress
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from multihome.errors import DetailedExitCode, InputError

if TYPE_CHECKING:
    from multihome.cloud.apply import PortResult
    from multihome.cloud.client import CallCounter, ComputeApi, NetworkApi
    from multihome.cloud.plan import Action, CloudPlan
    from multihome.cloud.topology import Topology

GROUP_EPILOG = """\b
Examples:
  multihome cloud validate -f examples/scenario4-two-ports-two-floating-ips.yaml
  multihome cloud plan -f examples/scenario4-two-ports-two-floating-ips.yaml
  multihome cloud apply -f topology.yaml --os-cloud mycloud
  multihome cloud destroy -f topology.yaml
  multihome cloud user-data -f topology.yaml > user-data.yaml
  multihome cloud export --format heat -f topology.yaml -o stack.yaml
  multihome cloud attach-port vm1 --network private --security-group ssh --floating-ip public
  multihome cloud allow-address-pairs vm1-eth0 192.168.0.112

\b
Credentials come the OpenStack way: --os-cloud NAME (an entry of clouds.yaml in
~/.config/openstack/ or /etc/openstack/), else OS_CLOUD, else the OS_* variables of an
openrc file. Secrets are never printed. Every resource multihome creates is tagged
multihome:<topology name>; resources without that tag are never changed or deleted.
"""

os_cloud_option = click.option(
    "--os-cloud",
    "os_cloud",
    metavar="NAME",
    envvar="OS_CLOUD",
    default=None,
    help="Cloud entry of clouds.yaml [default: $OS_CLOUD, else the OS_* variables].",
)
file_option = click.option(
    "-f",
    "--file",
    "path",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    metavar="TOPOLOGY.yaml",
    help="The topology file (see examples/).",
)
network_only_option = click.option(
    "--network-only",
    is_flag=True,
    help="Leave servers out: networks, security groups, routers, ports and floating IPs only.",
)


@click.group(epilog=GROUP_EPILOG)
def cloud() -> None:
    """Provision the OpenStack side of multi-port VMs from one topology file.

    Networks and subnets (with or without gateway and DHCP), security groups, routers, ports
    created ahead of their server, servers with a config drive and multihome's user-data,
    allowed address pairs and floating IPs: idempotently, tagged, and only what is ours.
    """


# -- plumbing (tests replace compute_api to drive servers through openstacksdk's fakes) ----


def network_api(conn: Any) -> NetworkApi:
    from multihome.cloud.client import NetworkApi

    return NetworkApi(conn.network)


def compute_api(conn: Any) -> ComputeApi | None:
    from multihome.cloud.client import ComputeApi, has_compute

    if not has_compute(conn):
        return None
    return ComputeApi(conn.compute, conn.image)


def _session(os_cloud: str | None) -> tuple[Any, CallCounter]:
    import logging

    from multihome.cloud.client import CallCounter, connect

    # keystoneauth and openstacksdk log tracebacks (with URLs) on failures; multihome reports
    # them itself, translated, and never logs a request that could carry a secret
    for name in ("keystoneauth", "keystoneauth1", "openstack", "stevedore"):
        logging.getLogger(name).addHandler(logging.NullHandler())
        logging.getLogger(name).propagate = False
    counter = CallCounter()
    return connect(os_cloud, counter), counter


F = TypeVar("F", bound=Callable[..., Any])


def _translated(func: F) -> F:
    """Turn an untranslated failure of openstacksdk/keystoneauth into a CloudError."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from multihome.cloud.apply import translate
        from multihome.cloud.plan import Action
        from multihome.errors import MultihomeError

        try:
            return func(*args, **kwargs)
        except (MultihomeError, click.exceptions.Exit, click.ClickException):
            raise
        except Exception as exc:
            if not type(exc).__module__.startswith(
                ("openstack", "keystoneauth1", "requests", "urllib3")
            ):
                raise
            raise translate(exc, Action("contact", "the", "cloud"), None, 0, 0) from exc

    return wrapper  # type: ignore[return-value]


def _load(path: Path) -> Topology:
    from multihome.cloud.topology import load_topology

    return load_topology(path)


def _check_user_data(topology: Topology) -> None:
    """Refuse (exit 2, nothing sent) user-data that holds a secret of the cloud credentials."""
    from multihome.cloud.secrets import check_user_data, known_secrets
    from multihome.cloud.userdata import for_server

    secrets = known_secrets()
    for index, server in enumerate(topology.servers):
        text = for_server(topology, server)
        problem = None if text is None else check_user_data(server.name, text, secrets)
        if problem is not None:
            error = InputError(f"{topology.source}: servers[{index}].user_data: {problem}")
            error.source = topology.source
            raise error


def _read(conn: Any, topology: Topology, network_only: bool) -> tuple[Any, Any, Any]:
    from multihome.cloud.apply import translate
    from multihome.cloud.client import read_state
    from multihome.cloud.plan import Action

    net = network_api(conn)
    compute = None if network_only or not topology.servers else compute_api(conn)
    try:
        state = read_state(net, compute, topology)
    except InputError:
        raise
    except Exception as exc:
        raise translate(exc, Action("read", "cloud", "state"), None, 0, 0) from exc
    if topology.servers and not network_only and compute is None:
        raise InputError(
            f"{topology.source}: declares servers but the cloud offers no "
            "compute endpoint; check the cloud entry, or pass --network-only to "
            "provision the network side alone"
        )
    return net, compute, state


def _warn(plan: CloudPlan) -> None:
    for warning in plan.warnings:
        click.echo(f"warning: {warning}", err=True)


def _color(line: str) -> str:
    if not sys.stdout.isatty():
        return line
    return click.style(line, fg={"+": "green", "-": "red", "~": "yellow"}.get(line[:1]))


# -- plan / apply / destroy ----------------------------------------------------------------


@cloud.command(
    epilog="\b\nExamples:\n  multihome cloud plan -f topology.yaml\n"
    "  multihome cloud plan -f topology.yaml --json | jq .changes\n"
    "  multihome cloud plan -f examples/dual-stack.yaml  # IPv6: routed, ND rules, no FIP"
)
@file_option
@os_cloud_option
@network_only_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_translated
def plan(path: Path, os_cloud: str | None, network_only: bool, as_json: bool) -> None:
    """Show what apply would create, change or leave (nothing is changed)."""
    from multihome.cloud.plan import make_plan
    from multihome.files import json_output

    topology = _load(path)
    conn, _counter = _session(os_cloud)
    _net, _compute, state = _read(conn, topology, network_only)
    the_plan = make_plan(topology, state, servers=not network_only)
    if as_json:
        click.echo(
            json_output(dict(the_plan.to_json(), topology=topology.name, tag=topology.tag)),
            nl=False,
        )
        return
    _warn(the_plan)
    for action in the_plan.kept:
        click.echo(action.line())
    for line in the_plan.lines():
        click.echo(_color(line))
    if the_plan.empty:
        click.echo(f"no changes: the cloud matches {path}")
    else:
        click.echo(f"{len(the_plan.actions)} change(s), {len(the_plan.kept)} unchanged")


def _progress(total: int) -> Any:
    count = {"n": 0}

    def report(action: Action, phase: str, seconds: float) -> None:
        if phase == "start":
            count["n"] += 1
            click.echo(f"[{count['n']}/{total}] {action.line()} ...", err=True, nl=False)
        else:
            click.echo(f" ok ({seconds:.2f}s)", err=True)

    return report


def _table(rows: tuple[PortResult, ...]) -> None:
    if not rows:
        return
    click.echo(f"{'SERVER':<20} {'PORT':<28} {'FIXED IP':<18} FLOATING IP")
    for row in rows:
        click.echo(
            f"{row.server or '-':<20} {row.port:<28} "
            f"{','.join(row.fixed_ips) or '-':<18} {row.floating_ip or '-'}"
        )


@cloud.command(
    epilog="\b\nExamples:\n  multihome cloud apply -f topology.yaml\n"
    "  multihome cloud apply -f topology.yaml --os-cloud mycloud --json\n"
    "  multihome cloud apply -f t.yaml --detailed-exit-codes  # 0 same, "
    "2 changed"
)
@file_option
@os_cloud_option
@network_only_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--detailed-exit-codes",
    is_flag=True,
    help="Exit 0 when nothing changed, 2 when something changed, 1 on any error.",
)
@_translated
def apply(
    path: Path, os_cloud: str | None, network_only: bool, as_json: bool, detailed_exit_codes: bool
) -> None:
    """Create what is missing, update what differs; print each port and its addresses.

    A second apply changes nothing. When a step fails, what was done stays (tagged) and the
    next apply completes the rest.
    """
    from multihome.cloud.apply import execute
    from multihome.cloud.plan import make_plan
    from multihome.files import json_output

    topology = _load(path)
    if not network_only:
        _check_user_data(topology)
    conn, counter = _session(os_cloud)
    net, compute, state = _read(conn, topology, network_only)
    the_plan = make_plan(topology, state, servers=not network_only)
    _warn(the_plan)
    result = execute(
        the_plan,
        state,
        net,
        compute,
        topology,
        progress=None if as_json else _progress(len(the_plan.actions)),
    )
    if as_json:
        click.echo(
            json_output(
                {
                    "topology": topology.name,
                    "changed": result.applied,
                    "api_calls": counter.count,
                    "ports": [r.to_json() for r in result.ports],
                }
            ),
            nl=False,
        )
    else:
        if the_plan.empty:
            click.echo(f"no changes: the cloud matches {path}")
        else:
            click.echo(f"applied {result.applied} change(s)")
        _table(result.ports)
        click.echo(f"({counter.count} API call(s))", err=True)
    if detailed_exit_codes and result.applied:
        raise click.exceptions.Exit(DetailedExitCode.CHANGED)


@cloud.command(
    epilog="\b\nExamples:\n"
    "  multihome cloud validate -f examples/scenario4-two-ports-two-floating-ips.yaml\n"
    "  multihome cloud validate -f topology.yaml --json | jq .references\n"
    "\b\nNo cloud is contacted and no credentials are read: exit 0 valid, 2 invalid (the "
    "error names the file, line, key and fix)."
)
@file_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def validate(path: Path, as_json: bool) -> None:
    """Check a topology file without a cloud: syntax, keys, names, addresses, references.

    Also lists what the file names without declaring it (external networks, subnets,
    security groups): `plan` and `apply` look those up in the cloud by name.
    """
    from multihome.files import json_output

    topology = _load(path)
    refs = topology.references()
    counts = topology.counts()
    if as_json:
        click.echo(
            json_output(
                {
                    "file": str(path),
                    "valid": True,
                    "topology": topology.name,
                    "tag": topology.tag,
                    "counts": counts,
                    "references": refs.to_json(),
                }
            ),
            nl=False,
        )
        return
    click.echo(f"{path}: valid topology {topology.name} (tag {topology.tag})")
    click.echo("  " + ", ".join(f"{kind.replace('_', ' ')}: {n}" for kind, n in counts.items()))
    for kind, names in refs.to_json().items():
        if names:
            click.echo(f"  from the cloud, by name: {kind.replace('_', ' ')} {', '.join(names)}")


@cloud.command(
    epilog="\b\nExamples:\n  multihome cloud destroy -f topology.yaml\n"
    "  multihome cloud destroy --name adhoc   # what attach-port created"
)
@click.option(
    "-f",
    "--file",
    "path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    metavar="TOPOLOGY.yaml",
    help="The topology file.",
)
@click.option(
    "--name",
    "name",
    default=None,
    metavar="NAME",
    help="The topology name instead of a file (tag multihome:NAME).",
)
@os_cloud_option
@click.option("--dry-run", is_flag=True, help="Only show what would be deleted.")
@_translated
def destroy(path: Path | None, name: str | None, os_cloud: str | None, dry_run: bool) -> None:
    """Delete what multihome created for a topology, in dependency order.

    Only resources tagged multihome:<name> are deleted; anything else, even with the same
    name, is left alone.
    """
    from multihome.cloud.apply import execute, translate
    from multihome.cloud.client import read_owned
    from multihome.cloud.plan import Action, destroy_plan
    from multihome.cloud.topology import TAG_PREFIX

    if (path is None) == (name is None):
        raise InputError("destroy: give either -f TOPOLOGY.yaml or --name NAME")
    topo_name = _load(path).name if path is not None else str(name)
    conn, counter = _session(os_cloud)
    net = network_api(conn)
    compute = compute_api(conn)
    try:
        state = read_owned(net, compute, f"{TAG_PREFIX}{topo_name}")
    except Exception as exc:
        raise translate(exc, Action("read", "cloud", "state"), None, 0, 0) from exc
    the_plan = destroy_plan(state)
    if the_plan.empty:
        click.echo(f"nothing to destroy: no resource is tagged {TAG_PREFIX}{topo_name}")
        return
    if dry_run:
        for line in the_plan.lines():
            click.echo(_color(line))
        return
    result = execute(the_plan, state, net, compute, None, progress=_progress(len(the_plan.actions)))
    click.echo(f"destroyed: {result.applied} step(s) for {TAG_PREFIX}{topo_name}")
    click.echo(f"({counter.count} API call(s))", err=True)


@cloud.command(
    "user-data",
    epilog="\b\nExamples:\n  multihome cloud user-data -f "
    "topology.yaml > user-data.yaml\n  openstack server create --user-data "
    "user-data.yaml ...",
)
@file_option
def user_data(path: Path) -> None:
    """Print cloud-config that installs multihome and runs apply and persist at first boot."""
    from multihome.cloud.userdata import render

    topology = _load(path)
    _check_user_data(topology)
    click.echo(render(topology), nl=False)


@cloud.command(
    epilog="\b\nExamples:\n  multihome cloud export --format heat -f topology.yaml -o stack.yaml\n"
    "  openstack stack create -t stack.yaml --parameter key_name=mykey scenario4\n"
    "  multihome cloud export --format heat -f topology.yaml -o stack.yaml && "
    "openstack stack update -t stack.yaml scenario4",
)
@file_option
@click.option(
    "--format",
    "fmt",
    metavar="heat",
    required=True,
    help="heat: a HOT template (OpenStack Heat). There is no Terraform export.",
)
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    metavar="FILE",
    help="Write the template to FILE [default: standard output].",
)
def export(path: Path, fmt: str, output: Path | None) -> None:
    """Print the topology as a template for another deployment engine (nothing is changed).

    The Heat template holds the resources apply would create (same attributes), with
    parameters for the image, flavor, key pair and external network. The stack's resources
    carry the tag multihome-heat:NAME, so apply and destroy never touch them: Heat owns them.
    """
    from multihome.cloud.heat import render

    if fmt != "heat":
        raise InputError(
            f"--format {fmt}: not an export format; use --format heat (a HOT template for "
            "OpenStack Heat; multihome provides no Terraform export, see docs/fleet.md)"
        )
    text = render(_load(path))
    if output is None:
        click.echo(text, nl=False)
        return
    from multihome.files import write_atomic

    if not output.parent.is_dir():
        raise InputError(
            f"-o {output}: folder {output.parent} does not exist; create it or write elsewhere"
        )
    try:
        write_atomic(output, text, durable=False)
    except OSError as exc:
        raise InputError(
            f"-o {output}: cannot write it ({exc.strerror or exc}); choose a writable place"
        ) from exc
    click.echo(f"wrote the {fmt} template of {path} to {output}", err=True)


# -- imperative shortcuts ------------------------------------------------------------------


@cloud.command(
    "attach-port",
    epilog="\b\nExamples:\n  multihome cloud attach-port vm1 "
    "--network private --security-group ssh --floating-ip public\n"
    "  multihome cloud attach-port vm1 --network private --subnet private-v4 "
    "--fixed-ip 192.168.0.112\n"
    "  multihome cloud attach-port vm1 --network private "
    "--fixed-ip 192.168.0.113 --fixed-ip 2001:db8:0:2::113\n"
    "  multihome cloud attach-port vm1 --network private "
    "--fixed-ip private-v6=2001:db8:0:2::114 --json   (an IPv6-only port)",
)
@click.argument("server")
@click.option("--network", required=True, help="Network of the new port (name).")
@click.option(
    "--subnet",
    "subnets",
    multiple=True,
    metavar="S",
    help="A subnet to take an address from (repeatable; Neutron chooses the address).",
)
@click.option(
    "--fixed-ip",
    "fixed_ips",
    multiple=True,
    metavar="[SUBNET=]IP",
    help="A fixed IP, once per family (IPv4, IPv6 on a DHCPv6-stateful subnet), or each "
    "with its subnet [default: an address on each subnet of the network, SLAAC ones too].",
)
@click.option(
    "--security-group",
    "security_groups",
    multiple=True,
    metavar="SG",
    help="Security group (repeatable) [default: the project's default].",
)
@click.option(
    "--floating-ip",
    "floating_ip",
    metavar="EXT",
    default=None,
    help="Associate a floating IP from this external network with the port's IPv4 address "
    "(IPv6 has none).",
)
@click.option(
    "--port-name",
    default=None,
    help="Name of the port [default: SERVER-portN, N = its number of ports + 1].",
)
@click.option(
    "--tag-as",
    "tag_as",
    default="adhoc",
    show_default=True,
    metavar="NAME",
    help="Tag the port and floating IP multihome:NAME (destroy --name NAME).",
)
@os_cloud_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_translated
def attach_port(
    server: str,
    network: str,
    subnets: tuple[str, ...],
    fixed_ips: tuple[str, ...],
    security_groups: tuple[str, ...],
    floating_ip: str | None,
    port_name: str | None,
    tag_as: str,
    os_cloud: str | None,
    as_json: bool,
) -> None:
    """Create a port, attach it to a running SERVER, give it a floating IP.

    On a dual-stack network the port gets an IPv4 and an IPv6 address (without --fixed-ip
    and --subnet: one on each subnet, as Neutron does); the floating IP maps to the IPv4
    one, the IPv6 one is reached directly. Then it says what to run in the guest so that
    the new port routes correctly.
    """
    from multihome.cloud.shortcuts import attach_port as run
    from multihome.cloud.shortcuts import parse_fixed_ips
    from multihome.files import json_output

    requests = parse_fixed_ips(fixed_ips, subnets)
    only_ipv6 = all(r.subnet is None and r.address and r.address.version == 6 for r in requests)
    if floating_ip is not None and requests and only_ipv6:
        raise InputError(
            f"{' '.join(r.text for r in requests)} with --floating-ip {floating_ip}: the port "
            "would have only IPv6 addresses, and Neutron's floating IPs are IPv4 only; "
            "drop --floating-ip (the IPv6 address is reached directly through the router, "
            "once a security group admits it) or add an IPv4 --fixed-ip"
        )
    conn, counter = _session(os_cloud)
    compute = compute_api(conn)
    if compute is None:
        raise InputError(
            "attach-port: the cloud offers no compute endpoint; check the cloud "
            "entry (--os-cloud / OS_CLOUD)"
        )
    result = run(
        network_api(conn),
        compute,
        server=server,
        network=network,
        fixed_ips=requests,
        security_groups=security_groups,
        floating_ip=floating_ip,
        port_name=port_name,
        tag_name=tag_as,
    )
    if as_json:
        click.echo(json_output(result.to_json()), nl=False)
        return
    _table((result.row,))
    for note in result.notes:
        click.echo(f"\n{note}.")
    modes = {a.ipv6_address_mode for a in result.addresses if a.family == 6}
    click.echo(
        f"\nport {result.row.port} is attached to {server}. In the guest, run:\n"
        "  sudo multihome apply      # policy routing for the new interface\n"
        "  sudo multihome persist    # keep it across reboots and DHCP renews\n"
        "(with `multihome agent` running, the new port is handled by itself)"
    )
    if modes:
        how = " and ".join(
            "DHCPv6 (dhcpv6-stateful: the guest needs a DHCPv6 client on it, e.g. `dhclient -6 IF`)"
            if mode == "dhcpv6-stateful"
            else "router advertisements (SLAAC)"
            for mode in sorted(m or "slaac" for m in modes)
        )
        click.echo(
            f"IPv6: the interface gets its IPv6 addresses from {how}; run `multihome apply` "
            "once `ip -6 addr show dev IF` lists them without `tentative` (the agent waits "
            "for them by itself)"
        )
    click.echo(f"({counter.count} API call(s))", err=True)


@cloud.command(
    "allow-address-pairs",
    epilog="\b\nExamples:\n  multihome cloud "
    "allow-address-pairs vm1-eth0 192.168.0.112\n  multihome cloud "
    "allow-address-pairs vm1-eth0 192.168.0.0/24 --replace",
)
@click.argument("port")
@click.argument("addresses", nargs=-1, required=True, metavar="IP...")
@click.option("--replace", is_flag=True, help="Set exactly these pairs (default: add them).")
@os_cloud_option
@_translated
def allow_address_pairs(
    port: str, addresses: tuple[str, ...], replace: bool, os_cloud: str | None
) -> None:
    """Let PORT send from other addresses (the cloud-side fix, on the default-route port)."""
    from multihome.cloud.shortcuts import allow_address_pairs as run

    for address in addresses:
        try:
            ipaddress.ip_network(address, strict=False)
        except ValueError:
            raise InputError(
                f"{address}: not an address or CIDR; give e.g. 192.168.0.112 or 192.168.0.0/24"
            ) from None
    conn, counter = _session(os_cloud)
    pairs = run(network_api(conn), port=port, addresses=addresses, replace=replace)
    click.echo(f"port {port}: allowed address pairs {', '.join(pairs) or '(none)'}")
    click.echo(f"({counter.count} API call(s))", err=True)
