"""What the decoder hands to the rest of the worker: plain, validated records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EVENT_TYPES = ("login", "feature_use", "ticket", "survey")


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where a record came from: enough to find it again, or to fence it."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Event:
    """A validated product or engagement event. ``ts`` is epoch seconds."""

    type: str
    event_id: str
    account_id: str
    ts: float
    body: dict[str, Any]  # the validated JSON object, type-specific fields included
    source: SourceRef


@dataclass(frozen=True, slots=True)
class AccountUpdate:
    """New attributes of an account; ``attrs is None`` is a tombstone (account deleted)."""

    account_id: str
    attrs: dict[str, Any] | None
    source: SourceRef


Record = Event | AccountUpdate
