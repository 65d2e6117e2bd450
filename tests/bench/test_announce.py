"""`multihome apply` announces every managed address with a gratuitous ARP from its own port,
seen by a packet socket on the far end of every port (not by asking multihome)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from bench_util import HERE
from lab import BenchLab, port_name, port_net

pytestmark = pytest.mark.netns
MULTIHOME = str(Path(sys.executable).parent / "multihome")


def test_apply_sends_one_gratuitous_arp_from_every_port(lab: BenchLab) -> None:
    """Each port p<i> sends a gratuitous ARP request (sender = target = its address, sender
    MAC = its MAC) that arrives on its peer q<i>; without the announcement this fails."""
    macs = {
        link["ifname"]: link["address"]
        for link in json.loads(
            subprocess.run(
                ["ip", "-n", lab.name, "-j", "link", "show"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
    }
    capture = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            lab.sw,
            sys.executable,
            str(HERE / "arp_capture.py"),
            "--netns",
            lab.sw,
            "--ports",
            str(lab.n),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert capture.stdout is not None
        assert capture.stdout.readline().strip() == "ready"
        applied = subprocess.run(
            lab.exec_args(MULTIHOME, "--root", str(lab.root), "apply"),
            capture_output=True,
            text=True,
            check=False,
        )
        assert applied.returncode == 0, applied.stderr
        out, err = capture.communicate(timeout=30)
    finally:
        if capture.poll() is None:
            capture.kill()
            capture.wait()
    assert capture.returncode == 0, err
    frames = json.loads(out)
    for i in range(lab.n):
        address = port_net(i)[0].split("/")[0]
        want = {
            "ifname": f"q{i}",
            "op": 1,
            "sha": macs[port_name(i)],
            "spa": address,
            "tpa": address,
        }
        assert want in frames, f"no gratuitous ARP for {address} from {port_name(i)}"
