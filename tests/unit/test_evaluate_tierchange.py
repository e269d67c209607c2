"""Incremental evaluation of component values, and the tier-change decision."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from worker.scoring.evaluate import component_values
from worker.scoring.model import Model
from worker.scoring.rollup import Scorecard, score_components, score_of
from worker.scoring.signals import WindowView
from worker.scoring.tierchange import (
    Published,
    TierChange,
    decide,
    new_tier,
    scorecard_of,
    snapshot,
)
from worker.windows import published as published_tier

ALL_SOURCES = frozenset({"login", "feature_use", "ticket", "survey"})

# 30-day window: 10 users, 120 logins, 6 features, 40 sessions of 600 s in all
# (15 min each), 3 tickets opened + 1 reopened.
W30 = WindowView(
    {"login": 120, "sess_n": 40, "sess_sum": 40 * 600, "tk_open": 3, "tk_reopen": 1},
    {"users": 10, "features": 6},
)
# 90-day window: 1 escalation, 4 NPS answers (2 promoters, 1 detractor), CSAT 4 + 5.
W90 = WindowView(
    {"login": 300, "tk_esc": 1, "nps_n": 4, "nps_pro": 2, "nps_det": 1, "csat_n": 2, "csat_sum": 9},
    {"users": 12, "features": 7},
)
WINDOWS = {30: W30, 90: W90}
ATTRS = {"segment": "smb", "seats_purchased": 20}

EXPECTED = {
    "login_frequency": 12.0,
    "feature_adoption": 6.0,
    "session_duration": 10.0,
    "license_utilization": 0.5,
    "support_tickets": 4.0,
    "escalations": 1.0,
    "nps": 25.0,
    "csat": 4.5,
}

EMPTY = WindowView({}, {})


def values(model: Model, **kwargs: Any) -> dict[str, float]:
    args: dict[str, Any] = {
        "windows": WINDOWS,
        "attrs": ATTRS,
        "seen": ALL_SOURCES,
        "cached": {},
        "refresh": None,
    }
    args.update(kwargs)
    return component_values(model, **args)


# --------------------------------------------------------------------------- component_values


def test_refresh_none_recomputes_every_component(model: Model) -> None:
    assert values(model) == pytest.approx(EXPECTED)


def test_refresh_none_ignores_the_cache(model: Model) -> None:
    cached = dict.fromkeys(EXPECTED, -1.0)
    assert values(model, cached=cached) == pytest.approx(EXPECTED)


def test_values_come_in_model_order(model: Model) -> None:
    assert list(values(model)) == [c.name for c in model.components]


@pytest.mark.parametrize(
    "refresh",
    [
        set(),
        {"nps"},
        {"nps", "csat"},
        {"login_frequency", "license_utilization", "session_duration"},
    ],
)
def test_only_refreshed_components_are_recomputed(model: Model, refresh: set[str]) -> None:
    cached = dict.fromkeys(EXPECTED, 999.0)
    got = values(model, cached=cached, refresh=refresh)
    assert set(got) == set(EXPECTED)
    for name, value in got.items():
        assert value == (pytest.approx(EXPECTED[name]) if name in refresh else 999.0)


def test_unrefreshed_component_missing_from_cache_is_left_out(model: Model) -> None:
    got = values(model, cached={"nps": 1.0}, refresh={"csat"})
    assert got == {"nps": 1.0, "csat": pytest.approx(4.5)}


def test_refresh_of_a_name_not_in_the_model_is_harmless(model: Model) -> None:
    assert values(model, cached={}, refresh={"no_such_component"}) == {}


@pytest.mark.parametrize(
    ("seen", "present"),
    [
        (set(), set()),
        ({"login"}, {"login_frequency", "session_duration", "license_utilization"}),
        ({"feature_use"}, {"login_frequency", "feature_adoption", "license_utilization"}),
        ({"ticket"}, {"support_tickets", "escalations"}),
        ({"survey"}, {"nps", "csat"}),
        ({"ticket", "survey"}, {"support_tickets", "escalations", "nps", "csat"}),
        (ALL_SOURCES, set(EXPECTED)),
    ],
)
def test_components_of_never_seen_sources_are_left_out(
    model: Model, seen: set[str], present: set[str]
) -> None:
    assert set(values(model, seen=frozenset(seen))) == present


def test_never_seen_wins_over_refresh(model: Model) -> None:
    assert "nps" not in values(model, seen={"login"}, refresh={"nps"})


def test_silence_scores_zero_once_a_source_was_seen(model: Model) -> None:
    # Seen before, nothing in the window now: zeros, not "no data".
    got = values(model, windows={30: EMPTY, 90: EMPTY}, seen=ALL_SOURCES)
    assert got == {
        "login_frequency": 0.0,
        "feature_adoption": 0.0,
        "license_utilization": 0.0,
        "support_tickets": 0.0,
        "escalations": 0.0,
    }


@pytest.mark.parametrize(
    ("windows", "attrs", "absent"),
    [
        # no sessions reported: no average session length
        (
            {30: WindowView({"login": 5, "sess_n": 0}, {"users": 2}), 90: W90},
            ATTRS,
            "session_duration",
        ),
        # no seats known: no utilisation
        (WINDOWS, {"segment": "smb"}, "license_utilization"),
        (WINDOWS, {}, "license_utilization"),
        (WINDOWS, {"seats_purchased": 0}, "license_utilization"),
        (WINDOWS, {"seats_purchased": None}, "license_utilization"),
        # no survey responses of a kind: that kind is undefined
        ({30: W30, 90: WindowView({"csat_n": 1, "csat_sum": 4}, {})}, ATTRS, "nps"),
        ({30: W30, 90: WindowView({"nps_n": 1, "nps_pro": 1}, {})}, ATTRS, "csat"),
    ],
)
def test_undefined_signals_are_left_out(
    model: Model, windows: dict[int, WindowView], attrs: dict[str, Any], absent: str
) -> None:
    got = values(model, windows=windows, attrs=attrs)
    assert absent not in got
    assert set(got) == set(EXPECTED) - {absent}


def test_refreshed_component_now_undefined_drops_its_cached_value(model: Model) -> None:
    got = values(
        model, attrs={}, cached={"license_utilization": 0.9}, refresh={"license_utilization"}
    )
    assert "license_utilization" not in got


@pytest.mark.parametrize(
    ("nps_n", "pro", "det", "expected"),
    [(1, 1, 0, 100.0), (1, 0, 1, -100.0), (1, 0, 0, 0.0), (10, 5, 2, 30.0), (3, 1, 1, 0.0)],
)
def test_nps_signal(model: Model, nps_n: int, pro: int, det: int, expected: float) -> None:
    w90 = WindowView({"nps_n": nps_n, "nps_pro": pro, "nps_det": det}, {})
    assert values(model, windows={30: W30, 90: w90})["nps"] == pytest.approx(expected)


def test_each_component_reads_its_own_window(model: Model) -> None:
    # Only the 90-day view has an escalation; only the 30-day one has tickets.
    got = values(model)
    assert got["escalations"] == 1.0
    assert got["support_tickets"] == 4.0
    assert got["login_frequency"] == 12.0  # 120 / 10 from W30, not 300 / 12 from W90


# --------------------------------------------------------------------------- decide


def scorecard(model: Model, **vals: float) -> Scorecard:
    return score_components(model, vals)


GREEN = {"login_frequency": 20, "escalations": 0}  # 100
YELLOW = {"login_frequency": 12, "escalations": 1}  # (50 + 1.25 * 40) / 2.25 = 44.4
RED = {"login_frequency": 4, "escalations": 2}  # 0


@pytest.mark.parametrize(
    ("vals", "tier", "moved_down"),
    [(GREEN, "green", False), (YELLOW, "yellow", True), (RED, "red", True)],
)
def test_first_scoring_publishes_initial_tier(
    model: Model, vals: dict[str, float], tier: str, moved_down: bool
) -> None:
    card = scorecard(model, **vals)
    change = decide(model, card, None)
    assert change is not None
    assert change.previous_tier is None
    assert change.previous_score is None
    assert change.tier == tier
    assert change.seq == 1
    assert change.score == card.score
    assert change.scorecard is card
    assert set(change.changes) == set(vals)
    assert change.trigger is not None
    # First scoring: the trigger is what pulls the account down (or up) most.
    pick = min if moved_down else max
    assert change.trigger.name == pick(
        sorted(change.changes), key=lambda n: change.changes[n].contribution_change
    )


def test_first_red_scoring_blames_the_worst_component(model: Model) -> None:
    card = scorecard(model, login_frequency=20, escalations=2, nps=-20)
    change = decide(model, card, None)
    assert change is not None
    assert change.tier == "red"
    assert change.trigger is not None
    assert change.trigger.name == "escalations"  # sub-score 0 with the biggest weight


def published(change: TierChange) -> Published:
    """The snapshot as it comes back from Redis (through JSON)."""
    result = published_tier.decode(published_tier.encode(snapshot(change)))
    return result


def _first(model: Model, vals: Mapping[str, float]) -> TierChange:
    change = decide(model, scorecard(model, **vals), None)
    assert change is not None
    return change


def test_no_tier_change_decides_nothing(model: Model) -> None:
    first = _first(model, GREEN)
    assert decide(model, scorecard(model, **GREEN), published(first)) is None
    # a lower score that is still green
    assert (
        decide(model, scorecard(model, login_frequency=14, escalations=0), published(first)) is None
    )


def test_hovering_within_the_margin_decides_nothing(model: Model) -> None:
    first = _first(model, GREEN)
    # 68.0: plain yellow, but within the margin of the green bar
    card = scorecard(model, login_frequency=4 + 16 * 0.68)
    assert card.score == pytest.approx(68.0)
    assert decide(model, card, published(first)) is None


def test_tier_change_increments_seq_and_keeps_the_baseline(model: Model) -> None:
    first = _first(model, GREEN)
    second = decide(model, scorecard(model, **RED), published(first))
    assert second is not None
    assert (second.previous_tier, second.tier, second.seq) == ("green", "red", 2)
    assert second.previous_score == first.score
    third = decide(model, scorecard(model, **YELLOW), published(second))
    assert third is not None
    assert (third.previous_tier, third.tier, third.seq) == ("red", "yellow", 3)


def test_seq_continues_from_the_published_one(model: Model) -> None:
    state = published(_first(model, GREEN))._replace(seq=41)
    change = decide(model, scorecard(model, **RED), state)
    assert change is not None
    assert change.seq == 42


def test_changes_split_the_score_change_since_the_last_alert(model: Model) -> None:
    first = _first(model, {"login_frequency": 20, "escalations": 0, "nps": 50})
    card = scorecard(model, login_frequency=18, escalations=2, csat=2.5)
    change = decide(model, card, published(first))
    assert change is not None
    assert change.previous_score is not None
    total = sum(c.contribution_change for c in change.changes.values())
    assert total == pytest.approx(change.score - change.previous_score)
    assert set(change.changes) == {"login_frequency", "escalations", "nps", "csat"}
    assert change.trigger is not None
    assert change.trigger.name == "escalations"


def test_moving_up_blames_the_biggest_riser(model: Model) -> None:
    first = _first(model, RED)
    change = decide(model, scorecard(model, login_frequency=20, escalations=1), published(first))
    assert change is not None
    assert change.tier == "yellow"  # (100 + 1.25 * 40) / 2.25 = 66.7
    assert change.trigger is not None
    assert change.trigger.name == "login_frequency"


@pytest.mark.parametrize("state", [None, Published("green", 90.0, 3, {})])
def test_no_score_no_decision(model: Model, state: Published | None) -> None:
    assert decide(model, Scorecard({}), state) is None


def test_published_tier_unknown_to_the_model_starts_afresh(model: Model) -> None:
    state = published(_first(model, GREEN))._replace(tier="platinum", seq=7)
    change = decide(model, scorecard(model, **YELLOW), state)
    assert change is not None
    assert (change.previous_tier, change.tier, change.seq) == ("platinum", "yellow", 8)
    assert change.trigger is not None


def test_snapshot_round_trip(model: Model) -> None:
    change = _first(model, {"login_frequency": 12, "escalations": 1, "csat": 3.9, "nps": -5})
    state = published(change)
    assert state.tier == change.tier
    assert state.score == change.score
    assert state.seq == 1
    assert scorecard_of(state) == change.scorecard
    assert scorecard_of(state).score == change.score


def test_snapshot_of_a_component_keeps_value_subscore_weight(model: Model) -> None:
    change = _first(model, {"escalations": 1})
    assert snapshot(change).components == {"escalations": [1, 40, 1.25]}


def test_new_tier_on_the_score_alone_agrees_with_decide(model: Model) -> None:
    # The worker asks new_tier first and builds the scorecard only when it names a tier.
    cards = [
        score_components(model, {"login_frequency": v, "escalations": e})
        for v in (0, 4, 9.5, 10, 11, 12, 15, 16.5, 20)
        for e in (0, 1, 2)
    ]
    cards.append(score_components(model, {}))
    baselines: list[Published | None] = [None]
    for card in cards[:-1]:
        change = decide(model, card, None)
        assert change is not None
        baselines.append(published(change))
    for card in cards:
        for baseline in baselines:
            change = decide(model, card, baseline)
            values = {name: c.value for name, c in card.components.items()}
            tier = new_tier(model, score_of(model, values), baseline)
            assert tier == (None if change is None else change.tier), (card, baseline)
