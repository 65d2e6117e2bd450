"""``multihome agent``: the event-driven repairer, and ``multihome agent status``."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click

from multihome.errors import ExitCode
from multihome.files import PROGRAM

EPILOG = f"""\b
Examples:
  sudo multihome agent                         run in the foreground (systemd runs it so)
  sudo multihome agent --source openstack      use network_data.json for unaddressed ports
  sudo multihome agent --no-dhcp               never start a DHCP client
  ip netns exec vm1 multihome agent            watch and repair one namespace
  multihome agent status --json                the running agent's counters and last repair
  sudo multihome agent resume                  end a pause (`reset` and `rollback` pause it)
\b
systemd unit (Type=notify): the Debian package ships multihome-agent.service (disabled:
`systemctl enable --now multihome-agent`); otherwise write it yourself with the path of your
multihome (`multihome persist` does not install it; multihome-agent(8), SYSTEMD):
  [Service]
  Type=notify
  ExecStart={PROGRAM} agent
  Restart=on-failure
"""


@click.group(invoke_without_command=True, epilog=EPILOG)
@click.option(
    "--source",
    type=click.Choice(["auto", "kernel", "openstack"]),
    default="auto",
    show_default=True,
    help="Where facts about unaddressed ports come from (see `multihome plan`).",
)
@click.option(
    "--metadata",
    metavar="URL|DIR|DEVICE",
    default=None,
    help="Where to read OpenStack metadata [default: the filesystem labelled "
    "config-2, then http://169.254.169.254].",
)
@click.option(
    "--debounce",
    type=click.FloatRange(0, 1),
    default=0.002,
    show_default=True,
    help="Seconds without events that end a burst.",
)
@click.option(
    "--dhcp-grace",
    type=click.FloatRange(0, 3600),
    default=3.0,
    show_default=True,
    help="Seconds an unaddressed port is left to others before a DHCP client is started for it.",
)
@click.option(
    "--dhcp/--no-dhcp",
    default=True,
    show_default=True,
    help="Start a DHCP client for unaddressed ports that nothing else manages.",
)
@click.option(
    "--address/--no-address",
    "address",
    default=True,
    show_default=True,
    help="Address unaddressed ports at all (static from metadata, or DHCP).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.pass_context
def agent(
    ctx: click.Context,
    source: str,
    metadata: str | None,
    debounce: float,
    dhcp_grace: float,
    dhcp: bool,
    address: bool,
    log_level: str,
) -> None:
    """Keep the policy true while the VM changes: repair on netlink events.

    Subscribes to link, address, route and rule events of the current network namespace,
    gathers a burst (a few ms), re-plans and applies only the difference: a hot-plugged port
    gets its table and rules, a removed port's state goes, a link flap or a renewed lease is
    repaired, a default route a DHCP client puts back into main is removed again. Every
    repair is one log line; the state is in /run/multihome/netns-COOKIE/agent.json (the
    namespace's own folder). Idle, it uses no CPU.
    """
    if ctx.invoked_subcommand is not None:
        return
    from multihome.agent.events import EventSource
    from multihome.agent.service import Agent, AgentOptions
    from multihome.backend.netlink import NetlinkBackend
    from multihome.processes import require_root

    obj: Any = ctx.obj
    require_root()
    _setup_logging(log_level)
    options = AgentOptions(
        source=source,
        metadata=metadata,
        quiet=debounce,
        limit=max(0.1, debounce * 20),
        grace=dhcp_grace,
        dhcp=dhcp,
        address=address,
    )
    backend = NetlinkBackend()
    try:
        # Notifications of the agent's own changes (they carry its socket's port id) are
        # not events to repair after.
        events = EventSource(own=backend.sock.portid)
        Agent(backend, obj.config, obj.root, options, events=events).run()
    finally:
        backend.close()


@agent.command(epilog="\b\nExamples:\n  multihome agent status\n  multihome agent status --json")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def status(obj: Any, as_json: bool) -> None:
    """Show the agent's state: running or not, counters, last repair, last error.

    Exit 1 when no agent is running.
    """
    from multihome.agent.state import read_status, state_path
    from multihome.files import json_output

    data = read_status(obj.root)
    if as_json:
        click.echo(json_output(data if data is not None else {"alive": False}), nl=False)
    elif data is None:
        click.echo(f"agent: not running (no {state_path(obj.root)})")
    elif "error" in data:
        click.echo(f"agent: {data['error']}")
    else:
        if data["alive"]:
            running = f"running, pid {data.get('pid')}, since {data.get('started')}"
        elif data.get("stopped"):
            running = (
                f"stopped at {data['stopped']} (pid {data.get('pid')}, started "
                f"{data.get('started')})"
            )
        else:
            running = (
                f"not running: pid {data.get('pid')} (started {data.get('started')}) "
                "ended without stopping; its state file is stale"
            )
        click.echo(f"agent: {running}")
        marker = data.get("paused")
        if marker:
            from multihome.transaction.pause import describe

            click.echo(f"PAUSED {marker.get('at', '?')}: {describe(marker.get('by', '?'))}")
        origin = f" ({data['origin']})" if data.get("origin") else ""
        click.echo(f"source: {data.get('source')}{origin}")
        click.echo(
            f"events {data.get('events')}, reconciles {data.get('reconciles')}, "
            f"repairs {data.get('repairs')}, changes {data.get('changes')}, "
            f"errors {data.get('errors')}"
        )
        for ifname, how in sorted((data.get("configured") or {}).items()):
            if data["alive"]:  # a dead agent's DHCP clients are not running
                click.echo(f"addressed by the agent: {ifname}: {how}")
        last = data.get("last_repair")
        if last:
            click.echo(
                f"last repair: {last['at']} after {last['trigger']} ({last['latency_ms']} ms)"
            )
            for line in last["changes"]:
                click.echo(f"  {line}")
        if data.get("last_error"):
            click.echo(f"last error: {data['last_error']}")
    if data is None or not data.get("alive"):
        # sys.exit, not click's Exit: main() runs click with standalone_mode=False, which
        # turns Exit into a return value that main() does not pass on.
        sys.exit(ExitCode.FAILURE)


@agent.command(epilog="\b\nExamples:\n  sudo multihome agent resume\n  sudo multihome apply")
@click.pass_obj
def resume(obj: Any) -> None:
    """End the pause a `reset` or `rollback` put the agent in; it repairs at once.

    `multihome apply` (without --interface) ends the pause too, applying the policy itself.
    """
    import signal

    from multihome.processes import require_root
    from multihome.transaction.pause import resume as end_pause
    from multihome.transaction.pause import running_agent

    require_root()
    marker = end_pause(obj.root)
    pid = running_agent(obj.root)
    alive = pid is not None
    if marker is None:
        click.echo("the agent was not paused" + ("" if alive else " (and is not running)"))
        return
    click.echo(f"resumed: the pause by {marker.get('by', '?')} at {marker.get('at', '?')} ended")
    if pid is not None:
        try:
            os.kill(pid, signal.SIGUSR1)  # reconcile now, not at the next event
        except OSError as exc:
            click.echo(f"could not wake the agent (pid {pid}): {exc.strerror}", err=True)
        else:
            click.echo(f"the agent (pid {pid}) repairs the namespace now")


def _setup_logging(level: str) -> None:
    under_journal = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = (
        "%(levelname)s %(message)s"
        if under_journal
        else "%(asctime)s multihome-agent %(levelname)s %(message)s"
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger("multihome")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


__all__ = ["agent"]
