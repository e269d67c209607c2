"""Silence is a signal: an account that stops sending events is rescored when its
windows roll, by the worker that owns its partition, with no event to trigger it."""

from __future__ import annotations

import time
from typing import Any

from tests.integration.harness import (
    SHORT_WINDOWS,
    Producer,
    alerts_for,
    event,
    read_until,
    running_worker,
    valid_alert,
)
from worker.modelfile import parse_model
from worker.settings import Settings


async def test_a_silent_account_drops_tier_when_its_windows_roll(settings: Settings) -> None:
    model = parse_model(SHORT_WINDOWS, source="test")
    async with running_worker(settings, model), Producer(settings) as p:
        # One time for all: in one 1 s bucket, they leave the 3 s window at once (sent a
        # moment apart they could straddle two buckets and leave in two steps).
        ts = time.time()
        for _ in range(3):
            await p.send("login", event("login", "quiet", ts, user_id="u1"))
        await p.send(
            "ticket", event("ticket", "quiet", ts, ticket_id="T", status="opened", priority="low")
        )
        await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: any(a["tier"] == "green" for a in alerts_for(rs, "quiet")),
        )
        last_event = time.monotonic()
        # The events may be scored over several batches, so alerts below green can come
        # before the green one; only a drop after green is the silence under test.
        alerts = await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: _dropped_after_green(alerts_for(rs, "quiet")) is not None,
            within=20,
        )
        delay = time.monotonic() - last_event
    decayed = _dropped_after_green(alerts_for(alerts, "quiet"))
    assert decayed is not None
    assert valid_alert(decayed)
    assert decayed["cause"] == {
        "kind": "window_expiry",
        "event_id": None,
        "event_type": None,
        "topic": None,
        "partition": None,
        "offset": None,
    }
    assert decayed["triggering_component"]["name"] == "login_frequency"
    assert decayed["components"]["login_frequency"]["value"] == 0.0
    # 3 s window + 1 s bucket + 1 s timer, with room for a loaded CI machine.
    assert delay < 10


def _dropped_after_green(alerts: list[dict[str, Any]]) -> dict[str, Any] | None:
    tiers = [a["tier"] for a in alerts]
    if "green" not in tiers:
        return None
    later = alerts[tiers.index("green") + 1 :]
    return next((a for a in later if a["tier"] != "green"), None)
