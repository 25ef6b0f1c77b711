"""The floor plan holds: import-linter's contracts (layers, no cycles inside a package) as
pyproject.toml states them, no import cycle between any two modules, imports inside functions
counted, and no module loose at the package root."""

from __future__ import annotations

import shutil
import subprocess
import sys

from helpers import ROOT

LAYERS = ["bigtrain.cli", "bigtrain.inference", "bigtrain.run", "bigtrain.train",
          "bigtrain.config", "bigtrain.core"]
GROUPS = ["bigtrain.data", "bigtrain.loggers", "bigtrain.models", "bigtrain.optim",
          "bigtrain.strategy"]


def test_import_linter_keeps_every_contract():
    lint = shutil.which("lint-imports") or [sys.executable, "-m", "importlinter.cli"]
    proc = subprocess.run([lint] if isinstance(lint, str) else lint, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout and "BROKEN" not in proc.stdout


def test_the_contracts_name_every_package():
    """A new package must be placed in the layers, or the contract would not see it."""
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layered = {name.strip() for layer in contracts["contracts"][0]["layers"]
               for name in layer.split("|")}
    packages = {f"bigtrain.{p.name}" for p in (ROOT / "bigtrain").iterdir()
                if (p / "__init__.py").is_file() and p.name != "conf"}
    assert packages == layered == set(LAYERS) | set(GROUPS)


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_back_through_others():
    """Stricter than the sibling contract: a package's __init__ importing a module that
    imports the package counts too."""
    import grimp

    assert _cycles(grimp.build_graph("bigtrain")) == []


def test_nothing_is_loose_at_the_package_root():
    loose = sorted(p.name for p in (ROOT / "bigtrain").glob("*.py")
                   if p.name not in ("__init__.py", "__main__.py"))
    assert loose == []


def test_the_code_is_ruff_clean():
    """The lint rules of pyproject.toml ([tool.ruff]) over the code, tests, scripts and docs
    hooks: one style, kept by the suite rather than by memory."""
    ruff = shutil.which("ruff") or [sys.executable, "-m", "ruff"]
    proc = subprocess.run([ruff, "check", "."] if isinstance(ruff, str) else [*ruff, "check", "."],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_every_module_imports():
    """A module left behind by a move (importing what no longer exists) fails here."""
    import importlib
    import pkgutil

    import bigtrain

    broken = {}
    for info in pkgutil.walk_packages(bigtrain.__path__, "bigtrain."):
        if info.name.startswith("bigtrain.conf"):
            continue
        try:
            importlib.import_module(info.name)
        except ImportError as ex:
            broken[info.name] = str(ex)
    assert broken == {}
