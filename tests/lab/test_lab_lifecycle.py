"""The lab's life cycle: nothing is left behind by `down`, by a failed or an interrupted `up`;
two labs run side by side; `status` and `exec` report truthfully."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from labtools import leftovers, ns_run, run_cli, run_json
from netnsid import state_dir_of

from multihome.lab.runtime import netns_pids


def test_down_leaves_nothing_behind(lab_name: str) -> None:
    """After `down`: no namespace, no process (of the 7 the lab ran), no file or folder."""
    assert run_cli("lab", "up", "--scenario", "5", "--name", lab_name).returncode == 0
    pids = [
        pid for s in ("vm", "sw", "rtr", "dhcp", "inet") for pid in netns_pids(f"{lab_name}-{s}")
    ]
    assert len(pids) == 7  # dnsmasq, 3 dhclient, 3 HTTP services
    assert Path(f"/etc/netns/{lab_name}-vm/iproute2/rt_tables").exists()
    assert leftovers(lab_name)
    assert run_cli("lab", "exec", "--name", lab_name, "--", "multihome", "apply").returncode == 0
    guest_state = state_dir_of(Path("/"), f"{lab_name}-vm")
    assert guest_state.is_dir()  # the apply's snapshot and lock: kept under /run

    down = run_json("lab", "down", "--name", lab_name)
    assert not guest_state.exists()
    assert down["processes"] == 7 and len(down["namespaces"]) == 5
    assert leftovers(lab_name) == []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        assert state in ("Z", "X"), f"process {pid} survived `lab down`"
    again = run_cli("lab", "down", "--name", lab_name)
    assert again.returncode == 0 and "nothing to remove" in again.stdout


def test_failed_up_removes_what_it_built(lab_name: str) -> None:
    """A failure in the middle of `up` (daemons already started) removes everything."""
    env = dict(os.environ, MULTIHOME_LAB_FAILPOINT="guest-dhcp")
    done = run_cli("lab", "up", "--name", lab_name, env=env)
    assert done.returncode == 1
    assert "injected failure at step 'guest-dhcp'" in done.stderr
    assert "Traceback" not in done.stderr
    assert leftovers(lab_name) == []


def test_interrupted_up_removes_what_it_built(lab_name: str) -> None:
    """SIGTERM while `up` runs (DHCP clients running) removes everything."""
    env = dict(os.environ, MULTIHOME_LAB_FAILPOINT="guest-dhcp:hang")
    proc = subprocess.Popen(
        [sys.executable, "-m", "multihome", "lab", "up", "--name", lab_name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        pid_file = Path(f"/run/multihome-lab/{lab_name}/dhclient.eth1.pid")
        deadline = time.monotonic() + 30
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pid_file.exists(), "up did not reach the DHCP step"
        time.sleep(0.2)
        assert leftovers(lab_name)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1
    assert "interrupted by SIGTERM" in stderr and "Traceback" not in stderr
    assert leftovers(lab_name) == []


def test_two_labs_side_by_side_are_independent(lab_names: list[str]) -> None:
    """Two labs of the same scenario come up at once; fixing one does not touch the other."""
    first, second = lab_names
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "multihome", "lab", "up", "--scenario", "4", "--name", name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in lab_names
    ]
    for proc in procs:
        _, stderr = proc.communicate(timeout=90)
        assert proc.returncode == 0, stderr
    taken = run_cli("lab", "up", "--name", first)
    assert taken.returncode == 2 and "already exists" in taken.stderr

    applied = run_cli("lab", "exec", "--name", first, "--", "multihome", "apply")
    assert applied.returncode == 0, applied.stderr
    assert run_json("lab", "probe", "--name", first, "--expect", "after")["expect"]["ok"]
    assert run_json("lab", "probe", "--name", second, "--expect", "before")["expect"]["ok"]

    refused = run_cli("lab", "demo", "--name", second)
    assert refused.returncode == 2 and "exists" in refused.stderr

    assert run_cli("lab", "down", "--name", first).returncode == 0
    assert leftovers(first) == []
    assert run_cli("lab", "status", "--name", second).returncode == 0


def test_status_and_exec(lab_name: str) -> None:
    """`status` exits 1 without a lab, 0 with one; `exec` runs in the node, keeps the status."""
    absent = run_cli("lab", "status", "--name", lab_name)
    assert absent.returncode == 1 and "no lab named" in absent.stdout
    assert run_cli("lab", "up", "--scenario", "1", "--name", lab_name).returncode == 0

    status = run_json("lab", "status", "--name", lab_name)
    assert status["up"] and status["problems"] == []
    assert status["scenario"] == "single-port"
    assert all(p["alive"] for p in status["processes"])
    assert any(
        line.startswith("eth0") and "192.168.0.147/24 metric 100" in line
        for line in status["guest"]["addresses"]
    )

    code = run_cli("lab", "exec", "--name", lab_name, "--", "sh", "-c", "exit 7")
    assert code.returncode == 7
    internet = run_cli(
        "lab",
        "exec",
        "--name",
        lab_name,
        "--node",
        "internet",
        "--",
        "ip",
        "-j",
        "-4",
        "addr",
        "show",
        "dev",
        "eth0",
    )
    assert json.loads(internet.stdout)[0]["addr_info"][0]["local"] == "198.51.100.10"

    # A daemon that dies shows up as a problem.
    dnsmasq = int(Path(f"/run/multihome-lab/{lab_name}/dnsmasq.pid").read_text())
    os.kill(dnsmasq, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and ns_run(f"{lab_name}-dhcp", "true").returncode == 0:
        status = run_json("lab", "status", "--name", lab_name)
        if status["problems"]:
            break
        time.sleep(0.1)
    assert any("dnsmasq" in p for p in status["problems"])
    assert run_cli("lab", "status", "--name", lab_name).returncode == 1


def test_interrupted_demo_removes_the_lab(lab_name: str) -> None:
    """SIGTERM while `demo` probes (the lab complete and running) removes everything."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "multihome", "lab", "demo", "--name", lab_name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        state = Path(f"/run/multihome-lab/{lab_name}/lab.json")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if json.loads(state.read_text())["complete"]:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        assert json.loads(state.read_text())["complete"], "demo did not build the lab"
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stdout + stderr
    assert "interrupted by SIGTERM" in stderr and "Traceback" not in stderr
    assert "removed the lab" in stdout
    assert leftovers(lab_name) == []
