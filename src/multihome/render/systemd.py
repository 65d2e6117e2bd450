"""systemd: a template unit ``multihome@.service`` (the how-to's ``pbr@eth0`` done right) and a
udev rule so that a hot-plugged port gets its own instance.

Each instance waits (bounded) until its interface has a default route from DHCP or static
configuration (and, for a port with IPv6, its router advertisement's default: a drop-in per
such instance names the families), then runs the idempotent ``multihome apply --interface
IF``: the very same tables, routes and rules as a manual ``multihome apply``, marked with
multihome's protocol number. Instances of the current ports are enabled through
``multi-user.target.wants`` symlinks; the udev rule adds ``SYSTEMD_WANTS`` for ports that
appear later.

A static IPv6 port (``network_data.json`` type ``ipv6``: no router advertisement, the agent
addressed it from the metadata) has nothing else that addresses it at boot: its drop-in
XX before the wait, each ``ip`` command allowed to fail (the address already there:
another tool configured it first). Where a networkd or netplan file names the port, that
file configures the address, and the drop-in only waits.

On a networkd system a ``networkd.conf.d`` drop-in turns ``ManageForeignRoutingPolicyRules=``
and ``ManageForeignRoutes=`` off: otherwise networkd deletes the rules and routes multihome
made whenever it reconfigures a link (``netplan apply``, a carrier change).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from multihome.model import IFA_F_NOPREFIXROUTE
from multihome.policy import IGNORED_PREFIXES
from multihome.render.base import (
    FileSpec,
    ManagedPort,
    Rendered,
    RenderInput,
    header,
    name_files,
)

NAME = "systemd"
UNIT_DIR = PurePosixPath("/etc/systemd/system")
UNIT_PATH = UNIT_DIR / "multihome@.service"
WANTS_DIR = UNIT_DIR / "multi-user.target.wants"
UDEV_RULE_PATH = PurePosixPath("/etc/udev/rules.d/90-multihome.rules")
NETWORKD_CONF_PATH = PurePosixPath("/etc/systemd/networkd.conf.d/50-multihome.conf")
#: How long an instance waits for its interface's default route (seconds).
WAIT_SECONDS = 30


def render(inp: RenderInput) -> Rendered:
    """The template unit, one enabled instance per port, the udev rule, the names."""
    files = name_files(inp)
    files[UNIT_PATH] = FileSpec(unit(inp.facts.program))
    for port in inp.ports:
        files[WANTS_DIR / f"multihome@{port.name}.service"] = FileSpec(
            "../multihome@.service", symlink=True
        )
        if port.ipv6:
            configured = port.name in inp.facts.networkd_files or (
                port.name in inp.facts.netplan_ids
            )
            files[dropin_path(port.name)] = FileSpec(families_dropin(port, not configured))
    files[UDEV_RULE_PATH] = FileSpec(udev_rule())
    if inp.facts.has_networkd:
        files[NETWORKD_CONF_PATH] = FileSpec(networkd_conf())
    return files


#: The instance's environment variable naming the families whose default it waits for.
FAMILIES_VAR = "MULTIHOME_WAIT_FAMILIES"


def dropin_path(ifname: str) -> PurePosixPath:
    return UNIT_DIR / f"multihome@{ifname}.service.d" / "50-multihome.conf"


#: iproute2 where both Debian and RHEL have it (``/sbin`` is ``/usr/sbin`` on both).
IP = "/sbin/ip"


def families_dropin(port: ManagedPort, address: bool = True) -> str:
    """The instance of a port with IPv6 waits for its router advertisement's default too
    (an IPv6-only port for that one only), so that its apply sees both families. A static
    IPv6 port's (``address``: nothing else configures it) first gets its addresses and its
    routes in main back, then waits as every instance does."""
    families = " ".join(
        str(f) for f in (4, 6) if any(r.family == f and r.is_default for r in port.routes)
    )
    text = (
        f"{header()}# {port.name}: wait for the default route of each family it has\n"
        f'[Service]\nEnvironment="{FAMILIES_VAR}={families or "4"}"\n'
    )
    if not (address and port.static6):
        return text
    commands = [f"{IP} link set %I up"]  # nothing else brings it up either
    commands += [
        f"{IP} -6 address add {a.interface} dev %I"
        + (" noprefixroute" if a.flags & IFA_F_NOPREFIXROUTE else "")
        for a in port.static6
    ]
    commands += [
        f"{IP} -6 route add {r.dst}{'' if r.gateway is None else f' via {r.gateway}'} dev %I "
        f"proto static metric {r.metric}"
        for r in port.main6
    ]
    return (
        f"{text}# its static IPv6 (the metadata's, as the agent configured it), then the wait\n"
        "ExecStartPre=\n"
        + "".join(f"ExecStartPre=-{c}\n" for c in commands)
        + f"ExecStartPre={wait_command()}\n"
    )


def notes(inp: RenderInput) -> list[str]:
    """A warning when the target has no multihome program for the unit to run."""
    if inp.facts.program_found:
        return []
    return [
        f"no multihome program found on the target: the unit runs {inp.facts.program}, which "
        "does not exist; install multihome there (or run persist again after installing it) "
        "before the next boot, else multihome@.service fails (`multihome doctor`: "
        "unit-program-missing)"
    ]


def unit(program: str, head: str | None = None) -> str:
    """The template unit; ``%I`` is the interface name. ``head``: the comment it starts with
    (default: multihome's marker, as persist writes it)."""
    head = header() if head is None else head
    return f"""{head}# One instance per port: systemctl enable --now multihome@eth1.service
[Unit]
Description=multihome policy routing for %I
Wants=network-online.target
After=network-online.target
StartLimitIntervalSec=0

[Service]
Type=oneshot
RemainAfterExit=yes
TimeoutStartSec={WAIT_SECONDS + 60}
ExecStartPre={wait_command()}
ExecStart={program} apply --quiet --interface %I

[Install]
WantedBy=multi-user.target
"""


def wait_command() -> str:
    """The instance's wait, bounded: per family of ``$MULTIHOME_WAIT_FAMILIES`` a default in
    main; for IPv6 also a global address past DAD (the router advertisement's default comes
    before its SLAAC address has passed DAD)."""
    wait = (
        f"i=0; for f in $${{{FAMILIES_VAR}:-4}}; do while [ $$i -lt {WAIT_SECONDS * 2} ] && "
        '{ [ -z "$$(ip -$$f route show table main default dev "$$1" 2>/dev/null)" ] || '
        '{ [ $$f = 6 ] && [ -z "$$(ip -6 addr show dev "$$1" scope global -tentative '
        '2>/dev/null)" ]; }; }; do i=$$((i+1)); sleep 0.5; done; done'
    )
    return f"/bin/sh -c '{wait}' sh %I"


def packaged_unit(program: str) -> str:
    """The template unit the Debian package installs in ``/lib/systemd/system`` (no instance
    enabled; persist's own copy in ``/etc/systemd/system`` takes precedence)."""
    return unit(
        program,
        "# Installed by the multihome package (`multihome persist --backend systemd`\n"
        "# enables an instance per port).\n",
    )


def udev_rule() -> str:
    """Start ``multihome@IF.service`` for every network port that appears (not plumbing)."""
    skip = "|".join(["lo", *(f"{p}*" for p in IGNORED_PREFIXES)])
    return (
        f"{header()}"
        f'SUBSYSTEM=="net", ACTION=="add", KERNEL!="{skip}", ATTR{{type}}=="1", '
        'TAG+="systemd", ENV{SYSTEMD_WANTS}+="multihome@$name.service"\n'
    )


def networkd_conf() -> str:
    return (
        f"{header()}# networkd must not delete the rules and routes multihome@.service "
        "makes\n[Network]\nManageForeignRoutingPolicyRules=no\nManageForeignRoutes=no\n"
    )
