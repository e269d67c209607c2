"""What the decoder hands to the rest of the worker: plain, validated records.

Named tuples rather than frozen dataclasses: equally immutable, and several are
built per event, where a frozen dataclass's ``__init__`` costs three times as much.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class SourceRef(NamedTuple):
    """Where a record came from: enough to find it again, or to fence it."""

    topic: str
    partition: int
    offset: int


class Event(NamedTuple):
    """A validated product or engagement event. ``ts`` is epoch seconds."""

    type: str  # a name of ``worker.scoring.vocabulary.VOCABULARY``
    event_id: str
    account_id: str
    ts: float
    body: dict[str, Any]  # the validated JSON object, type-specific fields included
    source: SourceRef


class AccountUpdate(NamedTuple):
    """New attributes of an account; ``attrs is None`` is a tombstone (account deleted).
    ``ts`` is the Kafka record's timestamp in epoch seconds (the body has none): it
    tells a live update from history being caught up on."""

    account_id: str
    attrs: dict[str, Any] | None
    source: SourceRef
    ts: float = 0.0


class Override(NamedTuple):
    """A CSM's override of an account's tier or of one component (``override.schema.json``);
    ``body is None`` is a tombstone: the active override is cleared early. ``ts`` is the
    Kafka record's timestamp, as for an ``AccountUpdate``."""

    account_id: str
    body: dict[str, Any] | None
    source: SourceRef
    ts: float = 0.0


Record = Event | AccountUpdate | Override
