"""The hot path's compiled build: which modules the build compiles with mypyc, and
whether this process runs them compiled.

The build (``setup.py``) compiles these modules to C extensions when mypyc and a C
compiler are there, and installs them pure otherwise: the same code either way, only
faster compiled. Only modules without coroutines are here: in a compiled coroutine an
``await`` inside ``except``/``finally`` leaves the handled exception set, which hung
a Redis-restart test while every unit test passed. This module imports nothing of the
worker's (``setup.py`` loads it by path before anything is installed).
"""

from __future__ import annotations

import importlib.machinery
import sys
from collections.abc import Mapping

MODULES = (
    # decode
    "worker.events.types",
    "worker.events.decode",
    "worker.events.intake",
    # window
    "worker.windows.buckets",
    "worker.windows.distinct",
    "worker.windows.keys",
    "worker.windows.plan",
    "worker.windows.published",
    "worker.windows.overrides",
    "worker.windows.resident",
    "worker.windows.resp",
    "worker.windows.saving",
    "worker.windows.script",
    "worker.windows.state",
    # score
    "worker.scoring.attribution",
    "worker.scoring.coverage",
    "worker.scoring.curves",
    "worker.scoring.custom",
    "worker.scoring.evaluate",
    "worker.scoring.mode",
    "worker.scoring.model",
    "worker.scoring.override",
    "worker.scoring.peers",
    "worker.scoring.recovery",
    "worker.scoring.rollup",
    "worker.scoring.segments",
    "worker.scoring.signals",
    "worker.scoring.tierchange",
    "worker.scoring.tiers",
    "worker.scoring.trend",
    "worker.scoring.vocabulary",
    "worker.rescore",
    # alert
    "worker.alerts",
    "worker.causes",
    "worker.overriding",
    "worker.timefmt",
)

# The extension holding the compiled code of all of them (each module's own extension is
# a shim into it): one library, so calls between the modules are direct C calls.
GROUP = "worker.hotpath"


def loaded() -> dict[str, bool]:
    """Each of the modules imported so far: True when it runs compiled."""
    return {
        name: _is_extension(getattr(sys.modules[name], "__file__", None) or "")
        for name in MODULES
        if name in sys.modules
    }


def describe(flags: Mapping[str, bool] | None = None) -> str:
    """One line for the start-up log: compiled, pure Python, or (a broken build) mixed.
    ``flags``: ``loaded()`` unless given."""
    flags = loaded() if flags is None else flags
    if flags and all(flags.values()):
        return f"compiled (mypyc): {len(flags)} hot-path modules"
    if not any(flags.values()):
        return (
            "pure Python: the hot path is not compiled (built without mypyc or a C "
            "compiler); it runs the same, about a fifth slower"
        )
    pure = sorted(name for name, compiled in flags.items() if not compiled)
    return f"partly compiled: pure Python for {', '.join(pure)}"


def _is_extension(path: str) -> bool:
    return path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
