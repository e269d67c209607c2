"""Raw Kafka bytes -> validated ``Event`` / ``AccountUpdate``, or ``BadInput``.

Checks run cheapest first: size, JSON, schema (compiled validator), then the
timestamp against the clock. The key must agree with the body's account id,
because the key decides the partition and so which worker owns the account.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

import orjson

from worker.contracts import first_error, load_schema, validator
from worker.errors import BadInput, Reason
from worker.events.override import check_override
from worker.events.types import AccountUpdate, Event, Override, Record, SourceRef
from worker.scoring.vocabulary import VOCABULARY
from worker.tuples import make

# Far outside any window, yet parseable: guards against year-1 / year-9999 stamps.
MIN_TS = datetime(2000, 1, 1, tzinfo=UTC).timestamp()


class Decoder:
    """Decodes one topic family; built once, holds its compiled validators."""

    def __init__(
        self,
        event_topics: dict[str, str],
        accounts_topic: str,
        max_message_bytes: int,
        max_future_skew: float,
        *,
        overrides_topic: str | None = None,
        tiers: Collection[str] | None = None,
        components: Collection[str] | None = None,
    ) -> None:
        """``tiers``, ``components``: the model's, which an override must name."""
        self._overrides_topic = overrides_topic
        self._model_names = (tiers, components)
        self._topic_types = dict(event_topics)
        self._accounts_topic = accounts_topic
        self._max_bytes = max_message_bytes
        self._max_skew = max_future_skew
        self._validators = {name: validator(t.schema_name) for name, t in VOCABULARY.items()}
        self._validators["account"] = validator("account")
        self._validators["override"] = validator("override")
        self._account_id = re.compile(load_schema("common")["$defs"]["account_id"]["pattern"])

    def decode(
        self, source: SourceRef, key: bytes | None, value: bytes | None, now: float
    ) -> Record:
        if source.topic == self._accounts_topic:
            return self._account(source, key, value)
        if source.topic == self._overrides_topic:
            return self._override(source, key, value)
        event_type = self._topic_types.get(source.topic)
        if event_type is None:
            raise BadInput(
                Reason.UNKNOWN_TOPIC, f"no event type is bound to topic {source.topic!r}"
            )
        body = self._body(event_type, value)
        ts = _timestamp(body["ts"])
        if ts < MIN_TS or ts > now + self._max_skew:
            raise BadInput(
                Reason.TIMESTAMP_OUT_OF_RANGE,
                f"ts {body['ts']} is outside [2000-01-01, now + {self._max_skew:g} s]",
                "/ts",
            )
        _check_key(key, body["account_id"])
        return make(Event, (event_type, body["event_id"], body["account_id"], ts, body, source))

    def _account(self, source: SourceRef, key: bytes | None, value: bytes | None) -> AccountUpdate:
        if value is None:  # compaction tombstone: the account is gone
            if not key:
                raise BadInput(Reason.BAD_KEY, "tombstone without a key", "/account_id")
            account_id = key.decode("utf-8", "replace")
            return AccountUpdate(self._valid_account_id(account_id), None, source)
        body = self._body("account", value)
        _check_key(key, body["account_id"])
        return AccountUpdate(body["account_id"], body, source)

    def _override(self, source: SourceRef, key: bytes | None, value: bytes | None) -> Override:
        if value is None:  # compaction tombstone: the active override is cleared
            if not key:
                raise BadInput(Reason.BAD_KEY, "tombstone without a key", "/account_id")
            return Override(self._valid_account_id(key.decode("utf-8", "replace")), None, source)
        body = self._body("override", value)
        _check_key(key, body["account_id"])
        check_override(body, *self._model_names)
        return Override(body["account_id"], body, source)

    def _valid_account_id(self, account_id: str) -> str:
        if self._account_id.fullmatch(account_id) is None:
            raise BadInput(
                Reason.BAD_KEY, f"tombstone key {account_id[:64]!r} is no account id", "/account_id"
            )
        return account_id

    def _body(self, schema: str, value: bytes | None) -> dict[str, Any]:
        if value is None:
            raise BadInput(Reason.INVALID_JSON, "empty message")
        if len(value) > self._max_bytes:
            raise BadInput(Reason.OVERSIZE, f"{len(value)} bytes > limit {self._max_bytes}")
        try:
            body = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise BadInput(Reason.INVALID_JSON, str(exc)) from None
        if not self._validators[schema].is_valid(body):
            # Only the slow path pays for error details.
            pointer, message = first_error(schema, body) or ("", "invalid")
            raise BadInput(Reason.SCHEMA_VIOLATION, message, pointer or None)
        result: dict[str, Any] = body
        return result


def _timestamp(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("z", "Z")).timestamp()
    except ValueError as exc:
        raise BadInput(Reason.TIMESTAMP_OUT_OF_RANGE, f"ts {text!r}: {exc}", "/ts") from None


def _check_key(key: bytes | None, account_id: str) -> None:
    # The key decides the partition, and the partition decides which worker
    # owns the account: a missing or different key would let two workers
    # score one account at once.
    if key != account_id.encode("utf-8"):
        shown = None if key is None else key[:64]
        raise BadInput(
            Reason.BAD_KEY,
            f"message key {shown!r} is not the account_id {account_id!r}",
            "/account_id",
        )
