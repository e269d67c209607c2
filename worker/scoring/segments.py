"""Segment models: which model scores an account, chosen by its ``segment`` attribute.

A model file may name segment models beside its default one. Every account is
scored by the model of its current segment (any segment without one, or none,
gets the default), so an account that changes segment is scored by its new model
from its next rescore on. The windows layer keeps what every model of the set
needs (``windows``): an account's windows are ready for whichever model it moves to.

Lifecycle: a model file may also name an onboarding model (one of its segment
models) for accounts younger than some days, by their ``created_at`` attribute; such
an account is scored by it whatever its segment, until onboarding ends.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple

from worker.scoring.model import Model
from worker.scoring.tierchange import Published

DEFAULT = "default"  # the name alerts and explain give the default model


def model_name(model: Model) -> str:
    """The segment model's name as alerts carry it: ``default`` for the default model."""
    return model.segment or DEFAULT


class Onboarding(NamedTuple):
    """Accounts created less than ``days`` ago are scored by the segment model ``model``."""

    days: int
    model: str

    def ends(self, attrs: Mapping[str, Any], bucket_seconds: int) -> float | None:
        """When the account leaves onboarding (epoch seconds), None without a valid
        ``created_at``. At the start of a bucket: within one the model stays the same, as
        the component values the worker keeps for the bucket need."""
        created = created_at(attrs)
        if created is None:
            return None
        end = created + self.days * 86400.0
        return math.ceil(end / bucket_seconds) * bucket_seconds


def created_at(attrs: Mapping[str, Any]) -> float | None:
    """The account's ``created_at`` attribute (RFC 3339) in epoch seconds; None when it has
    none or one that is not a time with its offset."""
    value = attrs.get("created_at")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return None if moment.tzinfo is None else moment.timestamp()


@dataclass(frozen=True, slots=True)
class ModelSet:
    default: Model
    segments: Mapping[str, Model] = field(default_factory=lambda: MappingProxyType({}))
    onboarding: Onboarding | None = None  # the file's lifecycle: None, none
    # One model with every component of every model (same-named ones of different
    # segments side by side): what the windows layer plans, keeps and loads for.
    windows: Model = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", MappingProxyType(dict(self.segments)))
        object.__setattr__(self, "windows", _union(self.default, self.segments.values()))

    @classmethod
    def single(cls, model: Model) -> ModelSet:
        return cls(model)

    @property
    def version(self) -> str:
        return self.default.version

    def for_segment(self, segment: object) -> Model:
        """The model of ``segment`` (an account's attribute, as it came); the default for
        a segment without one, for no segment and for a value that is not a name."""
        if not self.segments or not isinstance(segment, str):
            return self.default
        return self.segments.get(segment, self.default)

    def for_account(self, attrs: Mapping[str, Any], now: float) -> Model:
        """The model that scores an account with ``attrs`` at ``now``: the onboarding
        model while it is onboarding, else its segment's."""
        if self.onboarding is not None and self.onboarding_ends(attrs, now) is not None:
            return self.segments[self.onboarding.model]
        return self.for_segment(attrs.get("segment"))

    def onboarding_ends(self, attrs: Mapping[str, Any], now: float) -> float | None:
        """When an account onboarding at ``now`` leaves it; None when it is not onboarding."""
        if self.onboarding is None:
            return None
        end = self.onboarding.ends(attrs, self.default.bucket_seconds)
        return end if end is not None and now < end else None

    def rescore_at(
        self, attrs: Mapping[str, Any], now: float, next_change: float | None
    ) -> float | None:
        """When to rescore an account with no event: ``next_change`` (data leaves a
        window), or the end of its onboarding when sooner (its model changes then)."""
        if self.onboarding is None:
            return next_change
        ends = self.onboarding_ends(attrs, now)
        if ends is None or (next_change is not None and next_change <= ends):
            return next_change
        return ends

    def all(self) -> tuple[Model, ...]:
        return (self.default, *self.segments.values())


def scoring_model(
    models: ModelSet,
    attrs: Mapping[str, Any],
    published: Published | None,
    attrs_changed: bool,
    now: float = math.inf,
) -> tuple[Model, bool]:
    """The model that scores an account with ``attrs`` at ``now``, and whether an account
    update (``attrs_changed``) or the end of its onboarding (``left_onboarding``) just
    moved it there from the model of its last published tier (``published.model``, None:
    the default): then its tier is decided afresh on the new model's boundaries, without
    the old tier's hysteresis."""
    model = models.for_account(attrs, now)
    moved = published is not None and (published.model or DEFAULT) != model_name(model)
    return model, moved and (attrs_changed or left_onboarding(models, attrs, published, model, now))


def left_onboarding(
    models: ModelSet,
    attrs: Mapping[str, Any],
    published: Published | None,
    model: Model,
    now: float,
) -> bool:
    """The account's last tier was the onboarding model's, ``model`` is another, and its
    onboarding ended in the bucket of ``now`` (the due schedule rescores it then). Later
    on, a tier change is news of its own: its cause is what moved it, with hysteresis."""
    onboarding = models.onboarding
    if onboarding is None or published is None or published.model != onboarding.model:
        return False
    bucket = models.default.bucket_seconds
    ends = onboarding.ends(attrs, bucket)
    return model.segment != onboarding.model and ends is not None and ends <= now < ends + bucket


def as_model_set(models: Model | ModelSet) -> ModelSet:
    return models if isinstance(models, ModelSet) else ModelSet.single(models)


def _union(default: Model, others: Iterable[Model]) -> Model:
    segment_models = list(others)
    if not segment_models:
        return default  # the usual case: the windows layer sees the one model as before
    components = dict.fromkeys(c for m in (default, *segment_models) for c in m.components)
    return Model(
        default.version, default.bucket_seconds, default.tiers, default.margin, tuple(components)
    )
