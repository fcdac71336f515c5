"""The layers hold: ``matrix`` <- ``plugins`` -> ``trainers``, and no import cycle anywhere.

- ``matrix`` (the core) imports neither ``plugins``, ``trainers`` nor torch, anywhere;
- ``trainers`` (pure torch) imports neither ``matrix``, ``plugins``, pytest nor pluggy;
- no two modules of the package import each other, directly or through others;
- collection stays torch-free: importing every ``matrix`` and ``plugins`` module loads no torch,
  and no test module outside ``tests/trainers/`` imports torch or the trainers at module level.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: repository folder -> import name
PACKAGES = {"src/pytest_sweep": "pytest_sweep", "matrix": "pytest_sweep.matrix", "plugins": "pytest_sweep.plugins",
            "trainers": "pytest_sweep.trainers"}  # fmt: skip


def _modules() -> dict[str, Path]:
    """Every module of the package, subpackages included (``pytest_sweep.matrix.ray.pool``)."""
    found: dict[str, Path] = {}
    for folder, name in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = [name, *path.relative_to(ROOT / folder).with_suffix("").parts]
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _imports(path: Path, *, top_level_only: bool = False, type_checking: bool = False) -> set[str]:
    """Every module named by an import statement in ``path`` (function-level ones too, unless asked;
    those for type checkers only if asked)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):  # imports for type checkers only are not imports at run time
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            node.body = node.body if type_checking else []
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _under(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_every_module_is_seen() -> None:
    assert "pytest_sweep.matrix.plugin" in MODULES and "pytest_sweep.trainers.loop" in MODULES
    assert "pytest_sweep.plugins.trainer" in MODULES and len(MODULES) > 30
    assert "pytest_sweep.matrix.ray.pool" in MODULES and "pytest_sweep.matrix.remote" in MODULES


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("pytest_sweep.matrix")))
def test_matrix_imports_neither_plugins_trainers_nor_torch(module: str) -> None:
    bad = {
        name
        for name in _imports(MODULES[module])
        if _under(name, "pytest_sweep.plugins", "pytest_sweep.trainers", "torch", "torchvision")
    }
    assert not bad, f"{module} imports {sorted(bad)}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("pytest_sweep.trainers")))
def test_trainers_import_neither_matrix_plugins_nor_pytest(module: str) -> None:
    bad = {
        name
        for name in _imports(MODULES[module])
        if _under(name, "pytest_sweep.matrix", "pytest_sweep.plugins", "pytest", "_pytest", "pluggy")
    }
    assert not bad, f"{module} imports {sorted(bad)}"


def _graph(*, type_checking: bool = False) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        targets = set()
        for name in _imports(path, type_checking=type_checking):
            while name and name not in MODULES:  # `from pytest_sweep.matrix import Symbol` -> the package
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


#: Cycles that only imports for type checkers close: known, and left to their module's owner.
TYPE_ONLY_CYCLES = [["pytest_sweep.matrix.collect", "pytest_sweep.matrix.search"]]


def test_no_new_import_cycles_for_type_checkers_either() -> None:
    """A type-only cycle is a design smell (``ray_backend`` and ``ray_pool`` had one): none is added."""
    assert _cycles(_graph(type_checking=True)) == TYPE_ONLY_CYCLES


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_collection_modules_load_no_torch() -> None:
    names = sorted(m for m in MODULES if _under(m, "pytest_sweep.matrix", "pytest_sweep.plugins"))
    if importlib.util.find_spec("ray") is None:  # the Ray backend's modules import ray (the ray extra)
        names = [m for m in names if m not in ("pytest_sweep.matrix.ray.pool", "pytest_sweep.matrix.ray.worker")]
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout[:300]


def test_core_test_modules_do_not_import_torch_at_collection() -> None:
    tests = Path(__file__).resolve().parent
    bad = {}
    for path in sorted(tests.glob("*.py")):
        names = {n for n in _imports(path, top_level_only=True) if _under(n, "torch", "pytest_sweep.trainers")}
        names -= {"pytest_sweep.trainers.names", "pytest_sweep.trainers.errors"}  # plain Python
        if names:
            bad[path.name] = sorted(names)
    assert bad == {}, "move torch unit tests to tests/trainers/"
