"""Trend components: the change of a signal from the account's own previous window. Pure:
the window sums are plain data here."""

from __future__ import annotations

import io
import math
from importlib import resources
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from worker.commands import _print_explanation
from worker.errors import ConfigError
from worker.modelfile import load_model, parse_model
from worker.modelfile.segments import parse_models
from worker.notify.format import trigger_words
from worker.scoring.evaluate import component_values
from worker.scoring.model import Model
from worker.scoring.recovery import recovery
from worker.scoring.rollup import score_components
from worker.scoring.signals import WindowView
from worker.scoring.trend import describe, previous_view, relative_change, trend_value
from worker.windows.resident import load

DAY = 86400
NOW_BUCKET = 20_000


def model_text(component: str, signals: str = "") -> str:
    return f"""
version: t1
bucket: 1d
tiers:
  margin: 3
  levels:
    - {{name: green, label: Good, min_score: 70}}
    - {{name: red, label: Bad, min_score: 0}}
{signals}
components:
  usage:
    signal: logins_per_active_user
    window: 30d
    weight: 1
    curve: {{linear: {{bad: 4, good: 20}}}}
  trend:
{component}
"""


LOGIN_TREND = """    signal: logins
    trend: previous
    window: 7d
    weight: 1
    curve: {linear: {bad: -50, good: 0}}"""


@pytest.fixture(scope="module")
def model() -> Model:
    return parse_model(model_text(LOGIN_TREND))


def views(recent: dict[str, float], both: dict[str, float]) -> dict[int, WindowView]:
    """The 7- and 14-day windows (and the 30-day one, empty) ending in NOW_BUCKET."""
    end = (NOW_BUCKET + 1) * DAY
    return {
        7: WindowView(recent, {}, end=end),
        14: WindowView(both, {}, end=end),
        30: WindowView(both, {}, end=end),
    }


# ----------------------------------------------------------------- the pure functions


def test_relative_change_in_percent() -> None:
    assert relative_change(13.0, 20.0) == -35.0
    assert relative_change(30.0, 20.0) == 50.0
    assert relative_change(0.0, 20.0) == -100.0
    assert relative_change(5.0, 5.0) == 0.0


def test_no_change_without_a_previous_value_to_compare_with() -> None:
    assert relative_change(10.0, 0.0) is None  # a new account: nothing before
    assert relative_change(10.0, None) is None  # undefined before (an average of nothing)
    assert relative_change(None, 10.0) is None  # undefined now


def test_a_negative_previous_value_keeps_the_direction() -> None:
    # An NPS from -20 to -40 fell: the change says so, whatever the sign of the base.
    assert relative_change(-40.0, -20.0) == -100.0
    assert relative_change(-10.0, -20.0) == 50.0


@given(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9),
)
def test_relative_change_never_raises_and_moves_with_the_value(
    recent: float, previous: float
) -> None:
    change = relative_change(recent, previous)
    if change is None:  # nothing to compare with, or a change beyond any float
        assert previous == 0 or not math.isfinite(100.0 * (recent - previous) / abs(previous))
        return
    assert math.isfinite(change)
    assert (change > 0) == (recent > previous)


def test_the_previous_window_is_the_longer_one_less_the_recent_one() -> None:
    recent = WindowView({"login": 13.0, "feat": 4.0}, {"users": 3}, end=1000.0)
    both = WindowView({"login": 33.0, "feat": 4.0}, {"users": 5}, end=1000.0)
    previous = previous_view(recent, both, frozenset({"login", "feat", "tk_open"}), 700.0)
    assert previous.sums == {"login": 20.0, "feat": 0.0, "tk_open": 0.0}
    assert previous.counts == {}  # not known for the previous window: never read
    assert previous.end == 300.0


def test_a_difference_of_rounding_alone_is_zero() -> None:
    # The same additions in another order: 0.1 + 0.2 + 0.3 is not 0.3 + 0.2 + 0.1.
    recent = WindowView({"sess_sum": 0.1 + 0.2 + 0.3}, {})
    both = WindowView({"sess_sum": 0.3 + 0.2 + 0.1}, {})
    assert previous_view(recent, both, frozenset({"sess_sum"}), 1.0).sums == {"sess_sum": 0.0}


def test_trend_value_of_a_drop(model: Model) -> None:
    component = model.component("trend")
    assert trend_value(component, views({"login": 13.0}, {"login": 33.0}), {}, DAY) == -35.0
    assert trend_value(component, views({"login": 13.0}, {"login": 13.0}), {}, DAY) is None


def test_describe_a_change() -> None:
    assert describe(-35.0, 7 * DAY) == "-35% vs the previous 7 days"
    assert describe(12.4, 3600) == "+12% vs the previous 1 hour"


# ----------------------------------------------------------------- the model


def test_a_trend_reads_its_window_and_the_one_before(model: Model) -> None:
    component = model.component("trend")
    assert (component.trend, component.window_buckets, component.span_buckets) == (
        "previous",
        7,
        14,
    )
    assert model.window_lengths == (7, 14, 30)
    assert model.max_window_buckets == 30
    longer = parse_model(model_text(LOGIN_TREND.replace("7d", "20d")))
    assert longer.window_lengths == (20, 30, 40)
    assert longer.max_window_buckets == 40  # retention, expiries and the schedule count 2N


def test_the_default_model_reads_the_windows_it_did() -> None:
    default = load_model()
    assert default.window_lengths == (30, 90)
    assert default.max_window_buckets == 90
    assert all(c.trend is None for c in default.components)


def test_a_component_without_a_previous_window_is_left_out(model: Model) -> None:
    values = component_values(model, views({"login": 6.0}, {"login": 6.0}), {}, {"login"}, {}, None)
    assert "trend" not in values
    values = component_values(
        model, views({"login": 6.0}, {"login": 18.0}), {}, {"login"}, {}, None
    )
    assert values["trend"] == -50.0
    assert score_components(model, values).components["trend"].subscore == 0.0


def test_a_trend_gets_no_recovery_hint(model: Model) -> None:
    values = {"usage": 20.0, "trend": -50.0}
    card = score_components(model, values)
    hints = recovery(model, card, "red")
    assert hints is not None
    assert [h.component for h in hints.hints] == []


# ----------------------------------------------------------------- the model file


@pytest.mark.parametrize(
    ("component", "message"),
    [
        (
            LOGIN_TREND.replace("logins", "distinct_features"),
            r"components\.trend\.trend: signal 'distinct_features' counts distinct features, and a "
            r"distinct count of the previous window is not known",
        ),
        (
            LOGIN_TREND.replace("logins", "logins_per_active_user"),
            r"components\.trend\.trend: signal 'logins_per_active_user' counts distinct users",
        ),
        (
            LOGIN_TREND.replace("7d", "46d"),
            r"components\.trend\.trend: a trend reads its window and the one before it",
        ),
        (LOGIN_TREND.replace("previous", "weekly"), r"components\.trend\.trend: "),
    ],
)
def test_a_trend_the_windows_cannot_answer_is_refused_naming_the_field(
    component: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_model(model_text(component))


def test_a_trend_of_an_attribute_is_refused() -> None:
    signals = """signals:
  seats:
    attribute: {field: seats_purchased, as: number}"""
    with pytest.raises(
        ConfigError,
        match=r"components\.trend\.trend: signal 'seats' reads no "
        r"event counts",
    ):
        parse_model(model_text(LOGIN_TREND.replace("logins", "seats"), signals))


def test_a_trend_of_a_model_files_own_count() -> None:
    signals = """signals:
  reports:
    count: {event: feature_use, where: {feature: {eq: reports}}}"""
    model = parse_model(model_text(LOGIN_TREND.replace("logins", "reports"), signals))
    component = model.component("trend")
    windows = views({"x:reports": 4.0}, {"x:reports": 12.0})
    assert trend_value(component, windows, {}, DAY) == -50.0


@pytest.fixture(scope="module")
def example() -> Any:
    return load_model(str(resources.files("worker").joinpath("models", "trends.example.yaml")))


def test_the_example_model_loads_with_its_trends(example: Model) -> None:
    trends = {c.name: (c.signal.name, c.window_buckets) for c in example.components if c.trend}
    assert trends == {
        "login_trend": ("logins", 7),
        "feature_use_trend": ("feature_uses", 14),
        "support_trend": ("tickets_opened", 30),
    }
    assert example.max_window_buckets == 60


# ----------------------------------------------------------------- windows and words


def test_a_held_account_keeps_the_previous_window_and_is_due_when_data_moves() -> None:
    # Logins 10 days ago: in the previous window (14) and not the recent one (7).
    resident = load(
        "acme",
        NOW_BUCKET,
        NOW_BUCKET - 13,
        (7, 14, 30),
        DAY,
        [(f"{NOW_BUCKET - 10}|login".encode(), b"20"), (f"{NOW_BUCKET - 2}|login".encode(), b"13")],
        [],
        [None] * 8,
        (),
        ("login", "feature_use", "ticket", "survey"),
    )
    view = resident.view()
    assert (view[7].get("login"), view[14].get("login")) == (13.0, 33.0)
    # The value changes when the logins of 10 days ago leave the previous window (at
    # NOW + 4), before those of 2 days ago move from the recent window into it (NOW + 5).
    assert resident.next_change == NOW_BUCKET + 4
    resident = load(
        "acme",
        NOW_BUCKET,
        NOW_BUCKET - 13,
        (7, 14, 30),
        DAY,
        [(f"{NOW_BUCKET - 2}|login".encode(), b"13")],
        [],
        [None] * 8,
        (),
        ("login", "feature_use", "ticket", "survey"),
    )
    assert resident.next_change == NOW_BUCKET + 5


def test_an_alert_on_a_trend_says_the_change_in_percent(model: Model) -> None:
    trigger = {"name": "trend", "value": -60.0, "previous_value": -10.0}
    assert trigger_words(trigger, model) == "trend fell from -10% to -60% vs the previous 7 days"
    assert trigger_words({**trigger, "previous_value": None}, model) == (
        "trend is -60% vs the previous 7 days"
    )
    usage = {"name": "usage", "value": 12.0, "previous_value": 15.0}
    assert trigger_words(usage, model) == "usage fell from 15 to 12 in 30 days"


def test_explain_prints_a_trend_in_words_and_other_values_as_before() -> None:
    components = [
        {
            "name": "login_trend",
            "value": -57.14,
            "subscore": 0.0,
            "weight": 1.0,
            "contribution": 0.0,
            "capped": [],
            "trend": "-57% vs the previous 7 days",
        },
        {
            "name": "activity",
            "value": 20.0,
            "subscore": 100.0,
            "weight": 1.0,
            "contribution": 50.0,
            "capped": [],
        },
    ]
    data = {
        "account_id": "acme",
        "at": "2026-11-22T09:30:00.000+00:00",
        "model_version": "v1",
        "model": {"version": "v1", "segment": "default"},
        "segment": None,
        "score": 50.0,
        "tier": "red",
        "published_tier": "red",
        "published_seq": 3,
        "attributes": {},
        "components": components,
    }
    out = io.StringIO()
    _print_explanation(data, Console(file=out, width=10_000, force_terminal=False))
    lines = out.getvalue().splitlines()
    assert any("login_trend" in line and "-57% vs the previous 7 days" in line for line in lines)
    assert any("activity" in line and "│ 20 " in line for line in lines)


def test_a_segment_models_trend_is_kept_by_the_windows_of_the_set() -> None:
    text = model_text(LOGIN_TREND).replace(
        "components:\n  usage:",
        "segments:\n  smb:\n    components:\n      trend: {window: 10d}\ncomponents:\n  usage:",
    )
    models = parse_models(text, "t")
    assert models.segments["smb"].component("trend").span_buckets == 20
    assert models.windows.window_lengths == (7, 10, 14, 20, 30)
    assert models.windows.max_window_buckets == 30
