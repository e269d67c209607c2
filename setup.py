"""The build: the project is declared in pyproject.toml; this only adds the compiled hot
path (``worker/compiled.py`` lists its modules), when it can be built.

Compiled with mypyc when mypyc (a build requirement) and a C compiler are there, unless
HEALTHSCORE_BUILD_PURE=1; otherwise, or when compiling fails, the package installs pure
Python, which runs the same code (the worker's start-up log says which it runs).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent


def _compiled_modules() -> Any:
    spec = importlib.util.spec_from_file_location("_compiled", HERE / "worker" / "compiled.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _why_pure() -> str | None:
    if os.environ.get("HEALTHSCORE_BUILD_PURE", "") not in ("", "0"):
        return "HEALTHSCORE_BUILD_PURE is set"
    if importlib.util.find_spec("mypyc") is None:
        return "mypyc is not installed"
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler})"
    return None


@functools.cache  # the build asks for them once per command it runs
def extensions() -> list[Any]:
    why = _why_pure()
    if why is not None:
        print(f"healthscore: building pure Python ({why})", file=sys.stderr)
        return []
    from mypyc.build import mypycify

    compiled = _compiled_modules()
    paths = [str(Path(*name.split("."))) + ".py" for name in compiled.MODULES]
    return mypycify(paths, group_name=compiled.GROUP, opt_level="3")


class OptionalBuildExt(build_ext):
    """Compiles only when the build asks for extensions: mypyc's analysis takes a while,
    and the build runs this file for its metadata too. A compile that fails leaves the
    package pure Python, never half compiled: a shim without its group library would
    not import at all."""

    def finalize_options(self) -> None:
        self.distribution.ext_modules = extensions()
        super().finalize_options()

    def run(self) -> None:
        try:
            super().run()
        except Exception as error:  # the compiler's own errors vary by platform
            for ext in self.extensions:
                Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)
            print(f"healthscore: compiling failed, building pure Python ({error})", file=sys.stderr)


# A stand-in until build_ext knows (above): it marks the wheel as one with extensions.
PLACEHOLDER = Extension("worker.hotpath__mypyc", sources=[])
setup(ext_modules=[PLACEHOLDER], cmdclass={"build_ext": OptionalBuildExt})
