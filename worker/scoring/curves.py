"""Curves turn a component's raw value into a 0-100 sub-score."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Linear:
    """0 at ``bad``, 100 at ``good``, straight in between, clamped outside.

    Either direction works: ``good < bad`` means fewer is better.
    """

    bad: float
    good: float

    def __call__(self, value: float) -> float:
        fraction = (value - self.bad) / (self.good - self.bad)
        # Comparisons, not min(max()): this runs for every component of every rescore.
        if not fraction > 0.0:  # NaN too, as max(0.0, nan) gave
            return 0.0
        return 100.0 if fraction >= 1.0 else 100.0 * fraction


@dataclass(frozen=True, slots=True)
class Band:
    upto: float | None  # inclusive upper bound; None = everything above the previous band
    score: float


@dataclass(frozen=True, slots=True)
class Bands:
    """Fixed steps: the first band whose ``upto`` is at least the value gives the score."""

    bands: tuple[Band, ...]

    def __call__(self, value: float) -> float:
        for band in self.bands:
            if band.upto is None or value <= band.upto:
                return band.score
        # The model loader guarantees a final open band; this line only satisfies the checker.
        return self.bands[-1].score


@dataclass(frozen=True, slots=True)
class Percentile:
    """The account's rank among its peers (``scoring.peers``), not a curve of its raw value.

    The value it is given is already the percentile, 0-100 (the share of the account's
    peer group below it, ties counting half): ``better: higher`` scores it as it is,
    ``lower`` (fewer is better) its mirror.
    """

    better: str = "higher"

    def __call__(self, value: float) -> float:
        return value if self.better == "higher" else 100.0 - value


Curve = Linear | Bands | Percentile
