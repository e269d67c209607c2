"""A test-only event type, added the way a new one is: a schema and a vocabulary entry.

``page_view`` (``page``, optional ``seconds``) adds to the counters ``pv`` and
``pv_sec`` and feeds a distinct set of its own, ``pages``. Nothing else in the
worker names it: the decoder, the topic (``events.page_view``), the planner, the
window store and the apply script take it from the vocabulary.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from worker import contracts
from worker.modelfile import load_model
from worker.scoring.curves import Linear
from worker.scoring.model import Component, Model
from worker.scoring.signals import WindowView, signal
from worker.scoring.vocabulary import VOCABULARY, EventType, Increments

NAME = "page_view"
TOPIC = "events.page_view"
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://healthscore.dev/schemas/page_view.schema.json",
    "title": "Page view event",
    "type": "object",
    "properties": {
        "event_id": {"$ref": "common.schema.json#/$defs/event_id"},
        "account_id": {"$ref": "common.schema.json#/$defs/account_id"},
        "ts": {"$ref": "common.schema.json#/$defs/ts"},
        "user_id": {"$ref": "common.schema.json#/$defs/user_id"},
        "page": {"type": "string", "minLength": 1, "maxLength": 256},
        "seconds": {"type": "number", "minimum": 0},
    },
    "required": ["event_id", "account_id", "ts", "page"],
    "additionalProperties": False,
}


def _increments(body: dict[str, Any]) -> Increments:
    return [("pv", 1.0), ("pv_sec", float(body.get("seconds", 0)))]


PAGE_VIEW = EventType(NAME, frozenset({"pv", "pv_sec"}), _increments, {"pages": "page"})


def add_page_views(monkeypatch: pytest.MonkeyPatch) -> None:
    """The schema file and the vocabulary entry, for the length of one test."""
    real = contracts.load_schema

    def load_schema(name: str) -> dict[str, Any]:
        return SCHEMA if name == NAME else real(name)

    monkeypatch.setattr(contracts, "load_schema", load_schema)
    monkeypatch.setitem(VOCABULARY, NAME, PAGE_VIEW)
    contracts.validator.cache_clear()


def _pages_per_view(w: WindowView, _: Any) -> float | None:
    views = w.get("pv")
    return None if views == 0 else w.distinct("pages") / views


def model_with_pages() -> Model:
    """The default model and one component more: distinct pages per page view, 30 days.
    Built after ``add_page_views``, which its signal needs."""
    pages = signal(
        "pages_per_view",
        "distinct pages per page view",
        _pages_per_view,
        counters=frozenset({"pv"}),
        distinct=frozenset({"pages"}),
    )
    model = load_model()
    component = Component("page_breadth", pages, 30, 1.0, Linear(0.0, 1.0))
    return dataclasses.replace(model, components=(*model.components, component))
