"""From component values to sub-scores to one 0-100 score.

Components without data are absent from the mapping and their weight is
renormalised away: missing data never counts as a zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from worker.scoring.model import Model
from worker.tuples import make


class ComponentScore(NamedTuple):
    value: float
    subscore: float
    weight: float


@dataclass(frozen=True, slots=True)
class Scorecard:
    """An account's present components and the score they roll up to."""

    components: Mapping[str, ComponentScore]
    # Both computed once, with the card: every rescore reads them, most more than once.
    total_weight: float = field(init=False)
    score: float | None = field(init=False)  # None: no component has data

    def __post_init__(self) -> None:
        total = weighted = 0.0
        for c in self.components.values():
            total += c.weight
            weighted += c.weight * c.subscore
        object.__setattr__(self, "total_weight", total)
        object.__setattr__(self, "score", None if total == 0 else weighted / total)

    def contributions(self) -> dict[str, float]:
        """Every component's points of the score, in model order."""
        total = self.total_weight
        return {name: c.weight * c.subscore / total for name, c in self.components.items()}

    def contribution(self, name: str) -> float:
        """Points of the score this component provides (they add up to the score)."""
        c = self.components[name]
        return c.weight * c.subscore / self.total_weight


def score_components(model: Model, values: Mapping[str, float]) -> Scorecard:
    """Sub-score every component that has a value, in model order."""
    scored = {}
    for component in model.components:
        value = values.get(component.name)
        if value is not None:
            # float(): a count comes as an int in pure Python, as a float compiled; the
            # alert and the published tier say the same either way.
            scored[component.name] = make(
                ComponentScore, (float(value), component.curve(value), component.weight)
            )
    return Scorecard(scored)


def score_of(model: Model, values: Mapping[str, float]) -> float | None:
    """``score_components(model, values).score``, to the last bit, without the card: most
    rescores change no tier, and need nothing else."""
    total = weighted = 0.0
    for component in model.components:
        value = values.get(component.name)
        if value is not None:
            total += component.weight
            weighted += component.weight * component.curve(value)
    return None if total == 0 else weighted / total


# Below this the product ``score * 100`` is off from the exact one by under 1e-8 (half
# an ulp of a number under 1e8): only a fraction that close to one half can be misjudged.
_FAST_BELOW = 1e6
_NEAR_HALF = 1e-6


def rounded(score: float) -> float:
    """Scores leave the worker with two decimals: more is noise to a reader.

    Exactly ``round(score, 2)``, which writes out the float's exact decimal expansion and
    reads the rounded digits back: about 3,000 instructions a call, and an alert makes
    several. Here the hundredths are found from the product with 100, whose fraction
    decides the rounding unless it lies next to one half (then ``round`` does it); ``k /
    100`` is the float nearest to the rounded decimal, as ``round`` returns."""
    size = abs(score)
    if not size < _FAST_BELOW:  # large, infinite or NaN
        return round(score, 2)
    hundredths = size * 100.0
    k = math.floor(hundredths)
    fraction = hundredths - k  # exact: both are under 1e8 apart by less than 1
    if abs(fraction - 0.5) < _NEAR_HALF:
        return round(score, 2)
    if fraction > 0.5:
        k += 1
    return math.copysign(k / 100.0, score)  # round(-0.001, 2) is -0.0
