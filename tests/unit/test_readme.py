"""The README documents what the code does: its settings table and its commands."""

from __future__ import annotations

import re
from pathlib import Path

from worker.cli import _parser
from worker.settings import documented_settings

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_configuration_table_lists_every_setting_with_its_default() -> None:
    rows = dict(re.findall(r"^\| `(HEALTHSCORE_[A-Z_]+)` \| `([^`]*)` \|", README, re.M))
    assert rows == {name: default for name, default, _ in documented_settings()}


def test_quick_start_is_two_commands_and_ci_runs_the_test_one() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick_start.strip().splitlines()]
    assert commands == ["make dev", "make test"]
    ci = (Path(__file__).parents[2] / ".ci" / "run").read_text()
    assert "make test" in ci


def test_every_documented_command_exists() -> None:
    subcommands = set(_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    for name in ("worker", "dev", "simulate", "explain", "alerts", "replay", "check-model"):
        assert name in subcommands
        assert f"`{name}" in README or f"healthscore {name}" in README


def test_every_metric_is_documented() -> None:
    from worker.metrics import Metrics

    names = {metric.name for metric in Metrics().registry.collect()}
    assert names, "the registry is empty"
    for name in names:
        # Counters are collected without their _total suffix.
        assert f"`{name}" in README, name
