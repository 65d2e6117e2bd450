"""A no-op `multihome apply` trusts the fingerprint the last apply recorded, and any change to
the kernel state, the name files, the configuration or the leases makes it do the full read
again. Checked with `ip -j` and the command's own output in a bench lab's namespaces; whether
the no-op was decided before the CLI (multihome.noop) is seen in the modules the process
imported (``PYTHONPROFILEIMPORTTIME``: the full apply's module, multihome.apply_cli, with or
without click, is not among them)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from bench_util import HERE, inside
from lab import BenchLab, run

pytestmark = pytest.mark.netns
MULTIHOME = str(Path(sys.executable).parent / "multihome")
NO_CHANGES = "no changes: the kernel already matches the policy"


def apply(lab: BenchLab, *args: str) -> str:
    proc = subprocess.run(
        lab.exec_args(MULTIHOME, "--root", str(lab.root), *args, "apply"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


#: Modules the no-op apply must not import (each costs millions of instructions at every
#: boot and udev event): the json package (the state files are read and written by
#: ``_json``'s C functions, multihome.transaction.statedir), click, and ``pathlib`` with
#: what it brings, ``re``, ``enum``, ``urllib.parse`` and ``ipaddress`` (paths are text on
#: the no-op's path: multihome.files), and ``collections`` (``collections.abc``'s names are
#: the type checker's only: ~6 M instructions; ``python -m``'s runpy imports it first, so
#: only the console script shows it).
HEAVY = re.compile(
    r"^import time:.*\|\s+(json|click|pathlib|re|enum|urllib\.parse|ipaddress|collections)$",
    re.MULTILINE,
)
#: The first import of multihome's own: what is imported before it is the launcher's (the
#: console script an older pip writes imports ``re``, and with it ``enum``, to tidy
#: ``argv[0]``; a newer pip's, as this venv's, and ``python -m`` import neither), and a
#: module imported already is not listed again, so ``python -m multihome`` is what shows
#: all of :data:`HEAVY` (the no-op tests run both).
OWN = re.compile(r"^import time:.*\|\s+multihome", re.MULTILINE)


def traced(
    lab: BenchLab, *args: str, command: tuple[str, ...] = (MULTIHOME,), root: bool = True
) -> tuple[subprocess.CompletedProcess[str], bool]:
    """``multihome [--root R] ARGS`` in the lab's namespace, and whether the full apply ran
    (its module was imported: the no-op decision fell through); a no-op must not have
    imported :data:`HEAVY` modules (after :data:`OWN`)."""
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")
    options = ("--root", str(lab.root)) if root else ()
    proc = subprocess.run(
        lab.exec_args(*command, *options, *args),
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    imported = " multihome.apply_cli\n" in proc.stderr or proc.stderr.endswith(
        " multihome.apply_cli"
    )
    if not imported:  # answered by the no-op: without the heavy modules
        first = OWN.search(proc.stderr)
        own = proc.stderr[first.start() if first else 0 :]
        assert not HEAVY.findall(own), HEAVY.findall(own)
    proc.stderr = "".join(
        line
        for line in proc.stderr.splitlines(keepends=True)
        if not line.startswith("import time:")
    )
    return proc, imported


def quick_no_op(lab: BenchLab, *args: str) -> subprocess.CompletedProcess[str]:
    """An apply answered before the CLI: "no changes", exit 0."""
    proc, cli = traced(lab, "apply", *args)
    assert proc.returncode == 0, proc.stderr
    assert not cli, "the no-op fell through to the CLI"
    return proc


def state_dir(lab: BenchLab) -> Path:
    """The namespace's state directory below the lab's root."""
    (found,) = (lab.root / "run/multihome").glob("netns-*")
    return found


def settled(lab: BenchLab) -> BenchLab:
    """IPv6 link-local addresses and their routes appear for a moment after the links come
    up (DAD); an apply made meanwhile sees them arrive and records no fingerprint."""
    time.sleep(2.5)
    return lab


def test_a_recorded_fingerprint_is_what_a_no_op_apply_trusts(lab: BenchLab) -> None:
    """White box: a fingerprint claiming that the unconfigured namespace is in sync makes
    `apply` report no changes without reading the state (so the fast path is taken); a real
    apply then replaces the claim, and the next apply again has nothing to do."""
    settled(lab)
    before = lab.fingerprint()
    inside(lab, HERE / "inside.py", "claim", str(lab.root))
    assert apply(lab).strip() == NO_CHANGES
    assert lab.fingerprint() == before
    run(["ip", "-n", lab.name, "route", "add", "192.0.2.0/24", "dev", "p0"])  # any change
    assert "applied" in apply(lab)
    assert apply(lab).strip() == NO_CHANGES


def _route_in_main(lab: BenchLab) -> None:
    run(["ip", "-n", lab.name, "route", "add", "default", "via", "10.0.3.1", "dev", "p3",
         "proto", "dhcp", "metric", "50"])  # fmt: skip


def _sysctl(lab: BenchLab) -> None:
    lab.write_sysctls({"net.ipv4.conf.p2.rp_filter": "0"})


def _owned_rule(lab: BenchLab) -> None:
    run(["ip", "-n", lab.name, "rule", "del", "from", "10.0.1.10", "protocol", "222"])


def _name_file(lab: BenchLab) -> None:
    (lab.root / "etc/iproute2/rt_tables.d/multihome.conf").unlink()


def _config(lab: BenchLab) -> None:
    path = lab.root / "etc/multihome/config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("interfaces:\n  exclude: [p7]\n")


def _empty_config(lab: BenchLab) -> None:
    path = lab.root / "etc/multihome/config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# the defaults, from a file that was not there\n")


def _lease(lab: BenchLab) -> None:
    path = lab.root / "var/lib/dhcp/dhclient.p1.leases"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# no lease yet\n")


def _address(lab: BenchLab) -> None:
    run(["ip", "-n", lab.name, "address", "add", "10.0.5.99/32", "dev", "p5"])


def _link(lab: BenchLab) -> None:
    run(["ip", "-n", lab.name, "link", "set", "p6", "down"])


def _foreign_route_in_a_table(lab: BenchLab) -> None:
    run(["ip", "-n", lab.name, "route", "add", "198.51.100.0/24", "dev", "p2", "table", "77"])


def _foreign_rule(lab: BenchLab) -> None:
    run(["ip", "-n", lab.name, "rule", "add", "from", "198.51.100.7", "table", "77",
         "priority", "90"])  # fmt: skip


@pytest.mark.parametrize(
    "change",
    [_route_in_main, _sysctl, _owned_rule, _name_file, _config],
    ids=["default-in-main", "sysctl", "owned-rule-deleted", "name-file-deleted", "config"],
)
def test_any_change_after_an_apply_is_repaired_by_the_next(
    lab: BenchLab, change: Callable[[BenchLab], None]
) -> None:
    """After an apply (which records the fingerprint) and a no-op (decided before the CLI),
    a change made by someone else (a route, a sysctl, an owned rule, the table names file,
    the configuration) makes the next apply run the CLI and change things again; the one
    after it is a no-op decided before the CLI again."""
    settled(lab)
    assert "applied" in apply(lab)
    assert quick_no_op(lab).stdout.strip() == NO_CHANGES
    change(lab)
    proc, cli = traced(lab, "apply")
    assert proc.returncode == 0 and cli, proc.stderr  # the full path, not the no-op's
    if change is not _name_file:  # a file written back is not a kernel change
        assert "applied" in proc.stdout, proc.stdout
    assert (lab.root / "etc/iproute2/rt_tables.d/multihome.conf").exists()
    assert quick_no_op(lab).stdout.strip() == NO_CHANGES


@pytest.mark.parametrize(
    "change",
    [_foreign_route_in_a_table, _foreign_rule, _address, _link, _empty_config, _lease],
    ids=[
        "route-in-another-table",
        "foreign-rule",
        "address",
        "link-down",
        "config-file-created",
        "lease-file",
    ],
)
def test_the_no_op_before_the_cli_falls_through_on_any_change(
    lab: BenchLab, change: Callable[[BenchLab], None]
) -> None:
    """The no-op decided before the CLI answers only while nothing changed: after a change
    that may leave the plan empty (a foreign route or rule, an address, a link, the
    configuration file created with the defaults, a lease file; more kinds above), the next
    apply runs the CLI's full path (which records again), and the one after it is decided
    before the CLI again."""
    settled(lab)
    assert "applied" in apply(lab)
    assert quick_no_op(lab).stdout.strip() == NO_CHANGES
    change(lab)
    proc, cli = traced(lab, "apply")
    assert proc.returncode == 0, proc.stderr
    assert cli, "a changed namespace was answered without the full read"
    assert quick_no_op(lab).stdout.strip() == NO_CHANGES


def test_the_no_op_before_the_cli_says_what_the_cli_says(lab: BenchLab) -> None:
    """Before the CLI: "no changes" (nothing with -q), exit 0 also with
    --detailed-exit-codes, nothing changed in the kernel; `python -m multihome` decides the
    same way; an option it does not know (--dry-run), or --no-sysctls (another policy than
    the one recorded) goes to the CLI."""
    settled(lab)
    assert "applied" in apply(lab)
    before = lab.fingerprint()
    assert quick_no_op(lab).stdout == NO_CHANGES + "\n"
    assert quick_no_op(lab, "-q").stdout == ""
    assert quick_no_op(lab, "--quiet", "--detailed-exit-codes").stdout == ""
    module = (sys.executable, "-m", "multihome")
    proc, cli = traced(lab, "apply", "--lock-timeout", "5", command=module)
    assert (proc.returncode, proc.stdout, cli) == (0, NO_CHANGES + "\n", False), proc.stderr
    proc, cli = traced(lab, "apply", "--dry-run")
    assert proc.returncode == 0 and cli and NO_CHANGES in proc.stdout, proc.stderr
    proc, cli = traced(lab, "apply", "--no-sysctls")
    assert proc.returncode == 0 and cli, proc.stderr
    assert lab.fingerprint() == before


def test_an_interrupted_apply_is_recovered_by_the_cli_not_skipped(lab: BenchLab) -> None:
    """A journal left in the state directory (here one from an earlier boot) is never
    skipped by the no-op: the CLI runs, recovers (discards it, and says so), and the next
    apply is a no-op decided before the CLI again."""
    settled(lab)
    assert "applied" in apply(lab)
    journal = state_dir(lab) / "journal.json"
    journal.write_text(json.dumps({"version": "1", "boot_id": "an-earlier-boot"}))
    proc, cli = traced(lab, "apply")
    assert proc.returncode == 0 and cli, proc.stderr
    assert "discarded the journal of an apply from an earlier boot" in proc.stderr
    assert not journal.exists()
    assert quick_no_op(lab).stdout.strip() == NO_CHANGES


def test_a_fingerprint_of_an_earlier_version_is_read_as_changed(lab: BenchLab) -> None:
    """A fingerprint whose kernel digest is an earlier version's one hash of everything (not
    this version's parts) is never trusted: the CLI's full apply runs (nothing to change, so
    "no changes"), records the digest anew, part by part, and the next apply is a no-op
    decided before the CLI again."""
    settled(lab)
    assert "applied" in apply(lab)
    recorded = state_dir(lab) / "fingerprint.json"
    saved = json.loads(recorded.read_text())
    assert saved["kernel"].startswith("rules:"), saved
    recorded.write_text(json.dumps({**saved, "kernel": "5f" * 20}))  # the old format
    proc, cli = traced(lab, "apply")
    assert (proc.returncode, proc.stdout.strip(), cli) == (0, NO_CHANGES, True), proc.stderr
    assert json.loads(recorded.read_text())["kernel"] == saved["kernel"]
    assert quick_no_op(lab).stdout.strip() == NO_CHANGES


def test_the_no_op_before_the_cli_resumes_a_paused_agent(lab: BenchLab) -> None:
    """A pause left by reset or rollback ends with every whole apply, the no-op decided
    before the CLI too: the marker is removed and the same words are said on stderr."""
    settled(lab)
    assert "applied" in apply(lab)
    marker = state_dir(lab) / "agent-paused.json"
    marker.write_text(json.dumps({"by": "reset", "at": "2026-12-06T17:00:00+00:00", "pid": 1}))
    proc = quick_no_op(lab)
    assert proc.stdout.strip() == NO_CHANGES
    assert proc.stderr == (
        "multihome: resumed the agent (paused by reset at 2026-12-06T17:00:00+00:00)\n"
    )
    assert not marker.exists()


def test_without_root_the_cli_says_that_apply_needs_root(lab: BenchLab) -> None:
    """An unprivileged user's apply is not decided before the CLI: the CLI refuses it with
    its usual error, and nothing is written."""
    settled(lab)
    assert "applied" in apply(lab)
    recorded = (state_dir(lab) / "fingerprint.json").read_text()
    lab.root.chmod(0o755)  # click checks that --root is readable
    nobody = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", MULTIHOME)
    proc, cli = traced(lab, "apply", command=nobody)
    assert proc.returncode != 0 and cli
    assert "needs root" in proc.stderr, proc.stderr
    assert (state_dir(lab) / "fingerprint.json").read_text() == recorded
