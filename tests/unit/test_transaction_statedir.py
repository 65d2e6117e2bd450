"""transaction/statedir.py: the state directory is per network namespace, and the changes
it keeps (journal, checkpoint) survive their JSON form unchanged."""

from __future__ import annotations

import os
from pathlib import Path

from hosts import howto_host

from multihome.backend.fake import net
from multihome.config import Config
from multihome.model import Rule, Sysctl
from multihome.plan import Change, make_plan
from multihome.policy import compute_policy
from multihome.transaction.statedir import StateDir, change_from_json, change_to_json


def test_state_dir_is_per_namespace(tmp_path: Path) -> None:
    """The state dir is keyed by the inode of this process's network namespace."""
    state = StateDir.current(tmp_path)
    assert state.netns == f"net-{os.stat('/proc/self/ns/net').st_ino}"
    assert state.path == tmp_path / "run/multihome" / state.netns


def test_changes_survive_json_unchanged() -> None:
    """Every change of the how-to's plan, a rule with fwmark/fwmask and a sysctl with its
    prior value are read back from their JSON form unchanged."""
    config = Config()
    state = howto_host()
    plan = make_plan(state, compute_policy(state, config), config)
    odd = Rule(4, 900, 77, src=net("10.0.0.0/8"), fwmark=3, fwmask=255, proto=4)
    for change in [*plan.changes, Change("add", odd), Change("set", Sysctl("a.b", "1"), "0")]:
        assert change_from_json(change_to_json(change)) == change
