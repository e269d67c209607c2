"""Overrides through the real topics and Redis: a CSM pins a tier, the alert says who and
why; the pin expires on time and the account is rescored back; a tombstone clears one
early; ``explain`` (run as users run it) shows the active override and the past ones."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

import orjson
from fastapi.testclient import TestClient
from redis.asyncio import Redis

from tests.integration.harness import (
    Producer,
    Record,
    alerts_for,
    event,
    read_until,
    running_worker,
    valid_alert,
)
from worker.api.app import create_app
from worker.clock import FixedClock
from worker.metrics import Metrics
from worker.modelfile import load_model, parse_model
from worker.pipeline import Pipeline
from worker.replay import Replay
from worker.settings import Settings
from worker.timefmt import rfc3339
from worker.windows.store import WindowStore

HEALTHSCORE = [sys.executable, "-m", "worker.cli"]
AUTHOR = "dana@example.com"


def override(account_id: str, override_id: str, tier: str, lasts: float) -> dict[str, Any]:
    now = time.time()
    return {
        "account_id": account_id,
        "override_id": override_id,
        "kind": "pin",
        "tier": tier,
        "reason": "exec sponsor left, renewal at risk",
        "author": AUTHOR,
        "set_at": rfc3339(now),
        "expires_at": rfc3339(now + lasts),
    }


async def send_override(p: Producer, account_id: str, body: dict[str, Any] | None) -> None:
    await p.raw(
        p.settings.topic_overrides,
        account_id.encode(),
        None if body is None else orjson.dumps(body),
    )


async def explain(settings: Settings, account_id: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(await explain_text(settings, account_id, "--json"))
    return report


async def explain_text(settings: Settings, account_id: str, *flags: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSCORE_")}
    env.update(
        HEALTHSCORE_REDIS_URL=settings.redis_url, HEALTHSCORE_METRICS_PORT="0", COLUMNS="200"
    )
    result = await asyncio.to_thread(
        subprocess.run,
        [*HEALTHSCORE, "explain", account_id, *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def tiers(records: list[dict[str, Any]], account_id: str) -> list[str]:
    return [a["tier"] for a in alerts_for(records, account_id)]


async def test_a_pin_is_alerted_with_its_author_and_expires_on_time(settings: Settings) -> None:
    async with running_worker(settings), Producer(settings) as p:
        await p.send(
            "ticket", event("ticket", "wayne", ticket_id="T-1", status="resolved", priority="low")
        )
        await read_until(
            settings, settings.topic_alerts, lambda rs: tiers(rs, "wayne") == ["green"]
        )
        await send_override(p, "wayne", override("wayne", "o-1", "red", lasts=6))
        pinned = await read_until(
            settings, settings.topic_alerts, lambda rs: tiers(rs, "wayne") == ["green", "red"]
        )
        during = await explain(settings, "wayne")
        during_text = await explain_text(settings, "wayne")
        back = await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: tiers(rs, "wayne") == ["green", "red", "green"],
            within=40,
        )
        after = await explain(settings, "wayne")
        after_text = await explain_text(settings, "wayne")

    red = alerts_for(pinned, "wayne")[1]
    assert valid_alert(red)
    assert red["cause"]["kind"] == "override"
    assert red["cause"]["topic"] == settings.topic_overrides
    assert red["override"]["author"] == AUTHOR
    assert red["override"]["override_id"] == "o-1"
    assert red["score"] == 100.0  # a pin sets the tier; the score is the account's own
    assert "recovery" not in red  # its tier follows the pin: no change of a value helps
    assert during["tier"] == during["published_tier"] == "red"
    assert during["override"]["author"] == AUTHOR
    assert during["override_history"] == []
    assert during["recovery"] is None

    green = alerts_for(back, "wayne")[2]
    assert valid_alert(green)
    assert green["cause"]["kind"] == "override_expired"
    assert "override" not in green
    assert green["delivery"] == "live"
    assert after["override"] is None
    assert [(o["override_id"], o["ended"]) for o in after["override_history"]] == [
        ("o-1", "expired")
    ]
    assert after["published_tier"] == "green"
    assert f"override: tier pinned to red by {AUTHOR}" in during_text
    assert "past override" not in during_text
    assert "its tier follows the pin, not the score" in during_text
    assert f"past override: tier pinned to red by {AUTHOR}, expired" in after_text


async def test_a_tombstone_clears_an_override_early(settings: Settings) -> None:
    async with running_worker(settings), Producer(settings) as p:
        await p.send(
            "ticket", event("ticket", "stark", ticket_id="T-1", status="resolved", priority="low")
        )
        await read_until(
            settings, settings.topic_alerts, lambda rs: tiers(rs, "stark") == ["green"]
        )
        await send_override(p, "stark", override("stark", "o-9", "yellow", lasts=30 * 86400))
        await read_until(
            settings, settings.topic_alerts, lambda rs: tiers(rs, "stark") == ["green", "yellow"]
        )
        await send_override(p, "stark", None)
        records = await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: tiers(rs, "stark") == ["green", "yellow", "green"],
        )
        report = await explain(settings, "stark")
    cleared = alerts_for(records, "stark")[2]
    assert cleared["cause"]["kind"] == "override"
    assert "override" not in cleared
    assert report["override"] is None
    assert [(o["override_id"], o["ended"]) for o in report["override_history"]] == [
        ("o-9", "cleared")
    ]
    # the account API shows the same
    with TestClient(create_app(load_model(), Redis.from_url(settings.redis_url))) as client:
        account = client.get("/accounts/stark").json()
    assert account["override"] is None
    assert [(o["override_id"], o["ended"], o["author"]) for o in account["override_history"]] == [
        ("o-9", "cleared", AUTHOR)
    ]


async def test_an_override_without_expiry_is_dead_lettered(settings: Settings) -> None:
    body = override("rogers", "o-2", "red", lasts=60)
    del body["expires_at"]
    async with running_worker(settings), Producer(settings) as p:
        await send_override(p, "rogers", body)
        letters = await read_until(settings, settings.topic_deadletter, lambda rs: len(rs) >= 1)
    assert letters[0]["reason"] == "schema_violation"
    assert letters[0]["source"]["topic"] == settings.topic_overrides


async def _live_tiers(settings: Settings) -> dict[str, tuple[Any, ...]]:
    """Per account: the published tier and seq, the tier explain gives, the active override."""
    out = {}
    for account in ("pinned", "adjusted", "cleared", "plain"):
        report = await explain(settings, account)
        active = report["override"]
        out[account] = (
            report["published_tier"],
            report["published_seq"],
            report["tier"],
            None if active is None else active["override_id"],
        )
    return out


async def _until_cleared(
    settings: Settings, account: str, override_id: str, within: float = 30.0
) -> None:
    """Until the worker has cleared ``override_id`` of ``account``. The account's first
    alert (green, from its ticket) satisfies the wait for its tier as well as the last
    one does: the pin and its tombstone may come in a later batch, which the worker
    must have applied before it is stopped."""
    deadline = time.monotonic() + within
    while not any(
        past["override_id"] == override_id and past["ended"] == "cleared"
        for past in (await explain(settings, account))["override_history"] or []
    ):
        assert time.monotonic() < deadline, f"{account}: {override_id} was never cleared"
        await asyncio.sleep(0.1)


async def test_a_replay_reproduces_the_live_tiers_with_overrides_in_play(
    settings: Settings, redis: Any
) -> None:
    adjust = {
        **override("adjusted", "o-adj", "red", lasts=86400),
        "kind": "adjust",
        "component": "escalations",
        "subscore": 20,
    }
    del adjust["tier"]
    async with running_worker(settings), Producer(settings) as p:
        for account in ("pinned", "adjusted", "cleared", "plain"):
            await p.send(
                "ticket",
                event("ticket", account, ticket_id="T-1", status="resolved", priority="low"),
            )
        await send_override(p, "pinned", override("pinned", "o-pin", "red", lasts=86400))
        await send_override(p, "adjusted", adjust)
        await send_override(p, "cleared", override("cleared", "o-clr", "yellow", lasts=86400))
        await send_override(p, "cleared", None)
        await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: (
                tiers(rs, "pinned")[-1:] == ["red"]
                and tiers(rs, "adjusted")[-1:] == ["yellow"]
                and tiers(rs, "cleared")[-1:] == ["green"]
                and tiers(rs, "plain") == ["green"]
            ),
        )
        await _until_cleared(settings, "cleared", "o-clr")
    live = await _live_tiers(settings)
    assert live["pinned"][2:] == ("red", "o-pin")
    assert live["adjusted"][2:] == ("yellow", "o-adj")
    assert live["cleared"][3] is None
    alerts_before = await read_until(settings, settings.topic_alerts, lambda rs: True)

    await redis.flushdb()
    report = await Replay(settings, force=True).run()

    assert report.alerts == []  # the rebuilt tiers are the ones consumers were told
    assert await _live_tiers(settings) == live
    after = await read_until(settings, settings.topic_alerts, lambda rs: True, within=5)
    assert len(after) == len(alerts_before)


async def test_an_override_that_expires_while_no_worker_runs_is_expired_on_restart(
    settings: Settings,
) -> None:
    async with running_worker(settings), Producer(settings) as p:
        await p.send(
            "ticket", event("ticket", "banner", ticket_id="T-1", status="resolved", priority="low")
        )
        await read_until(
            settings, settings.topic_alerts, lambda rs: tiers(rs, "banner") == ["green"]
        )
        await send_override(p, "banner", override("banner", "o-3", "red", lasts=3))
        await read_until(
            settings, settings.topic_alerts, lambda rs: tiers(rs, "banner") == ["green", "red"]
        )
    await asyncio.sleep(4)  # expired with no worker running
    async with running_worker(settings):
        records = await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: tiers(rs, "banner") == ["green", "red", "green"],
        )
    assert alerts_for(records, "banner")[2]["cause"]["kind"] == "override_expired"


ONE_COMPONENT = """
version: one-component-test
bucket: 1h
tiers:
  margin: 3
  levels:
    - {name: green, label: Doing well, min_score: 70}
    - {name: yellow, label: Take notice, min_score: 40}
    - {name: red, label: Requires attention, min_score: 0}
components:
  login_frequency:
    signal: logins_per_active_user
    window: 30d
    weight: 1.0
    curve: {linear: {bad: 0, good: 10}}
"""


async def test_the_margin_keeps_no_tier_when_an_override_runs_out(
    settings: Settings, redis: Redis
) -> None:
    """A pin on the tier the account already had publishes nothing; its score climbs under
    it into green's margin (70 <= score < 73); when the pin runs out, the account is
    green: the margin holds a tier against a score, never across an override, whichever
    way the evaluations before were cut into batches (a replay could not rebuild it)."""
    model = parse_model(ONE_COMPONENT, source="test")
    clock = FixedClock(time.time())
    pipeline = Pipeline(settings, model, WindowStore(redis, model), clock, Metrics())
    offsets = iter(range(100))

    def logins(n: int) -> list[Record]:  # each a live event: its time is now
        return [
            Record(
                settings.topic_login,
                0,
                next(offsets),
                b"acme",
                orjson.dumps(event("login", "acme", clock.now(), user_id="u0")),
            )
            for _ in range(n)
        ]

    async def run(records: list[Record]) -> list[str]:
        outcome = await pipeline.process(records)
        await pipeline.store.save(outcome.writes)
        return [alert.tier for _, alert in outcome.alerts]

    assert await run(logins(6)) == ["yellow"]  # 60
    pin = override("acme", "o-1", "yellow", lasts=60)
    overrides = [
        Record(settings.topic_overrides, 0, 0, b"acme", orjson.dumps(pin), int(clock.now() * 1000))
    ]
    assert await run(overrides) == []  # yellow already
    assert await run(logins(1)) == []  # 70, pinned yellow; a live evaluation after a live one
    clock.advance(120)
    expired = await pipeline.expire([(0, "acme")])
    assert [(a.tier, a.cause.kind) for _, a in expired.alerts] == [("green", "override_expired")]
