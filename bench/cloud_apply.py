"""Benchmark: the how-to's scenario 4 via `multihome cloud apply` vs the `openstack` CLI.

Both run against the same real Neutron and Nova (fake compute driver) with Glance on 127.0.0.1
(started here from the pinned venvs of tests/cloud/, see tests/cloud/cloud_support.py), in the
same run. API calls are counted by the servers (every HTTP request Neutron, Nova and Glance
receive from the tool; the calls Nova itself makes to Neutron and Glance are left out); wall time
includes each tool's start-up, as a person running the steps would see it. Scenario 4 is
network, subnet, security group + 2 rules, router with gateway and interface, 2 ports with
fixed IPs, the server on both ports with a config drive and multihome's user-data, 2 floating
IPs. The cloud is warmed up first with the same steps under other names (Neutron's first
router and floating IP, Nova's first server are slow). ``--network-only`` leaves the server
out (no Nova is started).

    .venv/bin/python bench/cloud_apply.py [--write docs/benchmarks-cloud.md]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "cloud"))
SCENARIO = REPO / "examples" / "scenario4-two-ports-two-floating-ips.yaml"


def openstack_steps(prefix: str, user_data: Path | None) -> list[list[str]]:
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
    if user_data is not None:
        steps.append(
            [
                "server",
                "create",
                f"{prefix}-vm",
                "--image",
                "ubuntu-24.04",
                "--flavor",
                "m1.small",
                "--key-name",
                "mykey",
                "--config-drive",
                "True",
                "--port",
                f"{prefix}-eth0",
                "--port",
                f"{prefix}-eth1",
                "--user-data",
                str(user_data),
                "--wait",
            ]
        )
    for i in range(2):
        steps.append(["floating", "ip", "create", "public", "--port", f"{prefix}-eth{i}"])
    return steps


def _by_tool(stats: list[dict[str, Any]]) -> tuple[int, float, list[str]]:
    """API calls the tool made, the time the cloud spent answering them, the calls. Both
    tools speak through openstacksdk (its user agent); Nova's own calls to Neutron and Glance
    (neutronclient, glanceclient) are not the tool's and are left out."""
    mine = [
        (request, seconds)
        for st in stats
        for request, agent, seconds in zip(
            st["requests"], st["agents"], st["durations"], strict=True
        )
        if agent.startswith("openstacksdk/")
    ]
    return len(mine), sum(seconds for _, seconds in mine), [request for request, _ in mine]


def main() -> None:  # noqa: PLR0915 - one straight run
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, default=None, help="write the markdown here")
    parser.add_argument(
        "--network-only", action="store_true", help="leave the server out (no Nova)"
    )
    args = parser.parse_args()
    from cloud_support import EXTERNAL, EXTERNAL_CIDR, start_neutron, start_nova

    with tempfile.TemporaryDirectory(prefix="mh-bench-cloud-") as tmp, ExitStack() as stack:
        gen = start_neutron(Path(tmp))
        neutron = next(gen)
        stack.callback(lambda: [None for _ in gen])
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
        env["PYTHONWARNINGS"] = "ignore"
        multihome = str(Path(sys.executable).parent / "multihome")
        user_data: Path | None = None
        if args.network_only:
            env.update(OS_CLIENT_CONFIG_FILE=str(neutron.clouds_yaml), OS_CLOUD=neutron.cloud)

            def stats() -> list[dict[str, Any]]:
                return [neutron.stats()]

            reset = neutron.reset_stats
        else:
            nova = stack.enter_context(start_nova(Path(tmp) / "nova", neutron))
            env.update(OS_CLIENT_CONFIG_FILE=str(nova.clouds_yaml), OS_CLOUD=nova.cloud)
            user_data = Path(tmp) / "user-data.yaml"
            user_data.write_text(
                subprocess.run(
                    [multihome, "cloud", "user-data", "-f", str(SCENARIO)],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )

            def stats() -> list[dict[str, Any]]:
                return [neutron.stats(), nova.stats("compute"), nova.stats("image")]

            reset = nova.reset_stats
        openstack = str(neutron.venv / "bin" / "openstack")
        # warm the cloud up first (its first router, floating IP and server are slow), with
        # other names, so that neither tool pays for it
        for step in openstack_steps("warm", user_data):
            subprocess.run([openstack, *step], env=env, capture_output=True, check=True)
        apply = [multihome, "cloud", "apply", "-f", str(SCENARIO)]
        if args.network_only:
            apply.append("--network-only")
        rows = []
        for label in ("apply (creates everything)", "apply again (no-op)"):
            reset()
            start = time.monotonic()
            done = subprocess.run(apply, env=env, capture_output=True, text=True, check=False)
            wall = time.monotonic() - start
            if done.returncode != 0:
                raise SystemExit(done.stderr)
            calls, seconds, mh_requests = _by_tool(stats())
            rows.append((f"multihome cloud {label}", 1, calls, wall, seconds))
            if label.startswith("apply ("):
                created = mh_requests
        steps = openstack_steps("cli", user_data)
        reset()
        start = time.monotonic()
        for step in steps:
            done = subprocess.run(
                [openstack, *step], env=env, capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                raise SystemExit(f"openstack {' '.join(step)}: {done.stderr}")
        wall = time.monotonic() - start
        last = stats()
        calls, seconds, requests = _by_tool(last)
        rows.append(("openstack CLI, the same steps", len(steps), calls, wall, seconds))
        agents = sorted({a.split()[0] for st in last for a in st["agents"] if a})
    mh, _noop, cli = rows
    lines = [
        "| run | processes | API calls | wall time (s) | of which the cloud (s) "
        "| client side (s) |",
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
    print(f"\n(multihome apply requests: {created})")
    print(f"(openstack CLI requests: {len(requests)}; first ten: {requests[:10]})")
    print(f"(user agents seen during the CLI run: {agents}; only openstacksdk's are counted)")
    if args.write is not None:
        args.write.write_text(text + "\n")


if __name__ == "__main__":
    main()
