"""One truth: after apply in a lab guest, `status` shows exactly doctor's problems (not
"problems: none" while doctor exits 1), from the same facts."""

from __future__ import annotations

import json
from pathlib import Path

from labtools import run_cli


def test_status_shows_the_problems_doctor_finds(lab_name: str, tmp_path: Path) -> None:
    """Scenario 4 after `multihome apply` (guest files under a temporary --root): doctor
    exits 1 with problems (not persisted, a DHCP client that will undo the fix); status
    lists the same codes and messages, in text and JSON."""
    assert run_cli("lab", "up", "--name", lab_name, "--scenario", "4").returncode == 0
    guest = ("lab", "exec", "--name", lab_name, "--", "multihome", "--root", str(tmp_path))
    applied = run_cli(*guest, "apply")
    assert applied.returncode == 0, applied.stderr
    doctor = run_cli(*guest, "doctor", "--json")
    assert doctor.returncode == 1, doctor.stdout
    found = json.loads(doctor.stdout)["problems"]
    assert {"not-persisted", "dhcp-will-undo"} <= {p["code"] for p in found}
    status = run_cli(*guest, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["problems"] == found
    text = run_cli(*guest, "status").stdout
    assert "problems: none" not in text
    for problem in found:
        assert problem["message"] in text


def test_rollback_and_reset_speak_like_plan(lab_name: str, tmp_path: Path) -> None:
    """rollback and reset print tables by their `mh-*` names, as plan and apply do, and say
    of each file whether it was restored or removed."""
    assert run_cli("lab", "up", "--name", lab_name, "--scenario", "4").returncode == 0
    guest = ("lab", "exec", "--name", lab_name, "--", "multihome", "--root", str(tmp_path))
    for undo in ("rollback", "reset"):
        applied = run_cli(*guest, "apply")
        assert applied.returncode == 0, applied.stderr
        assert "lookup mh-eth1" in applied.stdout
        done = run_cli(*guest, undo)
        assert done.returncode == 0, done.stderr
        rules = [line for line in done.stdout.splitlines() if line.startswith("- rule ")]
        assert rules and all(" lookup mh-eth" in line for line in rules if "main" not in line)
        assert "restored or removed" not in done.stdout
        files = [line for line in done.stdout.splitlines() if line.startswith("# removed ")]
        assert f"# removed {tmp_path}/etc/iproute2/rt_tables.d/multihome.conf" in files, done.stdout


def _multihome_files_in_etc(lab_name: str) -> list[Path]:
    """multihome's files under the host's /etc, this lab's namespaces' /etc/netns folders
    included; other labs' (the suite runs labs in parallel) left out."""
    netns = Path("/etc/netns")
    return sorted(
        p
        for p in Path("/etc").rglob("*multihome*")
        if not p.is_relative_to(netns) or p.relative_to(netns).parts[0].startswith(lab_name)
    )


def test_persist_in_a_lab_guest_does_not_touch_the_host(lab_name: str) -> None:
    """Following doctor's "run `multihome persist`" inside `lab exec` (whose guest shares the
    host's files, --root /) is refused with exit 2 and the fix, and writes nothing; the same
    for unpersist, which would remove the host's persisted files."""
    assert run_cli("lab", "up", "--name", lab_name, "--scenario", "4").returncode == 0
    guest = ("lab", "exec", "--name", lab_name, "--", "multihome")
    before = _multihome_files_in_etc(lab_name)
    done = run_cli(*guest, "persist", "--json")
    assert done.returncode == 2, done.stdout + done.stderr
    error = json.loads(done.stdout)["error"]
    assert error["input"] == "--root" and "shares the host's files" in error["message"]
    done = run_cli(*guest, "unpersist")
    assert done.returncode == 2 and "give --root DIR" in done.stderr, done.stderr
    assert _multihome_files_in_etc(lab_name) == before
