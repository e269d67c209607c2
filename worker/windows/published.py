"""The published tier (``pub`` in an account's state hash) as Redis keeps it: JSON.

The one place it is parsed and the one place it is written, whoever reads it (the
store, the API's listing, a replay's rebuild)."""

from __future__ import annotations

from collections.abc import Mapping
from operator import itemgetter
from typing import Any

import orjson

from worker.scoring.tierchange import Published

_FIELDS = itemgetter(*Published._fields)
_make = Published._make


def encode(published: Published) -> bytes:
    # Keys in this order, lists for components: what every version so far wrote.
    return orjson.dumps({"tier": published.tier, "score": published.score,
                         "seq": published.seq, "components": published.components})


def decode(raw: bytes | str) -> Published:
    # Read for every account loaded: in C but for the tuple itself.
    return _make(_FIELDS(orjson.loads(raw)))


def of_alert(alert: Mapping[str, Any]) -> Published:
    """The published tier an alert (as read from the alerts topic) carries."""
    return Published(alert["tier"], alert["score"], alert["seq"], {
        name: [c["value"], c["subscore"], c["weight"]] for name, c in alert["components"].items()
    })
