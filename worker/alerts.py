"""Tier-change alerts: the record (pure) that goes to the alerts topic.

``alert_id`` is derived from the account, its per-account ``seq`` and the tiers, so an
alert that is published twice (after a crash, or a replay) carries the same id
and consumers can de-duplicate.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from worker.events.types import AccountUpdate, Event, Override
from worker.scoring.attribution import ComponentChange
from worker.scoring.mode import Mode
from worker.scoring.model import Model
from worker.scoring.rollup import rounded
from worker.scoring.tierchange import TierChange
from worker.timefmt import rfc3339


@dataclass(frozen=True, slots=True)
class Cause:
    kind: str  # "event" | "account_update" | "window_expiry" | "replay" | "override"...
    event_id: str | None = None
    event_type: str | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None

    @classmethod
    def of(cls, record: Event | AccountUpdate | Override) -> Cause:
        s = record.source
        if isinstance(record, Override):
            return cls("override", None, None, s.topic, s.partition, s.offset)
        if isinstance(record, AccountUpdate):
            return cls("account_update", None, None, s.topic, s.partition, s.offset)
        return cls("event", record.event_id, record.type, s.topic, s.partition, s.offset)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "event_id": self.event_id, "event_type": self.event_type,
            "topic": self.topic, "partition": self.partition, "offset": self.offset,
        }


WINDOW_EXPIRY = Cause("window_expiry")
# A tier found when a replay's rebuilt state is compared with the last published one.
REPLAY = Cause("replay")
# An override's expiry, found by the clock (the due schedule has it), moved the tier.
OVERRIDE_EXPIRED = Cause("override_expired")


def alert_id(account_id: str, seq: int, previous_tier: str | None, tier: str) -> str:
    # The tiers are part of the id so that, should an account's state ever be
    # lost and its seq restart, a different change does not reuse an old id.
    key = f"{account_id}\x00{seq}\x00{previous_tier or ''}\x00{tier}"
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


def build_alert(
    model: Model,
    account_id: str,
    segment: str | None,
    change: TierChange,
    cause: Cause,
    now: float,
    *,
    mode: Mode,
) -> dict[str, Any]:
    """``mode``: the alert's ``delivery``, the mode of the evaluation that found the change
    (``evaluation_mode``), or catch-up for all a replay publishes: a catch-up's alert
    reports history, which consumers may batch rather than page on."""
    card = change.scorecard
    contributions = card.contributions()
    return {
        "alert_id": alert_id(account_id, change.seq, change.previous_tier, change.tier),
        "account_id": account_id,
        "segment": segment,
        "previous_tier": change.previous_tier,
        "tier": change.tier,
        "tier_label": model.tier(change.tier).label,
        "previous_score": None if change.previous_score is None else rounded(change.previous_score),
        "score": rounded(change.score),
        "triggering_component": _component_change(change.trigger) if change.trigger else None,
        "components": {
            name: {
                "subscore": rounded(c.subscore),
                "value": c.value,
                "weight": c.weight,
                "contribution": rounded(contributions[name]),
            }
            for name, c in card.components.items()
        },
        "cause": cause.as_dict(),
        "delivery": mode.value,
        "model_version": model.version,
        "ts": rfc3339(now),
        "seq": change.seq,
    }


def _component_change(change: ComponentChange) -> dict[str, Any]:
    was, now = change.previous, change.current
    present = now if now is not None else was
    assert present is not None, "a change is between two scorecards, one has the component"
    return {
        "name": change.name,
        "previous_subscore": None if was is None else rounded(was.subscore),
        "subscore": None if now is None else rounded(now.subscore),
        "previous_value": None if was is None else was.value,
        "value": None if now is None else now.value,
        "weight": present.weight,
        "contribution_change": rounded(change.contribution_change),
    }
