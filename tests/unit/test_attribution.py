"""Attribution: the score change split exactly into one term per component."""

from __future__ import annotations

import random

import pytest

from worker.scoring.attribution import (
    ComponentChange,
    contribution_changes,
    triggering_component,
)
from worker.scoring.rollup import ComponentScore, Scorecard


def card(**components: tuple[float, float]) -> Scorecard:
    """A scorecard from ``name=(subscore, weight)``; the value mirrors the sub-score."""
    return Scorecard({n: ComponentScore(s, s, w) for n, (s, w) in components.items()})


def total(changes: dict[str, ComponentChange]) -> float:
    return sum(c.contribution_change for c in changes.values())


def _random_card(rng: random.Random, names: str = "abcdefg") -> Scorecard:
    present = rng.sample(names, rng.randint(0, len(names)))
    return card(
        **{
            n: (rng.choice([0.0, 100.0, rng.uniform(0, 100)]), rng.uniform(0.1, 2.5))
            for n in present
        }
    )


# --------------------------------------------------------------------------- exact split


def test_changes_sum_to_the_score_change_for_random_scorecards() -> None:
    rng = random.Random(1115)
    checked = 0
    for _ in range(3000):
        before, after = _random_card(rng), _random_card(rng)
        if before.score is None or after.score is None:
            continue
        changes = contribution_changes(before, after)
        assert total(changes) == pytest.approx(after.score - before.score, abs=1e-9)
        checked += 1
    assert checked > 2000


def test_changes_sum_to_the_score_change_when_only_subscores_move() -> None:
    rng = random.Random(42)
    for _ in range(500):
        weights = {n: rng.uniform(0.1, 2) for n in "abcde"}
        before = card(**{n: (rng.uniform(0, 100), w) for n, w in weights.items()})
        after = card(**{n: (rng.uniform(0, 100), w) for n, w in weights.items()})
        changes = contribution_changes(before, after)
        assert after.score is not None
        assert before.score is not None
        assert total(changes) == pytest.approx(after.score - before.score, abs=1e-9)


def test_same_weights_reduce_to_weighted_subscore_change() -> None:
    # With unchanged membership the term is w * (s' - s) / W.
    before = card(a=(80, 1), b=(40, 3))
    after = card(a=(20, 1), b=(40, 3))
    changes = contribution_changes(before, after)
    assert changes["a"].contribution_change == pytest.approx(-15.0)
    assert changes["b"].contribution_change == pytest.approx(0.0)


def test_identical_scorecards_change_nothing() -> None:
    scorecard = card(a=(80, 1), b=(40, 3), c=(0, 0.5))
    changes = contribution_changes(scorecard, scorecard)
    assert all(c.contribution_change == 0 for c in changes.values())


# --------------------------------------------------------------------------- appear / disappear


@pytest.mark.parametrize(("subscore", "weight"), [(0, 1), (0, 2), (100, 1.25), (10, 0.75), (65, 3)])
def test_a_new_component_is_charged_with_its_own_effect(subscore: float, weight: float) -> None:
    before = card(a=(50, 1), b=(80, 1))
    after = card(a=(50, 1), b=(80, 1), c=(subscore, weight))
    assert before.score is not None
    assert after.score is not None
    changes = contribution_changes(before, after)
    assert changes["a"].contribution_change == pytest.approx(0, abs=1e-12)
    assert changes["b"].contribution_change == pytest.approx(0, abs=1e-12)
    assert changes["c"].contribution_change == pytest.approx(after.score - before.score)
    assert changes["c"].previous is None
    assert changes["c"].current == ComponentScore(subscore, subscore, weight)


@pytest.mark.parametrize(("subscore", "weight"), [(0, 1), (0, 2), (100, 1.25), (10, 0.75), (65, 3)])
def test_a_vanished_component_is_charged_with_its_own_effect(
    subscore: float, weight: float
) -> None:
    before = card(a=(50, 1), b=(80, 1), c=(subscore, weight))
    after = card(a=(50, 1), b=(80, 1))
    assert before.score is not None
    assert after.score is not None
    changes = contribution_changes(before, after)
    assert changes["a"].contribution_change == pytest.approx(0, abs=1e-12)
    assert changes["b"].contribution_change == pytest.approx(0, abs=1e-12)
    assert changes["c"].contribution_change == pytest.approx(after.score - before.score)
    assert changes["c"].previous == ComponentScore(subscore, subscore, weight)
    assert changes["c"].current is None


def test_a_new_low_component_gets_all_of_the_drop() -> None:
    before = card(login=(100, 1))
    after = card(login=(100, 1), escalations=(0, 1.25))
    changes = contribution_changes(before, after)
    assert changes["login"].contribution_change == 0
    assert changes["escalations"].contribution_change == pytest.approx(-100 * 1.25 / 2.25)


def test_raw_contributions_would_blame_the_wrong_component() -> None:
    # The naive diff (contribution after - contribution before) would show a
    # drop for "login", whose sub-score did not move; the split does not.
    before = card(login=(100, 1))
    after = card(login=(100, 1), escalations=(0, 1))
    changes = contribution_changes(before, after)
    naive = after.contribution("login") - before.contribution("login")
    assert naive == -50
    assert changes["login"].contribution_change == 0
    assert changes["escalations"].contribution_change == -50


# --------------------------------------------------------------------------- edge cases


def test_without_a_previous_scorecard_changes_sum_to_zero() -> None:
    after = card(a=(100, 1), b=(0, 1), c=(50, 2))
    changes = contribution_changes(None, after)
    assert set(changes) == {"a", "b", "c"}
    assert total(changes) == pytest.approx(0)
    assert changes["a"].contribution_change == pytest.approx(12.5)
    assert changes["b"].contribution_change == pytest.approx(-12.5)
    assert changes["c"].contribution_change == pytest.approx(0)
    assert all(c.previous is None for c in changes.values())


def test_an_empty_previous_scorecard_is_like_none() -> None:
    after = card(a=(100, 1), b=(0, 3))
    assert contribution_changes(Scorecard({}), after) == contribution_changes(None, after)


@pytest.mark.parametrize("before", [None, card(a=(10, 1))])
def test_an_empty_new_scorecard_has_no_changes(before: Scorecard | None) -> None:
    assert contribution_changes(before, Scorecard({})) == {}


def test_changes_cover_the_union_of_components_in_name_order() -> None:
    changes = contribution_changes(card(b=(1, 1), d=(2, 1)), card(c=(3, 1), a=(4, 1)))
    assert list(changes) == ["a", "b", "c", "d"]
    assert all(name == change.name for name, change in changes.items())


# --------------------------------------------------------------------------- trigger


def _changes(**deltas: float) -> dict[str, ComponentChange]:
    return {n: ComponentChange(n, None, None, d) for n, d in deltas.items()}


@pytest.mark.parametrize(
    ("deltas", "moved_down", "expected"),
    [
        ({"a": -5, "b": -20, "c": 10}, True, "b"),  # most negative
        ({"a": -5, "b": -20, "c": 10}, False, "c"),  # most positive
        ({"a": 3, "b": 7}, True, "a"),  # nothing pulled down: the least up
        ({"a": -3, "b": -7}, False, "a"),  # nothing pulled up: the least down
        ({"z": -10, "m": -10, "q": 2}, True, "m"),  # tie: alphabetical first
        ({"z": 10, "m": 10, "a": 10}, False, "a"),
        ({"only": 0}, True, "only"),
        ({"b": 0, "a": 0}, False, "a"),
    ],
)
def test_triggering_component(deltas: dict[str, float], moved_down: bool, expected: str) -> None:
    trigger = triggering_component(_changes(**deltas), moved_down)
    assert trigger is not None
    assert trigger.name == expected


@pytest.mark.parametrize("moved_down", [True, False])
def test_no_changes_no_trigger(moved_down: bool) -> None:
    assert triggering_component({}, moved_down) is None


def test_trigger_does_not_depend_on_insertion_order() -> None:
    rng = random.Random(3)
    for _ in range(200):
        deltas = {n: float(rng.randint(-3, 3)) for n in rng.sample("abcdefgh", 5)}
        names = list(deltas)
        rng.shuffle(names)
        shuffled = {n: deltas[n] for n in names}
        for moved_down in (True, False):
            first = triggering_component(_changes(**deltas), moved_down)
            second = triggering_component(_changes(**shuffled), moved_down)
            assert first == second


def test_trigger_of_a_real_drop_is_the_component_that_fell() -> None:
    before = card(logins=(90, 1), tickets=(80, 0.75), nps=(70, 0.85))
    after = card(logins=(85, 1), tickets=(10, 0.75), nps=(72, 0.85))
    trigger = triggering_component(contribution_changes(before, after), moved_down=True)
    assert trigger is not None
    assert trigger.name == "tickets"
    assert trigger.previous == ComponentScore(80, 80, 0.75)
    assert trigger.current == ComponentScore(10, 10, 0.75)
