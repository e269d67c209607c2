"""Segment models: which model scores an account, chosen by its ``segment`` attribute.

A model file may name segment models beside its default one. Every account is
scored by the model of its current segment (any segment without one, or none,
gets the default), so an account that changes segment is scored by its new model
from its next rescore on. The windows layer keeps what every model of the set
needs (``windows``): an account's windows are ready for whichever model it moves to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from worker.scoring.model import Model
from worker.scoring.tierchange import Published

DEFAULT = "default"  # the name alerts and explain give the default model


def model_name(model: Model) -> str:
    """The segment model's name as alerts carry it: ``default`` for the default model."""
    return model.segment or DEFAULT


@dataclass(frozen=True, slots=True)
class ModelSet:
    default: Model
    segments: Mapping[str, Model] = field(default_factory=lambda: MappingProxyType({}))
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

    def all(self) -> tuple[Model, ...]:
        return (self.default, *self.segments.values())


def scoring_model(models: ModelSet, attrs: Mapping[str, Any],
                  published: Published | None, attrs_changed: bool) -> tuple[Model, bool]:
    """The model that scores an account with ``attrs`` now, and whether an account update
    (``attrs_changed``) just moved it there from the model of its last published tier
    (``published.model``, None: the default): then its tier is decided afresh on
    the new model's boundaries, without the old tier's hysteresis."""
    model = models.for_segment(attrs.get("segment"))
    switched = (attrs_changed and published is not None
                and (published.model or DEFAULT) != model_name(model))
    return model, switched


def as_model_set(models: Model | ModelSet) -> ModelSet:
    return models if isinstance(models, ModelSet) else ModelSet.single(models)


def _union(default: Model, others: Iterable[Model]) -> Model:
    segment_models = list(others)
    if not segment_models:
        return default  # the usual case: the windows layer sees the one model as before
    components = dict.fromkeys(c for m in (default, *segment_models) for c in m.components)
    return Model(default.version, default.bucket_seconds, default.tiers, default.margin,
                 tuple(components))
