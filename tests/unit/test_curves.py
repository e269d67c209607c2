"""Curves: raw component value -> 0-100 sub-score."""

from __future__ import annotations

import dataclasses

import pytest

from worker.scoring.curves import Band, Bands, Linear

# --------------------------------------------------------------------------- linear


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (4, 0.0),  # exactly bad
        (20, 100.0),  # exactly good
        (12, 50.0),  # midpoint
        (8, 25.0),
        (16, 75.0),
        (4.0001, pytest.approx(0.000625)),
        (19.9999, pytest.approx(99.999375)),
    ],
)
def test_linear_more_is_better(value: float, expected: float) -> None:
    assert Linear(bad=4, good=20)(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (8, 0.0),  # exactly bad
        (1, 100.0),  # exactly good
        (4.5, 50.0),  # midpoint
        (6.25, 25.0),
        (2.75, 75.0),
    ],
)
def test_linear_fewer_is_better(value: float, expected: float) -> None:
    assert Linear(bad=8, good=1)(value) == pytest.approx(expected)


@pytest.mark.parametrize("value", [3.999, 0, -5, -1e9])
def test_linear_clamps_below_bad_to_zero(value: float) -> None:
    assert Linear(bad=4, good=20)(value) == 0.0


@pytest.mark.parametrize("value", [20.001, 21, 1e9])
def test_linear_clamps_beyond_good_to_hundred(value: float) -> None:
    assert Linear(bad=4, good=20)(value) == 100.0


@pytest.mark.parametrize(("value", "expected"), [(8.5, 0.0), (100, 0.0), (0.5, 100.0), (-3, 100.0)])
def test_linear_reversed_clamps_on_both_sides(value: float, expected: float) -> None:
    assert Linear(bad=8, good=1)(value) == expected


@pytest.mark.parametrize(
    ("bad", "good", "value", "expected"),
    [
        (-20, 50, -20, 0.0),  # the default nps curve: negative bad
        (-20, 50, 15, 50.0),
        (-20, 50, 50, 100.0),
        (-20, 50, -100, 0.0),
        (0.3, 0.8, 0.55, 50.0),  # fractional bounds (license utilisation)
        (2.5, 4.5, 3.5, 50.0),
    ],
)
def test_linear_negative_and_fractional_bounds(
    bad: float, good: float, value: float, expected: float
) -> None:
    assert Linear(bad, good)(value) == pytest.approx(expected)


def test_linear_is_monotonic_in_its_direction() -> None:
    up, down = Linear(0, 10), Linear(10, 0)
    xs = [x / 4 for x in range(-8, 50)]
    ups = [up(x) for x in xs]
    downs = [down(x) for x in xs]
    assert ups == sorted(ups)
    assert downs == sorted(downs, reverse=True)
    assert all(0.0 <= s <= 100.0 for s in ups + downs)


def test_linear_returns_float() -> None:
    assert isinstance(Linear(0, 10)(5), float)


# --------------------------------------------------------------------------- bands


ESCALATION_BANDS = Bands((Band(0, 100), Band(1, 40), Band(None, 0)))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (-1, 100),  # below the first bound: first band
        (0, 100),  # inclusive upper bound of the first band
        (0.0001, 40),  # just past it: second band
        (0.5, 40),
        (1, 40),  # inclusive upper bound of the second band
        (1.0001, 0),  # past the last bound: the open band
        (2, 0),
        (1e9, 0),
    ],
)
def test_bands_upper_bounds_are_inclusive_and_last_band_is_open(
    value: float, expected: float
) -> None:
    assert ESCALATION_BANDS(value) == expected


def test_single_open_band_scores_everything_alike() -> None:
    curve = Bands((Band(None, 75),))
    assert [curve(v) for v in (-1e9, 0, 1e9)] == [75, 75, 75]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(-10, 0), (-5, 0), (-4.9, 50), (5, 50), (5.1, 100)],
)
def test_bands_with_negative_bounds_and_rising_scores(value: float, expected: float) -> None:
    curve = Bands((Band(-5, 0), Band(5, 50), Band(None, 100)))
    assert curve(value) == expected


def test_bands_first_matching_band_wins() -> None:
    # Scores need not be monotonic: a band is picked by position, not by score.
    curve = Bands((Band(1, 10), Band(2, 90), Band(None, 30)))
    assert [curve(v) for v in (1, 2, 3)] == [10, 90, 30]


def test_bands_without_open_band_fall_back_to_last_score() -> None:
    # The loader never builds this; the fallback must still not crash.
    curve = Bands((Band(0, 100), Band(1, 40)))
    assert curve(5) == 40


@pytest.mark.parametrize("curve", [Linear(0, 1), ESCALATION_BANDS, Band(1, 2)])
def test_curves_are_immutable(curve: object) -> None:
    field = dataclasses.fields(curve)[0].name  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(curve, field, 0)
