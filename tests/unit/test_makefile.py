"""The Makefile's targets install what each needs, read from make's own dry run on a
virtualenv that does not exist yet (a fresh machine)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make here")


def _dry_run(target: str, tmp_path: Path) -> list[str]:
    # Run inside `make test` too: a nested make would print its directory changes.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", target, f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


def _extras(commands: list[str]) -> set[str]:
    return {
        extra
        for line in commands
        for extra in re.findall(r"pip install .*-e '\.\[([^]]+)\]'", line)
    }


def test_dev_installs_only_what_running_needs(tmp_path: Path) -> None:
    commands = _dry_run("dev", tmp_path)
    assert commands[0].endswith(f"-m venv {tmp_path / 'venv'}")  # a fresh machine works
    assert _extras(commands) == {"embedded"}
    assert commands[-1].endswith("/bin/healthscore dev")


@pytest.mark.parametrize("target", ["test", "lint", "test-unit"])
def test_test_and_lint_still_install_the_dev_tools(tmp_path: Path, target: str) -> None:
    assert "dev" in {e for extras in _extras(_dry_run(target, tmp_path)) for e in extras.split(",")}


def test_test_unit_runs_the_unit_tests_only(tmp_path: Path) -> None:
    assert _dry_run("test-unit", tmp_path)[-1].endswith("/bin/python -m pytest tests/unit")


def test_the_license_file_is_the_license_pyproject_names() -> None:
    assert 'license = "Apache-2.0"' in (ROOT / "pyproject.toml").read_text()
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert "APPENDIX: How to apply" in text
