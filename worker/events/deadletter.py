"""Dead-letter records: the rejected bytes, where they came from, and why.

A dead letter must always fit one produce request: a record the producer refuses
(``MessageSizeTooLargeError``, not retriable) would stop the worker on the very
record it meant to set aside. So the key and value go in whole when they fit the
producer's ``max_request_size``, else as prefixes with each one's full length and
SHA-256, and ``truncated`` says which it is.
"""

from __future__ import annotations

import base64
import hashlib
import socket
from typing import Any

from worker.errors import BadInput
from worker.events.types import SourceRef
from worker.timefmt import rfc3339

# Room in a request for everything but the key and value: the JSON envelope (detail
# and field cut to 1000 characters, at most 6 bytes each escaped; topic and host names),
# the dead letter's own Kafka key (at most KEY_BYTES) and the producer's record overhead.
ENVELOPE_BYTES = 32 * 1024
# The dead letter is keyed by the original key, cut to this: it only picks a partition.
KEY_BYTES = 1024
TEXT_CHARS = 1000
DEFAULT_MAX_REQUEST_BYTES = 1048576  # aiokafka's default max_request_size


def payload_budget(max_request_bytes: int) -> int:
    """Most raw key + value bytes a dead letter carries whole (base64 turns 3 into 4)."""
    return max(0, (max_request_bytes - ENVELOPE_BYTES) // 4 * 3)


def dead_letter(
    error: BadInput,
    source: SourceRef,
    key: bytes | None,
    value: bytes | None,
    timestamp_ms: int | None,
    now: float,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
) -> dict[str, Any]:
    key_part, value_part = _fit(key, value, payload_budget(max_request_bytes))
    truncated = key_part is not key or value_part is not value
    record: dict[str, Any] = {
        "reason": str(error.reason),
        "detail": error.detail[:TEXT_CHARS],
        "field": None if error.field is None else error.field[:TEXT_CHARS],
        "source": {
            "topic": source.topic,
            "partition": source.partition,
            "offset": source.offset,
            "timestamp_ms": timestamp_ms,
        },
        "key_b64": _b64(key_part),
        "value_b64": _b64(value_part),
        "truncated": truncated,
        "worker": socket.gethostname(),
        "ts": rfc3339(now),
    }
    if truncated:
        record.update(
            key_bytes=_length(key),
            key_sha256=_sha256(key),
            value_bytes=_length(value),
            value_sha256=_sha256(value),
        )
    return record


def dead_letter_key(key: bytes | None) -> bytes | None:
    """The dead letter's own Kafka key: the original one, cut to fit beside the record."""
    return key if key is None or len(key) <= KEY_BYTES else key[:KEY_BYTES]


def _fit(key: bytes | None, value: bytes | None, budget: int) -> tuple[bytes | None, bytes | None]:
    """Both whole when they fit the budget together; else the shorter keeps up to half
    (all of it if it fits there) and the longer takes the rest."""
    k, v = _length(key) or 0, _length(value) or 0
    if k + v <= budget:
        return key, value
    half = budget // 2
    key_room = k if k <= half else (budget - v if v <= half else half)
    return _cut(key, key_room), _cut(value, budget - min(k, key_room))


def _cut(data: bytes | None, room: int) -> bytes | None:
    return data if data is None or len(data) <= room else data[:room]


def _length(data: bytes | None) -> int | None:
    return None if data is None else len(data)


def _sha256(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")
