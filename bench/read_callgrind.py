"""The read of one whole ``multihome apply``, counted in instructions.

``apply_callgrind.py`` counts a whole apply, where the read of the kernel is a quarter of the
instructions and two fresh labs differ by ~5%: too coarse to see a change of the decoding.
This builds a ``BenchLab(N)`` (the state a whole apply starts from) and counts, inside it,
what the apply's read does: the no-op's digest of the four dumps
(``kerneldigest.current``) and ``NetlinkBackend(local_table=False).read()`` (the dumps
decoded into the model, ``HostState.build``). The count per read is the difference between
two processes under ``valgrind --tool=callgrind``, one that reads ``K`` times and one that
only imports, divided by ``K`` (each read with a new backend: nothing kept between them, as
in separate applies). Bytecode is cached in a private ``PYTHONPYCACHEPREFIX``, warmed first.

Usage (root, from the worktree): ``.venv/bin/python bench/read_callgrind.py [--ports 256]
[--dual-stack] [--reads 3]``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from lab import BenchLab  # noqa: E402

#: The process counted: the apply's imports, then ``K`` reads (``sys.argv[1]``).
READER = """
import sys
import multihome.engine, multihome.policy
from multihome import kerneldigest
from multihome.backend.netlink import NetlinkBackend
for _ in range(int(sys.argv[1])):
    kerneldigest.current()
    backend = NetlinkBackend(local_table=False)
    state = backend.read()
    backend.close()
    print(len(state.links), len(state.addresses), len(state.routes), len(state.rules))
"""


def counted(lab: BenchLab, reads: int) -> tuple[int, str]:
    """Instructions of a process making ``reads`` reads in the lab, and what it printed."""
    with tempfile.NamedTemporaryFile(prefix="read-cg-") as out:
        done = subprocess.run(
            lab.exec_args(
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out.name}",
                sys.executable,
                "-c",
                READER,
                str(reads),
            ),
            capture_output=True,
            text=True,
            check=False,
        )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(done.stderr[-2000:])
    return int(found.group(1)), done.stdout.strip().splitlines()[-1] if reads else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--ports", type=int, default=256)
    parser.add_argument("--dual-stack", action="store_true")
    parser.add_argument("--reads", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="read-cg-pycache-")
    with BenchLab(args.ports, dual_stack=args.dual_stack) as lab:
        time.sleep(0.2)  # as run.py: let IPv6 link-local setup settle before the first read
        counted(lab, 1)  # warm-up: the bytecode cache
        base, _ = counted(lab, 0)
        total, sizes = counted(lab, args.reads)
    per_read = (total - base) / args.reads / 1e6
    print(
        f"{args.ports} ports: {per_read:,.1f} M instructions per read "
        f"(links, addresses, routes, rules: {sizes})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
