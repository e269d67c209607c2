"""Lifecycle through real topics and Redis: an account created less than the onboarding
days ago is scored by the onboarding model, and leaves it when onboarding ends, with no
event, in an alert that says so; an account without created_at is scored by its segment's
model throughout."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.integration.harness import (
    Producer,
    alerts_for,
    event,
    read_until,
    running_worker,
    valid_alert,
)
from worker.clock import FixedClock
from worker.explain import explain
from worker.modelfile.segments import load_models
from worker.scoring.segments import ModelSet
from worker.settings import Settings
from worker.timefmt import rfc3339
from worker.windows.store import WindowStore

DAY = 86400
# Six logins in 14 days: 30 by the default model (red), 100 by onboarding's (green).
MODEL = """
version: lifecycle-test-1
bucket: 1d
tiers:
  margin: 3
  levels:
    - {name: green, label: Doing well, min_score: 70}
    - {name: red, label: Requires attention, min_score: 0}
components:
  activity: {signal: logins, window: 14d, weight: 1, curve: {linear: {bad: 0, good: 20}}}
segments:
  onboarding:
    components:
      activity: {curve: {linear: {bad: 0, good: 4}}}
lifecycle:
  onboarding: {days: 30, model: onboarding}
"""


@pytest.fixture
def model_path(tmp_path: Path) -> str:
    path = tmp_path / "lifecycle.yaml"
    path.write_text(MODEL, "utf-8")
    return str(path)


async def test_an_account_leaves_onboarding_when_it_ends_without_an_event(
    settings: Settings, model_path: str
) -> None:
    settings = settings.replace(model_path=model_path)
    models = load_models(model_path)
    now = time.time()
    clock = FixedClock(now)
    async with running_worker(settings, clock=clock), Producer(settings) as p:
        # Created 29.5 days ago: onboarding ends within the next one and a half days.
        await p.account(
            "young", segment="smb", seats_purchased=3, created_at=rfc3339(now - 29.5 * DAY)
        )
        await p.account("old", segment="smb", seats_purchased=3)
        for account in ("young", "old"):
            for days_ago in range(3):
                for user in ("u1", "u2"):
                    await p.send(
                        "login", event("login", account, ts=now - days_ago * DAY, user_id=user)
                    )
        young_seq = await _settled(settings, models, "young", now, "green")
        await _settled(settings, models, "old", now, "red")
        # To the start of the day after created_at + 30 days (the due schedule has it).
        ends = models.onboarding_ends({"created_at": rfc3339(now - 29.5 * DAY)}, now)
        assert ends is not None
        assert now + 0.5 * DAY <= ends <= now + 1.5 * DAY
        clock.advance(ends + 1 - now)
        records = await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: any(a["seq"] > young_seq for a in alerts_for(rs, "young")),
            within=60,
        )
        redis = Redis.from_url(settings.redis_url)
        try:
            explained = (
                await explain(WindowStore(redis, models.windows), models, "young", clock)
            ).as_dict()
        finally:
            await redis.aclose()

    young = alerts_for(records, "young")
    onboarding = next(a for a in young if a["seq"] == young_seq)
    assert onboarding["tier"] == "green"
    assert onboarding["model"]["segment"] == "onboarding"
    ended = next(a for a in young if a["seq"] > young_seq)
    assert valid_alert(ended)
    assert (ended["previous_tier"], ended["tier"]) == ("green", "red")
    assert ended["cause"]["kind"] == "onboarding_ended"
    assert ended["model"]["segment"] == "default"  # smb has no model of its own
    assert ended["components"]["activity"]["value"] == 6.0
    assert explained["model"]["segment"] == "default"
    assert explained["tier"] == "red"
    assert all(a["model"]["segment"] == "default" for a in alerts_for(records, "old"))


async def _settled(
    settings: Settings, models: ModelSet, account: str, now: float, tier: str
) -> int:
    """The seq of the account's last alert once its six logins are applied and it is in
    ``tier`` (records come in several batches, on two topics in no set order)."""
    redis = Redis.from_url(settings.redis_url)
    store = WindowStore(redis, models.windows)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            state = await store.read(account, now)
            published: Any = state.published
            if (
                state.windows[14].get("login") == 6
                and "segment" in state.attrs
                and published is not None
                and published.tier == tier
            ):
                seq: int = published.seq
                return seq
            await asyncio.sleep(0.1)
    finally:
        await redis.aclose()
    raise AssertionError(f"{account} never settled {tier} with every login")
