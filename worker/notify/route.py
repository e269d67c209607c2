"""Where an alert goes (pure): posted on its own, into the digest, or nowhere (filtered).

Catch-up alerts (``delivery: "catch_up"``: a backlog, a backfill, a replay), first
scores (``previous_tier: null``) and alerts older than the catch-up lag when read
(a notifier that was down, or a new one reading the topic from its start) are news
in bulk: they go to the digest. A missing ``delivery`` counts as live.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from typing import Any

from worker.notify.config import Filters


class Route(Enum):
    POST = "post"
    DIGEST = "digest"
    DROP = "drop"


def route(
    alert: dict[str, Any], filters: Filters, tiers: Sequence[str], *, now: float, stale_after: float
) -> Route:
    """``tiers``: the model's tier names, best first (for the direction of a change)."""
    if not passes(alert, filters, tiers):
        return Route.DROP
    if is_bulk(alert, now=now, stale_after=stale_after):
        return Route.DIGEST
    return Route.POST


def passes(alert: dict[str, Any], filters: Filters, tiers: Sequence[str]) -> bool:
    if filters.tiers and alert["tier"] not in filters.tiers:
        return False
    if filters.segments and alert.get("segment") not in filters.segments:
        return False
    return filters.direction == "any" or direction(alert, tiers) == filters.direction


def direction(alert: dict[str, Any], tiers: Sequence[str]) -> str:
    """ "down" (to a worse tier), "up", or "same"; a first score is "down" when it lands
    below the best tier (news for whoever watches downgrades) and "up" when at it."""
    new, old = alert["tier"], alert.get("previous_tier")
    rank = {name: i for i, name in enumerate(tiers)}  # 0 is the best
    if old is None:
        return "up" if rank.get(new, 1) == 0 else "down"
    if new in rank and old in rank:
        change = float(rank[new] - rank[old])
    else:  # a tier this model does not know (another model version): go by the score
        change = float(alert.get("previous_score") or 0.0) - float(alert["score"])
    return "down" if change > 0 else "up" if change < 0 else "same"


def is_bulk(alert: dict[str, Any], *, now: float, stale_after: float) -> bool:
    if alert.get("delivery", "live") == "catch_up" or alert.get("previous_tier") is None:
        return True
    try:
        published = datetime.fromisoformat(str(alert["ts"])).timestamp()
    except (KeyError, ValueError):
        return False
    return now - published > stale_after
