"""The checks of an override record beyond its schema: times that make sense, and a tier
or component the model has (a pin to a tier that does not exist could never end well)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from worker.errors import BadInput, Reason
from worker.scoring.override import MAX_DAYS, timestamp


def check_override(
    body: dict[str, Any], tiers: Collection[str] | None, components: Collection[str] | None
) -> None:
    try:
        set_at, expires_at = timestamp(body["set_at"]), timestamp(body["expires_at"])
    except ValueError as exc:
        raise BadInput(Reason.TIMESTAMP_OUT_OF_RANGE, str(exc), "/expires_at") from None
    if expires_at <= set_at:
        raise BadInput(Reason.SCHEMA_VIOLATION, "expires_at is not after set_at", "/expires_at")
    if expires_at - set_at > MAX_DAYS * 86400:
        raise BadInput(
            Reason.SCHEMA_VIOLATION,
            f"an override lasts at most {MAX_DAYS} days after set_at",
            "/expires_at",
        )
    if body["kind"] == "pin" and tiers is not None and body["tier"] not in tiers:
        raise BadInput(
            Reason.SCHEMA_VIOLATION, f"tier {body['tier']!r} is not a tier of the model", "/tier"
        )
    if body["kind"] == "adjust" and components is not None and body["component"] not in components:
        raise BadInput(
            Reason.SCHEMA_VIOLATION,
            f"component {body['component']!r} is not a component of the model",
            "/component",
        )
