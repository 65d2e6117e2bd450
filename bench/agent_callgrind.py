"""The agent's user-space instructions per reconcile (callgrind), in throwaway namespaces.

Wall times on a shared machine move by 2-5x; instruction counts do not. This builds the guest
of ``agent_latency.py --dual-stack`` (``PORTS`` ports on one segment, each with its RA
default), runs ``Agent.reconcile`` in-process on the real ``NetlinkBackend`` under
``valgrind --tool=callgrind`` twice, with 0 and with ``ROUNDS`` rounds of one kind of event,
and prints the difference per reconcile:

* ``ra``: eth1's RA default withdrawn, then back (2 reconciles a round);
* ``flap``: eth1 down; up (once the kernel reports it running); its global address and RA
  default back, as the router's answer brings them (3 reconciles a round);
* ``hotplug``: a dual-stack port attached, then deleted (2 reconciles a round).

The kernel changes are made by ``ip`` children, which callgrind does not count. As in
``Agent.run``, the collector is frozen and off after the start; the /proc scan for DHCP
clients (every 2 s, its cost the machine's process count) is made once. The events are
given to the backend as the agent's loop gives them (``Backend.expect``).

Usage (root, from the worktree): ``.venv/bin/python bench/agent_callgrind.py [--ports 16]
[--rounds 4] [--cprofile FILE] KIND`` (``--cprofile``: the rounds under cProfile instead, no
valgrind). A run of 4 rounds takes 1-3 minutes.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECONCILES = {"ra": 2, "flap": 3, "hotplug": 2}
RA6 = ["::/0", "via", "fe80::1", "dev", "eth1", "proto", "ra", "metric", "1025"]


def ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True)


def ip_line(text: str) -> None:
    ip(*text.split())


def disturb(kind: str, peer: str, reconcile: Callable[[set[str]], None]) -> None:
    """One round of ``kind``: each kernel change, then the reconcile its events ask for."""
    if kind == "ra":
        ip("-6", "route", "del", *RA6[:5])
        reconcile({"route"})
        ip("-6", "route", "add", *RA6, "expires", "600")
        reconcile({"route"})
    elif kind == "flap":
        ip("link", "set", "eth1", "down")
        reconcile({"link", "addr", "route"})
        ip("link", "set", "eth1", "up")
        while (
            '"operstate":"UP"'
            not in subprocess.run(
                ["ip", "-j", "link", "show", "eth1"], capture_output=True, text=True, check=True
            ).stdout
        ):
            time.sleep(0.01)
        reconcile({"link", "route"})
        ip("addr", "add", "2001:db8::112/64", "dev", "eth1", "nodad")
        ip("-6", "route", "replace", *RA6, "expires", "600")
        reconcile({"addr", "route"})
    else:
        ip_line(f"link add eth20 address fa:16:3e:00:00:20 type veth peer p20 netns {peer}")
        ip_line(f"-n {peer} link set p20 master br0 up")
        ip_line("addr add 192.168.0.40/24 dev eth20")
        ip_line("link set eth20 up")
        ip_line("route add default via 192.168.0.1 dev eth20 proto dhcp metric 120")
        ip_line("addr add 2001:db8::40/64 dev eth20 nodad")
        ip_line("-6 route add ::/0 via fe80::1 dev eth20 proto ra metric 1044")
        reconcile({"link", "addr", "route"})
        ip_line("link del eth20")
        reconcile({"link", "addr", "route"})


def inner(kind: str, rounds: int, peer: str, profile: str | None) -> None:
    """In the guest namespace: the agent's start, then ``rounds`` rounds of ``kind``."""
    import cProfile
    import gc
    import logging

    from multihome.agent.service import Agent, AgentOptions
    from multihome.backend.netlink import NetlinkBackend
    from multihome.config import Config

    class NoEvents:
        """The agent's event source, never waiting (the rounds call reconcile)."""

        def start(self) -> None:
            pass

        def pending(self) -> int:
            return 0

        def take(self) -> list[object]:
            return []

    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    backend = NetlinkBackend()
    agent = Agent(
        backend,
        Config,
        Path(tempfile.mkdtemp(prefix="mh-agent-callgrind-")),
        AgentOptions(source="kernel", dhcp=False, address=False),
        events=NoEvents(),  # type: ignore[arg-type]
    )
    agent.config = agent.load_config()
    agent.reconcile("start", time.monotonic())
    gc.collect()
    gc.freeze()
    gc.disable()
    agent.leases.process_every = 1e9

    def reconcile(kinds: set[str]) -> None:
        backend.expect(kinds)
        agent.reconcile("bench", time.monotonic())

    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    for _ in range(rounds):
        disturb(kind, peer, reconcile)
    if profiler and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    print(f"reconciles {agent.status.reconciles} repairs {agent.status.repairs}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=sorted(RECONCILES))
    parser.add_argument("--ports", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--cprofile", help="profile the rounds with cProfile into this file")
    parser.add_argument("--out", default=None, help="callgrind files' prefix [a temp folder]")
    parser.add_argument("--inner", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        sys.path.insert(0, str(HERE.parent / "src"))
        inner(args.kind, args.rounds, args.inner[0], args.inner[1] or None)
        return
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark creates network namespaces")
    sys.path.insert(0, str(HERE))
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # compiling is not the agent's work
    from agent_latency import build

    suffix = secrets.token_hex(3)
    guest, peer = f"mhagent-cg-{suffix}-g", f"mhagent-cg-{suffix}-p"
    out = args.out or tempfile.mkdtemp(prefix="mh-agent-callgrind-")
    print(f"lab {guest} {peer}", file=sys.stderr, flush=True)
    me = [sys.executable, __file__, args.kind]
    try:
        build(guest, peer, args.ports, dual_stack=True)
        run = ["ip", "netns", "exec", guest]
        warm = [*me, "--rounds", "1", "--inner", peer, ""]
        subprocess.run([*run, *warm], check=True, capture_output=True)  # bytecode cached
        if args.cprofile:
            once = [*me, "--rounds", str(args.rounds), "--inner", peer, args.cprofile]
            subprocess.run([*run, *once], check=True)
            return
        counts = []
        for rounds in (0, args.rounds):
            target = f"{out}/callgrind.{args.kind}.{rounds}"
            grind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={target}"]
            proc = subprocess.run(
                [*run, *grind, *me, "--rounds", str(rounds), "--inner", peer, ""],
                capture_output=True,
                text=True,
                check=False,
            )
            found = re.search(r"Collected : (\d+)", proc.stderr)
            if proc.returncode != 0 or found is None:
                sys.exit(proc.stderr[-3000:])
            counts.append(int(found.group(1)))
            said = re.search(r"reconciles \d+ repairs \d+", proc.stderr)
            print(f"{rounds} rounds: {counts[-1] / 1e6:,.1f} M ({said and said.group(0)}) {target}")
        per = (counts[1] - counts[0]) / (args.rounds * RECONCILES[args.kind])
        print(f"{args.kind}: {per / 1e6:.2f} M instructions per reconcile at {args.ports} ports")
    finally:
        subprocess.run(["ip", "netns", "del", guest], check=False)
        subprocess.run(["ip", "netns", "del", peer], check=False)


if __name__ == "__main__":
    main()
