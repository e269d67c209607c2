"""Dead-letter records: the rejected bytes, where they came from, and why."""

from __future__ import annotations

import base64
import socket
from typing import Any

from worker.errors import BadInput
from worker.events.types import SourceRef
from worker.timefmt import rfc3339


def dead_letter(
    error: BadInput,
    source: SourceRef,
    key: bytes | None,
    value: bytes | None,
    timestamp_ms: int | None,
    now: float,
) -> dict[str, Any]:
    return {
        "reason": str(error.reason),
        "detail": error.detail[:1000],
        "field": error.field,
        "source": {
            "topic": source.topic,
            "partition": source.partition,
            "offset": source.offset,
            "timestamp_ms": timestamp_ms,
        },
        "key_b64": _b64(key),
        "value_b64": _b64(value),
        "worker": socket.gethostname(),
        "ts": rfc3339(now),
    }


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")
