"""The README documents what the code does: its settings table and its commands."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from worker.alerts import Cause, as_dict, build_alert
from worker.cli import _parser
from worker.scoring.mode import Mode
from worker.scoring.model import Model
from worker.scoring.rollup import score_components
from worker.scoring.tierchange import decide, snapshot
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


def consumer_snippet() -> str:
    """The minimal Python consumer of the README's "Consuming alerts"."""
    section = README.split("### Consuming alerts", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def run_consumer(lines: list[bytes]) -> list[str]:
    """The README's consumer as a user runs it: alert lines on its stdin."""
    result = subprocess.run(
        [sys.executable, "-c", consumer_snippet()],
        input=b"".join(line + b"\n" for line in lines),
        capture_output=True,
        timeout=60,
        check=True,
    )
    return result.stdout.decode().splitlines()


def test_the_readme_consumer_keeps_one_of_each_alert_and_leaves_catch_up_ones(model: Model) -> None:
    def alert(account: str, cards: list[dict[str, float]], mode: Mode) -> dict[str, Any]:
        published = None
        for values in cards:
            change = decide(model, score_components(model, values), published)
            assert change is not None
            published = snapshot(change)
        return as_dict(build_alert(model, account, None, change, Cause("event"), 0.0, mode=mode))

    green, red = {"escalations": 0}, {"escalations": 2}
    history = alert("a", [green], Mode.CATCH_UP)
    first, change = alert("b", [green], Mode.LIVE), alert("b", [green, red], Mode.LIVE)
    older = {k: v for k, v in alert("c", [red], Mode.LIVE).items() if k != "delivery"}
    # As published (and as `healthscore alerts --json` prints them), one delivered twice.
    lines = [orjson.dumps(a) for a in (history, first, change, first, older)]
    assert run_consumer(lines) == ["b: None -> green", "b: green -> red", "c: None -> red"]


def _worked_rows() -> list[list[str]]:
    section = README.split("### A score, worked through", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in row] for row in rows]


def test_the_worked_example_is_what_the_default_model_computes(model: Model) -> None:
    rows = _worked_rows()
    assert [r[0].strip("`") for r in rows] == [c.name for c in model.components]
    # The raw value is the last number of its cell ("264 / 22 = 12 logins ..." -> 12).
    values = {r[0].strip("`"): float(re.findall(r"-?[\d.]+", r[1].split("=")[-1])[0]) for r in rows}
    card = score_components(model, values)
    for name, _, subscore, weight, contribution in rows:
        c = card.components[name.strip("`")]
        assert float(subscore.split("=")[-1].split()[-1]) == round(c.subscore, 2), name
        assert float(weight) == c.weight, name
        assert float(contribution) == round(card.contribution(name.strip("`")), 2), name
    total = README.split("| **score** |", 1)[1].split("\n", 1)[0]
    assert f"**{card.score:.2f}**" in total
    assert f"{card.total_weight:.2f}" in total
