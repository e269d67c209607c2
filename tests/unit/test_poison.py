"""Hostile input at the decode path: every record decodes or is rejected as ``BadInput``
with a documented reason; nothing else escapes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from worker.contracts import load_schema
from worker.errors import BadInput, Reason
from worker.events.decode import Decoder
from worker.events.types import SourceRef

NOW = datetime(2026, 1, 15, 12, tzinfo=UTC).timestamp()
TOPICS = {"events.login": "login", "events.feature_use": "feature_use",
          "events.ticket": "ticket", "events.survey": "survey"}
ALL_TOPICS = [*TOPICS, "accounts"]
VALID_LOGIN = b'{"event_id":"e-1","account_id":"acme","ts":"2026-01-15T11:00:00Z","user_id":"u1"'


@pytest.fixture(scope="module")
def decoder() -> Decoder:
    return Decoder(TOPICS, "accounts", 65536, 300.0)


def test_every_reason_is_in_the_dead_letter_schema() -> None:
    assert set(load_schema("deadletter")["properties"]["reason"]["enum"]) == {
        str(r) for r in Reason}


@pytest.mark.parametrize("depth", [255, 256, 512, 1024])
@pytest.mark.parametrize("topic", ALL_TOPICS)
def test_deep_nesting_as_the_whole_message_is_a_schema_violation(
        decoder: Decoder, topic: str, depth: int) -> None:
    with pytest.raises(BadInput) as caught:
        decoder.decode(SourceRef(topic, 0, 0), b"acme", b"[" * depth + b"]" * depth, NOW)
    assert caught.value.reason is Reason.SCHEMA_VIOLATION


@pytest.mark.parametrize("depth", [200, 255, 256, 512, 1023])
@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_deep_nesting_in_an_extra_field_is_a_schema_violation_of_that_field(
        decoder: Decoder, depth: int, opener: bytes) -> None:
    closer = b"]" if opener == b"[" else b"}"
    value = VALID_LOGIN + b',"x":' + opener * depth + b"1" + closer * depth + b"}"
    with pytest.raises(BadInput) as caught:
        decoder.decode(SourceRef("events.login", 0, 0), b"acme", value, NOW)
    assert caught.value.reason is Reason.SCHEMA_VIOLATION
    assert caught.value.field == "/x"
