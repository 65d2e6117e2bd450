"""The docs check (part of `make test`): every command example in README.md and docs/ that can
run without a cloud is run, in the built-in lab, guest commands inside the lab's guest with a
temporary ``--root``, and must succeed; the ones that cannot run here are listed in SKIPPED with
the reason. Every repository path, file and man page the docs name must exist."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from docs_util import REPO, lab, needs_lab, run_cli

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

#: Examples that cannot run here, by a regular expression on the command, with the reason.
SKIPPED: dict[str, str] = {
    r"multihome cloud (plan|apply|attach-port|allow-address-pairs|destroy)\b": (
        "needs an OpenStack cloud (tests/cloud runs it against real Neutron)"
    ),
    r"--confirm-timeout": "waits for `multihome confirm` (tests/safety/test_window.py runs it)",
    r"multihome confirm": "needs an open confirmation window (tests/safety/test_window.py)",
    r"multihome (--root \S+ )?agent(?! status)": "runs until stopped (tests/agent runs it)",
    r"make demo": "the same as `multihome lab demo`, which is run",
    r"make test": "this suite",
    r"make bench": "the benchmarks take minutes (bench/run.py)",
    r"make (deb|man)\b": "writes into the checkout; tests/reboot/test_deb.py builds the package",
}
#: Exit 1 is the documented answer of these, not a failure: problems found, no agent running.
REPORTS_WITH_EXIT_1 = ("multihome doctor", "multihome agent status")


@dataclass(frozen=True)
class Example:
    """One command line of a code block in the docs."""

    page: str
    line: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}: {self.text}"


_COMMAND = re.compile(r"^(sudo )?(multihome |ip netns exec \S+ multihome |make )")


def examples() -> list[Example]:
    """Every example command in README.md and docs/*.md: lines of code blocks (fenced, or
    indented by four) that run multihome or make; synopses (with ``[OPTIONS]``) left out."""
    found = []
    for page in PAGES:
        fenced = False
        for number, raw in enumerate(page.read_text().splitlines(), 1):
            if raw.startswith("```"):
                fenced = not fenced
                continue
            if not (fenced or raw.startswith("    ")):
                continue
            text = re.sub(r"\s{2,}#.*$", "", raw.strip())
            if _COMMAND.match(text) and "[" not in text.replace("[]", ""):
                if "|" in text and "jq" not in text:  # a synopsis's alternatives
                    continue
                found.append(Example(page.name, number, text))
    return found


def skip_reason(example: Example) -> str | None:
    return next((why for key, why in SKIPPED.items() if re.search(key, example.text)), None)


def test_examples_are_found() -> None:
    """The extractor sees the examples (a check that found none would prove nothing), and
    every SKIPPED entry still matches an example."""
    found = examples()
    assert len(found) > 60
    for key in SKIPPED:
        assert any(re.search(key, e.text) for e in found), f"SKIPPED {key!r} matches nothing"


def _wrapper(bin_dir: Path) -> None:
    """`multihome` on PATH: this checkout's, as the docs call it."""
    bin_dir.mkdir()
    script = bin_dir / "multihome"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} -m multihome "$@"\n')
    script.chmod(0o755)


def _lab_line(text: str, prefix: str) -> str:
    """A lab example with our unique lab name: `--name a` -> `--name PREFIXa`, else one
    `--name PREFIX` after each `lab VERB`."""
    if "--name " in text:
        return re.sub(r"--name (\S+)", lambda m: f"--name {prefix}{m.group(1)}", text)
    return re.sub(r"(multihome lab [a-z-]+)", rf"\1 --name {prefix}", text)


def _topology(named: str) -> Path:
    """The example topology the docs name, or scenario 4's for a placeholder
    (``topology.yaml``, ``TOPOLOGY.yaml``)."""
    example = REPO / "examples" / Path(named).name
    return (
        example if example.exists() else REPO / "examples/scenario4-two-ports-two-floating-ips.yaml"
    )


def _guest_line(text: str, root: Path, drive: Path) -> str:
    """A guest example: no sudo, no `ip netns exec vm1` (it runs in the lab's guest), every
    `multihome` with our --root, the lab's config drive for the docs' mount point."""
    text = re.sub(r"\bsudo ", "", text)
    text = re.sub(r"ip netns exec \S+ ", "", text)
    text = re.sub(r"\bmultihome (?=[a-z-])", f"multihome --root {root} ", text)
    return re.sub(r"/mnt/config(-drive)?\b", str(drive), text)


@pytest.mark.skipif(needs_lab() is not None, reason=str(needs_lab()))
def test_every_example_runs(tmp_path: Path) -> None:
    """Run every example that does not need a cloud, in document order: lab examples on a
    uniquely named lab, the others inside a scenario-4 lab's guest with a temporary --root
    (whose persist backends look installed). Each must exit 0 (doctor and agent status may
    report with exit 1), without a traceback."""
    bin_dir = tmp_path / "bin"
    _wrapper(bin_dir)
    root = tmp_path / "root"
    for program in ("lib/systemd/systemd-networkd", "usr/bin/systemctl"):
        (root / program).parent.mkdir(parents=True, exist_ok=True)
        (root / program).write_text("#!/bin/sh\n")
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    prefix = f"mhd{secrets.token_hex(2)}"
    failures, ran = [], 0
    try:
        with lab() as (guest_lab, _):
            namespace = f"{guest_lab}-vm"
            drive = Path("/run/multihome-lab") / guest_lab / "config-drive"
            for example in examples():
                if skip_reason(example) is not None:
                    continue
                text = example.text
                if " lab " in text:
                    line = _lab_line(text.replace("sudo ", ""), prefix)
                    argv = ["bash", "-o", "pipefail", "-c", line]
                    for name in re.findall(r"lab (?:up|demo) .*?--name (\S+)", line):
                        run_cli("lab", "down", "--name", name)  # a fresh lab per `up`
                elif " cloud " in text:  # user-data: no cloud needed
                    line = re.sub(r"-f (\S+\.yaml)", lambda m: f"-f {_topology(m[1])}", text)
                    argv = ["bash", "-o", "pipefail", "-c", line]
                else:
                    line = _guest_line(text, root, drive)
                    argv = ["ip", "netns", "exec", namespace, "bash", "-o", "pipefail", "-c", line]
                done = subprocess.run(
                    argv,
                    capture_output=True,
                    text=True,
                    env=env,
                    cwd=tmp_path,
                    timeout=60,
                    check=False,
                )
                ran += 1
                allowed = (0, 1) if any(k in text for k in REPORTS_WITH_EXIT_1) else (0,)
                if done.returncode not in allowed or "Traceback" in done.stderr:
                    failures.append(
                        f"{example.where}\n  ran: {line}\n  exit {done.returncode}: "
                        f"{done.stderr.strip()[-400:]}"
                    )
    finally:
        for name in (prefix, f"{prefix}a", f"{prefix}b"):
            run_cli("lab", "down", "--name", name)
    assert ran > 40
    assert not failures, "\n".join(failures)


# -- paths and files the docs name ------------------------------------------------------------

_REPO_PATH = re.compile(
    r"(?<![\w/.-])((?:docs|src|tests|examples|bench|\.ci)/[\w./@*-]*[\w*/]|[A-Z][A-Za-z_-]*\.md)"
)
#: Paths the docs name that a command writes (not in the repository), and which command.
GENERATED = {"bench/out": "make bench"}
_MAN_PAGE = re.compile(r"\b(multihome(?:-[a-z]+)?)\((\d)\)")


def test_every_named_path_exists() -> None:
    """Every repository path (`docs/...`, `src/...`, `tests/...`, `examples/...`, `bench/...`),
    every Markdown file (TESTING.md, DESIGN.md) and every multihome man page the docs name
    exists (a name with `*` must match something)."""
    missing = []
    for page in PAGES:
        text = page.read_text()
        for named in sorted(set(_REPO_PATH.findall(text))):
            path = named.rstrip(".")
            if any(path.startswith(made) for made in GENERATED):
                continue
            candidates = [REPO / path] if "/" in path else [REPO / path, REPO / "docs" / path]
            if not any(list(REPO.glob(str(c.relative_to(REPO)))) for c in candidates):
                missing.append(f"{page.name}: {path}")
        for name, section in sorted(set(_MAN_PAGE.findall(text))):
            if not (REPO / "docs" / f"{name}.{section}.md").exists():
                missing.append(f"{page.name}: {name}({section})")
    assert not missing, "\n".join(missing)


def test_no_page_promises_what_is_not_there() -> None:
    """No page says something will come later ("once the lab has landed") or names the old
    design document."""
    stale = ("once the lab has landed", "DESIGN.md", "TESTING.md")
    found = [f"{p.name}: {s}" for p in PAGES for s in stale if s in p.read_text()]
    assert found == []
