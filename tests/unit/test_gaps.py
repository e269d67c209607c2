"""Missing data is not churn: the silence policy, coverage and the unknown tier, and
the data-gap watch (all pure)."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from worker.commands import alert_line, print_alert
from worker.contracts import validator
from worker.errors import ConfigError
from worker.gaps import DataGaps, is_data_gap
from worker.modelfile import load_model, parse_model
from worker.scoring.coverage import coverage, enough_data
from worker.scoring.evaluate import component_values
from worker.scoring.model import UNKNOWN_TIER, Model
from worker.scoring.rollup import score_components
from worker.scoring.signals import WindowView
from worker.scoring.tierchange import decide, new_tier, snapshot

EMPTY = WindowView({}, {})
USAGE = WindowView({"login": 40, "sess_n": 10, "sess_sum": 6000}, {"users": 5, "features": 5})
SEEN = frozenset({"login", "feature_use", "ticket", "survey"})
NOW = 1000  # bucket (days)


def _values(model: Model, seen_bucket: dict[str, int]) -> dict[str, float]:
    windows = {30: USAGE, 90: USAGE}
    return component_values(
        model, windows, {"seats_purchased": 10}, SEEN, {}, None, seen_bucket, NOW
    )


def test_unknown_silence_leaves_a_component_out_once_its_events_left_the_window() -> None:
    model = load_model()
    # Tickets last came 40 days ago: out of the 30-day tickets window, in the 90-day
    # escalations one. Surveys came 100 days ago: out of both survey windows.
    found = _values(
        model, {"login": NOW, "feature_use": NOW, "ticket": NOW - 40, "survey": NOW - 100}
    )
    assert "support_tickets" not in found
    assert found["escalations"] == 0.0
    assert "nps" not in found
    assert "csat" not in found


def test_signal_silence_scores_on_zeros() -> None:
    model = load_model()
    windows = {30: EMPTY, 90: EMPTY}
    found = component_values(
        model, windows, {}, SEEN, {}, None, {"login": NOW - 60, "feature_use": NOW - 60}, NOW
    )
    assert found["login_frequency"] == 0.0
    assert found["feature_adoption"] == 0.0


def test_the_last_bucket_of_a_window_still_counts() -> None:
    model = load_model()
    assert "support_tickets" in _values(model, {"login": NOW, "ticket": NOW - 29})
    assert "support_tickets" not in _values(model, {"login": NOW, "ticket": NOW - 30})


def test_coverage_is_the_weight_with_data_over_the_total() -> None:
    model = dataclasses.replace(load_model(), min_coverage=0.12)
    total = sum(c.weight for c in model.components)
    assert coverage(model, {"nps", "csat"}) == pytest.approx(1.7 / total)
    assert coverage(model, [c.name for c in model.components]) == 1.0
    assert not enough_data(model, {"nps"})
    assert enough_data(model, {"nps", "csat"})
    assert enough_data(model, {"login_frequency"})
    assert enough_data(load_model(), {"nps"})  # off in the default model


def test_min_coverage_zero_is_off() -> None:
    model = parse_model(_text(min_coverage=None), "t")
    assert model.min_coverage == 0
    assert enough_data(model, set())


def test_too_little_data_is_tier_unknown_without_hysteresis() -> None:
    model = load_model()
    card = score_components(model, {"nps": -50.0})  # a red score from one survey measure
    first = decide(model, card, None, covered=False)
    assert first is not None
    assert first.tier == "unknown"
    assert first.trigger is not None
    # From unknown back to a real tier: the plain bar, no margin to clear.
    green = score_components(model, {"login_frequency": 20.0, "feature_adoption": 8.0})
    assert new_tier(model, green.score, snapshot(first)) == "green"
    back = decide(model, green, snapshot(first))
    assert back is not None
    assert (back.previous_tier, back.tier) == ("unknown", "green")
    # And straight to unknown from any tier, whatever the score.
    assert new_tier(model, green.score, snapshot(back), covered=False) == "unknown"
    assert new_tier(model, green.score, snapshot(first), covered=False) is None
    assert model.tier("unknown") is UNKNOWN_TIER


def test_the_model_reserves_unknown_and_checks_its_new_fields() -> None:
    with pytest.raises(ConfigError, match="reserved"):
        parse_model(_text(tier="unknown"), "t")
    with pytest.raises(ConfigError, match=r"data_gaps\.logins: unknown event type"):
        parse_model(_text(gaps="logins: 2h"), "t")
    with pytest.raises(ConfigError, match="silence"):
        parse_model(_text(silence="never"), "t")
    with pytest.raises(ConfigError, match="min_coverage"):
        parse_model(_text(min_coverage=1.5), "t")
    model = parse_model(_text(gaps="login: 90m"), "t")
    assert model.data_gaps == (("login", 5400),)
    assert model.component("tickets").silence == "unknown"


# ------------------------------------------------------------------------------- data gaps


def _change(model: Model, values: dict[str, float], published: dict[str, Any] | None) -> Any:
    change = decide(model, score_components(model, values), published)
    assert change is not None
    return change


def test_a_gap_opens_after_its_threshold_and_closes_when_the_type_arrives() -> None:
    model = parse_model(_text(gaps="login: 60s"), "t")
    gaps = DataGaps(model, now=0.0, worker="w")
    assert gaps.check(59.0, {0, 1}).records == []
    [(key, opened)] = gaps.check(60.0, {0, 1}).records
    assert key == "data_gap:login"
    assert opened["state"] == "open"
    assert opened["partitions"] == [0, 1]
    assert is_data_gap(opened)
    assert validator("datagap").is_valid(opened)
    assert gaps.check(200.0, {0, 1}).records == []  # announced once
    assert gaps.gauges() == {"login": 1}
    assert gaps.arrived({"ticket"}, 210.0).records == []  # not the missing type
    news = gaps.arrived({"login"}, 220.0)
    [(_, closed)] = news.records
    assert closed["state"] == "closed"
    assert validator("datagap").is_valid(closed)
    assert gaps.gauges() == {"login": 0}


def test_no_partitions_nothing_to_watch() -> None:
    gaps = DataGaps(parse_model(_text(gaps="login: 60s"), "t"), now=0.0, worker="w")
    assert gaps.check(500.0, set()).records == []
    assert gaps.check(559.0, {3}).records == []  # the clock restarted with the assignment


def test_a_change_moved_by_a_missing_type_is_held_and_released_when_it_returns() -> None:
    model = parse_model(_text(gaps="login: 60s"), "t")
    gaps = DataGaps(model, now=0.0, worker="w")
    green = _change(model, {"logins": 2.0, "tickets": 0.0}, None)
    drop = _change(model, {"logins": 0.0, "tickets": 0.0}, snapshot(green))
    tickets = _change(model, {"logins": 2.0, "tickets": 5.0}, snapshot(green))
    assert not gaps.holds(drop)  # no gap open
    gaps.check(60.0, {0})
    assert gaps.holds(drop)
    assert not gaps.holds(tickets)  # moved by tickets alone: news, not an outage
    assert gaps.hold(0, "a", 61.0) == 121.0
    news = gaps.arrived({"login"}, 70.0)
    assert news.released == [(0, "a")]
    assert gaps.arrived({"login"}, 71.0).released == []  # released once


def test_types_not_listed_are_never_flagged() -> None:
    gaps = DataGaps(load_model(), now=0.0, worker="w")
    assert set(gaps.gauges()) == {"login", "feature_use"}
    assert all(r[1]["event_type"] != "ticket" for r in gaps.check(1e9, {0}).records)


def _text(
    *,
    gaps: str | None = None,
    tier: str = "red",
    silence: str = "unknown",
    min_coverage: float | None = 0.5,
) -> str:
    coverage_line = "" if min_coverage is None else f"  min_coverage: {min_coverage}\n"
    gaps_block = "" if gaps is None else f"data_gaps:\n  {gaps}\n"
    return f"""
version: t
bucket: 1s
tiers:
  margin: 3
{coverage_line}  levels:
    - {{name: green, label: G, min_score: 70}}
    - {{name: yellow, label: Y, min_score: 40}}
    - {{name: {tier}, label: R, min_score: 0}}
{gaps_block}components:
  logins:
    signal: logins_per_active_user
    window: 3s
    weight: 1.0
    curve: {{linear: {{bad: 0, good: 2}}}}
  tickets:
    signal: tickets_opened
    window: 60s
    weight: 1.0
    silence: {silence}
    curve: {{linear: {{bad: 5, good: 0}}}}
"""


def test_the_alerts_command_prints_a_data_gap_as_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    gaps = DataGaps(parse_model(_text(gaps="login: 60s"), "t"), now=0.0, worker="w")
    [(_, opened)] = gaps.check(60.0, {0, 2}).records
    print_alert(orjson.dumps(opened), as_json=False)
    out = capsys.readouterr()
    assert out.err == ""
    assert out.out.startswith("data gap: no login events since 1970-01-01T00:00:00")
    assert "partitions 0, 2" in out.out
    [(_, closed)] = gaps.arrived({"login"}, 61.0).records
    assert alert_line(closed).startswith("data gap closed: login events arrive again")
