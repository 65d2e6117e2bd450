"""The import layers of ``src/multihome``: no module imports one from a layer above its own.

The layers, from the ground up (docs/design.md draws them):

1. foundation: the frozen model (and the ports' facts), the errors, the config file, the
   boundary reader, file I/O, names, faults, processes, the persist manifest;
2. decisions: the pure policy and the plan (the plan's ``Change`` is what a backend executes);
3. backend: the kernel (rtnetlink) and its in-memory twin;
4. transaction: lock, state directory, journal, checkpoint, session;
5. engine: read -> policy -> plan -> apply under a transaction -> announce -> ``verify`` (the
   proof is a step of the transaction);
6. checks: ``status`` (a read-only look at an assessment);
7. safety: the operations built on the engine (confirm window, watchdog, rollback, doctor);
8. services: agent, persist, render, source, cloud, lab;
9. cli: the ``multihome`` command and the package's public face.

A module may import from its own layer and any layer below. Every import counts: at module
level, inside functions (lazy imports of the CLI path) and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "foundation",
        (
            "multihome._version",
            "multihome.value_inits",
            "multihome.values",
            "multihome.nlattrs",
            "multihome.errors",
            "multihome.exitcodes",
            "multihome.model",
            "multihome.facts",
            "multihome.config",
            "multihome.reader",
            "multihome.files",
            "multihome.names",
            "multihome.faults",
            "multihome.processes",
            "multihome.manifest",
            "multihome.portconfig",
            "multihome.managers",
            "multihome.kerneldigest",
        ),
    ),
    ("decisions", ("multihome.policy", "multihome.plan", "multihome.explain")),
    ("backend", ("multihome.backend",)),
    ("transaction", ("multihome.transaction", "multihome.options")),
    ("engine", ("multihome.engine", "multihome.verify")),
    ("checks", ("multihome.status", "multihome.explain_cli", "multihome.picture")),
    ("safety", ("multihome.safety",)),
    (
        "services",
        (
            "multihome.agent",
            "multihome.persist",
            "multihome.render",
            "multihome.source",
            "multihome.leasefiles",
            "multihome.cloud",
            "multihome.lab",
        ),
    ),
    (
        "cli",
        (
            "multihome",
            "multihome.cli",
            "multihome.__main__",
            "multihome._entry",
            "multihome.noop",
            "multihome.apply_cli",
            "multihome.errorpath",
        ),
    ),
)


def layer_of(module: str) -> int | None:
    """The index in :data:`LAYERS` of ``module`` (its longest listed prefix), None if unlisted."""
    best: tuple[int, int] | None = None
    for index, (_name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    return None if best is None else best[0]


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str, src: Path) -> bool:
    base = src.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(
    source: str, module: str, is_package: bool, src: Path = SRC
) -> list[tuple[int, str]]:
    """Every multihome module ``source`` imports, with its line (``from P import m``: P.m)."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((node.lineno, sub if _is_module(sub, src) else target))
    return sorted({(line, name) for line, name in found if name.split(".")[0] == "multihome"})


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    module: str
    imported: str

    def __str__(self) -> str:
        own, other = layer_of(self.module), layer_of(self.imported)
        assert own is not None and other is not None
        return (
            f"{self.path}:{self.line}: {self.module} (layer {own + 1} {LAYERS[own][0]}) imports "
            f"{self.imported} (layer {other + 1} {LAYERS[other][0]}); a module may import only "
            "from its own layer or below"
        )


def violations(src: Path = SRC) -> tuple[list[Violation], list[str]]:
    """Upward imports, and modules that no layer lists."""
    upward: list[Violation] = []
    unplaced: list[str] = []
    for path in sorted((src / "multihome").rglob("*.py")):
        module = module_name(path, src)
        own = layer_of(module)
        if own is None:
            unplaced.append(f"{path}: {module} is in no layer; add it to LAYERS")
            continue
        source = path.read_text(encoding="utf-8")
        for line, imported in imports_of(source, module, path.name == "__init__.py", src):
            other = layer_of(imported)
            if other is None:
                unplaced.append(f"{path}:{line}: imports {imported}, which is in no layer")
            elif other > own:
                upward.append(Violation(path, line, module, imported))
    return upward, unplaced


def test_no_module_imports_from_a_layer_above() -> None:
    """Every import in src/multihome (lazy and TYPE_CHECKING ones too) points down or sideways."""
    upward, unplaced = violations()
    assert not unplaced, "\n".join(unplaced)
    assert not upward, "\n".join(str(v) for v in upward)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("def f() -> None:\n    from multihome.engine import assess\n", "multihome.engine"),
        ("from multihome import cli\n", "multihome.cli"),
        ("if TYPE_CHECKING:\n    from ..safety.guard import Guard\n", "multihome.safety.guard"),
    ],
)
def test_an_upward_import_is_found(tmp_path: Path, body: str, expected: str) -> None:
    """The check fails on a lazy, a package-relative and a TYPE_CHECKING upward import,
    naming the file, the line and both layers."""
    package = tmp_path / "multihome"
    for name in ("engine", "cli"):
        (package / f"{name}.py").parent.mkdir(parents=True, exist_ok=True)
        (package / f"{name}.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "safety").mkdir()
    (package / "safety" / "__init__.py").write_text("")
    (package / "safety" / "guard.py").write_text("")
    (package / "transaction").mkdir()
    (package / "transaction" / "__init__.py").write_text("")
    (package / "transaction" / "lock.py").write_text(body)
    upward, unplaced = violations(tmp_path)
    assert not unplaced
    assert [v.imported for v in upward] == [expected]
    text = str(upward[0])
    assert f"{package / 'transaction' / 'lock.py'}:" in text
    assert "layer 4 transaction" in text
