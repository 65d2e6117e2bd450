"""`plan` and `apply` with the ports' own facts, against the real kernel: after a link flap
(no agent running) eth1's table is rebuilt from its dhclient lease under `--root` and from its
address, and `plan` says where each route came from."""

from __future__ import annotations

import json
from pathlib import Path

from leasetext import current_dhclient_lease
from netns_util import HowtoVM, multihome, routes, sh

LEASE = Path(__file__).resolve().parents[1] / "unit" / "leases" / "dhclient.eth1.leases"


def eth1_table(vm: HowtoVM) -> set[tuple[str, str | None]]:
    return {
        (str(r["dst"]), r.get("gateway"))  # type: ignore[misc]
        for r in routes(vm.ns)
        if r.get("dev") == "eth1" and r.get("table") not in (None, "main", "local")
    }


def test_after_a_flap_plan_and_apply_rebuild_the_table_from_the_lease(vm: HowtoVM) -> None:
    """apply; eth1 down and up (its table flushed, main keeps only the kernel's prefix
    route); `plan` adds the default and the metadata route marked `# from dhclient lease
    <file>`, lists them in `table_route_origins`, and `apply` puts eth1's table back whole,
    checked with `ip -j route get`."""
    done = multihome(vm.ns, "apply", root=vm.root)
    assert done.returncode == 0, done.stderr
    whole = eth1_table(vm)
    assert ("169.254.169.254", "192.168.0.100") in whole
    lease = vm.root / "var/lib/dhcp/dhclient.eth1.leases"
    lease.parent.mkdir(parents=True)
    lease.write_text(current_dhclient_lease(LEASE.read_text()))
    sh("ip", "-n", vm.ns, "link", "set", "eth1", "down")
    sh("ip", "-n", vm.ns, "link", "set", "eth1", "up")
    assert eth1_table(vm) == set()

    text = multihome(vm.ns, "plan", "--source", "kernel", root=vm.root)
    assert text.returncode == 0, text.stderr
    marked = [line for line in text.stdout.splitlines() if f"# from dhclient lease {lease}" in line]
    assert len(marked) == 2, text.stdout
    data = json.loads(multihome(vm.ns, "plan", "--source", "kernel", "--json", root=vm.root).stdout)
    origins = {o["origin"] for o in data["table_route_origins"]}
    # The subnet route: main's when the kernel put its prefix route back, else the address's.
    assert f"dhclient lease {lease}" in origins
    assert origins <= {f"dhclient lease {lease}", "the address 192.168.0.112/24"}

    done = multihome(vm.ns, "apply", root=vm.root)
    assert done.returncode == 0, done.stderr + done.stdout
    assert eth1_table(vm) == whole
    got = json.loads(
        sh(
            "ip", "-n", vm.ns, "-j", "route", "get", "169.254.169.254", "from", "192.168.0.112"
        ).stdout
    )
    assert got[0]["dev"] == "eth1" and got[0]["gateway"] == "192.168.0.100"
