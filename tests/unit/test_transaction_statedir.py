"""transaction/statedir.py: the state directory is per network namespace (named after its
cookie, the folders of dead namespaces swept away: real files under a temporary root, which
namespaces are alive given), and the changes it keeps (journal, checkpoint) survive their JSON
form unchanged."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hosts import howto_host
from netnsid import own_cookie

from multihome.backend.fake import net
from multihome.config import Config
from multihome.errors import InputError
from multihome.model import Rule, Sysctl
from multihome.plan import Change, make_plan
from multihome.policy import compute_policy
from multihome.transaction.statedir import (
    STATE_BASE,
    StateDir,
    change_from_json,
    change_to_json,
    current_namespace,
    sweep,
    sweep_due,
)


def test_state_dir_is_per_namespace(tmp_path: Path) -> None:
    """The state dir is keyed by the cookie of this process's network namespace, and records
    the namespace's cookie, inode and boot id."""
    state = StateDir.current(tmp_path)
    assert state.netns == f"netns-{own_cookie()}"
    assert state.path == str(tmp_path / "run/multihome" / state.netns)
    state.ensure()
    recorded = json.loads(Path(state.file("namespace.json")).read_text())
    assert recorded["cookie"] == own_cookie()
    assert recorded["inode"] == os.stat("/proc/self/ns/net").st_ino
    assert recorded["boot_id"] == Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def test_changes_survive_json_unchanged() -> None:
    """Every change of the how-to's plan, a rule with fwmark/fwmask and a sysctl with its
    prior value are read back from their JSON form unchanged."""
    config = Config()
    state = howto_host()
    plan = make_plan(state, compute_policy(state, config), config)
    odd = Rule(4, 900, 77, src=net("10.0.0.0/8"), fwmark=3, fwmask=255, proto=4)
    for change in [*plan.changes, Change("add", odd), Change("set", Sysctl("a.b", "1"), "0")]:
        assert change_from_json(change_to_json(change)) == change


def _folder(root: Path, name: str, identity: dict[str, object] | None) -> Path:
    path = root / STATE_BASE.lstrip("/") / name
    path.mkdir(parents=True)
    (path / "snapshot.json").write_text("{}")
    if identity is not None:
        (path / "namespace.json").write_text(json.dumps(identity))
    return path


def test_sweep_removes_exactly_the_folders_of_dead_namespaces(tmp_path: Path) -> None:
    """Removed: an earlier boot's, one recording this namespace's inode with another cookie, one
    whose inode no live namespace has, a pre-cookie folder of a dead inode. Kept: this
    namespace's, a live inode's, a pre-cookie folder of a live inode, a folder whose lock is
    held, and what is not a namespace folder."""
    me = current_namespace()
    boot = me.boot

    def ident(cookie: int, inode: int, boot_id: str = boot) -> dict[str, object]:
        return {"version": 1, "cookie": cookie, "inode": inode, "boot_id": boot_id}

    mine = StateDir.current(tmp_path)
    mine.ensure()
    gone = [
        _folder(tmp_path, "netns-900001", ident(900001, 4026530001, "an-earlier-boot")),
        _folder(tmp_path, "netns-900002", ident(900002, me.inode)),
        _folder(tmp_path, "netns-900003", ident(900003, 4026530003)),
        _folder(tmp_path, "net-4026530004", None),
    ]
    kept = [
        Path(mine.path),
        _folder(tmp_path, "netns-900005", ident(900005, 4026530005)),
        _folder(tmp_path, "net-4026530006", None),
        _folder(tmp_path, "netns-900007", ident(900007, 4026530007, "an-earlier-boot")),
        _folder(tmp_path, "lab-something", None),
    ]
    held = os.open(kept[3] / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        removed = sweep(tmp_path, me, live={me.inode, 4026530005, 4026530006})
    finally:
        os.close(held)
    assert sorted(removed) == sorted(map(str, gone))
    assert [p for p in gone if p.exists()] == []
    assert [p for p in kept if not p.exists()] == []


def test_a_folder_of_another_boot_under_this_name_is_never_used(tmp_path: Path) -> None:
    """A folder named after this namespace's cookie that an earlier boot's namespace wrote
    (cookies restart at boot) is removed before anything reads it; the new one records this
    namespace."""
    me = current_namespace()
    stale = _folder(
        tmp_path,
        me.key,
        {"version": 1, "cookie": me.cookie, "inode": me.inode, "boot_id": "an-earlier-boot"},
    )
    state = StateDir.current(tmp_path)
    assert state.path == str(stale) and not stale.exists()
    state.ensure()
    recorded = json.loads(Path(state.file("namespace.json")).read_text())
    assert recorded == {"version": 1, "cookie": own_cookie(), "inode": me.inode,
                        "boot_id": me.boot}  # fmt: skip
    assert not Path(state.file("snapshot.json")).exists()


def test_a_namespace_sweeps_at_most_once_per_interval(tmp_path: Path) -> None:
    """The first session sweeps and notes the time; the next within the interval does not;
    once the interval has passed it sweeps again."""
    state = StateDir.current(tmp_path)
    assert sweep_due(state, 60)
    assert not sweep_due(state, 60)
    past = os.stat(state.file("swept")).st_mtime - 120
    os.utime(state.file("swept"), (past, past))
    assert sweep_due(state, 60)
    assert not sweep_due(state, 60)


def test_a_parent_removed_by_another_clean_up_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`lab down` removes /run/multihome once it is empty; when that lands between the
    parent's creation and the state directory's own (a CI run caught it: ENOENT from an apply
    in another lab), the directory is still made, complete with its identity. When the
    parent keeps disappearing, the error names the directory and says to retry."""
    import tempfile

    real = tempfile.mkdtemp
    removed: list[Path] = []

    def racing(*args: Any, **kwargs: Any) -> str:
        parent = Path(kwargs["dir"])
        if len(removed) < 2:
            parent.rmdir()  # the other clean-up wins the race, twice
            removed.append(parent)
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", racing)
    state = StateDir.current(tmp_path)
    state.ensure()
    assert len(removed) == 2
    assert json.loads(Path(state.file("namespace.json")).read_text())["cookie"] == own_cookie()

    def always(*args: Any, **kwargs: Any) -> str:
        Path(kwargs["dir"]).rmdir()
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", always)
    other = StateDir.current(tmp_path / "other")
    with pytest.raises(InputError, match=r"cannot create the state directory.*retry"):
        other.ensure()
    assert not os.path.exists(other.path)
