"""The compiled hot path (``worker.compiled``) runs what the pure code does: the same
alerts, dead letters and Redis writes, byte for byte, on randomized batches
(``tests.integration.identity``), run once each way as subprocesses on the real Redis.

Under CI the build must be compiled: CI tests what a machine with a C compiler runs. A
build without one is pure Python and is held to the pure code trivially."""

from __future__ import annotations

import importlib
import os
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests import purepython
from tests.integration.inplay import model_file
from worker import compiled

pytestmark = pytest.mark.integration
IDENTITY = [sys.executable, "-m", "tests.integration.identity"]


def _compiled_build() -> bool:
    for name in compiled.MODULES:
        importlib.import_module(name)
    return all(compiled.loaded().values())


def test_the_hot_path_runs_compiled_where_the_build_could_compile_it() -> None:
    if not _compiled_build():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI runs the compiled build, this one is not: {compiled.describe()}")
        pytest.skip(f"built without the compiled hot path: {compiled.describe()}")
    assert compiled.describe().startswith("compiled (mypyc)")


def test_without_a_c_compiler_the_package_builds_pure(tmp_path: Path) -> None:
    """A machine without a C compiler installs and runs: the wheel is the sources only."""
    env = {**os.environ, "CC": str(tmp_path / "no-such-cc")}
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).parents[2],
    )
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("healthscore-*.whl")
    with zipfile.ZipFile(wheel) as contents:
        names = contents.namelist()
    assert not [n for n in names if n.endswith(".so")]
    sources = {name.partition("purelib/")[2] or name for name in names}
    assert {name.replace(".", "/") + ".py" for name in compiled.MODULES} <= sources


def _run(command: list[str], redis_url: str, seed: int, model: str, out: Path) -> list[str]:
    args = [
        "--redis",
        redis_url,
        "--seed",
        str(seed),
        "--model",
        model,
        "--events",
        "6000",
        "--out",
        str(out),
    ]
    subprocess.run([*command, *args], check=True, timeout=120)
    return out.read_text().splitlines()


@pytest.mark.parametrize("model", ["default", "segments-and-custom-signals"])
def test_compiled_and_pure_publish_and_write_the_same(
    redis_url: str, tmp_path: Path, model: str
) -> None:
    seed = random.randrange(2**32)  # a new draw every run; the failure says which
    path = "" if model == "default" else model_file(tmp_path)
    built = _run(IDENTITY, redis_url, seed, path, tmp_path / "built.txt")
    pure = _run(purepython.run_pure(IDENTITY), redis_url, seed, path, tmp_path / "pure.txt")
    assert pure[0].startswith("build pure Python"), pure[0]
    assert built[0].startswith("build compiled") or not _compiled_build(), built[0]
    assert sum(line.startswith("alert ") for line in built) > 100  # something to compare
    assert len(built) == len(pure), f"seed {seed}: {len(built)} lines against {len(pure)}"
    for n, (got, expected) in enumerate(zip(built[1:], pure[1:], strict=True), 2):
        assert got == expected, f"seed {seed}, line {n}: compiled and pure differ"
