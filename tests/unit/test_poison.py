"""Hostile input at the decode path: every record decodes or is rejected as ``BadInput``
with a documented reason; nothing else escapes."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import poison
from worker.contracts import load_schema, validator
from worker.errors import BadInput, ConfigError, Reason
from worker.events.deadletter import dead_letter, dead_letter_key, payload_budget
from worker.events.decode import Decoder
from worker.events.types import SourceRef
from worker.modelfile import load_model
from worker.settings import Settings
from worker.windows.plan import Planner

NOW = datetime(2026, 1, 15, 12, tzinfo=UTC).timestamp()
TOPICS = {
    "events.login": "login",
    "events.feature_use": "feature_use",
    "events.ticket": "ticket",
    "events.survey": "survey",
}
ALL_TOPICS = [*TOPICS, "accounts"]
DEAD_LETTER = validator("deadletter")
PLANNER = Planner(load_model())
VALID_LOGIN = b'{"event_id":"e-1","account_id":"acme","ts":"2026-01-15T11:00:00Z","user_id":"u1"'


@pytest.fixture(scope="module")
def decoder() -> Decoder:
    return Decoder(TOPICS, "accounts", 65536, 300.0)


def test_every_reason_is_in_the_dead_letter_schema() -> None:
    assert set(load_schema("deadletter")["properties"]["reason"]["enum"]) == {
        str(r) for r in Reason
    }


@pytest.mark.parametrize("depth", [255, 256, 512, 1024])
@pytest.mark.parametrize("topic", ALL_TOPICS)
def test_deep_nesting_as_the_whole_message_is_a_schema_violation(
    decoder: Decoder, topic: str, depth: int
) -> None:
    with pytest.raises(BadInput) as caught:
        decoder.decode(SourceRef(topic, 0, 0), b"acme", b"[" * depth + b"]" * depth, NOW)
    assert caught.value.reason is Reason.SCHEMA_VIOLATION


@pytest.mark.parametrize("depth", [200, 255, 256, 512, 1023])
@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_deep_nesting_in_an_extra_field_is_a_schema_violation_of_that_field(
    decoder: Decoder, depth: int, opener: bytes
) -> None:
    closer = b"]" if opener == b"[" else b"}"
    value = VALID_LOGIN + b',"x":' + opener * depth + b"1" + closer * depth + b"}"
    with pytest.raises(BadInput) as caught:
        decoder.decode(SourceRef("events.login", 0, 0), b"acme", value, NOW)
    assert caught.value.reason is Reason.SCHEMA_VIOLATION
    assert caught.value.field == "/x"


# --------------------------------------------------------------------------- hostile input

VALID: dict[str, dict[str, Any]] = {
    "login": {
        "event_id": "e-1",
        "account_id": "acme",
        "ts": "2026-01-15T11:00:00Z",
        "user_id": "u1",
        "session_seconds": 900,
    },
    "feature_use": {
        "event_id": "e-2",
        "account_id": "acme",
        "ts": "2026-01-15T11:00:00Z",
        "user_id": "u1",
        "feature": "reports",
        "count": 3,
    },
    "ticket": {
        "event_id": "e-3",
        "account_id": "acme",
        "ts": "2026-01-15T11:00:00Z",
        "ticket_id": "T-9",
        "status": "opened",
        "priority": "high",
    },
    "survey": {
        "event_id": "e-4",
        "account_id": "acme",
        "ts": "2026-01-15T11:00:00Z",
        "kind": "csat",
        "score": 4,
    },
    "account": {"account_id": "acme", "segment": "smb", "seats_purchased": 5},
}
TOPIC_OF_KIND = {**{kind: topic for topic, kind in TOPICS.items()}, "account": "accounts"}
SETTLED = (
    Reason.OVERSIZE,
    Reason.INVALID_JSON,
    Reason.SCHEMA_VIOLATION,
    Reason.TIMESTAMP_OUT_OF_RANGE,
    Reason.BAD_KEY,
    Reason.UNKNOWN_TOPIC,
)


def settle(decoder: Decoder, topic: str, key: bytes | None, value: bytes | None) -> None:
    """The property: a record decodes (and plans), or is ``BadInput`` with a reason
    the checks name (never ``internal_error``, never another exception), and its dead
    letter is valid and fits."""
    source = SourceRef(topic, 3, 17)
    try:
        record = decoder.decode(source, key, value, NOW)
    except BadInput as caught:
        error = caught
    else:
        PLANNER.plan(record.account_id, [record], int(NOW // 86400))
        return
    assert error.reason in SETTLED
    letter = dead_letter(error, source, key, value, None, NOW)
    assert DEAD_LETTER.is_valid(letter), letter
    assert len(orjson.dumps(letter)) + len(dead_letter_key(key) or b"") < 1048576


@settings(max_examples=300)
@given(
    topic=st.sampled_from([*ALL_TOPICS, "elsewhere"]),
    key=poison.keys,
    value=st.none() | st.binary(max_size=2000),
)
def test_arbitrary_bytes_never_escape_as_anything_but_bad_input(
    decoder: Decoder, topic: str, key: bytes | None, value: bytes | None
) -> None:
    settle(decoder, topic, key, value)


@settings(max_examples=300)
@given(
    topic=st.sampled_from(ALL_TOPICS),
    key=poison.keys,
    value=poison.json_values.map(poison.dumps) | poison.deep_nesting(),
)
def test_arbitrary_json_never_escapes_as_anything_but_bad_input(
    decoder: Decoder, topic: str, key: bytes | None, value: bytes
) -> None:
    settle(decoder, topic, key, value)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), kind=st.sampled_from(sorted(VALID)), key=st.just(b"acme") | poison.keys)
def test_valid_records_with_hostile_fields_never_escape_as_anything_but_bad_input(
    decoder: Decoder, data: st.DataObject, kind: str, key: bytes | None
) -> None:
    value = data.draw(poison.hostile_body(kind, VALID[kind]))
    settle(decoder, TOPIC_OF_KIND[kind], key, value)


def test_the_valid_bodies_decode(decoder: Decoder) -> None:
    for kind, valid in VALID.items():
        decoder.decode(SourceRef(TOPIC_OF_KIND[kind], 0, 0), b"acme", orjson.dumps(valid), NOW)


# --------------------------------------------------------------------------- dead-letter size

BAD = BadInput(Reason.OVERSIZE, "too big")


@pytest.mark.parametrize(
    ("key_size", "value_size"),
    [(4, 800_000), (4, 2_000_000), (500_000, 20), (700_000, 700_000), (0, 0), (4, 786_000)],
)
@pytest.mark.parametrize("max_request", [1048576, 65536, 5 * 1048576])
def test_a_dead_letter_always_fits_the_producers_request(
    key_size: int, value_size: int, max_request: int
) -> None:
    key, value = (
        b"k" * key_size,
        bytes(range(256)) * (value_size // 256) + b"v" * (value_size % 256),
    )
    letter = dead_letter(BAD, SourceRef("t" * 249, 0, 1), key, value, 1, NOW, max_request)
    assert DEAD_LETTER.is_valid(letter)
    assert len(orjson.dumps(letter)) + len(dead_letter_key(key) or b"") + 100 <= max_request
    kept_key, kept_value = (base64.b64decode(letter[f]) for f in ("key_b64", "value_b64"))
    assert key.startswith(kept_key)
    assert value.startswith(kept_value)
    if key_size + value_size <= payload_budget(max_request):
        assert (kept_key, kept_value, letter["truncated"]) == (key, value, False)
        assert "value_sha256" not in letter
    else:
        assert letter["truncated"] is True
        assert (letter["key_bytes"], letter["value_bytes"]) == (key_size, value_size)
        assert letter["key_sha256"] == hashlib.sha256(key).hexdigest()
        assert letter["value_sha256"] == hashlib.sha256(value).hexdigest()
        # What fits is used: the prefixes fill the budget.
        assert len(kept_key) + len(kept_value) == payload_budget(max_request)


def test_a_truncated_dead_letter_says_so_when_there_is_no_key() -> None:
    letter = dead_letter(BAD, SourceRef("t", 0, 1), None, b"x" * 2_000_000, None, NOW)
    assert (letter["key_b64"], letter["key_bytes"], letter["key_sha256"]) == (None, None, None)
    assert letter["truncated"] is True
    assert DEAD_LETTER.is_valid(letter)


def test_detail_and_field_are_cut_so_the_envelope_stays_bounded() -> None:
    error = BadInput(Reason.SCHEMA_VIOLATION, "\x01" * 100_000, "/" + "\x01" * 100_000)
    letter = dead_letter(error, SourceRef("t" * 249, 0, 1), b"k" * 2_000_000, b"v", None, NOW)
    assert len(orjson.dumps(letter)) + 1024 + 100 <= 1048576


def test_the_request_size_leaves_room_for_a_dead_letters_envelope() -> None:
    assert Settings.from_env({"HEALTHSCORE_MAX_REQUEST_BYTES": "65536"}).max_request_bytes == 65536
    with pytest.raises(ConfigError, match="HEALTHSCORE_MAX_REQUEST_BYTES"):
        Settings.from_env({"HEALTHSCORE_MAX_REQUEST_BYTES": "65535"})
