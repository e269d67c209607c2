"""A CSM's override of an account: a pinned tier or one component's sub-score, until it
expires. Pure: the state is folded from the override records and the clock, and the
tier decision takes it as one more input.

An account's override state is its active override (or none), the recent past ones with
how each ended (expired, replaced, cleared), and the offset of the last override record
applied (its fence: a record delivered again after a crash changes nothing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from worker.scoring.model import Model
from worker.scoring.rollup import ComponentScore, Scorecard
from worker.scoring.tierchange import Published, TierChange, change_to, new_tier
from worker.scoring.tiers import rank
from worker.timefmt import rfc3339

HISTORY = 20  # past overrides kept per account, newest first
MAX_DAYS = 365  # the longest an override may last
EXPIRED, REPLACED, CLEARED = "expired", "replaced", "cleared"


@dataclass(frozen=True, slots=True)
class ActiveOverride:
    override_id: str
    kind: str  # "pin" | "adjust"
    reason: str
    author: str
    set_at: float  # epoch seconds
    expires_at: float
    tier: str | None = None  # pin
    component: str | None = None  # adjust
    subscore: float | None = None  # adjust

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> ActiveOverride:
        """From a validated record body (``override.schema.json``)."""
        return cls(
            body["override_id"],
            body["kind"],
            body["reason"],
            body["author"],
            timestamp(body["set_at"]),
            timestamp(body["expires_at"]),
            body.get("tier"),
            body.get("component"),
            None if body.get("subscore") is None else float(body["subscore"]),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "override_id": self.override_id,
            "kind": self.kind,
            "reason": self.reason,
            "author": self.author,
            "set_at": self.set_at,
            "expires_at": self.expires_at,
            "tier": self.tier,
            "component": self.component,
            "subscore": self.subscore,
        }

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> ActiveOverride:
        return cls(**saved)

    def live_at(self, now: float) -> bool:
        return self.expires_at > now


@dataclass(frozen=True, slots=True)
class PastOverride:
    override: ActiveOverride
    ended: str  # EXPIRED | REPLACED | CLEARED
    ended_at: float

    def as_dict(self) -> dict[str, Any]:
        return {**self.override.as_dict(), "ended": self.ended, "ended_at": self.ended_at}

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> PastOverride:
        fields = dict(saved)
        ended, ended_at = fields.pop("ended"), fields.pop("ended_at")
        return cls(ActiveOverride.from_dict(fields), ended, ended_at)


@dataclass(frozen=True, slots=True)
class OverrideState:
    active: ActiveOverride | None = None
    history: tuple[PastOverride, ...] = ()
    fence: int = -1  # offset of the last override record applied

    def as_dict(self) -> dict[str, Any]:
        return {
            "active": None if self.active is None else self.active.as_dict(),
            "history": [p.as_dict() for p in self.history],
            "fence": self.fence,
        }

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> OverrideState:
        active = saved.get("active")
        return cls(
            None if active is None else ActiveOverride.from_dict(active),
            tuple(PastOverride.from_dict(p) for p in saved.get("history", ())),
            int(saved.get("fence", -1)),
        )

    def ended(self, how: str, at: float) -> OverrideState:
        """The active override moves to the history (an expired one counts as expired
        whatever ended it later)."""
        if self.active is None:
            return self
        if not self.active.live_at(at):
            how, at = EXPIRED, self.active.expires_at
        past = PastOverride(self.active, how, at)
        return replace(self, active=None, history=(past, *self.history)[:HISTORY])


def timestamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("z", "Z")).timestamp()


def receive(
    state: OverrideState | None,
    records: Iterable[tuple[int, Mapping[str, Any] | None, float]],
) -> tuple[OverrideState | None, list[str]]:
    """``state`` after override records (offset, body (None: a tombstone), the record's
    timestamp), and what happened ("set", "cleared"). (None, []) when nothing changed:
    every record was applied before (at or below the fence). An override cleared or
    replaced ends at its record's timestamp, not the clock of whoever applies it, so a
    replay writes the same history as the live worker did."""
    before = state
    current = state or OverrideState()
    events = []
    for offset, body, at in records:
        if offset <= current.fence:
            continue
        if body is None:
            if current.active is not None:
                events.append(CLEARED)
            current = replace(current.ended(CLEARED, at), fence=offset)
            continue
        incoming = ActiveOverride.of(body)
        active = current.active
        if active is not None and active.override_id != incoming.override_id:
            current = current.ended(REPLACED, at)
        # the same id again edits the active override in place: no history entry
        current = replace(current, active=incoming, fence=offset)
        events.append("set")
    return (
        (None, [])
        if current == before or (before is None and current.fence < 0)
        else (current, events)
    )


def expire(state: OverrideState | None, now: float) -> OverrideState | None:
    """The state with its active override in the history if it has expired at ``now``;
    None when nothing expired."""
    if state is None or state.active is None or state.active.live_at(now):
        return None
    return state.ended(EXPIRED, now)


def adjusted(card: Scorecard, active: ActiveOverride | None) -> Scorecard:
    """The scorecard with an adjusted component's sub-score replaced. A component with
    no data stays out: an adjustment corrects a sub-score, it does not invent data."""
    if active is None or active.kind != "adjust" or active.component is None:
        return card
    present = card.components.get(active.component)
    if present is None or active.subscore is None:
        return card
    components = dict(card.components)
    components[active.component] = ComponentScore(present.value, active.subscore, present.weight)
    return Scorecard(components)


def decide(
    model: Model,
    card: Scorecard,
    published: Published | None,
    active: ActiveOverride | None,
    *,
    hysteresis: bool = True,
) -> TierChange | None:
    """``tierchange.decide`` under an override: a pin sets the tier (the score is still
    the account's own), an adjust changes one sub-score. Hysteresis holds a tier only
    against a score under the same override (or none): never against an override that
    was set, changed, cleared or expired since the tier was published."""
    card = adjusted(card, active)
    score = card.score
    if score is None:
        return None
    if published is not None and published.ovr != (None if active is None else active.override_id):
        hysteresis = False
    tier: str | None
    if active is not None and active.kind == "pin" and active.tier is not None:
        tier = None if published is not None and published.tier == active.tier else active.tier
    else:
        tier = new_tier(model, score, published, hysteresis=hysteresis)
    if tier is None:
        return None
    previous_tier = published.tier if published else None
    if previous_tier is None or previous_tier not in {t.name for t in model.tiers}:
        moved_down = rank(model, tier) > 0
    else:
        moved_down = rank(model, tier) > rank(model, previous_tier)
    return change_to(published, tier, score, card, moved_down)


def alert_field(active: ActiveOverride) -> dict[str, Any]:
    """What an alert published under an override says of it."""
    return {
        "override_id": active.override_id,
        "kind": active.kind,
        "author": active.author,
        "reason": active.reason,
        "expires_at": rfc3339(active.expires_at),
        "tier": active.tier,
        "component": active.component,
        "subscore": active.subscore,
    }
