"""The roll-up (sub-scores -> one score) and tiers with hysteresis."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from worker.scoring.model import Model
from worker.scoring.rollup import (
    ComponentScore,
    Scorecard,
    rounded,
    score_components,
    score_of,
)
from worker.scoring.tiers import next_tier, plain_tier, rank


def card(**components: tuple[float, float]) -> Scorecard:
    """A scorecard from ``name=(subscore, weight)``; the raw value is irrelevant here."""
    return Scorecard({n: ComponentScore(0.0, s, w) for n, (s, w) in components.items()})


# --------------------------------------------------------------------------- Scorecard


def test_empty_scorecard_has_no_score() -> None:
    empty = Scorecard({})
    assert empty.score is None
    assert empty.total_weight == 0


@pytest.mark.parametrize(
    ("components", "expected"),
    [
        ({"a": (100, 1)}, 100.0),
        ({"a": (0, 1)}, 0.0),
        ({"a": (37.5, 0.85)}, 37.5),  # one component: its sub-score, whatever its weight
        ({"a": (100, 1), "b": (0, 1)}, 50.0),
        ({"a": (100, 1), "b": (0, 3)}, 25.0),
        ({"a": (80, 1.25), "b": (40, 0.75)}, 65.0),
        ({"a": (90, 2), "b": (60, 1), "c": (30, 1)}, 67.5),
    ],
)
def test_score_is_the_weighted_mean(
    components: dict[str, tuple[float, float]], expected: float
) -> None:
    assert card(**components).score == pytest.approx(expected)


def test_total_weight_counts_present_components_only() -> None:
    assert card(a=(10, 1.25), b=(20, 0.75)).total_weight == 2.0


@pytest.mark.parametrize(
    "components",
    [
        {"a": (100, 1)},
        {"a": (100, 1), "b": (0, 3)},
        {"a": (12.5, 0.85), "b": (99, 1.25), "c": (0, 0.75), "d": (50, 1)},
    ],
)
def test_contributions_add_up_to_the_score(components: dict[str, tuple[float, float]]) -> None:
    scorecard = card(**components)
    assert sum(scorecard.contribution(n) for n in components) == pytest.approx(scorecard.score)


def test_contributions_add_up_for_random_scorecards() -> None:
    rng = random.Random(20261115)
    for _ in range(300):
        names = rng.sample("abcdefgh", rng.randint(1, 8))
        scorecard = card(**{n: (rng.uniform(0, 100), rng.uniform(0.05, 3)) for n in names})
        assert sum(scorecard.contribution(n) for n in names) == pytest.approx(scorecard.score)


def test_contribution_is_weighted_share() -> None:
    scorecard = card(a=(100, 1), b=(0, 3))
    assert scorecard.contribution("a") == 25.0
    assert scorecard.contribution("b") == 0.0


def test_contribution_of_absent_component_raises() -> None:
    with pytest.raises(KeyError):
        card(a=(1, 1)).contribution("b")


# --------------------------------------------------------------------------- score_components


def test_missing_components_are_left_out_not_zero(model: Model) -> None:
    scorecard = score_components(model, {"login_frequency": 20})  # 20 logins/user = 100
    assert list(scorecard.components) == ["login_frequency"]
    assert scorecard.score == 100.0


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"login_frequency": 20}, 100.0),
        ({"escalations": 0}, 100.0),
        ({"login_frequency": 20, "escalations": 2}, 100 * 1.0 / 2.25),
        ({"nps": 15, "csat": 3.5}, 50.0),
        ({"support_tickets": 1, "session_duration": 2}, 50.0),  # 100 and 0, both 0.75
        ({"feature_adoption": 8, "license_utilization": 0.3}, 50.0),
    ],
)
def test_score_renormalises_over_present_components(
    model: Model, values: dict[str, float], expected: float
) -> None:
    assert score_components(model, values).score == pytest.approx(expected)


def test_zero_value_is_data_not_absence(model: Model) -> None:
    # Zero logins is a value (sub-score 0), not a missing component.
    scorecard = score_components(model, {"login_frequency": 0, "escalations": 0})
    assert set(scorecard.components) == {"login_frequency", "escalations"}
    assert scorecard.score == pytest.approx(100 * 1.25 / 2.25)


def test_none_values_are_left_out(model: Model) -> None:
    values: dict[str, float | None] = {"nps": None, "csat": 4.5}
    scorecard = score_components(model, values)  # type: ignore[arg-type]
    assert list(scorecard.components) == ["csat"]


def test_no_values_no_score(model: Model) -> None:
    assert score_components(model, {}).score is None


def test_unknown_names_are_ignored(model: Model) -> None:
    assert score_components(model, {"not_in_model": 5}).components == {}


def test_scorecard_keeps_value_subscore_weight_in_model_order(model: Model) -> None:
    scorecard = score_components(model, {"csat": 4.5, "escalations": 1, "login_frequency": 12})
    assert list(scorecard.components) == ["login_frequency", "escalations", "csat"]
    assert scorecard.components["escalations"] == ComponentScore(1, 40, 1.25)
    assert scorecard.components["login_frequency"] == ComponentScore(12, 50.0, 1.0)
    assert scorecard.components["csat"] == ComponentScore(4.5, 100.0, 0.85)


def test_full_default_scorecard(model: Model) -> None:
    values = {
        "login_frequency": 12,
        "feature_adoption": 5,
        "session_duration": 8.5,
        "license_utilization": 0.55,
        "support_tickets": 4.5,
        "escalations": 0,
        "nps": 15,
        "csat": 3.5,
    }
    # every sub-score is 50 but escalations (100)
    expected = (50 * (7.45 - 1.25) + 100 * 1.25) / 7.45
    assert score_components(model, values).score == pytest.approx(expected)


def test_score_of_is_the_scorecards_score_to_the_last_bit(model: Model) -> None:
    # The worker decides on score_of and builds the card only for a change: any
    # difference, however small, could flip a tier between the two.
    rng = random.Random(5)
    names = [c.name for c in model.components]
    for _ in range(2000):
        values = {
            n: rng.choice([0.0, rng.uniform(-50, 50), rng.uniform(0, 30), 1e-9])
            for n in rng.sample(names, rng.randrange(len(names) + 1))
        }
        assert score_of(model, values) == score_components(model, values).score, values


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (66.666666, 66.67),
        (0.004, 0.0),
        (99.994, 99.99),
        (99.996, 100.0),
        (100.0, 100.0),
        (12.3, 12.3),
    ],
)
def test_rounded_to_two_decimals(score: float, expected: float) -> None:
    assert rounded(score) == expected


# --------------------------------------------------------------------------- plain tiers


@pytest.mark.parametrize(
    ("score", "tier"),
    [
        (100, "green"),
        (70, "green"),
        (70.001, "green"),
        (69.99, "yellow"),
        (55, "yellow"),
        (40, "yellow"),
        (39.99, "red"),
        (10, "red"),
        (0, "red"),
        (-1, "red"),  # below every bar: the worst tier
    ],
)
def test_plain_tier_at_exact_boundaries(model: Model, score: float, tier: str) -> None:
    assert plain_tier(model, score).name == tier


@pytest.mark.parametrize("score", [0, 39.99, 40, 69.99, 70, 100])
def test_first_scoring_uses_plain_thresholds(model: Model, score: float) -> None:
    assert next_tier(model, score, None) == plain_tier(model, score)


# --------------------------------------------------------------------------- hysteresis


@pytest.mark.parametrize(
    ("previous", "score", "tier"),
    [
        # green holds down to 67 (70 - margin 3)
        ("green", 100, "green"),
        ("green", 69.99, "green"),
        ("green", 68, "green"),
        ("green", 67, "green"),
        ("green", 66.99, "yellow"),
        # a big drop lands where it belongs, past every boundary it crossed
        ("green", 50, "yellow"),
        ("green", 37, "yellow"),
        ("green", 36.99, "red"),
        ("green", 0, "red"),
        # yellow goes up only at 73, down only below 37
        ("yellow", 70, "yellow"),
        ("yellow", 72.99, "yellow"),
        ("yellow", 73, "green"),
        ("yellow", 100, "green"),
        ("yellow", 40, "yellow"),
        ("yellow", 38, "yellow"),
        ("yellow", 37, "yellow"),
        ("yellow", 36.99, "red"),
        ("yellow", 0, "red"),
        # red needs 43 for yellow, 73 for green
        ("red", 0, "red"),
        ("red", 40, "red"),
        ("red", 42.99, "red"),
        ("red", 43, "yellow"),
        ("red", 70, "yellow"),
        ("red", 72.99, "yellow"),
        ("red", 73, "green"),
        ("red", 100, "green"),
    ],
)
def test_next_tier_with_margin(model: Model, previous: str, score: float, tier: str) -> None:
    assert next_tier(model, score, previous).name == tier


@pytest.mark.parametrize("score", [0, 39.99, 40, 55, 69.99, 70, 100])
def test_unknown_previous_tier_falls_back_to_plain(model: Model, score: float) -> None:
    assert next_tier(model, score, "platinum") == plain_tier(model, score)


def _walk(model: Model, start: str, scores: Sequence[float]) -> list[str]:
    tier, tiers = start, []
    for score in scores:
        tier = next_tier(model, score, tier).name
        tiers.append(tier)
    return tiers


def test_hovering_at_a_boundary_does_not_flap(model: Model) -> None:
    hover = [70.5, 69.5, 68, 71, 67.5, 72.9, 69, 70]
    assert _walk(model, "green", hover) == ["green"] * len(hover)
    assert _walk(model, "yellow", hover) == ["yellow"] * len(hover)
    # while the plain thresholds would flap on every step
    plain = [plain_tier(model, s).name for s in hover]
    assert len(set(plain)) == 2


def test_a_walk_down_and_back_up(model: Model) -> None:
    scores = [75, 68, 66, 71, 72, 74, 45, 38, 36, 41, 42, 44]
    assert _walk(model, "green", scores) == [
        "green",
        "green",
        "yellow",
        "yellow",
        "yellow",
        "green",
        "yellow",
        "yellow",
        "red",
        "red",
        "red",
        "yellow",
    ]


def test_zero_margin_means_plain_thresholds(
    model_of: Callable[[dict[str, Any]], Model], raw_model: dict[str, Any]
) -> None:
    raw_model["tiers"]["margin"] = 0
    m = model_of(raw_model)
    for previous in ("green", "yellow", "red"):
        for score in (0, 39.99, 40, 69.99, 70, 100):
            assert next_tier(m, score, previous) == plain_tier(m, score)


def test_random_scores_never_move_across_a_boundary_within_margin(model: Model) -> None:
    rng = random.Random(7)
    for _ in range(2000):
        previous = rng.choice(["green", "yellow", "red"])
        score = rng.uniform(0, 100)
        tier = next_tier(model, score, previous)
        plain = plain_tier(model, score)
        if tier != plain:
            # A disagreement with the plain tier only ever keeps the account
            # closer to where it was, and only within the margin of a boundary.
            prev_rank, got, want = (
                rank(model, previous),
                rank(model, tier.name),
                rank(model, plain.name),
            )
            assert min(prev_rank, want) <= got <= max(prev_rank, want)
            assert any(abs(score - t.min_score) <= model.margin for t in model.tiers[:-1])


@pytest.mark.parametrize(("name", "expected"), [("green", 0), ("yellow", 1), ("red", 2)])
def test_rank(model: Model, name: str, expected: int) -> None:
    assert rank(model, name) == expected
