"""`multihome apply` as one transaction under the lock: the changes that finished an
interrupted apply count (exit 2 with --detailed-exit-codes, announced and verified), a
`reset` running in a loop next to it can no longer make its verification fail, and another
writer taking a slot of its plan between its read and its apply makes it plan again."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

from safety_util import MULTIHOME, Lab, sh


def test_detailed_exit_codes_count_the_changes_that_finished_an_interrupted_apply(
    lab: Lab,
) -> None:
    """An apply killed half-way; the next `apply --detailed-exit-codes` finishes it, exits 2
    (something changed), and announces and verifies the finished changes."""
    lab.mh("apply", check_rc=0)
    full = lab.kernel()
    lab.mh("reset", check_rc=0)
    killed = lab.mh("apply", env={"MULTIHOME_FAILPOINT": "kill:13"})
    assert killed.returncode == -9, killed.stderr
    done = lab.mh("apply", "--detailed-exit-codes")
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "finished the interrupted apply" in done.stderr
    found = re.search(
        r"verify: (\d+)/(\d+) checks pass; (\d+) address\(es\) announced", done.stdout
    )
    assert found is not None, done.stdout
    passed, total, announced = (int(n) for n in found.groups())
    assert total > 0 and passed == total and announced == 2, done.stdout
    assert lab.kernel() == full
    lab.mh("apply", "--detailed-exit-codes", check_rc=0)


def test_apply_verifies_under_the_lock_while_reset_runs_in_a_loop(lab: Lab) -> None:
    """Rounds of `apply` while another process resets the namespace again and again: every
    apply either changes nothing or applies and verifies completely; none fails."""
    resets = subprocess.Popen(
        [
            "sh",
            "-c",
            f"for i in $(seq 12); do ip netns exec {lab.vm} {MULTIHOME} --root "
            f"{lab.root} reset >/dev/null || exit 1; done",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        outcomes = []
        while resets.poll() is None and len(outcomes) < 40:
            done = lab.mh("apply")
            assert done.returncode == 0, (len(outcomes), done.stdout, done.stderr)
            assert "FAIL" not in done.stderr, done.stderr
            outcomes.append("applied" if "applied" in done.stdout else "unchanged")
    finally:
        _, err = resets.communicate(timeout=120)
    assert resets.returncode == 0, err
    assert "applied" in outcomes, outcomes  # the resets did interleave with the applies


def _stopped(pid: int) -> bool:
    """The process is stopped (SIGSTOP): its state in /proc/PID/stat is ``T``."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "T"


def test_apply_plans_again_when_another_writer_takes_a_slot_of_its_plan(lab: Lab) -> None:
    """`apply` stops (failpoint ``stop:K``) just before the change that adds eth1's default
    to eth1's table; meanwhile a DHCP client writing into that table (networkd's
    ``RouteTable=``) puts its own default into the same slot. Continued, the apply meets
    "File exists", undoes what it made, says so on stderr, reads and plans again (the
    client's default now stands for its own copy) and succeeds, verified; a second apply
    has nothing left to do. Before, it failed with exit 1."""
    plan = json.loads(lab.mh("plan", "--json", check_rc=0).stdout)
    kernel = [c for c in plan["changes"] if c["kind"] in ("route", "rule", "sysctl")]
    k, default = next(
        (index, c)
        for index, c in enumerate(kernel, start=1)
        if c["kind"] == "route"
        and c["action"] == "add"
        and (c["dev"], c["dst"]) == ("eth1", "0.0.0.0/0")
    )
    apply = lab.popen("apply", env={"MULTIHOME_FAILPOINT": f"stop:{k}"})
    try:
        deadline = time.monotonic() + 30
        while not _stopped(apply.pid):
            assert apply.poll() is None, apply.communicate()
            assert time.monotonic() < deadline, "the apply never reached its failpoint"
            time.sleep(0.02)
        sh(
            "ip", "-n", lab.vm, "route", "add", "default", "via", "192.168.0.1", "dev", "eth1",
            "table", str(default["table"]), "proto", "dhcp", "metric", str(default["metric"]),
        )  # fmt: skip
    finally:
        apply.send_signal(signal.SIGCONT)
        out, err = apply.communicate(timeout=60)
    assert apply.returncode == 0, (out, err)
    assert "another writer changed the namespace" in err, err
    assert "reading and planning again (attempt 2 of 3)" in err, err
    found = re.search(r"verify: (\d+)/(\d+) checks pass", out)
    assert found is not None and found.group(1) == found.group(2), out
    table = json.loads(
        sh("ip", "-n", lab.vm, "-j", "route", "show", "table", str(default["table"])).stdout
    )
    defaults = [r for r in table if r["dst"] == "default"]
    assert [r.get("protocol") for r in defaults] == ["dhcp"], table
    lab.mh("apply", "--detailed-exit-codes", check_rc=0)
