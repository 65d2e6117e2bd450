"""Benchmark: the how-to's scenario 4 via `multihome cloud apply` vs the `openstack` CLI.

Both run against the same real Neutron API on 127.0.0.1 (started here from the pinned venv
of tests/cloud/, see tests/cloud/cloud_support.py), in the same run. API calls are counted by the
server (every HTTP request Neutron receives); wall time includes each tool's start-up, as a
person running the steps would see it. Servers are left out on both sides (no Nova here):
the network side of scenario 4 is network, subnet, security group + 2 rules, router with
gateway and interface, 2 ports with fixed IPs, 2 floating IPs. The server is warmed up first
with the same steps under other names (Neutron's first router and floating IP are slow).

    .venv/bin/python bench/cloud_apply.py [--write docs/benchmarks-cloud.md]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "cloud"))
SCENARIO = REPO / "examples" / "scenario4-two-ports-two-floating-ips.yaml"


def openstack_steps(prefix: str) -> list[list[str]]:
    """The same steps as the how-to does them in Horizon, one CLI command each."""
    net, sub, sg, router = (
        f"{prefix}-private",
        f"{prefix}-private-v4",
        f"{prefix}-ssh",
        f"{prefix}-router",
    )
    steps = [
        ["network", "create", net],
        [
            "subnet",
            "create",
            sub,
            "--network",
            net,
            "--subnet-range",
            "192.168.0.0/24",
            "--gateway",
            "192.168.0.1",
            "--dhcp",
        ],
        ["security", "group", "create", sg],
        [
            "security",
            "group",
            "rule",
            "create",
            sg,
            "--ingress",
            "--protocol",
            "tcp",
            "--dst-port",
            "22",
            "--remote-ip",
            "0.0.0.0/0",
        ],
        [
            "security",
            "group",
            "rule",
            "create",
            sg,
            "--ingress",
            "--protocol",
            "icmp",
            "--remote-ip",
            "0.0.0.0/0",
        ],
        ["router", "create", router, "--external-gateway", "public"],
        ["router", "add", "subnet", router, sub],
    ]
    for i, ip in enumerate(("192.168.0.107", "192.168.0.112")):
        port = f"{prefix}-eth{i}"
        steps.append(
            [
                "port",
                "create",
                port,
                "--network",
                net,
                "--fixed-ip",
                f"subnet={sub},ip-address={ip}",
                "--security-group",
                sg,
            ]
        )
    for i in range(2):
        steps.append(["floating", "ip", "create", "public", "--port", f"{prefix}-eth{i}"])
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, default=None, help="write the markdown here")
    args = parser.parse_args()
    from cloud_support import EXTERNAL, EXTERNAL_CIDR, start_neutron

    with tempfile.TemporaryDirectory(prefix="mh-bench-cloud-") as tmp:
        gen = start_neutron(Path(tmp))
        neutron = next(gen)
        try:
            conn = neutron.connect()
            ext = conn.network.create_network(
                name=EXTERNAL,
                is_router_external=True,
                provider_network_type="flat",
                provider_physical_network="physnet1",
            )
            conn.network.create_subnet(
                network_id=ext.id,
                ip_version=4,
                cidr=EXTERNAL_CIDR,
                gateway_ip="203.0.113.1",
                is_dhcp_enabled=False,
            )
            env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
            env.update(
                OS_CLIENT_CONFIG_FILE=str(neutron.clouds_yaml),
                OS_CLOUD=neutron.cloud,
                PYTHONWARNINGS="ignore",
            )
            openstack = str(neutron.venv / "bin" / "openstack")
            # warm the server up first (its first router and floating IP are slow), with
            # other names, so that neither tool pays for it
            for step in openstack_steps("warm"):
                subprocess.run([openstack, *step], env=env, capture_output=True, check=True)
            multihome = str(Path(sys.executable).parent / "multihome")
            rows = []
            for label in ("apply (creates everything)", "apply again (no-op)"):
                neutron.reset_stats()
                start = time.monotonic()
                done = subprocess.run(
                    [multihome, "cloud", "apply", "-f", str(SCENARIO), "--network-only"],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                wall = time.monotonic() - start
                if done.returncode != 0:
                    raise SystemExit(done.stderr)
                stats = neutron.stats()
                rows.append((f"multihome cloud {label}", 1, stats["count"], wall, stats["seconds"]))
            steps = openstack_steps("cli")
            neutron.reset_stats()
            start = time.monotonic()
            for step in steps:
                done = subprocess.run(
                    [openstack, *step], env=env, capture_output=True, text=True, check=False
                )
                if done.returncode != 0:
                    raise SystemExit(f"openstack {' '.join(step)}: {done.stderr}")
            wall = time.monotonic() - start
            stats = neutron.stats()
            rows.append(
                (
                    "openstack CLI, the same steps",
                    len(steps),
                    stats["count"],
                    wall,
                    stats["seconds"],
                )
            )
            requests = stats["requests"]
        finally:
            for _ in gen:
                pass
    mh, _noop, cli = rows
    lines = [
        "| run | processes | API calls | wall time (s) | of which Neutron (s) | client side (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {name} | {procs} | {calls} | {wall:.2f} | {server:.2f} | {wall - server:.2f} |"
        for name, procs, calls, wall, server in rows
    ]
    lines.append("")
    lines.append(
        f"multihome vs the CLI: {cli[3] / mh[3]:.1f}x less wall time, "
        f"{(cli[3] - cli[4]) / (mh[3] - mh[4]):.1f}x less client-side time, "
        f"{cli[2] / mh[2]:.2f}x fewer API calls ({mh[2]} vs {cli[2]})."
    )
    text = "\n".join(lines)
    print(text)
    print(f"\n(openstack CLI requests: {len(requests)}; first ten: {requests[:10]})")
    if args.write is not None:
        args.write.write_text(text + "\n")


if __name__ == "__main__":
    main()
