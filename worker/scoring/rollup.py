"""From component values to sub-scores to one 0-100 score.

Components without data are absent from the mapping and their weight is
renormalised away: missing data never counts as a zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from worker.scoring.model import Model


class ComponentScore(NamedTuple):
    value: float
    subscore: float
    weight: float


@dataclass(frozen=True, slots=True)
class Scorecard:
    """An account's present components and the score they roll up to."""

    components: Mapping[str, ComponentScore]

    @property
    def total_weight(self) -> float:
        return sum(c.weight for c in self.components.values())

    @property
    def score(self) -> float | None:
        total = self.total_weight
        if total == 0:
            return None
        return sum(c.weight * c.subscore for c in self.components.values()) / total

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
            scored[component.name] = ComponentScore(
                value, component.curve(value), component.weight
            )
    return Scorecard(scored)


def rounded(score: float) -> float:
    """Scores leave the worker with two decimals: more is noise to a reader."""
    return round(score, 2)
