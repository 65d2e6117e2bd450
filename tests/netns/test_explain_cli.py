"""``multihome explain`` in the how-to's VM: the wrong port shown with its decisive rule, the
kernel's agreement, JSON, and bad input refused with exit 2."""

from __future__ import annotations

import json
import subprocess

import pytest
from netns_util import HowtoVM, multihome, sh

pytestmark = [pytest.mark.netns]


def test_explain_address_shows_the_wrong_port(vm: HowtoVM) -> None:
    """Before apply, replies from eth1's address leave through eth0 by main's default; the
    kernel agrees (exit 0) and the text names the rule, the table and the owners."""
    result = multihome(vm.ns, "explain", "192.168.0.112", root=vm.root)
    assert result.returncode == 0, result.stderr
    assert "Result: unicast dev eth0 via 192.168.0.1 src 192.168.0.112" in result.stdout
    assert "decided by rule 32766 [kernel]" in result.stdout
    assert "-- agrees" in result.stdout


def test_explain_json_and_oif(vm: HowtoVM) -> None:
    """A socket bound to eth1 leaves through eth1 (main's eth0 default lost: other device),
    in JSON with owners beside rules and routes."""
    result = multihome(
        vm.ns,
        "explain",
        "--to",
        "8.8.8.8",
        "--oif",
        "eth1",
        "--proto",
        "tcp",
        "--dport",
        "443",
        "--json",
        root=vm.root,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["agrees"] is True and data["dev"] == "eth1"
    assert data["kernel"]["dev"] == "eth1" and data["kernel"]["src"] == "192.168.0.112"
    decisive = next(step for step in data["steps"] if step["outcome"] == "route")
    assert decisive["owner"] == "kernel"
    assert any(
        "the flow is bound to eth1" in loser["why"] for loser in decisive["lookup"]["losers"]
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--to", "nope"], "--to 'nope' is not an IP address"),
        (["--to", "1.1.1.1", "--iif", "eth9"], "--iif eth9: no such interface"),
        (["--to", "1.1.1.1", "--iif", "eth0", "--oif", "eth1"], "exclude each other"),
        (["--from", "192.168.0.112", "--to", "2001:db8::1"], "different families"),
        ([], "no destination"),
    ],
)
def test_bad_input_exits_2(vm: HowtoVM, args: list[str], words: str) -> None:
    """Bad input: a message naming the option and the fix, exit 2, no traceback."""
    result = multihome(vm.ns, "explain", *args, root=vm.root)
    assert result.returncode == 2
    assert words in result.stderr and "Traceback" not in result.stderr


def test_explain_dot_renders(vm: HowtoVM) -> None:
    """``--dot`` draws the VM's routing with the explained path (eth0, main's default) in
    red, and Debian's graphviz renders it."""
    import shutil
    import subprocess

    dot = shutil.which("dot")
    if dot is None:
        pytest.skip("graphviz is not installed (.ci/apt.d/explain.txt)")
    result = multihome(vm.ns, "explain", "192.168.0.112", "--dot", root=vm.root)
    assert result.returncode == 0, result.stderr
    assert '"eth0" [shape=component, color="red"' in result.stdout
    svg = subprocess.run(
        [dot, "-Tsvg"], input=result.stdout, capture_output=True, text=True, check=False
    )
    assert svg.returncode == 0 and "<svg" in svg.stdout, svg.stderr


def _red(dot: str) -> list[str]:
    return [line.strip() for line in dot.splitlines() if 'color="red"' in line]


def test_status_format_dot_marks_the_wrong_path_then_none(vm: HowtoVM) -> None:
    """`status --format dot` before apply: valid dot (Debian's graphviz renders it to SVG),
    doctor's reply-wrong-interface finding drawn in red: eth1's address, main's rule 32766,
    main's default through eth0, and eth0. After `multihome apply`: multihome's own rules and
    tables drawn (blue), the kernel's dashed grey, and nothing red."""
    before = multihome(vm.ns, "status", "--format", "dot", root=vm.root)
    assert before.returncode == 0, before.stderr
    red = _red(before.stdout)
    assert any(line.startswith('"192.168.0.112" [shape=ellipse') for line in red), red
    assert any(line.startswith('"rule 32766 from all lookup main') for line in red), red
    assert any(line.startswith('"table 254" -> "gateway 192.168.0.1"') for line in red), red
    assert any(line.startswith('"eth0" [shape=component') for line in red), red
    assert not any('"192.168.0.107"' in line for line in red), red
    svg = subprocess.run(
        ["dot", "-Tsvg"], input=before.stdout, capture_output=True, text=True, check=False
    )
    assert svg.returncode == 0 and "<svg" in svg.stdout, svg.stderr
    assert multihome(vm.ns, "apply", root=vm.root).returncode == 0
    after = multihome(vm.ns, "status", "--format", "dot", root=vm.root)
    assert after.returncode == 0, after.stderr
    assert _red(after.stdout) == []
    assert '"rule 10000 from 192.168.0.112 lookup' in after.stdout
    assert 'color="#1f5fbf"' in after.stdout and 'style="dashed"' in after.stdout
    both = multihome(vm.ns, "status", "--json", "--format", "dot", root=vm.root)
    assert both.returncode == 2 and "exclude each other" in both.stderr


def test_explain_ipv6_address_and_link_local(vm: HowtoVM) -> None:
    """IPv6 on the how-to's VM (an address and a default per port, eth0's metric lower):
    replies from eth1's IPv6 address leave through eth0, a link-local peer asked through
    eth1 is reached through eth1; the kernel agrees, JSON names the owners; `explain --dot`
    and `status --format dot` draw both families, the IPv6 wrong path in red."""
    for dev, address, metric in (("eth0", "2001:db8:1::10", 100), ("eth1", "2001:db8:1::11", 101)):
        sh("ip", "-n", vm.ns, "addr", "add", f"{address}/64", "dev", dev, "nodad")
        sh("ip", "-n", vm.ns, "-6", "route", "add", "default", "via", "fe80::1", "dev", dev,
           "metric", str(metric), "proto", "ra")  # fmt: skip
    result = multihome(vm.ns, "explain", "2001:db8:1::11", root=vm.root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Result: unicast dev eth0 via fe80::1 src 2001:db8:1::11" in result.stdout
    assert "decided by rule 32766 [kernel]" in result.stdout and "-- agrees" in result.stdout
    result = multihome(vm.ns, "explain", "--to", "fe80::1", "--oif", "eth1", "--json", root=vm.root)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["agrees"] is True and data["dev"] == data["kernel"]["dev"] == "eth1"
    assert data["flow"]["family"] == 6
    decisive = next(step for step in data["steps"] if step["outcome"] == "route")
    assert decisive["owner"] == "kernel" and decisive["lookup"]["route"]["owner"] == "kernel"
    assert any("link-local" in note for note in data["notes"])
    drawn = multihome(vm.ns, "explain", "2001:db8:1::11", "--dot", root=vm.root)
    assert drawn.returncode == 0, drawn.stderr
    red = _red(drawn.stdout)
    assert any('"2001:db8:1::11"' in line for line in red), red
    assert any(line.startswith('"eth0"') for line in red), red
    status = multihome(vm.ns, "status", "--format", "dot", root=vm.root)
    assert status.returncode in (0, 1), status.stderr
    assert '"rule -6 32766 from all lookup main"' in status.stdout
    assert '"rule 32766 from all lookup main"' in status.stdout
    red = _red(status.stdout)
    assert any('"2001:db8:1::11"' in line for line in red), red
