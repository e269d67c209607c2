"""A data gap is not churn: when logins stop arriving from every account, the drops the
silence would cause are held until logins return, and the gap is announced on the
alerts topic with its own record."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import orjson
from redis.asyncio import Redis

from tests.integration.harness import (
    Producer,
    alerts_for,
    event,
    read_until,
    running_worker,
)
from tests.integration.test_overrides import AUTHOR, override, send_override
from worker.app import Worker
from worker.contracts import validator
from worker.modelfile import parse_model
from worker.settings import Settings
from worker.windows import keys

# Logins leave the window after 8 s; a gap opens after 2 s without any login: the
# gap is open well before the quiet account's windows roll.
GAP_MODEL = """
version: data-gap-test
bucket: 1s
tiers:
  margin: 3
  levels:
    - {name: green, label: Doing well, min_score: 70}
    - {name: yellow, label: Take notice, min_score: 40}
    - {name: red, label: Requires attention, min_score: 0}
data_gaps:
  login: 2s
components:
  login_frequency:
    signal: logins_per_active_user
    window: 8s
    weight: 1.0
    curve: {linear: {bad: 0, good: 2}}
  support_tickets:
    signal: tickets_opened
    window: 60s
    weight: 1.0
    curve: {linear: {bad: 5, good: 0}}
"""


def _gaps(records: list[dict[str, Any]], state: str, after: float) -> list[dict[str, Any]]:
    return [
        r
        for r in records
        if r.get("kind") == "data_gap"
        and r["state"] == state
        and r["event_type"] == "login"
        and _epoch(r["detected_at"]) > after
    ]


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts).timestamp()


def _held(worker: Worker) -> float:
    return worker.metrics.registry.get_sample_value("healthscore_held_tier_changes_total") or 0


async def test_a_data_gap_holds_the_drops_it_causes_until_logins_return(
    settings: Settings, redis: Redis
) -> None:
    model = parse_model(GAP_MODEL, source="test")
    async with running_worker(settings, model) as worker, Producer(settings) as p:
        for _ in range(3):
            await p.send("login", event("login", "quiet", user_id="u1"))
        await p.send(
            "ticket", event("ticket", "quiet", ticket_id="T", status="opened", priority="low")
        )
        await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: any(a.get("tier") == "green" for a in alerts_for(_alerts(rs), "quiet")),
        )
        green_at = time.time()
        records = await read_until(
            settings, settings.topic_alerts, lambda rs: bool(_gaps(rs, "open", green_at)), within=30
        )
        [opened] = _gaps(records, "open", green_at)
        assert validator("datagap").is_valid(opened)
        assert (
            worker.metrics.registry.get_sample_value("healthscore_data_gap", {"type": "login"}) == 1
        )
        # The quiet account's logins have left its window: its drop is held, repeatedly.
        deadline = time.monotonic() + 40
        while _held(worker) < 2:
            assert time.monotonic() < deadline, "no tier change was held"
            await asyncio.sleep(0.2)
        pub = orjson.loads(await redis.hget(keys.state_key("quiet"), keys.PUBLISHED))
        assert pub["tier"] == "green"
        await p.send("login", event("login", "other", user_id="u9"))
        # The close of this gap: on a busy machine the first logins can come 2 s apart,
        # in batches of their own, and the account is green after the first: a gap then
        # opens before ``green_at`` and closes after it.
        opened_at = _epoch(opened["detected_at"])
        records = await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: bool(_gaps(rs, "closed", opened_at)) and _dropped(_alerts(rs)) is not None,
        )
        assert (
            worker.metrics.registry.get_sample_value("healthscore_data_gap", {"type": "login"}) == 0
        )
    [closed] = _gaps(records, "closed", opened_at)
    assert validator("datagap").is_valid(closed)
    quiet = alerts_for(_alerts(records), "quiet")
    # Exactly one change after green, published once the gap closed: none was lost to
    # holding, none went out while it was open, and the held rescores were not doubled.
    dropped = _dropped(_alerts(records))
    assert dropped is not None
    assert _epoch(dropped["ts"]) >= _epoch(closed["detected_at"])
    assert dropped["triggering_component"]["name"] == "login_frequency"
    after_green = quiet[[a["tier"] for a in quiet].index("green") + 1 :]
    assert [a["seq"] for a in after_green] == [dropped["seq"]]


async def test_a_gap_never_holds_a_csms_override(settings: Settings, redis: Redis) -> None:
    model = parse_model(GAP_MODEL, source="test")
    async with running_worker(settings, model) as worker, Producer(settings) as p:
        for _ in range(3):
            await p.send("login", event("login", "pinned", user_id="u1"))
        await p.send(
            "ticket", event("ticket", "pinned", ticket_id="T", status="opened", priority="low")
        )
        await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: any(a.get("tier") == "green" for a in alerts_for(_alerts(rs), "pinned")),
        )
        green_at = time.time()
        await read_until(
            settings, settings.topic_alerts, lambda rs: bool(_gaps(rs, "open", green_at)), within=30
        )
        held = _held(worker)
        # Its logins have left the window: the drop they cause is held ...
        deadline = time.monotonic() + 40
        while _held(worker) <= held:
            assert time.monotonic() < deadline, "no tier change was held"
            await asyncio.sleep(0.2)
        # ... but a pin is a person's decision, not the silence: it goes out at once.
        await send_override(p, "pinned", override("pinned", "o-1", "red", 3600))
        records = await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: any(
                a["cause"]["kind"] == "override" for a in alerts_for(_alerts(rs), "pinned")
            ),
            within=30,
        )
        assert (
            worker.metrics.registry.get_sample_value("healthscore_data_gap", {"type": "login"}) == 1
        )  # still open
    [pinned] = [
        a for a in alerts_for(_alerts(records), "pinned") if a["cause"]["kind"] == "override"
    ]
    assert (pinned["tier"], pinned["override"]["author"]) == ("red", AUTHOR)


def _alerts(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("kind") != "data_gap"]


def _dropped(alerts: list[dict[str, Any]]) -> dict[str, Any] | None:
    quiet = alerts_for(alerts, "quiet")
    tiers = [a["tier"] for a in quiet]
    if "green" not in tiers:
        return None
    return next((a for a in quiet[tiers.index("green") + 1 :] if a["tier"] != "green"), None)
