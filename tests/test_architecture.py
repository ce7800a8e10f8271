"""The import structure docs/architecture.md draws: floors, imports that only run down, no circles.

Read from the source with ``ast`` (nothing is imported), so the check is exact and instant; imports
under ``if TYPE_CHECKING:`` are for type checkers only and are left out.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "trainval"

# Bottom to top: a module may import its own package and anything on a lower floor (docs/architecture.md).
FLOORS = [
    ["errors", "version", "atomic_files", "stats"],
    ["checks", "registry", "distributed"],
    ["data", "metrics", "runs", "optimizers"],
    ["datasets", "models", "callbacks", "reports"],
    ["training"],
    ["saving"],
    ["model", "transfer"],
    ["model_factory", "prediction", "export"],
    ["presets"],
    ["config"],
    ["run_data", "memory_plan"],
    ["experiment", "evaluation"],
    ["seeds"],
    ["bench"],
]
FACES = {"cli", "__init__", "__main__"}  # may import any floor


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The trainval modules ``path`` imports, outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text())
    skipped = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
               and "TYPE_CHECKING" in ast.unparse(block.test) for node in ast.walk(block)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("trainval")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("trainval"):
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}  # `from trainval import datasets`
    modules = {module_name(path) for path in PACKAGE.rglob("*.py")}
    return {name for name in found if name in modules}


def top_part(module: str) -> str:
    """``trainval.datasets.cifar10`` -> ``datasets``; the package itself -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def floor_of(module: str) -> int | None:
    part = top_part(module)
    return None if part in FACES else next(number for number, names in enumerate(FLOORS) if part in names)


GRAPH = {module_name(path): imports_of(path) for path in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_has_a_floor_or_is_a_face():
    unplaced = sorted({top_part(module) for module in GRAPH} - FACES - {name for floor in FLOORS for name in floor})
    assert unplaced == [], f"place these in FLOORS and docs/architecture.md: {unplaced}"


def test_imports_only_run_down_the_floors():
    upward = [f"{module} -> {target}" for module, targets in GRAPH.items() for target in targets
              if floor_of(module) is not None and top_part(module) != top_part(target)
              and floor_of(target) is not None and floor_of(target) >= floor_of(module)]
    assert upward == [], upward


def test_there_is_no_import_circle():
    done, path = set(), []

    def visit(module: str) -> None:
        if module in path:
            pytest.fail("import circle: " + " -> ".join(path[path.index(module):] + [module]))
        if module in done:
            return
        path.append(module)
        for target in sorted(GRAPH[module]):
            if target != module and not module.startswith(target + "."):  # a package's own __init__ is no circle
                visit(target)
        path.pop()
        done.add(module)

    for module in GRAPH:
        visit(module)


@pytest.mark.slow  # about a hundred interpreters, each importing torch
def test_every_module_imports_on_its_own_in_a_fresh_interpreter():
    """No circle hides behind import order: each module is the first one imported, in its own interpreter."""
    def fails_alone(module: str) -> bool:
        return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode != 0

    modules = sorted(name for name in GRAPH if "__main__" not in name)
    with ThreadPoolExecutor(max_workers=2) as pool:
        failed = [module for module, failed in zip(modules, pool.map(fails_alone, modules)) if failed]
    assert failed == []
