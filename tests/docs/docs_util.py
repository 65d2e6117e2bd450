"""Helpers of the docs tests: the documented JSON keys, key paths of real output, the lab.

(A uniquely named module, so that it does not clash with other areas' test helpers.)
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
NETNS_RUN = Path("/run/netns")

Path_ = tuple[str, ...]
_HEADING = re.compile(r"^### `multihome (.+?) --json`")
_BULLET = re.compile(r"^- ((?:`[^`]+`(?:, )?)+):")


def documented_json() -> dict[str, set[Path_]]:
    """Every ``### `multihome CMD --json``` block of docs/*.md: command -> its key paths
    (``a[].b`` is ``("a", "[]", "b")``, ``a.*`` is ``("a", "*")``)."""
    found: dict[str, set[Path_]] = {}
    for page in sorted(DOCS.glob("*.md")):
        current: set[Path_] | None = None
        for line in page.read_text().splitlines():
            heading = _HEADING.match(line)
            if heading:
                current = found.setdefault(heading.group(1), set())
                continue
            if line.startswith("#"):
                current = None
            bullet = _BULLET.match(line)
            if current is not None and bullet:
                for key in re.findall(r"`([^`]+)`", bullet.group(1)):
                    current.add(split_path(key))
    return found


def split_path(key: str) -> Path_:
    """``a[].b.*`` -> ``("a", "[]", "b", "*")``."""
    parts: list[str] = []
    for part in key.split("."):
        name = part.rstrip("[]")
        parts.append(name)
        parts += ["[]"] * ((len(part) - len(name)) // 2)
    return tuple(parts)


def key_paths(value: Any, prefix: Path_ = ()) -> set[Path_]:
    """Every key path in a JSON value (list elements as ``[]``)."""
    out: set[Path_] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            path = (*prefix, key)
            out.add(path)
            out |= key_paths(item, path)
    elif isinstance(value, list):
        for item in value:
            out |= key_paths(item, (*prefix, "[]"))
    return out


def _matches(pattern: Path_, path: Path_) -> bool:
    return len(pattern) == len(path) and all(
        p in ("*", q) for p, q in zip(pattern, path, strict=True)
    )


def undocumented(output: Any, documented: set[Path_]) -> list[str]:
    """The key paths of ``output`` the documentation does not list. The top level is always
    checked; a deeper object only when the docs list one of its keys (then all of them)."""
    closed = {d[:-1] for d in documented} | {()}
    missing = []
    for path in sorted(key_paths(output)):
        if any(_matches(d, path) for d in documented):
            continue
        if any(_matches(c, path[:-1]) for c in closed):
            missing.append(".".join(path).replace(".[]", "[]"))
    return missing


def run_cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run ``multihome ARGS`` (this checkout's, as a separate process)."""
    return subprocess.run(
        [sys.executable, "-m", "multihome", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def needs_lab() -> str | None:
    """Why the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "the lab needs root"
    programs = ("ip", "nft", "dnsmasq", "dhclient", "curl", "ping", "sysctl")
    missing = [p for p in programs if shutil.which(p) is None]
    return f"missing programs {missing}; run `make deps`" if missing else None


@contextmanager
def lab(scenario: str = "4") -> Iterator[tuple[str, Any]]:
    """A lab of a unique name (``mhdoc-<random>``) and the document of its ``lab up --json``;
    removed by name afterwards, also when the test fails."""
    name = f"mhdoc-{secrets.token_hex(3)}"
    try:
        done = run_cli("lab", "up", "--name", name, "--scenario", scenario, "--json")
        assert done.returncode == 0, done.stderr
        yield name, json.loads(done.stdout)
    finally:
        run_cli("lab", "down", "--name", name, timeout=60)
        for suffix in ("vm", "sw", "rtr", "dhcp", "inet"):
            if (NETNS_RUN / f"{name}-{suffix}").exists():
                subprocess.run(["ip", "netns", "del", f"{name}-{suffix}"], check=False)


def parse_json(done: subprocess.CompletedProcess[str]) -> Any:
    """The one JSON object a ``--json`` command printed (fails when there is not one)."""
    assert done.stdout.strip(), f"no JSON on stdout: rc {done.returncode}: {done.stderr}"
    return json.loads(done.stdout)
