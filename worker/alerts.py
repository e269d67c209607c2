"""Tier-change alerts: the record that goes to the alerts topic, and its JSON.

``alert_id`` is derived from the account, its per-account ``seq`` and the tiers, so an
alert that is published twice (after a crash, or a replay) carries the same id
and consumers can de-duplicate.

An ``Alert`` is turned into JSON (``to_json``) only where it leaves the worker: the
alerts topic, the outbox in Redis, a command's output. Its fields, in their order,
are the JSON's keys in theirs (``schemas/alert.schema.json``). NamedTuples, not
dataclasses: every alert of a backfill is built and written twice (outbox, topic),
and frozen dataclasses took twice as long to build and orjson to write.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from worker.events.types import AccountUpdate, Event, Override
from worker.scoring import override
from worker.scoring.attribution import ComponentChange
from worker.scoring.mode import Mode
from worker.scoring.model import Model
from worker.scoring.recovery import Goal, Hint, Recovery, recovery
from worker.scoring.rollup import Scorecard, rounded
from worker.scoring.segments import model_name
from worker.scoring.tierchange import TierChange
from worker.timefmt import rfc3339
from worker.tuples import make


@dataclass(frozen=True, slots=True)
class Cause:
    kind: str  # "event" | "account_update" | "window_expiry" | "replay" | "override"...
    event_id: str | None = None
    event_type: str | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    # kind "model_change": the model file's version now, and the one it replaced.
    model_version: str | None = None
    previous_model_version: str | None = None

    @classmethod
    def of(cls, record: Event | AccountUpdate | Override) -> Cause:
        s = record.source
        if isinstance(record, Override):
            return cls("override", None, None, s.topic, s.partition, s.offset)
        if isinstance(record, AccountUpdate):
            return cls("account_update", None, None, s.topic, s.partition, s.offset)
        return cls("event", record.event_id, record.type, s.topic, s.partition, s.offset)

    @classmethod
    def model_change(cls, version: str, previous: str | None) -> Cause:
        """A model file reloaded live (or changed across a restart) moved the tier."""
        return cls(MODEL_CHANGE, model_version=version, previous_model_version=previous)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
        }
        if self.kind == MODEL_CHANGE:  # other causes keep the bytes they always had
            data["model_version"] = self.model_version
            data["previous_model_version"] = self.previous_model_version
        return data


MODEL_CHANGE = "model_change"


class AlertComponent(NamedTuple):
    """A component of the account's scorecard as the alert reports it."""

    subscore: float
    value: float
    weight: float
    contribution: float


class TriggeringComponent(NamedTuple):
    """The component whose change moved the account most towards its new tier."""

    name: str
    previous_subscore: float | None
    subscore: float | None
    previous_value: float | None
    value: float | None
    weight: float
    contribution_change: float


class AlertModel(NamedTuple):
    """The model that produced an alert: its version and which segment's it is."""

    version: str
    segment: str  # a segment model's name, or "default"


class Alert(NamedTuple):
    alert_id: str
    account_id: str
    segment: str | None
    previous_tier: str | None
    tier: str
    tier_label: str
    previous_score: float | None
    score: float
    triggering_component: TriggeringComponent | None
    components: dict[str, AlertComponent]
    cause: Cause
    delivery: str  # a ``Mode`` value
    model_version: str
    model: AlertModel
    ts: str  # RFC 3339
    seq: int
    # The override the tier was published under (``scoring.override.alert_field``); the
    # JSON has the key only then.
    override: dict[str, Any] | None = None
    # What would bring the account back (``scoring.recovery``): below the best tier and
    # not pinned; the JSON has the key only then.
    recovery: Recovery | None = None


log = logging.getLogger(__name__)
ALERT_HINTS = 3  # an alert names the three easiest changes; explain and the API all
WINDOW_EXPIRY = Cause("window_expiry")
# A tier found when a replay's rebuilt state is compared with the last published one.
REPLAY = Cause("replay")
# An override's expiry, found by the clock (the due schedule has it), moved the tier.
OVERRIDE_EXPIRED = Cause("override_expired")
# The account's onboarding ended (``lifecycle.onboarding``): its segment's model scores it.
ONBOARDING_ENDED = Cause("onboarding_ended")


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
) -> Alert:
    """``mode``: the alert's ``delivery``, the mode of the evaluation that found the change
    (``evaluation_mode``), or catch-up for all a replay publishes: a catch-up's alert
    reports history, which consumers may batch rather than page on."""
    card = change.scorecard
    contributions = card.contributions()
    # Built in C (``worker.tuples``), every field in order: a backfill builds one alert per
    # account.
    return make(
        Alert,
        (
            alert_id(account_id, change.seq, change.previous_tier, change.tier),
            account_id,
            segment,
            change.previous_tier,
            change.tier,
            model.tier(change.tier).label,
            None if change.previous_score is None else rounded(change.previous_score),
            rounded(change.score),
            _component_change(change.trigger) if change.trigger else None,
            {
                name: make(
                    AlertComponent,
                    (rounded(c.subscore), c.value, c.weight, rounded(contributions[name])),
                )
                for name, c in card.components.items()
            },
            cause,
            mode.value,
            model.version,
            make(AlertModel, (model.version, model_name(model))),
            rfc3339(now),
            change.seq,
            None,
            # A catch-up alert reports history (a backlog, a backfill, a replay): the next
            # steps of a state later records may already have moved are for explain and the
            # API, which read the account as it is. Most alerts of a backfill are these.
            None if mode is Mode.CATCH_UP else alert_recovery(model, card, change.tier),
        ),
    )


def alert_recovery(
    model: Model, card: Scorecard, tier: str, fixed: tuple[str, ...] = ()
) -> Recovery | None:
    """An alert's hints: none in the best tier, or when no change can help."""
    try:
        found = recovery(model, card, tier, fixed=fixed, limit=ALERT_HINTS)
    except ArithmeticError:  # a curve the inverse got wrong: the alert goes out without
        log.warning("no recovery hints for a %s account", tier, exc_info=True)
        return None
    return None if found is None or not found.hints else found


def _component_change(change: ComponentChange) -> TriggeringComponent:
    was, now = change.previous, change.current
    present = now if now is not None else was
    assert present is not None, "a change is between two scorecards, one has the component"
    return make(
        TriggeringComponent,
        (
            change.name,
            None if was is None else rounded(was.subscore),
            None if now is None else rounded(now.subscore),
            None if was is None else was.value,
            None if now is None else now.value,
            present.weight,
            rounded(change.contribution_change),
        ),
    )


def under_override(
    alert: Alert, model: Model, card: Scorecard, active: override.ActiveOverride
) -> Alert:
    """The alert of a tier published under an override: it says so, and its hints leave
    out what the CSM set (a pinned tier follows the pin: no hints)."""
    fixed = () if active.component is None else (active.component,)
    return alert._replace(
        override=override.alert_field(active),
        recovery=None
        if active.kind == "pin" or alert.delivery != Mode.LIVE.value
        else alert_recovery(model, card, alert.tier, fixed),
    )


def to_json(alert: Alert) -> bytes:
    """The alert as published: its fields as keys, in their order."""
    a, trigger = alert, alert.triggering_component
    # Spelled out, not _asdict(): a backfill writes every alert twice (outbox, topic).
    data = {
        "alert_id": a.alert_id,
        "account_id": a.account_id,
        "segment": a.segment,
        "previous_tier": a.previous_tier,
        "tier": a.tier,
        "tier_label": a.tier_label,
        "previous_score": a.previous_score,
        "score": a.score,
        "triggering_component": None if trigger is None else trigger._asdict(),
        "components": {
            name: {
                "subscore": subscore,
                "value": value,
                "weight": weight,
                "contribution": contribution,
            }
            for name, (subscore, value, weight, contribution) in a.components.items()
        },
        "cause": a.cause.as_dict(),
        "delivery": a.delivery,
        "model_version": a.model_version,
        "model": {"version": a.model.version, "segment": a.model.segment},
        "ts": a.ts,
        "seq": a.seq,
    }
    if a.override is not None:
        data["override"] = a.override
    if a.recovery is not None:
        data["recovery"] = recovery_dict(a.recovery)
    return orjson.dumps(data)


def recovery_dict(found: Recovery) -> dict[str, Any]:
    return {
        "tier": found.goal.tier,
        "score": rounded(found.goal.score),
        "alone": found.alone,
        "changes": [
            {
                "component": h.component,
                "value": h.value,
                "op": h.op,
                "target": h.target,
                "subscore": None if h.subscore is None else rounded(h.subscore),
                "target_subscore": rounded(h.target_subscore),
            }
            for h in found.hints
        ],
    }


def _recovery_of(data: dict[str, Any] | None) -> Recovery | None:
    """As ``recovery_dict`` wrote it (the goal's score and sub-scores rounded, as sent)."""
    if data is None:
        return None
    return Recovery(
        Goal(data["tier"], data["score"]), tuple(Hint(**c) for c in data["changes"]), data["alone"]
    )


_TRIGGER = TriggeringComponent._fields


def as_dict(alert: Alert) -> dict[str, Any]:
    """The alert as plain data, as a consumer of the topic sees it."""
    data: dict[str, Any] = orjson.loads(to_json(alert))
    return data


def from_json(raw: bytes | str) -> Alert:
    """An alert ``to_json`` wrote (the outbox in Redis): the same ``Alert`` again."""
    data = orjson.loads(raw)
    trigger = data["triggering_component"]
    return Alert(
        **{
            **data,
            "triggering_component": None if trigger is None else TriggeringComponent(**trigger),
            "components": {name: AlertComponent(**c) for name, c in data["components"].items()},
            "cause": Cause(**data["cause"]),
            # Saved by a version without segment models: the default model's.
            "model": AlertModel(
                **data.get("model") or {"version": data["model_version"], "segment": "default"}
            ),
            "recovery": _recovery_of(data.get("recovery")),
        }
    )
