"""Run the hot path from its sources even where the build compiled it.

The compiled build (``worker.compiled``) puts each compiled module's extension beside its
source, and Python imports an extension before a source. ``install()`` puts a finder
first that imports those modules from their ``.py`` files: the pure path in the same
environment, so tests can hold the compiled path to it. It must run before anything
imports the modules (``HEALTHSCORE_TEST_PURE=1`` makes the tests' conftest call it; a
subprocess calls it first thing, see ``run_pure``).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

from worker.compiled import MODULES

ENV = "HEALTHSCORE_TEST_PURE"
ROOT = Path(__file__).parents[1]


class SourceFirst(importlib.abc.MetaPathFinder):
    """Finds the compiled modules' sources; leaves every other module to the others."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name not in MODULES or path is None:
            return None
        for entry in path:
            source = Path(entry) / f"{name.rpartition('.')[2]}.py"
            if source.is_file():
                return importlib.util.spec_from_file_location(name, source)
        return None


def install() -> None:
    imported = [name for name in MODULES if name in sys.modules]
    assert not imported, f"already imported (compiled, maybe): {imported}"
    if not any(isinstance(finder, SourceFirst) for finder in sys.meta_path):
        sys.meta_path.insert(0, SourceFirst())


def stale() -> list[str]:
    """The sources that changed after their extension was built (a build beside the
    sources, as ``make`` does): the extension would run the old code."""
    found = []
    for name in MODULES:
        source = ROOT.joinpath(*name.split(".")).with_suffix(".py")
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            built = source.with_name(source.stem + suffix)
            if built.is_file() and built.stat().st_mtime < source.stat().st_mtime:
                found.append(str(source.relative_to(ROOT)))
    return found


def run_pure(argv: Sequence[str]) -> list[str]:
    """A Python command line (``[python, -m, module, ...]``) that runs pure."""
    python, *rest = argv
    launch = "import runpy, sys; from tests import purepython; purepython.install(); "
    if rest[:1] == ["-m"]:
        launch += (
            f"sys.argv = [{rest[1]!r}] + sys.argv[1:]; "
            f"runpy.run_module({rest[1]!r}, run_name='__main__', alter_sys=True)"
        )
        return [python, "-c", launch, *rest[2:]]
    raise ValueError(f"not a -m command line: {argv}")
