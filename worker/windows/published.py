"""The published tier (``pub`` in an account's state hash) as Redis keeps it: JSON.

The one place it is parsed and the one place it is written, whoever reads it (the
store, the API's listing, a replay's rebuild)."""

from __future__ import annotations

from collections.abc import Mapping
from operator import itemgetter
from typing import Any

import orjson

from worker.scoring.tierchange import Published

_FIELDS = itemgetter("tier", "score", "seq", "components")
_make = Published._make


def encode(published: Published) -> bytes:
    # Keys in this order, lists for components: what every version so far wrote.
    data = {
        "tier": published.tier,
        "score": published.score,
        "seq": published.seq,
        "components": published.components,
    }
    if published.model is not None:  # only files with segment models write it
        data["model"] = published.model
    if published.ovr is not None:  # published under an override
        data["ovr"] = published.ovr
    return orjson.dumps(data)


def decode(raw: bytes | str) -> Published:
    # Read for every account loaded: in C but for the tuple itself.
    data = orjson.loads(raw)
    return _make((*_FIELDS(data), data.get("model"), data.get("ovr")))


def of_alert(alert: Mapping[str, Any]) -> Published:
    """The published tier an alert (as read from the alerts topic) carries."""
    segment = (alert.get("model") or {}).get("segment")
    return Published(
        alert["tier"],
        alert["score"],
        alert["seq"],
        {name: [c["value"], c["subscore"], c["weight"]] for name, c in alert["components"].items()},
        None if segment == "default" else segment,
        # published under an override: hysteresis must not hold it once the override ends
        alert["override"]["override_id"] if alert.get("override") else None,
    )
