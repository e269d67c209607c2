"""A model file's own signals: filters, checking with the bad field named, values, and
what the planner writes for them."""

from __future__ import annotations

import itertools
from importlib import resources
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.errors import ConfigError
from worker.events.types import Event, SourceRef
from worker.modelfile import load_model, parse_model
from worker.scoring.custom import compile_where
from worker.scoring.evaluate import component_values
from worker.scoring.signals import WindowView
from worker.windows.buckets import bucket_of
from worker.windows.plan import Planner, distinct_sets

DAY = 86400
NOW = 1768478400.0  # 2026-01-15T12:00:00Z
_ids = itertools.count()

HEAD = """
version: t1
bucket: 1d
tiers:
  margin: 3
  levels:
    - {name: green, label: G, min_score: 70}
    - {name: red, label: R, min_score: 0}
"""


def model_text(signals: str, signal: str = "mine") -> str:
    return (
        HEAD
        + "signals:\n"
        + signals
        + f"""
components:
  c:
    signal: {signal}
    window: 30d
    weight: 1
    curve: {{linear: {{bad: 0, good: 3}}}}
"""
    )


def one(definition: str) -> str:
    return model_text(f"  mine:\n    {definition}\n")


def ev(event_type: str, **fields: Any) -> Event:
    body = {"event_id": f"e{next(_ids)}", "account_id": "acme", "user_id": "u1"} | fields
    return Event(event_type, body["event_id"], "acme", NOW, body, SourceRef("t", 0, 0))


# ----------------------------------------------------------------- the where evaluator


def test_where_in_eq_not_in_and_bounds() -> None:
    key = compile_where({"feature": {"in": ["reports", "api"]}})
    assert key is not None
    assert key({"feature": "api"})
    assert not key({"feature": "export"})
    assert not key({})
    urgent = compile_where({"priority": {"eq": "urgent"}, "status": {"not_in": ["closed"]}})
    assert urgent is not None
    assert urgent({"priority": "urgent", "status": "opened"})
    assert not urgent({"priority": "urgent", "status": "closed"})
    assert not urgent({"status": "opened"})  # a missing field is no match
    long = compile_where({"session_seconds": {"gte": 60, "lte": 600}})
    assert long is not None
    assert long({"session_seconds": 60})
    assert long({"session_seconds": 600.0})
    assert not long({"session_seconds": 59.9})
    assert not long({"session_seconds": "300"})
    assert not long({"session_seconds": True})  # a boolean is not a number
    assert compile_where({}) is None  # no filter: no call per event


def test_eq_one_does_not_take_true() -> None:
    test = compile_where({"n": {"eq": 1}})
    assert test is not None
    assert test({"n": 1})
    assert test({"n": 1.0})
    assert not test({"n": True})


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
CONDITION = st.one_of(
    st.fixed_dictionaries({"in": st.lists(st.text(max_size=3) | st.integers(), min_size=1)}),
    st.fixed_dictionaries({"not_in": st.lists(st.text(max_size=3) | st.integers(), min_size=1)}),
    st.fixed_dictionaries({"eq": st.text(max_size=3) | st.integers() | st.booleans()}),
    st.fixed_dictionaries({"gte": st.integers() | st.floats(allow_nan=False)}),
    st.fixed_dictionaries({"lte": st.integers() | st.floats(allow_nan=False)}),
)


@given(
    where=st.dictionaries(st.sampled_from(["a", "b", "c"]), CONDITION, min_size=1),
    body=st.dictionaries(st.sampled_from(["a", "b", "x"]), JSON),
)
def test_where_never_raises_and_a_missing_field_never_matches(
    where: dict[str, dict[str, Any]], body: dict[str, Any]
) -> None:
    test = compile_where(where)
    assert test is not None
    matched = test(body)
    assert isinstance(matched, bool)
    if any(name not in body for name in where):
        assert not matched


# ----------------------------------------------------------------- checking the file


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (
            "distinct: {event: feature_use, field: featur}",
            "signals.mine.distinct.field: 'featur' is not a field of feature_use events "
            "(fields: account_id, count, event_id, feature, ts, user_id)",
        ),
        ("count: {event: tickets}", "signals.mine.count.event: unknown event type 'tickets'"),
        (
            "count: {event: ticket, where: {priority: {eq: critical}}}",
            "signals.mine.count.where.priority.eq: 'critical' is never a value of this field",
        ),
        (
            "count: {event: ticket, where: {priorty: {eq: urgent}}}",
            "signals.mine.count.where.priorty: 'priorty' is not a field of ticket events",
        ),
        (
            "count: {event: feature_use, where: {feature: {gte: 3}}}",
            "signals.mine.count.where.feature.gte: 'feature' is not a number",
        ),
        (
            "count: {event: feature_use, sum: feature}",
            "signals.mine.count.sum: 'feature' holds string values, not integer or number",
        ),
        (
            "count: {event: login, where: {session_seconds: {in: [short]}}}",
            "signals.mine.count.where.session_seconds.in: 'short' is not a number",
        ),
        (
            "attribute: {field: renewal, as: days_until}",
            "signals.mine.attribute.field: 'renewal' is not a field of account records",
        ),
        (
            "attribute: {field: plan, as: days_until}",
            "signals.mine.attribute.field: 'plan' is not a date",
        ),
        ("ratio: {of: nps, to: nothing}", "signals.mine.ratio.to: unknown signal 'nothing'"),
        ("ratio: {of: mine, to: nps}", "signals.mine.ratio.of: unknown signal 'mine'"),
        (
            "count: {event: login, where: {user_id: {between: [1, 2]}}}",
            "signals.mine.count.where.user_id",
        ),
    ],
)
def test_a_bad_definition_names_the_field(definition: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_model(one(definition), source="m.yaml")
    assert str(caught.value).startswith("m.yaml: ")
    assert message in str(caught.value)


def test_a_built_in_name_is_refused() -> None:
    text = model_text("  nps:\n    count: {event: survey}\n", signal="nps")
    with pytest.raises(ConfigError, match=r"signals\.nps: 'nps' is a built-in signal"):
        parse_model(text)


def test_a_component_names_an_unknown_signal_and_learns_the_custom_ones() -> None:
    with pytest.raises(ConfigError, match=r"components.c.signal: unknown signal 'other' .*mine"):
        parse_model(model_text("  mine:\n    count: {event: login}\n", signal="other"))


# ----------------------------------------------------------------- values and planning


@pytest.fixture(scope="module")
def example() -> Any:
    path = resources.files("worker").joinpath("models", "custom-signals.example.yaml")
    return load_model(str(path))


def test_the_example_model_loads_and_keeps_its_own_set(example: Any) -> None:
    assert distinct_sets(example) == ("users", "x:key_features")
    assert example.component("urgent_tickets").signal.sources == {"ticket"}
    assert example.component("renewal_runway").signal.attributes


def test_planner_writes_the_filtered_counters_and_members(example: Any) -> None:
    plan = Planner(example).plan(
        "acme",
        [
            ev("feature_use", feature="reports"),
            ev("feature_use", feature="export"),
            ev("ticket", ticket_id="T", status="opened", priority="urgent"),
            ev("ticket", ticket_id="T", status="opened", priority="low"),
        ],
        bucket_of(NOW, DAY),
    )
    totals = plan.totals()
    today = bucket_of(NOW, DAY)
    assert totals.counters[(today, "x:key_feature_uses")] == 1.0
    assert totals.counters[(today, "x:feature_uses")] == 2.0
    assert totals.counters[(today, "x:urgent_tickets")] == 1.0
    assert totals.members["x:key_features"].keys() == {"reports"}
    # feature_use feeds users too (login_frequency); no event touches the attribute.
    assert plan.touched == {
        "key_feature_adoption",
        "key_feature_focus",
        "urgent_tickets",
        "login_frequency",
    }


def test_values_from_a_window_view(example: Any) -> None:
    window = WindowView(
        {"x:key_feature_uses": 3.0, "x:feature_uses": 12.0, "x:urgent_tickets": 2.0},
        {"x:key_features": 2, "users": 1},
        end=NOW,
    )
    windows = {1: window, 30: window}
    attrs = {"renewal_date": "2026-02-14"}
    values = component_values(example, windows, attrs, {"feature_use", "ticket"}, {}, None)
    assert values["key_feature_adoption"] == 2.0
    assert values["key_feature_focus"] == 0.25
    assert values["urgent_tickets"] == 2.0
    assert values["renewal_runway"] == pytest.approx(29.5)  # NOW is noon of Jan 15
    # A ratio to nothing is undefined, an account without a renewal date has no runway.
    empty = WindowView({}, {}, end=NOW)
    values = component_values(example, {1: empty, 30: empty}, {}, {"feature_use"}, {}, None)
    assert "key_feature_focus" not in values
    assert "renewal_runway" not in values
    assert values["key_feature_adoption"] == 0.0


@pytest.mark.parametrize(
    "definition",
    ["description: nothing else", "{count: {event: login}, ratio: {of: nps, to: nps}}"],
)
def test_a_signal_is_one_kind(definition: str) -> None:
    with pytest.raises(ConfigError, match=r"signals\.mine: needs exactly one of count, distinct"):
        parse_model(one(definition))


def test_an_attribute_alone_does_not_score_an_account(example: Any) -> None:
    window = WindowView({}, {}, end=NOW)
    attrs = {"renewal_date": "2026-02-14"}
    assert component_values(example, {1: window, 30: window}, attrs, set(), {}, None) == {}
    values = component_values(example, {1: window, 30: window}, attrs, {"login"}, {}, None)
    assert values["renewal_runway"] == pytest.approx(29.5)
