"""A container's read-only /proc/sys/net, for real: the how-to's VM namespace, and multihome run
in a private mount namespace where /proc/sys is bind-mounted read-only (as systemd-nspawn
without a private network does). The host's sysctls are never touched: the namespace's own
are read with ``ip netns exec NS sysctl``."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from netns_util import MULTIHOME, HowtoVM, dump, multihome, rules, sysctls

READ_ONLY = (
    "mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys "
    '&& ! touch /proc/sys/net/ipv4/conf/eth1/arp_ignore 2>/dev/null && exec "$@"'
)


def contained(vm: HowtoVM, *args: str) -> subprocess.CompletedProcess[str]:
    """``multihome --root ROOT ARGS`` in the VM's namespace with /proc/sys read-only."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    command = ["ip", "netns", "exec", vm.ns, "unshare", "-m", "--propagation", "private"]
    command += ["sh", "-c", READ_ONLY, "sh", *MULTIHOME, "--root", str(vm.root), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


def band(ns: str) -> list[dict[str, object]]:
    return [r for r in rules(ns) if 10000 <= int(str(r["priority"])) <= 10099]


def test_read_only_proc_sys_names_the_cause_and_no_sysctls_routes(vm: HowtoVM) -> None:
    """With /proc/sys read-only, ``apply`` fails at the first sysctl, says /proc/sys/net is
    read-only and offers --no-sysctls and `sysctls: false`, and changes nothing; with
    ``--no-sysctls`` it routes (the band's rules, verified) and leaves every sysctl as it
    was; doctor then reports sysctls-off naming ARP flux and reverse-path filtering."""
    before = dump(vm.ns)
    failed = contained(vm, "apply")
    assert failed.returncode not in (0, 2), failed.stdout + failed.stderr
    assert "/proc/sys/net is read-only here" in failed.stderr, failed.stderr
    assert "--no-sysctls" in failed.stderr and "sysctls: false" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert dump(vm.ns) == before

    done = contained(vm, "apply", "--no-sysctls")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "checks pass" in done.stdout
    selectors = {(r.get("src"), r.get("oif")) for r in band(vm.ns)}
    assert {("192.168.0.112", None), ("all", "eth1")} <= selectors
    assert sysctls(vm.ns) == before["sysctls"]

    report = contained(vm, "doctor", "--json")
    assert report.returncode == 1, report.stderr
    off = [p for p in json.loads(report.stdout)["problems"] if p["code"] == "sysctls-off"]
    assert len(off) == 1 and "read-only" in off[0]["message"]
    assert "ARP flux" in off[0]["message"] and "rp_filter" in off[0]["message"]


def test_sysctls_false_in_the_config_routes_without_them(vm: HowtoVM, tmp_path: Path) -> None:
    """`sysctls: false` in the configuration file does what --no-sysctls does (also for the
    agent, which reads the file), and doctor names what the configuration leaves alone."""
    config = tmp_path / "config.yaml"
    config.write_text("sysctls: false\n")
    before = sysctls(vm.ns)
    done = contained(vm, "--config", str(config), "apply")
    assert done.returncode == 0, done.stdout + done.stderr
    assert ("all", "eth1") in {(r.get("src"), r.get("oif")) for r in band(vm.ns)}
    assert sysctls(vm.ns) == before
    report = multihome(vm.ns, "--config", str(config), "doctor", "--json", root=vm.root)
    off = [p for p in json.loads(report.stdout)["problems"] if p["code"] == "sysctls-off"]
    assert len(off) == 1 and "leaves rp_filter, arp_ignore" in off[0]["message"]
    assert "read-only" not in off[0]["message"]
