"""Decoding raw records, and the dead letters of those that fail."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from worker.contracts import validator
from worker.errors import BadInput, Reason
from worker.events import decode as decode_module
from worker.events.deadletter import dead_letter
from worker.events.decode import Decoder
from worker.events.types import AccountUpdate, Event, SourceRef
from worker.timefmt import rfc3339

NOW = datetime(2026, 1, 15, 12, tzinfo=UTC).timestamp()
NOW_TEXT = "2026-01-15T12:00:00Z"
SKEW = 300.0
MAX_BYTES = 4096

TOPICS = {
    "events.login": "login",
    "events.feature_use": "feature_use",
    "events.ticket": "ticket",
    "events.survey": "survey",
}
TOPIC_OF = {t: name for name, t in TOPICS.items()}
ACCOUNTS = "accounts"

BODIES: dict[str, dict[str, Any]] = {
    "login": {
        "event_id": "e-1",
        "account_id": "acme",
        "ts": NOW_TEXT,
        "user_id": "u1",
        "session_seconds": 900,
    },
    "feature_use": {
        "event_id": "e-2",
        "account_id": "acme",
        "ts": NOW_TEXT,
        "user_id": "u1",
        "feature": "reports",
        "count": 3,
    },
    "ticket": {
        "event_id": "e-3",
        "account_id": "acme",
        "ts": NOW_TEXT,
        "ticket_id": "T-9",
        "status": "opened",
        "priority": "high",
    },
    "survey": {
        "event_id": "e-4",
        "account_id": "acme",
        "ts": NOW_TEXT,
        "user_id": "u2",
        "kind": "nps",
        "score": 9,
        "comment": "great",
    },
    "account": {
        "account_id": "acme",
        "segment": "enterprise",
        "seats_purchased": 50,
        "plan": "pro",
        "arr": 120000.5,
        "renewal_date": "2026-09-30",
        "ts": NOW_TEXT,
    },
}


@pytest.fixture
def decoder() -> Decoder:
    return Decoder(TOPICS, ACCOUNTS, MAX_BYTES, SKEW)


def body(record: str, /, **changes: Any) -> dict[str, Any]:
    """A valid body of ``record`` type; a change to ``...`` removes the field."""
    result = dict(BODIES[record])
    for name, value in changes.items():
        if value is ...:
            result.pop(name, None)
        else:
            result[name] = value
    return result


def source(topic: str) -> SourceRef:
    return SourceRef(topic, 2, 1234)


def decode_body(decoder: Decoder, kind: str, data: Any, key: bytes | None = b"acme") -> Any:
    topic = ACCOUNTS if kind == "account" else TOPIC_OF[kind]
    return decoder.decode(source(topic), key, orjson.dumps(data), NOW)


def rejection(decoder: Decoder, kind: str, data: Any, key: bytes | None = b"acme") -> BadInput:
    with pytest.raises(BadInput) as caught:
        decode_body(decoder, kind, data, key)
    return caught.value


# --------------------------------------------------------------------------- valid records


@pytest.mark.parametrize("kind", ["login", "feature_use", "ticket", "survey"])
def test_valid_event_of_each_type(decoder: Decoder, kind: str) -> None:
    event = decode_body(decoder, kind, BODIES[kind])
    assert isinstance(event, Event)
    assert event.type == kind
    assert event.event_id == BODIES[kind]["event_id"]
    assert event.account_id == "acme"
    assert event.ts == NOW
    assert event.body == BODIES[kind]
    assert event.source == SourceRef(TOPIC_OF[kind], 2, 1234)


@pytest.mark.parametrize(
    ("kind", "dropped"),
    [
        ("login", "session_seconds"),
        ("feature_use", "count"),
        ("survey", "user_id"),
        ("survey", "comment"),
        ("ticket", "user_id"),
    ],
)
def test_optional_fields_may_be_left_out(decoder: Decoder, kind: str, dropped: str) -> None:
    event = decode_body(decoder, kind, body(kind, **{dropped: ...}))
    assert dropped not in event.body


@pytest.mark.parametrize(
    ("kind", "changes"),
    [
        ("survey", {"kind": "nps", "score": 0}),
        ("survey", {"kind": "nps", "score": 10}),
        ("survey", {"kind": "csat", "score": 1}),
        ("survey", {"kind": "csat", "score": 5}),
        ("login", {"session_seconds": 0}),
        ("login", {"session_seconds": 86400}),
        ("login", {"session_seconds": 12.5}),
        ("ticket", {"status": "escalated", "priority": "urgent"}),
        ("ticket", {"status": "reopened", "priority": "low"}),
        ("ticket", {"status": "resolved", "priority": "normal"}),
        ("ticket", {"status": "closed", "priority": "normal"}),
    ],
)
def test_valid_edge_values(decoder: Decoder, kind: str, changes: dict[str, Any]) -> None:
    assert isinstance(decode_body(decoder, kind, body(kind, **changes)), Event)


@pytest.mark.parametrize(
    ("ts", "epoch"),
    [
        ("2026-01-15T12:00:00Z", NOW),
        ("2026-01-15T12:00:00z", NOW),
        ("2026-01-15t12:00:00Z", NOW),
        ("2026-01-15T12:00:00+00:00", NOW),
        ("2026-01-15T14:00:00+02:00", NOW),
        ("2026-01-15T07:00:00-05:00", NOW),
        ("2026-01-15T11:59:59.5Z", NOW - 0.5),
        ("2026-01-15T11:59:59.123456789Z", NOW - 1 + 0.123456),
    ],
)
def test_timestamps_with_any_offset_become_epoch_seconds(
    decoder: Decoder, ts: str, epoch: float
) -> None:
    assert decode_body(decoder, "login", body("login", ts=ts)).ts == pytest.approx(epoch, abs=1e-6)


@pytest.mark.parametrize(
    "account_id",
    ["a", "ACME-corp_1", "acme.com", "tenant:42", "ops@acme", "a" * 128, "0-._:@"],
)
def test_valid_account_ids(decoder: Decoder, account_id: str) -> None:
    event = decode_body(
        decoder, "login", body("login", account_id=account_id), key=account_id.encode()
    )
    assert event.account_id == account_id


def test_account_record(decoder: Decoder) -> None:
    update = decode_body(decoder, "account", BODIES["account"])
    assert update == AccountUpdate("acme", BODIES["account"], SourceRef(ACCOUNTS, 2, 1234))


def test_minimal_account_record(decoder: Decoder) -> None:
    minimal = {"account_id": "acme", "segment": "smb", "seats_purchased": 0}
    assert decode_body(decoder, "account", minimal).attrs == minimal


def test_account_records_are_not_checked_against_the_clock(decoder: Decoder) -> None:
    # Attributes are state, not events: an old or future "ts" is only informative.
    for ts in ("1999-01-01T00:00:00Z", "2099-01-01T00:00:00Z"):
        assert isinstance(decode_body(decoder, "account", body("account", ts=ts)), AccountUpdate)


def test_tombstone_deletes_the_account(decoder: Decoder) -> None:
    update = decoder.decode(source(ACCOUNTS), b"acme", None, NOW)
    assert update == AccountUpdate("acme", None, SourceRef(ACCOUNTS, 2, 1234))


@pytest.mark.parametrize("key", [None, b""])
def test_tombstone_without_key_is_a_bad_key(decoder: Decoder, key: bytes | None) -> None:
    with pytest.raises(BadInput) as caught:
        decoder.decode(source(ACCOUNTS), key, None, NOW)
    assert caught.value.reason is Reason.BAD_KEY
    assert caught.value.field == "/account_id"


@pytest.mark.parametrize("key", [b"acme corp", b"a" * 129, b"\xff\xfe", "caf\u00e9".encode()])
def test_tombstone_with_a_key_that_is_no_account_id(decoder: Decoder, key: bytes) -> None:
    with pytest.raises(BadInput) as caught:
        decoder.decode(source(ACCOUNTS), key, None, NOW)
    assert caught.value.reason is Reason.BAD_KEY
    assert caught.value.field == "/account_id"


# --------------------------------------------------------------------------- size and JSON


def test_oversize_is_rejected_before_parsing(decoder: Decoder) -> None:
    with pytest.raises(BadInput) as caught:
        decoder.decode(source("events.login"), b"acme", b"x" * (MAX_BYTES + 1), NOW)
    assert caught.value.reason is Reason.OVERSIZE
    assert caught.value.field is None
    assert str(MAX_BYTES) in caught.value.detail


def test_size_limit_is_inclusive() -> None:
    value = orjson.dumps(BODIES["login"])
    at_limit = Decoder(TOPICS, ACCOUNTS, len(value), SKEW)
    assert isinstance(at_limit.decode(source("events.login"), b"acme", value, NOW), Event)
    below = Decoder(TOPICS, ACCOUNTS, len(value) - 1, SKEW)
    with pytest.raises(BadInput) as caught:
        below.decode(source("events.login"), b"acme", value, NOW)
    assert caught.value.reason is Reason.OVERSIZE


def test_oversize_account_record(decoder: Decoder) -> None:
    big = orjson.dumps(body("account", plan="p" * MAX_BYTES))
    with pytest.raises(BadInput) as caught:
        decoder.decode(source(ACCOUNTS), b"acme", big, NOW)
    assert caught.value.reason is Reason.OVERSIZE


@pytest.mark.parametrize(
    "value",
    [b"", b"{", b"{'a': 1}", b"not json", b"\xff\xfe{}", b'{"a": 1}}', b"[1, 2", b"NaN"],
)
@pytest.mark.parametrize("topic", ["events.login", "events.survey", ACCOUNTS])
def test_invalid_json(decoder: Decoder, topic: str, value: bytes) -> None:
    with pytest.raises(BadInput) as caught:
        decoder.decode(source(topic), b"acme", value, NOW)
    assert caught.value.reason is Reason.INVALID_JSON
    assert caught.value.field is None


@pytest.mark.parametrize("topic", ["events.login", "events.feature_use", "events.ticket"])
def test_null_event_value_is_invalid_json(decoder: Decoder, topic: str) -> None:
    # Only the compacted accounts topic has tombstones.
    value = None
    with pytest.raises(BadInput) as caught:
        decoder.decode(source(topic), b"acme", value, NOW)
    assert caught.value.reason is Reason.INVALID_JSON
    assert caught.value.field is None


# --------------------------------------------------------------------------- schema


SCHEMA_VIOLATIONS = {
    # (kind, changes, field)
    "login missing user_id": ("login", {"user_id": ...}, "/user_id"),
    "login missing event_id": ("login", {"event_id": ...}, "/event_id"),
    "login missing ts": ("login", {"ts": ...}, "/ts"),
    "login missing account_id": ("login", {"account_id": ...}, "/account_id"),
    "ticket missing priority": ("ticket", {"priority": ...}, "/priority"),
    "survey missing score": ("survey", {"score": ...}, "/score"),
    "account missing seats": ("account", {"seats_purchased": ...}, "/seats_purchased"),
    "account missing segment": ("account", {"segment": ...}, "/segment"),
    "session_seconds as text": ("login", {"session_seconds": "900"}, "/session_seconds"),
    "session_seconds negative": ("login", {"session_seconds": -1}, "/session_seconds"),
    "session_seconds over a day": ("login", {"session_seconds": 86401}, "/session_seconds"),
    "user_id as number": ("login", {"user_id": 7}, "/user_id"),
    "empty user_id": ("login", {"user_id": ""}, "/user_id"),
    "empty event_id": ("login", {"event_id": ""}, "/event_id"),
    "event_id too long": ("login", {"event_id": "e" * 257}, "/event_id"),
    "null feature": ("feature_use", {"feature": None}, "/feature"),
    "count zero": ("feature_use", {"count": 0}, "/count"),
    "count fractional": ("feature_use", {"count": 1.5}, "/count"),
    "unknown login field": ("login", {"device": "ios"}, "/device"),
    "unknown account field": ("account", {"owner": "bob"}, "/owner"),
    "unknown field with a slash": ("login", {"a/b": 1}, "/a~1b"),
    "bad ticket status": ("ticket", {"status": "pending"}, "/status"),
    "bad ticket priority": ("ticket", {"priority": "p1"}, "/priority"),
    "bad survey kind": ("survey", {"kind": "ces"}, "/kind"),
    "nps score 11": ("survey", {"kind": "nps", "score": 11}, "/score"),
    "nps score -1": ("survey", {"kind": "nps", "score": -1}, "/score"),
    "csat score 0": ("survey", {"kind": "csat", "score": 0}, "/score"),
    "csat score 6": ("survey", {"kind": "csat", "score": 6}, "/score"),
    "fractional score": ("survey", {"score": 7.5}, "/score"),
    "score as text": ("survey", {"score": "9"}, "/score"),
    "account id with a space": ("login", {"account_id": "acme corp"}, "/account_id"),
    "account id with a slash": ("login", {"account_id": "acme/eu"}, "/account_id"),
    "account id of 129 chars": ("login", {"account_id": "a" * 129}, "/account_id"),
    "empty account id": ("login", {"account_id": ""}, "/account_id"),
    "non-ascii account id": ("login", {"account_id": "caf\u00e9"}, "/account_id"),
    "ts without offset": ("login", {"ts": "2026-01-15T12:00:00"}, "/ts"),
    "ts date only": ("login", {"ts": "2026-01-15"}, "/ts"),
    "ts as epoch number": ("login", {"ts": NOW}, "/ts"),
    "ts impossible date": ("login", {"ts": "2026-02-30T12:00:00Z"}, "/ts"),
    "ts hour 24": ("login", {"ts": "2026-01-15T24:00:00Z"}, "/ts"),
    "ts with too many decimals": ("login", {"ts": "2026-01-15T12:00:00.1234567890Z"}, "/ts"),
    "negative seats": ("account", {"seats_purchased": -1}, "/seats_purchased"),
    "fractional seats": ("account", {"seats_purchased": 2.5}, "/seats_purchased"),
    "bad renewal date": ("account", {"renewal_date": "30/09/2026"}, "/renewal_date"),
    "account ts without offset": ("account", {"ts": "2026-01-15T12:00:00"}, "/ts"),
}


@pytest.mark.parametrize(
    ("kind", "changes", "field"), SCHEMA_VIOLATIONS.values(), ids=SCHEMA_VIOLATIONS.keys()
)
def test_schema_violation_names_the_field(
    decoder: Decoder, kind: str, changes: dict[str, Any], field: str
) -> None:
    data = body(kind, **changes)
    error = rejection(decoder, kind, data, key=str(data.get("account_id", "acme")).encode())
    assert error.reason is Reason.SCHEMA_VIOLATION
    assert error.field == field
    assert error.detail


@pytest.mark.parametrize("data", [[], "login", 42, None, True])
@pytest.mark.parametrize("kind", ["login", "account"])
def test_json_that_is_no_object_is_a_schema_violation(
    decoder: Decoder, kind: str, data: Any
) -> None:
    error = rejection(decoder, kind, data)
    assert error.reason is Reason.SCHEMA_VIOLATION
    assert error.field is None  # the whole document, no one field


def test_schema_of_the_topic_applies_not_of_the_body(decoder: Decoder) -> None:
    # A valid survey body sent to the login topic is a login without user_id... and more.
    error = rejection(decoder, "login", body("survey", user_id=...))
    assert error.reason is Reason.SCHEMA_VIOLATION


# --------------------------------------------------------------------------- timestamps


def test_min_ts_is_2000_in_utc_whatever_the_local_zone() -> None:
    assert decode_module.MIN_TS == 946684800.0


@pytest.mark.parametrize(
    "ts",
    [
        "1999-12-31T23:59:59Z",
        "1999-12-31T23:59:59.999Z",
        "2000-01-01T00:30:00+01:00",  # 1999-12-31T23:30Z
        "1970-01-01T00:00:00Z",
        "0001-01-01T00:00:00Z",
    ],
)
def test_ts_before_2000_is_out_of_range(decoder: Decoder, ts: str) -> None:
    error = rejection(decoder, "login", body("login", ts=ts))
    assert error.reason is Reason.TIMESTAMP_OUT_OF_RANGE
    assert error.field == "/ts"


@pytest.mark.parametrize(
    "ts", ["2000-01-01T00:00:00Z", "1999-12-31T23:00:00-01:00", "2000-01-01T00:00:00.001Z"]
)
def test_ts_from_2000_on_is_accepted(decoder: Decoder, ts: str) -> None:
    assert decode_body(decoder, "login", body("login", ts=ts)).ts >= 946684800.0


@pytest.mark.parametrize(
    "ts",
    [
        "2026-01-15T12:05:00.001Z",  # just beyond now + 300 s
        "2026-01-15T12:10:00Z",
        "2026-01-15T13:05:01+01:00",
        "2027-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
    ],
)
def test_ts_beyond_the_future_skew_is_out_of_range(decoder: Decoder, ts: str) -> None:
    error = rejection(decoder, "login", body("login", ts=ts))
    assert error.reason is Reason.TIMESTAMP_OUT_OF_RANGE
    assert error.field == "/ts"
    assert "300" in error.detail


@pytest.mark.parametrize(
    "ts", ["2026-01-15T12:05:00Z", "2026-01-15T12:04:59Z", "2026-01-15T13:05:00+01:00"]
)
def test_ts_within_the_future_skew_is_accepted(decoder: Decoder, ts: str) -> None:
    assert isinstance(decode_body(decoder, "login", body("login", ts=ts)), Event)


def test_old_events_are_not_the_decoders_business(decoder: Decoder) -> None:
    # Too old for any window is decided later (and counted), not dead-lettered.
    assert isinstance(
        decode_body(decoder, "login", body("login", ts="2001-01-01T00:00:00Z")), Event
    )


def test_future_skew_is_configurable() -> None:
    strict = Decoder(TOPICS, ACCOUNTS, MAX_BYTES, 0.0)
    data = orjson.dumps(body("login", ts="2026-01-15T12:00:01Z"))
    with pytest.raises(BadInput) as caught:
        strict.decode(source("events.login"), b"acme", data, NOW)
    assert caught.value.reason is Reason.TIMESTAMP_OUT_OF_RANGE


# --------------------------------------------------------------------------- keys and topics


@pytest.mark.parametrize("key", [None, b"", b"other", b"ACME", b"acme ", b"\xff"])
@pytest.mark.parametrize("kind", ["login", "ticket", "account"])
def test_key_must_be_the_account_id(decoder: Decoder, kind: str, key: bytes | None) -> None:
    error = rejection(decoder, kind, BODIES[kind], key=key)
    assert error.reason is Reason.BAD_KEY
    assert error.field == "/account_id"


def test_key_is_compared_as_utf8(decoder: Decoder) -> None:
    # Not a valid account id anyway; the key check must not crash on it either.
    error = rejection(decoder, "login", body("login"), key="acme".encode("utf-16"))
    assert error.reason is Reason.BAD_KEY


@pytest.mark.parametrize("topic", ["events.unknown", "events.Login", "", "accounts.v2"])
def test_unknown_topic(decoder: Decoder, topic: str) -> None:
    with pytest.raises(BadInput) as caught:
        decoder.decode(source(topic), b"acme", orjson.dumps(BODIES["login"]), NOW)
    assert caught.value.reason is Reason.UNKNOWN_TOPIC
    assert caught.value.field is None
    assert repr(topic) in caught.value.detail


def test_unknown_topic_wins_over_a_broken_body(decoder: Decoder) -> None:
    with pytest.raises(BadInput) as caught:
        decoder.decode(source("events.unknown"), None, b"{", NOW)
    assert caught.value.reason is Reason.UNKNOWN_TOPIC


def test_custom_topic_names() -> None:
    custom = Decoder({"prod.logins": "login"}, "prod.accounts", MAX_BYTES, SKEW)
    event = custom.decode(
        SourceRef("prod.logins", 0, 0), b"acme", orjson.dumps(BODIES["login"]), NOW
    )
    assert isinstance(event, Event)
    assert event.type == "login"
    with pytest.raises(BadInput) as caught:
        custom.decode(SourceRef("events.login", 0, 0), b"acme", orjson.dumps(BODIES["login"]), NOW)
    assert caught.value.reason is Reason.UNKNOWN_TOPIC


@pytest.mark.parametrize(
    ("value", "key", "reason"),
    [
        # size before JSON, JSON before schema, schema before time, time before key
        (b"{" * (MAX_BYTES + 1), None, Reason.OVERSIZE),
        (b"{", None, Reason.INVALID_JSON),
        (
            orjson.dumps(body("login", user_id=..., ts="1990-01-01T00:00:00Z")),
            None,
            Reason.SCHEMA_VIOLATION,
        ),
        (
            orjson.dumps(body("login", ts="1990-01-01T00:00:00Z")),
            None,
            Reason.TIMESTAMP_OUT_OF_RANGE,
        ),
    ],
)
def test_checks_run_in_order(
    decoder: Decoder, value: bytes, key: bytes | None, reason: Reason
) -> None:
    with pytest.raises(BadInput) as caught:
        decoder.decode(source("events.login"), key, value, NOW)
    assert caught.value.reason is reason


# --------------------------------------------------------------------------- dead letters


def _rejected(decoder: Decoder, topic: str, key: bytes | None, value: bytes | None) -> BadInput:
    with pytest.raises(BadInput) as caught:
        decoder.decode(source(topic), key, value, NOW)
    return caught.value


DEAD = {
    "oversize": ("events.login", b"acme", b"x" * (MAX_BYTES + 1)),
    "invalid json": ("events.login", b"acme", b"{nope"),
    "empty value": ("events.ticket", b"acme", None),
    "schema": ("events.survey", b"acme", orjson.dumps(body("survey", score=11))),
    "timestamp": ("events.login", b"acme", orjson.dumps(body("login", ts="2099-01-01T00:00:00Z"))),
    "bad key": ("events.login", b"other", orjson.dumps(BODIES["login"])),
    "no key": ("events.login", None, orjson.dumps(BODIES["login"])),
    "unknown topic": ("events.nope", b"acme", orjson.dumps(BODIES["login"])),
    "tombstone bad key": (ACCOUNTS, b"no spaces please", None),
    "binary": ("events.login", b"\x00\xff", b"\x00\x01\x02\xff"),
}


@pytest.mark.parametrize(("topic", "key", "value"), DEAD.values(), ids=DEAD.keys())
def test_dead_letter_validates_and_carries_the_original_bytes(
    decoder: Decoder, topic: str, key: bytes | None, value: bytes | None
) -> None:
    error = _rejected(decoder, topic, key, value)
    record = dead_letter(error, source(topic), key, value, 1768478399000, NOW)
    errors = [e.message for e in validator("deadletter").iter_errors(record)]
    assert errors == []
    assert record["reason"] == error.reason.value
    assert record["field"] == error.field
    assert record["detail"] == error.detail
    assert record["source"] == {
        "topic": topic,
        "partition": 2,
        "offset": 1234,
        "timestamp_ms": 1768478399000,
    }
    assert record["ts"] == rfc3339(NOW)
    for field, original in (("key_b64", key), ("value_b64", value)):
        if original is None:
            assert record[field] is None
        else:
            assert base64.b64decode(record[field], validate=True) == original


def test_dead_letter_survives_json_encoding(decoder: Decoder) -> None:
    value = b"\xff\xfe not utf-8"
    error = _rejected(decoder, "events.login", b"acme", value)
    record = orjson.loads(
        orjson.dumps(dead_letter(error, source("events.login"), b"acme", value, None, NOW))
    )
    assert validator("deadletter").is_valid(record)
    assert record["source"]["timestamp_ms"] is None
    assert base64.b64decode(record["value_b64"]) == value


def test_dead_letter_detail_is_bounded() -> None:
    error = BadInput(Reason.SCHEMA_VIOLATION, "x" * 5000, "/a")
    record = dead_letter(error, SourceRef("t", 0, 0), None, None, None, NOW)
    assert len(record["detail"]) == 1000
    assert validator("deadletter").is_valid(record)


@pytest.mark.parametrize("reason", list(Reason))
def test_every_reason_is_a_valid_dead_letter_reason(reason: Reason) -> None:
    record = dead_letter(BadInput(reason, "why", None), SourceRef("t", 0, 0), b"k", b"v", 0, NOW)
    assert validator("deadletter").is_valid(record)


def test_bad_input_message() -> None:
    error = BadInput(Reason.BAD_KEY, "no key", "/account_id")
    assert str(error) == "bad_key: no key"
    assert (error.reason, error.detail, error.field) == (Reason.BAD_KEY, "no key", "/account_id")
