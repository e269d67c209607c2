"""Tiers with hysteresis.

A boundary counts as crossed only when the score is past it by more than the
model's margin. Without a previous tier (first scoring) the plain thresholds
apply.
"""

from __future__ import annotations

from worker.scoring.model import Model, Tier


def plain_tier(model: Model, score: float) -> Tier:
    for tier in model.tiers:
        if score >= tier.min_score:
            return tier
    return model.tiers[-1]


def next_tier(model: Model, score: float, previous: str | None) -> Tier:
    """The tier for ``score`` given the tier the account was last published in."""
    if previous is None:
        return plain_tier(model, score)
    tiers = model.tiers
    rank = next((i for i, t in enumerate(tiers) if t.name == previous), None)
    if rank is None:  # the tier was dropped from the model: start afresh
        return plain_tier(model, score)
    # Up: the best tier above the current one whose bar is cleared with margin.
    for tier in tiers[:rank]:
        if score >= tier.min_score + model.margin:
            return tier
    # Stay or down: the best tier at or below the current one whose bar the
    # score is not yet below by more than the margin.
    for tier in tiers[rank:]:
        if score >= tier.min_score - model.margin:
            return tier
    return tiers[-1]


def rank(model: Model, tier_name: str) -> int:
    """0 for the best tier; larger is worse."""
    for i, tier in enumerate(model.tiers):
        if tier.name == tier_name:
            return i
    raise KeyError(tier_name)
