"""``healthscore dev``'s alert printer: live alerts one line each, catch-up ones as counts."""

from __future__ import annotations

import argparse
import io
from typing import Any

import orjson
import pytest
from rich.console import Console

from worker.catchup import CatchUpSummary
from worker.commands import Printer, alert_line
from worker.settings import Settings

TIERS = ["green", "yellow", "red"]


def _alert(
    account: str, tier: str, delivery: str | None, previous: str | None = None
) -> dict[str, Any]:
    alert = {
        "account_id": account,
        "previous_tier": previous,
        "tier": tier,
        "score": 50.0,
        "previous_score": None if previous is None else 80.0,
        "cause": {"kind": "event", "event_type": "login"},
        "triggering_component": None,
        "delivery": delivery,
    }
    if delivery is None:  # published before alerts said it
        del alert["delivery"]
    return alert


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _summary() -> tuple[CatchUpSummary, io.StringIO, _Clock]:
    out, clock = io.StringIO(), _Clock()
    console = Console(file=out, width=10_000, soft_wrap=True, force_terminal=False)
    return CatchUpSummary(TIERS, console, every=5.0, clock=clock), out, clock


def test_catch_up_alerts_are_counted_by_each_accounts_latest_tier(
    capsys: pytest.CaptureFixture[str],
) -> None:
    summary, out, _ = _summary()
    for n in range(200):
        summary.show(orjson.dumps(_alert(f"a{n}", TIERS[n % 3], "catch_up")))
    summary.show(orjson.dumps(_alert("a1", "red", "catch_up", previous="yellow")))
    summary.tick()
    assert out.getvalue() == "200 accounts scored: 67 green, 66 yellow, 67 red\n"
    assert capsys.readouterr().out == ""  # none of them one by one


def test_a_summary_every_few_seconds_while_catch_up_alerts_arrive() -> None:
    summary, out, clock = _summary()
    summary.show(orjson.dumps(_alert("a", "green", "catch_up")))
    summary.tick()
    summary.show(orjson.dumps(_alert("b", "red", "catch_up")))
    clock.now = 4.9
    summary.tick()
    assert out.getvalue().splitlines() == ["1 accounts scored: 1 green"]
    clock.now = 5.0
    summary.tick()
    clock.now = 20.0
    summary.tick()  # nothing new: nothing printed
    summary.show(orjson.dumps(_alert("b", "green", "catch_up", previous="red")))
    summary.show(orjson.dumps(_alert("c", "red", "catch_up")))
    summary.close()  # what arrived since the last line, at the end
    assert out.getvalue().splitlines() == [
        "1 accounts scored: 1 green",
        "2 accounts scored: 1 green, 1 red",
        "3 accounts scored: 2 green, 1 red",
    ]


def test_live_alerts_and_older_ones_without_delivery_are_printed_one_by_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    summary, out, _ = _summary()
    live, older = _alert("a", "red", "live", previous="green"), _alert("b", "yellow", None)
    for alert in (live, older):
        summary.show(orjson.dumps(alert))
    summary.tick()
    summary.close()
    assert capsys.readouterr().out == f"{alert_line(live)}\n{alert_line(older)}\n"
    assert out.getvalue() == ""


def test_a_record_that_is_not_an_alert_is_reported_not_counted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    summary, out, _ = _summary()
    summary.show(b'{"delivery": "catch_up"}')
    summary.close()
    assert capsys.readouterr().err.startswith("healthscore: skipped a record")
    assert out.getvalue() == ""


@pytest.mark.parametrize(("flag", "kind"), [(False, CatchUpSummary), (True, Printer)])
def test_dev_counts_catch_up_alerts_unless_asked_for_all(flag: bool, kind: type) -> None:
    from worker.devmode import _sink

    assert isinstance(_sink(Settings(), argparse.Namespace(all_alerts=flag)), kind)
