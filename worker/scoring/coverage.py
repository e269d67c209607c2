"""Coverage: how much of the model an account's data speaks for.

An account whose components with data carry less than ``Model.min_coverage`` of the
total weight is in tier ``unknown`` (``UNKNOWN_TIER``): a score from one survey
answer is not grounds to call a customer red.
"""

from __future__ import annotations

from collections.abc import Collection

from worker.scoring.model import Model


def coverage(model: Model, present: Collection[str]) -> float:
    """Weight of the components in ``present`` over the model's total weight (0..1)."""
    total = covered = 0.0
    for component in model.components:
        total += component.weight
        if component.name in present:
            covered += component.weight
    return covered / total


def enough_data(model: Model, present: Collection[str]) -> bool:
    """Whether the account can be given a tier by its score (else: ``unknown``)."""
    return model.min_coverage <= 0 or coverage(model, present) >= model.min_coverage
