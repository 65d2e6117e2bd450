"""The no-op apply's fingerprint on the in-memory twin: recorded only for the state the apply
left, trusted only while the kernel state, the configuration and the name files stay."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from multihome.backend.fake import FakeBackend
from multihome.config import Config
from multihome.engine import apply_plan, assess
from multihome.model import HostState
from multihome.transaction.fingerprint import config_source, inputs, record, unchanged
from multihome.transaction.statedir import StateDir

CONFIG = Config()


def digest(root: Path, facts: str = "", options: str = "") -> str | None:
    """The inputs' digest an apply below ``root`` computes (the default configuration file)."""
    return inputs(config_source(None, root), root, facts, options)


def applied(howto: HostState, root: Path) -> tuple[FakeBackend, StateDir, HostState, bool]:
    """An apply of the how-to's plan as `multihome apply` makes it: watch, read, apply, record."""
    backend = FakeBackend(howto)
    backend.watch()
    snap = assess(backend, CONFIG)
    result = apply_plan(backend, snap.plan, root=root, config=CONFIG, state=snap.state)
    state_dir = StateDir.current(root)
    return (
        backend,
        state_dir,
        snap.state,
        record(backend, state_dir, digest(root), snap.state, result.plan.changes),
    )


def test_an_apply_records_the_state_it_left_and_the_next_apply_trusts_it(
    howto: HostState, tmp_path: Path
) -> None:
    """Only the apply's own notifications were seen: the fingerprint is recorded, and the
    unchanged namespace matches it."""
    backend, state_dir, _, recorded = applied(howto, tmp_path)
    assert recorded
    assert unchanged(backend, state_dir, digest(tmp_path))
    assert assess(backend, CONFIG).plan.empty


def test_a_change_by_someone_else_during_the_apply_records_nothing(
    howto: HostState, tmp_path: Path
) -> None:
    """A route added by another tool between the read and the fingerprint shows as an extra
    notification: nothing is recorded, so the next apply reads the state in full."""
    backend = FakeBackend(howto)
    backend.watch()
    snap = assess(backend, CONFIG)
    result = apply_plan(backend, snap.plan, root=tmp_path, config=CONFIG, state=snap.state)
    extra = replace(backend.state.routes[0], metric=7)
    backend.foreign(replace(backend.state, routes=(*backend.state.routes, extra)), "route new 2")
    state_dir = StateDir.current(tmp_path)
    assert not record(backend, state_dir, digest(tmp_path), snap.state, result.plan.changes)
    assert not unchanged(backend, state_dir, digest(tmp_path))


def test_a_backend_that_reads_sysctls_again_records_nothing_when_one_changed(
    howto: HostState, tmp_path: Path
) -> None:
    """Sysctls send no notification: on a backend whose fingerprint reads them again (the
    in-memory one), values other than those the apply left mean nothing is recorded. The
    kernel's ``since_read`` fingerprint does not read them again; what happens there is
    tests/netns/test_fingerprint_netns.py's case (the digest then differs from the kernel's)."""
    backend = FakeBackend(howto)
    backend.watch()
    snap = assess(backend, CONFIG)
    result = apply_plan(backend, snap.plan, root=tmp_path, config=CONFIG, state=snap.state)
    sysctls = dict(backend.state.sysctls, **{"net.ipv4.conf.eth1.rp_filter": "0"})
    backend.state = HostState.build(
        backend.state.links,
        backend.state.addresses,
        backend.state.routes,
        backend.state.rules,
        sysctls,
    )
    state_dir = StateDir.current(tmp_path)
    assert not record(backend, state_dir, digest(tmp_path), snap.state, result.plan.changes)


def test_the_configuration_and_the_name_files_are_part_of_the_fingerprint(
    howto: HostState, tmp_path: Path
) -> None:
    """Another configuration file (even one that parses to the same policy), the option
    ``--no-sysctls``, or a name file changed, and the recorded state is not trusted."""
    backend, state_dir, _, recorded = applied(howto, tmp_path)
    assert recorded
    assert unchanged(backend, state_dir, digest(tmp_path))
    assert not unchanged(backend, state_dir, digest(tmp_path, options="--no-sysctls"))
    config = tmp_path / "etc/multihome/config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("")  # an empty file: the defaults, but a file that was not there
    assert not unchanged(backend, state_dir, digest(tmp_path))
    config.unlink()
    assert unchanged(backend, state_dir, digest(tmp_path))
    names = tmp_path / "etc/iproute2/rt_tables.d/multihome.conf"
    names.write_text(names.read_text() + "# edited\n")
    assert not unchanged(backend, state_dir, digest(tmp_path))


def test_an_unreadable_configuration_is_never_trusted_nor_recorded(
    howto: HostState, tmp_path: Path
) -> None:
    """A ``--config`` that cannot be read as a regular file (missing, a directory) has no
    digest: nothing is trusted and nothing is recorded (the CLI says what is wrong)."""
    backend, state_dir, state, recorded = applied(howto, tmp_path)
    assert recorded
    for path in (tmp_path / "missing.yaml", tmp_path):
        assert config_source(path, tmp_path) is None
        assert inputs(config_source(path, tmp_path), tmp_path) is None
        assert not unchanged(backend, state_dir, None)
    backend.watch()
    assert not record(backend, state_dir, None, state, ())


def test_the_lease_files_and_their_first_expiry_are_part_of_the_fingerprint(
    howto: HostState, tmp_path: Path
) -> None:
    """The ports' facts come from DHCP leases: another lease files' signature, or the moment
    the first recorded lease expires, and the recorded state is not trusted."""
    backend = FakeBackend(howto)
    backend.watch()
    assessment = assess(backend, CONFIG)
    result = apply_plan(
        backend, assessment.plan, root=tmp_path, config=CONFIG, state=assessment.state
    )
    state_dir = StateDir.current(tmp_path)
    changes = result.plan.changes
    v1 = digest(tmp_path, "leases v1")
    assert record(backend, state_dir, v1, assessment.state, changes, time.time() + 3600)
    assert unchanged(backend, state_dir, v1)
    assert not unchanged(backend, state_dir, digest(tmp_path, "leases v2"))
    backend.watch()
    assert record(backend, state_dir, v1, backend.state, (), time.time() - 1)
    assert not unchanged(backend, state_dir, v1)


def test_the_configuration_an_apply_parses_is_the_one_it_hashed(tmp_path: Path) -> None:
    """The apply parses the bytes its inputs digest hashed, not the file read again: a file
    changed (or created) between the two is the next apply's input, never this one's."""
    from multihome.cli import CliOptions

    options = CliOptions(config_path=None, root=tmp_path, color=False)
    absent = config_source(None, tmp_path)
    assert absent is not None and absent[1] is None
    config = tmp_path / "etc/multihome/config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("interfaces:\n  exclude: [eth9]\n")
    assert options.config(absent) == Config()
    read = config_source(None, tmp_path)
    config.write_text("interfaces:\n  exclude: [eth8]\n")
    assert options.config(read).exclude == ("eth9",)
    assert options.config(config_source(None, tmp_path)).exclude == ("eth8",)
    assert inputs(read, tmp_path) != inputs(config_source(None, tmp_path), tmp_path)
