"""Confirmation windows in network namespaces: unconfirmed and cut applies roll back by
themselves, confirmed ones stay, and the watchdog outlives the terminal."""

from __future__ import annotations

import json
import os
import pty
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
from safety_util import MULTIHOME, Lab, read_until, wait_for


def test_unconfirmed_apply_rolls_back_to_the_checkpoint(lab: Lab) -> None:
    """Without `multihome confirm` the apply is undone at the deadline: exit 3 and the kernel
    (rules, routes of every table, sysctls) equals the pre-apply state."""
    before = lab.kernel()
    start = time.monotonic()
    done = lab.mh("apply", "--confirm-timeout", "2", check_rc=3)
    elapsed = time.monotonic() - start
    assert "rolled back" in done.stderr and "no confirmation within 2" in done.stderr
    assert lab.kernel() == before
    assert 2 <= elapsed < 20, elapsed
    result = json.loads((lab.state_dir() / "result.json").read_text())
    assert result["outcome"] == "rolled-back" and result["changes"] == 22


def test_confirmed_apply_stays(lab: Lab) -> None:
    """`multihome confirm` from another process ends the window: the apply exits 0 and its
    changes are still there after the deadline has passed."""
    before = lab.kernel()
    apply = lab.popen("apply", "--confirm-timeout", "4")
    wait_for(
        lambda: any((lab.root / "run/multihome").glob("netns-*/pending.json")),
        30,
        "the confirmation window",
    )
    wait_for(
        lambda: (
            json.loads((lab.state_dir() / "pending.json").read_text())["deadline"]
            < time.time() + 10
        ),
        30,
        "the countdown",
    )
    confirm = lab.mh("confirm", check_rc=0)
    assert "confirmed" in confirm.stdout
    out, err = apply.communicate(timeout=30)
    assert apply.returncode == 0, (out, err)
    assert "confirmed" in err
    applied = lab.kernel()
    assert applied != before
    time.sleep(5)  # past the deadline: nothing rolls back
    assert lab.kernel() == applied
    assert lab.mh("plan", "--json", check_rc=0).stdout.count('"action"') == 0
    again = lab.mh("confirm", check_rc=1)
    assert "nothing waits" in again.stderr


def test_apply_that_cuts_the_management_path_rolls_back(deadgw_lab: Lab) -> None:
    """primary: eth1 (whose gateway is dead) moves eth0's default out of main: the way back
    to the management peer 10.99.0.2 now leads to a gateway that does not answer ARP. The
    check fails and the apply is undone at once, long before the confirmation deadline."""
    lab = deadgw_lab
    assert lab.client_ping()
    (lab.root / "cfg.yaml").write_text("primary: eth1\n")
    before = lab.kernel()
    start = time.monotonic()
    done = lab.mh(
        "--config",
        str(lab.root / "cfg.yaml"),
        "apply",
        "--confirm-timeout",
        "60",
        "--management-peer",
        "10.99.0.2",
        check_rc=3,
    )
    elapsed = time.monotonic() - start
    assert "management path to 10.99.0.2" in done.stderr
    assert "192.168.1.1 does not answer" in done.stderr or "did not answer" in done.stderr
    assert elapsed < 30, elapsed
    assert lab.kernel() == before
    assert lab.client_ping()


def test_ssh_peer_from_the_environment_passes(lab: Lab) -> None:
    """With $SSH_CONNECTION naming the client and the address it reached, the good apply
    passes its check (the reply path stays on eth0) and keeps its changes (timeout 0)."""
    done = lab.mh(
        "apply",
        "--confirm-timeout",
        "0",
        env={"SSH_CONNECTION": "10.99.0.2 50000 192.168.0.107 22"},
        check_rc=0,
    )
    assert "management path to 10.99.0.2 ($SSH_CONNECTION): dev eth0 via 192.168.0.1" in done.stderr
    assert lab.client_ping()
    assert lab.client_ping("192.168.0.112")


def test_failed_probe_rolls_back(lab: Lab) -> None:
    """An extra --check that fails (a TCP port nobody listens on) undoes the apply."""
    before = lab.kernel()
    done = lab.mh(
        "apply",
        "--confirm-timeout",
        "0",
        "--check",
        "tcp:192.168.0.1:1",
        "--check",
        "gateways",
        check_rc=3,
    )
    assert "tcp 192.168.0.1:1" in done.stderr
    assert lab.kernel() == before


def test_bad_check_changes_nothing(lab: Lab) -> None:
    """A malformed --check is bad input: exit 2 before anything changes."""
    before = lab.kernel()
    done = lab.mh("apply", "--check", "ping:not-an-address", check_rc=2)
    assert "--check ping:not-an-address" in done.stderr
    assert lab.kernel() == before
    assert not (lab.root / "run").exists()


def _wait_pid_gone(pid: int, timeout: float) -> None:
    def gone() -> bool:
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return True
        return waited == pid

    wait_for(gone, timeout, f"process {pid} to end")


def test_terminal_hangup_the_watchdog_still_rolls_back(lab: Lab) -> None:
    """apply runs on a terminal (the window is on by default there); the terminal goes away
    (SIGHUP, the apply dies); the watchdog it left behind restores the checkpoint at the
    deadline all the same."""
    before = lab.kernel()
    pid, fd = pty.fork()
    if pid == 0:  # the child: a session with the pty as its controlling terminal
        os.execvp(
            "ip",
            [
                "ip",
                "netns",
                "exec",
                lab.vm,
                MULTIHOME,
                "--root",
                str(lab.root),
                "apply",
                "--confirm-timeout",
                "3",
            ],
        )
    try:
        text = read_until(fd, b"press any key", 30)
        assert b"within 3 s" in text
        applied = lab.kernel()
        assert applied != before
    finally:
        os.close(fd)  # hang up: the kernel sends SIGHUP to the terminal's session
    _wait_pid_gone(pid, 10)
    wait_for((lab.state_dir() / "result.json").exists, 20, "the watchdog's rollback")
    assert lab.kernel() == before
    result = json.loads((lab.state_dir() / "result.json").read_text())
    assert result["outcome"] == "rolled-back"
    assert result["pid"] != pid


def test_terminal_default_window_and_keypress_confirms(lab: Lab) -> None:
    """On a terminal without --confirm-timeout the window is 120 s; a keypress keeps it."""
    before = lab.kernel()
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(
            "ip",
            [
                "ip",
                "netns",
                "exec",
                lab.vm,
                MULTIHOME,
                "--root",
                str(lab.root),
                "apply",
                "--management-peer",
                "10.99.0.2",
            ],
        )
    try:
        text = read_until(fd, b"press any key", 30)
        assert b"within 120 s" in text
        assert b"check ok: management path to 10.99.0.2" in text
        time.sleep(0.5)
        os.write(fd, b"y")
        read_until(fd, b"confirmed", 30)
    finally:
        _wait_pid_gone(pid, 20)
        os.close(fd)
    after = lab.kernel()
    assert after != before
    assert json.loads((lab.state_dir() / "result.json").read_text())["outcome"] == "confirmed"


def test_rollback_during_the_window_and_idempotent_rollback(lab: Lab) -> None:
    """`multihome rollback` ends a window at once (the apply exits 3); after a confirmed
    apply it goes back to the checkpoint, and a second rollback changes nothing."""
    before = lab.kernel()
    apply = lab.popen("apply", "--confirm-timeout", "60")
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
    lab.mh("rollback", check_rc=0)
    _, err = apply.communicate(timeout=30)
    assert apply.returncode == 3, err
    assert lab.kernel() == before

    lab.mh("apply", check_rc=0)
    assert lab.kernel() != before
    first = lab.mh("rollback", check_rc=0)
    assert "rolled back to the checkpoint" in first.stdout
    assert lab.kernel() == before
    second = lab.mh("rollback", check_rc=0)
    assert "nothing to roll back" in second.stdout
    assert lab.kernel() == before


def test_watchdog_sigterm_rolls_back(lab: Lab) -> None:
    """SIGTERM to the watchdog (a shutdown, an admin) rolls back rather than keep an
    unconfirmed apply."""
    before = lab.kernel()
    apply = lab.popen("apply", "--confirm-timeout", "60")
    wait_for(
        lambda: any((lab.root / "run/multihome").glob("netns-*/watchdog.json")),
        30,
        "the watchdog",
    )
    wait_for(
        lambda: (
            json.loads((lab.state_dir() / "pending.json").read_text())["deadline"]
            < time.time() + 61
        ),
        30,
        "the countdown",
    )
    watchdog = json.loads((lab.state_dir() / "watchdog.json").read_text())["pid"]
    os.kill(watchdog, signal.SIGTERM)
    _, err = apply.communicate(timeout=30)
    assert apply.returncode == 3, err
    assert "SIGTERM" in err
    assert lab.kernel() == before


def test_ctrl_c_during_the_window_rolls_back_now(lab: Lab) -> None:
    """SIGINT (Ctrl-C) while waiting for the confirmation means "no": rolled back at once."""
    before = lab.kernel()
    apply = lab.popen("apply", "--confirm-timeout", "60")
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
    # What the process does with SIGINT (blocked, ignored, caught), for a failure's message.
    masks = [
        line
        for line in Path(f"/proc/{apply.pid}/status").read_text().splitlines()
        if line.startswith(("SigBlk", "SigIgn", "SigCgt"))
    ]
    start = time.monotonic()
    apply.send_signal(signal.SIGINT)
    try:
        _, err = apply.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        tasks = {
            task.name: (task / "wchan").read_text() + " " + (task / "stat").read_text().split()[2]
            for task in Path(f"/proc/{apply.pid}/task").iterdir()
        }
        apply.kill()
        _, err = apply.communicate()
        pytest.fail(f"SIGINT not acted on in 30 s; {masks}; threads {tasks}; stderr: {err}")
    assert apply.returncode == 3, err
    assert "Ctrl-C" in err
    assert time.monotonic() - start < 15
    assert lab.kernel() == before


def test_watchdog_and_state_files_are_not_writable_by_others_under_umask_000(lab: Lab) -> None:
    """An unconfirmed apply started with umask 000 (as some launchers leave it): the state
    directory (0700), its parents, the watchdog's log and result and every other file the
    apply and its watchdog wrote are writable by root alone."""
    umask = ["ip", "netns", "exec", lab.vm, "sh", "-c", 'umask 000; exec "$@"', "sh"]
    done = subprocess.run(
        [*umask, MULTIHOME, "--root", str(lab.root), "apply", "--confirm-timeout", "1"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    wait_for(lambda: lab.state_dir().joinpath("result.json").is_file(), 30, "the result")
    tree = lab.root / "run/multihome"
    found = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [tree, *tree.rglob("*")]}
    assert "watchdog.log" in found and found["watchdog.log"] == 0o600
    assert found[lab.state_dir().name] == 0o700
    assert {name: mode for name, mode in found.items() if mode & 0o022} == {}
