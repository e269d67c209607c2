"""Deciding that an account changed tier, and what moved it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from worker.scoring.attribution import (
    ComponentChange,
    contribution_changes,
    triggering_component,
)
from worker.scoring.model import UNKNOWN_TIER, Model
from worker.scoring.rollup import ComponentScore, Scorecard
from worker.scoring.tiers import next_tier, plain_tier, rank
from worker.tuples import make


class Published(NamedTuple):
    """What is remembered of a published tier: the baseline of the next change.

    Kept in Redis as JSON (``worker.windows.published``), read for every account
    scored: the components stay as parsed (lists), turned into a scorecard only
    when a change has to be attributed."""

    tier: str
    score: float
    seq: int
    components: Mapping[str, Sequence[float]]  # name -> [value, subscore, weight]
    # The segment model it was decided on, when the model file has segments (else None:
    # the default), so that a move to another model is seen.
    model: str | None = None
    # The override it was published under (``scoring.override``), None: none.
    ovr: str | None = None


class TierChange(NamedTuple):
    previous_tier: str | None
    tier: str
    previous_score: float | None
    score: float
    seq: int
    scorecard: Scorecard
    changes: dict[str, ComponentChange]
    trigger: ComponentChange | None


def decide(
    model: Model,
    card: Scorecard,
    published: Published | None,
    *,
    hysteresis: bool = True,
    covered: bool = True,
) -> TierChange | None:
    """A ``TierChange`` when the account's tier differs from its last published one.

    ``published`` is the snapshot stored with the last alert (see ``snapshot``);
    the first scoring of an account always publishes its initial tier.
    ``hysteresis``: keep the published tier within the margin of a boundary (see
    ``mode.hysteresis_applies``); else the tier is the plain tier of the score.
    ``covered``: the account has enough data (``coverage.enough_data``); else its tier
    is ``unknown``, whatever the score.
    """
    score = card.score
    tier = new_tier(model, score, published, hysteresis=hysteresis, covered=covered)
    if score is None or tier is None:
        return None
    previous_tier = published.tier if published else None
    return change_to(published, tier, score, card, _moved_down(model, previous_tier, tier))


def change_to(
    published: Published | None, tier: str, score: float, card: Scorecard, moved_down: bool
) -> TierChange:
    """The change from ``published`` (None: the first tier) to ``tier`` at ``score``, with
    what moved it: the trigger is the component that pushed most the way it went."""
    changes = contribution_changes(scorecard_of(published) if published else None, card)
    return make(  # every field, in order (``tuples.make``)
        TierChange,
        (
            published.tier if published else None,
            tier,
            published.score if published else None,
            score,
            (published.seq if published else 0) + 1,
            card,
            changes,
            triggering_component(changes, moved_down),
        ),
    )


def _moved_down(model: Model, previous_tier: str | None, tier: str) -> bool:
    # Into unknown: the data that went missing is what moved it, as for a fall.
    if tier == UNKNOWN_TIER.name:
        return True
    if previous_tier is None or previous_tier not in {t.name for t in model.tiers}:
        return rank(model, tier) > 0
    return rank(model, tier) > rank(model, previous_tier)


def new_tier(
    model: Model,
    score: float | None,
    published: Published | None,
    *,
    hysteresis: bool = True,
    covered: bool = True,
) -> str | None:
    """The tier ``score`` moves the account to from its last published one; None if it
    stays (or has no score). Checked on the score alone first, so that the scorecard
    and its attribution are built only for the few rescores that change a tier."""
    if score is None:
        return None
    previous_tier = published.tier if published else None
    # No hysteresis to or from unknown: next_tier starts afresh from a tier not in the model.
    if not covered:
        tier = UNKNOWN_TIER.name
    else:
        tier = (
            next_tier(model, score, previous_tier) if hysteresis else plain_tier(model, score)
        ).name
    return None if tier == previous_tier else tier


def snapshot(change: TierChange) -> Published:
    """What is remembered of the tier ``change`` publishes."""
    # Lists, as a parsed snapshot has them: one held in memory equals one read back.
    return make(
        Published,
        (
            change.tier,
            change.score,
            change.seq,
            {
                name: [c.value, c.subscore, c.weight]
                for name, c in change.scorecard.components.items()
            },
            None,  # model and ovr: the caller marks them
            None,
        ),
    )


def scorecard_of(published: Published) -> Scorecard:
    return Scorecard(
        {
            name: make(ComponentScore, (value, subscore, weight))
            for name, (value, subscore, weight) in published.components.items()
        }
    )
