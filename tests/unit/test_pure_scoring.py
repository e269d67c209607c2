"""``worker/scoring/`` is pure: none of its modules reads a file, a socket or a clock."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import worker.scoring

PACKAGE = Path(worker.scoring.__file__).parent
MODULES = sorted(PACKAGE.glob("*.py"))
# Libraries whose use means I/O (or parsing what I/O brought in: that is the edge's job).
DOING_IO = {
    "yaml",
    "pathlib",
    "importlib",
    "redis",
    "aiokafka",
    "orjson",
    "json",
    "os",
    "io",
    "socket",
    "asyncio",
    "shutil",
    "tempfile",
    "subprocess",
    "urllib",
    "httpx",
    "worker.contracts",
    "worker.settings",
    "worker.modelfile",
}
CALLS_DOING_IO = {"open", "print", "input"}


def imported(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def called(tree: ast.AST) -> set[str]:
    return {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }


def test_the_package_has_modules() -> None:
    assert len(MODULES) > 5


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_a_scoring_module_imports_nothing_doing_io(path: Path) -> None:
    tree = ast.parse(path.read_text("utf-8"))
    bad = {
        name
        for name in imported(tree)
        if any(name == lib or name.startswith(lib + ".") for lib in DOING_IO)
    }
    assert bad == set(), f"{path.name} imports {sorted(bad)}"
    assert called(tree) & CALLS_DOING_IO == set(), f"{path.name} calls {called(tree)}"
