"""Layers point one way: a static check of every import in the package (#17).

The package's sub-packages form layers. ``ALLOWED`` lists, for each one, the sub-packages it may import (at module
level or inside a function: a lazy import is still a dependency). The test fails on

* an import outside ``ALLOWED`` (e.g. a pass importing the emulator, the emulator importing a pass),
* an import cycle between sub-packages (checked on the actual graph, whatever ``ALLOWED`` says),
* ``from x import _private`` (or ``x._private``) across sub-packages: private names stay in their package.

Sub-packages are the import names (``neurodeploy.backends`` lives in ``backends/`` on disk, see pyproject.toml).
Top-level modules of ``neurodeploy`` are layers of their own (``errors``, ``fileio``, ``profiles``, ``artifact``,
``registry``, ``cli``) or the application layer ``app`` (compiler, profiling, inspection, model loading).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Import name -> folder on disk (pyproject.toml's package-dir).
PACKAGES = {"neurodeploy": "neurodeploy", "neurodeploy.backends": "backends", "neurodeploy.converters": "converters",
            "neurodeploy.families": "families", "neurodeploy.hw_profiles": "hw_profiles"}
#: Top-level modules of neurodeploy/ and their layer (the package root only holds ``__version__``).
TOP = {"errors": "errors", "fileio": "fileio", "profiles": "profiles", "artifact": "artifact", "registry": "registry",
       "cli": "cli"}
#: Every other top-level module (compiler, profiling, inspection, model_loading) is the application layer.
APP = "app"

#: layer -> the layers it may import. Bottom to top: the IR knows nothing above it; passes and the emulator are
#: siblings that never import each other (quantize receives a simulator; the engine requires a folded graph);
#: backends sit on the core; the application layer (compiler, profiling) drives passes and backends; reports,
#: families and sweeps use the application; the CLI is the top.
CORE = {"errors", "fileio", "ir", "profiles"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "fileio": {"errors"},
    "ir": {"errors", "fileio"},
    "profiles": {"errors", "ir"},
    "emulator": {"errors", "ir"},
    "passes": {"errors", "ir", "profiles"},
    "artifact": {"errors", "fileio", "ir"},
    "registry": {"errors"},
    "converters": CORE | {"passes"},
    "backends": CORE | {"passes", "emulator", "artifact", "registry"},
    APP: CORE | {"passes", "emulator", "artifact", "registry", "converters", "backends"},
    "reports": CORE | {"passes", "emulator", "artifact", "registry", "backends", APP},
    "families": CORE | {"passes", "emulator", "artifact", "registry", "converters", "backends", APP, "reports"},
    "sweep": CORE | {"passes", "emulator", "artifact", "registry", "converters", "backends", APP, "reports",
                     "families"},
    "cli": CORE | {"passes", "emulator", "artifact", "registry", "converters", "backends", APP, "reports",
                   "families", "sweep"},
}


def _module_name(path: Path) -> str:
    for name, folder in PACKAGES.items():
        base = ROOT / folder
        if base in path.parents:
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            return ".".join([name, *parts])
    raise AssertionError(path)


def _layer(module: str) -> str | None:
    """The layer of a ``neurodeploy...`` module name (None for modules outside the package)."""
    parts = module.split(".")
    if parts[0] != "neurodeploy":
        return None
    if len(parts) == 1:  # the package root: __version__ only
        return "errors"
    head = parts[1]
    if head in TOP:
        return TOP[head]
    if head in ("ir", "passes", "emulator", "reports", "sweep", "backends", "converters", "families"):
        return head
    if head == "hw_profiles":
        return "profiles"
    return APP


def _package_of(module: str) -> str:
    """The sub-package a module is private to: ``neurodeploy.passes.quantize`` -> ``neurodeploy.passes``."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 else module


def _files() -> list[Path]:
    out = []
    for folder in PACKAGES.values():
        out += sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)
    return out


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level]
    return ".".join(base + ([node.module] if node.module else []))


def _imports() -> list[tuple[str, str, list[str], int]]:
    """(importing module, imported module, imported names, line) for every import of a neurodeploy module."""
    out = []
    for path in _files():
        module = _module_name(path)
        pkg_module = module + ".__init__" if path.name == "__init__.py" else module
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("neurodeploy"):
                        out.append((module, alias.name, [], node.lineno))
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(pkg_module, node)
                if target.startswith("neurodeploy"):
                    out.append((module, target, [a.name for a in node.names], node.lineno))
    return out


IMPORTS = _imports()


def test_the_package_is_scanned():
    """The scan finds the package's modules and their imports (guards against a scan that sees nothing)."""
    modules = {m for m, *_ in IMPORTS}
    assert {"neurodeploy.passes.quantize", "neurodeploy.emulator.engine", "neurodeploy.backends.lava.describe",
            "neurodeploy.cli"} <= modules
    assert len(IMPORTS) > 200


def test_allowed_layers_have_no_cycle():
    seen: dict[str, int] = {}

    def visit(layer: str, stack: tuple[str, ...]) -> None:
        assert layer not in stack, f"ALLOWED itself has a cycle: {' -> '.join((*stack, layer))}"
        for dep in ALLOWED[layer]:
            visit(dep, (*stack, layer))
        seen[layer] = 1

    for layer in ALLOWED:
        visit(layer, ())


def layer_violations(imports) -> list[str]:
    bad = []
    for module, target, _names, line in imports:
        src, dst = _layer(module), _layer(target)
        if dst is not None and src != dst and dst not in ALLOWED[src]:
            bad.append(f"{module}:{line} imports {target} ({src} -> {dst})")
    return bad


def layer_cycles(imports) -> list[str]:
    graph: dict[str, set[str]] = {}
    for module, target, _names, _line in imports:
        src, dst = _layer(module), _layer(target)
        if dst is not None and src != dst:
            graph.setdefault(src, set()).add(dst)
    cycles = set()

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            cycles.add(" -> ".join(stack[stack.index(node):] + [node]))
            return
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, [*stack, node])

    for start in sorted(graph):
        visit(start, [])
    return sorted(cycles)


def private_violations(imports) -> list[str]:
    bad = []
    for module, target, names, line in imports:
        if _package_of(module) == _package_of(target):
            continue
        private = [n for n in names if n.startswith("_") and not n.endswith("__")]  # dunders are public
        private += [p for p in target.split(".") if p.startswith("_") and p != "__init__"]
        if private:
            bad.append(f"{module}:{line} imports {', '.join(private)} from {target}")
    return bad


def test_every_import_points_down():
    bad = layer_violations(IMPORTS)
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_no_import_cycle_between_subpackages():
    cycles = layer_cycles(IMPORTS)
    assert not cycles, "import cycles between sub-packages:\n" + "\n".join(cycles)


def test_no_private_names_across_subpackages():
    bad = private_violations(IMPORTS)
    assert not bad, "private names imported across sub-packages:\n" + "\n".join(bad)


def test_the_checks_fire_on_planted_imports():
    """Each rule reports a made-up offending import (the checks are not vacuous)."""
    pass_imports_engine = ("neurodeploy.passes.x", "neurodeploy.emulator.engine", ["simulate"], 3)
    engine_imports_pass = ("neurodeploy.emulator.y", "neurodeploy.passes.fold", ["fold_linear"], 4)
    private = ("neurodeploy.backends.pynn.z", "neurodeploy.emulator.engine", ["_is_folded"], 5)
    assert layer_violations([pass_imports_engine]) == [
        "neurodeploy.passes.x:3 imports neurodeploy.emulator.engine (passes -> emulator)"]
    assert layer_cycles([pass_imports_engine, engine_imports_pass]) == [
        "emulator -> passes -> emulator", "passes -> emulator -> passes"]
    assert private_violations([private]) == [
        "neurodeploy.backends.pynn.z:5 imports _is_folded from neurodeploy.emulator.engine"]
    assert private_violations([("neurodeploy.passes.a", "neurodeploy.passes.b", ["_x"], 1)]) == []
