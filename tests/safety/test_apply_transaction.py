"""`multihome apply` as one transaction under the lock: the changes that finished an
interrupted apply count (exit 2 with --detailed-exit-codes, announced and verified), and a
`reset` running in a loop next to it can no longer make its verification fail."""

from __future__ import annotations

import re
import subprocess

from safety_util import MULTIHOME, Lab


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
