"""``multihome persist`` and ``multihome unpersist``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from multihome.errors import InputError
from multihome.files import check_root, json_output
from multihome.persist.core import BACKENDS

PERSIST_EPILOG = """\b
Examples:
  sudo multihome persist                       detect the backend, say why, write the files
  multihome persist --dry-run                  the files as a diff; nothing is written
  sudo multihome persist --no-activate         write only: networkd is not reloaded
  sudo multihome persist --backend netplan     Ubuntu: 90-multihome.yaml + networkd drop-ins
  sudo multihome persist --backend networkmanager   RHEL 9 / Fedora: keyfiles
  sudo multihome persist --backend systemd     multihome@.service + a udev rule, anywhere
  multihome persist --root /mnt/image --backend networkd   write into an image
  sudo multihome persist --backend netplan --force-backend   even for ports netplan
                                               does not configure (warns)
\b
The running networkd (netplan: after netplan generate) is reloaded so that it uses the files
at once, without bouncing links; never for a --root it does not read.
--root must hold the target system: the backend is detected or checked by its programs under
it (networkd: lib/systemd/systemd-networkd, systemd: usr/bin/systemctl, ...), so an empty
directory is refused; multihome-persist(8), OPTIONS, lists them.
"""

UNPERSIST_EPILOG = """\b
Examples:
  sudo multihome unpersist             remove every file persist wrote (and nothing else)
  multihome unpersist --dry-run        list them
"""


def _root(ctx: click.Context, root: Path | None) -> Path:
    if root is None:
        root = Path(getattr(ctx.find_root().obj, "root", Path("/")))
    else:
        check_root(root)
    lab = os.environ.get("MULTIHOME_LAB")  # set by `multihome lab exec`
    if lab and root.resolve() == Path("/"):
        error = InputError(
            f"--root /: this runs in a node of the lab ({lab}), which shares the host's files, "
            f"so {ctx.info_name} would change the host's own network configuration; give "
            "--root DIR, a folder of the guest's own (for example --root /tmp/guest)"
        )
        error.source = "--root"
        raise error
    return root


@click.command(epilog=PERSIST_EPILOG)
@click.option(
    "--backend",
    default="auto",
    show_default=True,
    metavar="NAME",
    help=f"auto, or one of: {', '.join(BACKENDS)}.",
)
@click.option(
    "--root",
    type=click.Path(path_type=Path),
    default=None,
    help="Write under this directory instead of / (an image, a test).",
)
@click.option("--dry-run", is_flag=True, help="Show the files as a diff; write nothing.")
@click.option(
    "--force-backend",
    is_flag=True,
    help="Write the backend's files even for a port it does not configure (a warning "
    "instead of the refusal).",
)
@click.option(
    "--no-activate",
    is_flag=True,
    help="Do not make the running network manager load the files (they apply at next boot).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
@click.pass_context
def persist(
    ctx: click.Context,
    backend: str,
    root: Path | None,
    dry_run: bool,
    force_backend: bool,
    no_activate: bool,
    as_json: bool,
) -> None:
    """Make the policy permanent in the system's own network configuration.

    Renders the same tables, routes and rules `multihome apply` makes into the backend the
    system uses (auto: netplan on Ubuntu, NetworkManager on RHEL/Fedora, networkd, or the
    systemd unit) so that the DHCP client itself keeps each port's routes in the port's
    table, across renews, link flaps and reboots. Only multihome's own files are written.

    Refuses (exit 2, nothing written) when the backend does not configure a managed port
    (netplan names no such port, networkd matches another .network file first, a
    NetworkManager profile outranks multihome's), naming what does configure it.
    """
    # Lazy imports (noqa): pyroute2 only when the command runs.
    from multihome.backend.netlink import NetlinkBackend
    from multihome.engine import assess
    from multihome.persist.activate import Activation, activate
    from multihome.persist.core import persist as run_persist

    target = _root(ctx, root)
    if backend != "auto" and backend not in BACKENDS:
        raise InputError(
            f"--backend {backend}: unknown backend; choose auto or one of {', '.join(BACKENDS)}"
        )
    obj: Any = ctx.find_root().obj
    config = obj.config()
    kernel = NetlinkBackend()
    try:
        assessment = assess(kernel, config)
    finally:
        kernel.close()
    result = run_persist(
        target,
        assessment.state,
        assessment.desired,
        backend,
        dry_run=dry_run,
        force=force_backend,
    )
    if dry_run or no_activate:
        why = "--dry-run" if dry_run else "--no-activate"
        activation = Activation("skipped", f"{why}: the running network manager was not asked")
    else:
        tables = {i.name: i.table.id for i in assessment.desired.interfaces if i.table}
        activation = activate(target, result.choice.renderer.name, tables, result.changed)
    if as_json:
        click.echo(json_output({**result.to_json(), "activation": activation.to_json()}), nl=False)
        return
    click.echo(f"backend: {result.choice.renderer.name} ({result.choice.reason})")
    for note in result.notes:
        click.echo(f"warning: {note}", err=True)
    for change in result.changes:
        if dry_run:
            click.echo(change.diff(), nl=False)
        elif change.action != "keep":
            click.echo(f"{'wrote' if change.action == 'write' else 'removed'} {change.path}")
    if not result.changed:
        click.echo("no changes: the files already say this")
    elif dry_run:
        click.echo(f"{sum(c.action != 'keep' for c in result.changes)} file(s) would change")
    if dry_run:
        return
    if activation.state == "activated":
        click.echo(f"effective now: {activation.message} ({'; '.join(activation.commands)})")
    elif activation.state == "failed":
        click.echo(
            f"warning: {activation.message}; to apply now: {result.choice.renderer.activate}",
            err=True,
        )
    elif activation.state in ("already", "not-needed"):
        click.echo(f"effective now: {activation.message}")
    elif result.changed:
        click.echo(
            f"effective at the next boot ({activation.message}); to apply now: "
            f"{result.choice.renderer.activate}"
        )


@click.command(epilog=UNPERSIST_EPILOG)
@click.option(
    "--root",
    type=click.Path(path_type=Path),
    default=None,
    help="Remove under this directory instead of /.",
)
@click.option("--dry-run", is_flag=True, help="List the files; remove nothing.")
@click.pass_context
def unpersist(ctx: click.Context, root: Path | None, dry_run: bool) -> None:
    """Remove every file `multihome persist` wrote, and nothing else.

    The distribution's own configuration (never edited by persist) takes over again at the
    next boot or network reload. The kernel state is left alone: see `multihome reset`.
    """
    from multihome.persist.core import unpersist as run_unpersist

    target = _root(ctx, root)
    changes = run_unpersist(target, dry_run=dry_run)
    for change in changes:
        click.echo(f"{'would remove' if dry_run else 'removed'} {change.path}")
    if not changes:
        click.echo("nothing to remove: no files of multihome persist found")
    elif not dry_run:
        from multihome.persist.activate import deactivate

        done = deactivate(target, [str(change.path) for change in changes])
        if done.state == "activated":
            click.echo(f"effective now: {done.message}")
        elif done.state == "failed":
            click.echo(f"warning: {done.message}", err=True)
