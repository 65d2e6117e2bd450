"""State belongs to its network namespace, and one namespace has one writer at a time.

In real namespaces: a namespace that gets a deleted namespace's inode inherits nothing of its
state; two applies with different ``--root`` in one namespace never interleave; a failed apply
never replaces the last good checkpoint. Checked with ``ip -j`` and /proc, never with the code
under test.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from netnsid import cookie_of, state_dir_of
from safety_util import Lab, ns_sh, sh, wait_for

#: How long the test creates new namespaces, at most, to get a deleted one's inode back (the
#: kernel frees it asynchronously, and another user of the machine may take it first).
REUSE_SECONDS = 10.0
ROUNDS = 20


def _delete_namespace(name: str) -> None:
    for pid in sh("ip", "netns", "pids", name, check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    sh("ip", "netns", "del", name, check=False)


def _namespace_with_inode(prefix: str, inode: int, created: list[str]) -> str | None:
    """Create namespaces until one has ``inode`` (kept ones go into ``created``), for at most
    :data:`REUSE_SECONDS`.

    Namespaces of every kind (and ``ip netns exec`` makes a mount namespace each time) draw
    their numbers from one pool, and the freed number is soon taken by whoever asks first: so
    ask at once, keep a namespace that got a lower number (it fills a hole below) and give one
    with a higher number back."""
    deadline = time.monotonic() + REUSE_SECONDS
    index = 0
    while time.monotonic() < deadline:
        index += 1
        name = f"{prefix}-n{index}"
        sh("ip", "netns", "add", name)
        got = os.stat(f"/run/netns/{name}").st_ino
        if got > inode:
            _delete_namespace(name)
        else:
            created.append(name)
            if got == inode:
                return name
        time.sleep(0.01)  # the deleted namespace may still be being torn down
    return None


def test_a_namespace_with_a_deleted_ones_inode_inherits_nothing(lab: Lab) -> None:
    """Apply and run an agent in a namespace, delete it, create namespaces until one gets its
    inode back: there `rollback` has nothing to roll back, `status` and `agent status` show
    no agent, `reset` changes nothing (the stranger's sysctl values are not put back), and the
    stranger's state directory is removed with a log line."""
    lab.mh("apply", check_rc=0)
    agent = lab.popen("agent", "--no-dhcp")
    stranger = state_dir_of(lab.root, lab.vm)
    try:
        wait_for((stranger / "agent.json").exists, 30, "the agent's state file")
    finally:
        agent.kill()
        agent.communicate(timeout=30)
    identity = json.loads((stranger / "namespace.json").read_text())
    inode = os.stat(f"/run/netns/{lab.vm}").st_ino
    assert identity["inode"] == inode and identity["cookie"] == cookie_of(lab.vm)
    assert (stranger / "snapshot.json").exists() and (stranger / "record.json").exists()
    _delete_namespace(lab.vm)

    created: list[str] = []
    try:
        name = _namespace_with_inode(lab.vm, inode, created)
        if name is None:
            pytest.skip(
                f"the kernel did not give inode {inode} to a new namespace within "
                f"{REUSE_SECONDS:g} s (another namespace on this machine holds it)"
            )
        new = replace(lab, vm=name)
        assert cookie_of(name) != identity["cookie"]
        # The same interfaces as the stranger had, with sysctls of its own (1, not 0).
        ns_sh(
            name,
            """
            sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
            ip link add eth0 type veth peer name eth1
            for l in lo eth0 eth1; do ip link set $l up; done
            ip addr add 192.168.0.107/24 dev eth0
            for k in rp_filter arp_ignore arp_announce arp_filter; do
              for i in all default eth0 eth1; do echo 1 > /proc/sys/net/ipv4/conf/$i/$k; done
            done
            """,
        )
        before = new.kernel()

        agent_status = new.mh("agent", "status", "--json", check_rc=1)
        assert json.loads(agent_status.stdout) == {"alive": False}
        status = new.mh("status", "--json")
        assert status.returncode in (0, 1), status.stderr
        assert json.loads(status.stdout)["agent"] is None

        rollback = new.mh("rollback", check_rc=0)
        assert "nothing to roll back: no checkpoint" in rollback.stdout, rollback.stdout
        assert f"removed {stranger}" in rollback.stderr, rollback.stderr
        assert not stranger.exists()
        reset = new.mh("reset", "--json", check_rc=0)
        assert json.loads(reset.stdout)["changes"] == []
        assert new.kernel() == before
        assert [p.name for p in (lab.root / "run/multihome").iterdir()] == [
            state_dir_of(lab.root, name).name
        ]
    finally:
        for namespace in created:
            _delete_namespace(namespace)


def test_applies_with_different_roots_never_interleave(lab: Lab) -> None:
    """Twenty rounds of two applies started at once in one namespace with different --root,
    one of them failing at its 20th change: every round ends with exactly the policy of a
    clean apply (the loser's undo never reverts the winner's sysctls)."""
    before = lab.kernel()
    lab.mh("apply", check_rc=0)
    applied = lab.kernel()
    lab.mh("reset", check_rc=0)
    assert lab.kernel() == before
    other = replace(lab, root=lab.root.parent / "other-root")
    other.root.mkdir()
    outcomes = []
    for index in range(ROUNDS):
        failing = lab.popen("apply", env={"MULTIHOME_FAILPOINT": "change:20"})
        winner = other.popen("apply")
        fail_out, fail_err = failing.communicate(timeout=120)
        win_out, win_err = winner.communicate(timeout=120)
        assert winner.returncode == 0, (index, win_out, win_err)
        if failing.returncode == 1:
            assert "undid the 19 change(s) made before it" in fail_err, fail_err
            outcomes.append("failed first")
        else:
            assert failing.returncode == 0 and "no changes" in fail_out, (fail_out, fail_err)
            outcomes.append("found nothing to do")
        assert lab.kernel() == applied, (index, outcomes)
        other.mh("reset", check_rc=0)  # the winner's record has what goes back
        lab.mh("reset", check_rc=0)
        assert lab.kernel() == before, index


def test_the_namespace_lock_names_its_holder_and_dies_with_it(lab: Lab) -> None:
    """Whoever holds @multihome/lock in the namespace (any --root) blocks apply, rollback and
    reset for --lock-timeout seconds; the message names its pid; when it is killed the kernel
    frees the lock and apply runs."""
    holder_code = (
        "import socket, time; s = socket.socket(socket.AF_UNIX); "
        "s.bind(b'\\0multihome/lock'); print('held', flush=True); time.sleep(120)"
    )
    holder = subprocess.Popen(
        ["ip", "netns", "exec", lab.vm, sys.executable, "-c", holder_code],
        stdout=subprocess.PIPE,
        text=True,
    )
    before = lab.kernel()
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        for verb in ("apply", "rollback", "reset"):
            done = lab.mh(verb, "--lock-timeout", "0.5", check_rc=1)
            assert f"pid {holder.pid} ({sys.executable} -c" in done.stderr, (verb, done.stderr)
            assert "@multihome/lock" in done.stderr and "Traceback" not in done.stderr
        assert lab.kernel() == before
    finally:
        holder.kill()
        holder.communicate(timeout=30)
    lab.mh("apply", "--lock-timeout", "5", check_rc=0)
    assert lab.kernel() != before


def test_a_failed_apply_keeps_the_last_good_checkpoint(lab: Lab) -> None:
    """After a good apply, an apply that fails (undone) and one killed half-way (undone by
    `rollback`) leave the checkpoint alone: `rollback` still goes back to before the good
    apply."""
    before = lab.kernel()
    lab.mh("apply", check_rc=0)
    ns_sh(lab.vm, "echo 0 > /proc/sys/net/ipv4/conf/eth0/arp_ignore")  # work for the next
    failed = lab.mh("apply", env={"MULTIHOME_FAILPOINT": "change:1"}, check_rc=1)
    assert "undid the 0 change(s)" in failed.stderr, failed.stderr
    killed = lab.mh("apply", env={"MULTIHOME_FAILPOINT": "kill:1"})
    assert killed.returncode == -9, killed.stderr
    undone = lab.mh("rollback", check_rc=0)
    assert "undid the interrupted apply" in undone.stdout, undone.stdout
    back = lab.mh("rollback", check_rc=0)
    assert "rolled back to the checkpoint" in back.stdout, back.stdout
    assert lab.kernel() == before
