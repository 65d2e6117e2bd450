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
