"""Journal recovery after SIGKILL, reset to the exact pre-apply state, and the lock."""

from __future__ import annotations

import fcntl
import json
import os
import time

from safety_util import Lab, ns_sh, sh, wait_for

#: The how-to VM's apply makes 22 kernel changes: kill before the first, early, in the
#: middle (rules half-added), and before the last (eth1's default leaving main).
KILL_POINTS = (1, 2, 13, 17, 22)


def _foreign_state(lab: Lab) -> None:
    """Another tool's rule and table (say, a VPN client): multihome must never touch them."""
    ns_sh(
        lab.vm,
        """
        ip route add 10.77.0.0/16 via 192.168.0.1 dev eth0 table 77 proto static
        ip rule add priority 500 from 10.66.0.0/16 lookup 77
    """,
    )


def test_kill_at_each_point_is_finished_by_the_next_apply(lab: Lab) -> None:
    """SIGKILL at the k-th kernel change leaves a journal; the next apply finishes the
    half-made transaction: the kernel equals that of an uninterrupted apply, every time."""
    _foreign_state(lab)
    before = lab.kernel()
    lab.mh("apply", check_rc=0)
    full = lab.kernel()
    lab.mh("reset", check_rc=0)
    assert lab.kernel() == before
    for k in KILL_POINTS:
        done = lab.mh("apply", env={"MULTIHOME_FAILPOINT": f"kill:{k}"})
        assert done.returncode == -9, (k, done.returncode, done.stderr)
        assert (lab.state_dir() / "journal.json").exists()
        half = lab.kernel()
        if k > 1:
            assert half not in (before, full), f"kill:{k} did not stop half-way"
        doctor = json.loads(lab.mh("doctor", "--json", check_rc=1).stdout)
        assert "interrupted-apply" in [p["code"] for p in doctor["problems"]]
        again = lab.mh("apply", check_rc=0)
        assert "finished the interrupted apply" in again.stderr
        assert lab.kernel() == full, f"kill:{k}"
        assert not (lab.state_dir() / "journal.json").exists()
        lab.mh("reset", check_rc=0)
        assert lab.kernel() == before, f"reset after kill:{k}"


def test_kill_then_rollback_undoes(lab: Lab) -> None:
    """After a SIGKILL half-way, `multihome rollback` undoes the interrupted apply instead."""
    before = lab.kernel()
    for k in (5, 20):
        done = lab.mh("apply", env={"MULTIHOME_FAILPOINT": f"kill:{k}"})
        assert done.returncode == -9
        assert lab.kernel() != before
        back = lab.mh("rollback", check_rc=0)
        assert "undid the interrupted apply" in back.stdout
        assert lab.kernel() == before, f"kill:{k}"


def test_reset_restores_exactly_including_foreign_state(lab: Lab) -> None:
    """reset after apply: rules, routes of every table (eth1's moved default back with its
    proto dhcp and metric), sysctls and the name files are as before; foreign rules and
    tables are untouched throughout; a second reset changes nothing."""
    _foreign_state(lab)
    ns_sh(lab.vm, "echo 1 > /proc/sys/net/ipv4/conf/eth1/arp_ignore")
    before = lab.kernel()
    lab.mh("apply", check_rc=0)
    applied = lab.kernel()
    assert any('"priority": 500' in r for r in applied["rules"])
    assert any('"table": "77"' in r for r in applied["routes"])
    names = lab.root / "etc/iproute2/rt_tables.d/multihome.conf"
    assert names.exists()
    done = lab.mh("reset", check_rc=0)
    assert "+ route default via 192.168.0.1 dev eth1 table main proto dhcp" in done.stdout
    assert lab.kernel() == before
    assert not names.exists()
    assert not (lab.root / "etc/iproute2/rt_protos.d/multihome.conf").exists()
    second = lab.mh("reset", check_rc=0)
    assert "nothing to reset" in second.stdout
    assert lab.kernel() == before


def test_reset_without_state_rebuilds_the_moved_default(lab: Lab) -> None:
    """With the state directory gone (a reboot with /run on tmpfs, say) reset still removes
    everything multihome owns and rebuilds eth1's default in main from multihome's table."""
    before = lab.kernel()
    lab.mh("apply", check_rc=0)
    sh("rm", "-rf", str(lab.root / "run"))
    done = lab.mh("reset", "--json", check_rc=0)
    data = json.loads(done.stdout)
    assert data["ok"] and any("no record" in n for n in data["notes"])
    after = lab.kernel()
    assert after["rules"] == before["rules"]
    main_defaults = [
        json.loads(r)
        for r in after["routes"]
        if json.loads(r).get("dst") == "default" and "table" not in json.loads(r)
    ]
    assert sorted(r["dev"] for r in main_defaults) == ["eth0", "eth1"]


def test_second_apply_waits_then_fails_clearly(lab: Lab) -> None:
    """While an apply waits for its confirmation (its watchdog holds the lock) a second apply
    waits --lock-timeout seconds, then exits 1 naming the holder and the way out; after
    `multihome confirm` it runs."""
    first = lab.popen("apply", "--confirm-timeout", "60")
    wait_for(
        lambda: any((lab.root / "run/multihome").glob("netns-*/pending.json")),
        30,
        "the confirmation window",
    )
    wait_for(
        lambda: (
            json.loads((lab.state_dir() / "pending.json").read_text())["deadline"]
            < time.time() + 61
        ),
        30,
        "the countdown",
    )
    start = time.monotonic()
    second = lab.mh("apply", "--lock-timeout", "1.5", check_rc=1)
    waited = time.monotonic() - start
    assert 1.5 <= waited < 10, waited
    assert "another multihome is changing this network namespace" in second.stderr
    assert "confirmation watchdog" in second.stderr
    assert "multihome confirm" in second.stderr
    assert "Traceback" not in second.stderr
    lab.mh("confirm", check_rc=0)
    first.communicate(timeout=30)
    assert first.returncode == 0
    third = lab.mh("apply", "--lock-timeout", "10", check_rc=0)
    assert "no changes" in third.stdout


def test_lock_held_by_another_process(lab: Lab) -> None:
    """An flock held by someone else blocks apply, rollback and reset alike (bounded)."""
    lab.mh("apply", check_rc=0)
    path = lab.state_dir() / "lock"
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        for verb in ("apply", "rollback", "reset"):
            done = lab.mh(verb, "--lock-timeout", "0.5", check_rc=1)
            assert "waited 0.5 s for the lock" in done.stderr, verb
    finally:
        os.close(fd)
    lab.mh("reset", "--lock-timeout", "5", check_rc=0)


def test_concurrent_applies_do_not_interleave(lab: Lab) -> None:
    """Three applies started at once: one makes the changes, the others find nothing to do;
    no duplicate rules and no errors."""
    procs = [lab.popen("apply") for _ in range(3)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    made = [o for o, _ in outputs if "applied 22 change(s)" in o]
    assert len(made) == 1, outputs
    rules = lab.kernel()["rules"]
    assert len(rules) == len(set(rules))
    codes = [p["code"] for p in json.loads(lab.mh("doctor", "--json").stdout)["problems"]]
    assert "duplicate-rules" not in codes
