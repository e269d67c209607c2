"""Trend components through real topics and Redis: an account whose logins fall from its
own previous week drops a tier, with no new event, and the alert names the trend; an
account without a previous week has no trend value."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from importlib import resources
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
from worker.modelfile import load_model
from worker.settings import Settings
from worker.windows.store import WindowStore

DAY = 86400
HEALTHSCORE = [sys.executable, "-m", "worker.cli"]
# Any login in 14 days is full activity; the trend alone tells a steady account from
# one whose logins fell: -50% and below scores 0, and 100 with 0 is 50, red.
MODEL = """
version: trends-test-1
bucket: 1d
tiers:
  margin: 3
  levels:
    - {name: green, label: Doing well, min_score: 70}
    - {name: red, label: Requires attention, min_score: 0}
components:
  activity:
    description: Logins in 14 days; one is enough.
    signal: logins
    window: 14d
    weight: 1
    curve: {linear: {bad: 0, good: 1}}
  login_trend:
    description: Change of logins in 7 days from the 7 days before.
    signal: logins
    trend: previous
    window: 7d
    weight: 1
    curve: {linear: {bad: -50, good: 0}}
"""


@pytest.fixture
def model_path(tmp_path: Path) -> str:
    path = tmp_path / "trends.yaml"
    path.write_text(MODEL, "utf-8")
    return str(path)


async def test_a_drop_from_the_previous_week_drops_the_tier(
    settings: Settings, model_path: str
) -> None:
    settings = settings.replace(model_path=model_path)
    model = load_model(model_path)
    now = time.time()
    clock = FixedClock(now)
    async with running_worker(settings, clock=clock), Producer(settings) as p:
        for account in ("steady", "newbie"):
            await p.account(account, segment="smb")
        # Two logins a day for two weeks: this week as many as the week before.
        for days_ago in range(14):
            for user in ("u1", "u2"):
                await p.send(
                    "login", event("login", "steady", ts=now - days_ago * DAY, user_id=user)
                )
        # Three days of logins: no previous week to compare with.
        for days_ago in range(3):
            await p.send("login", event("login", "newbie", ts=now - days_ago * DAY, user_id="u1"))
        steady_seq = await _settled(settings, model, "steady", now, logins=28)
        await _settled(settings, model, "newbie", now, logins=3)
        explained_steady = _explain(settings, model_path, "steady")
        explained_newbie = _explain(settings, model_path, "newbie")

        # Four days on without a login: this week holds 6 of them, the week before 14.
        clock.advance(4 * DAY)
        records = await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: _after(rs, "steady", steady_seq) is not None,
            within=60,
        )
        redis = Redis.from_url(settings.redis_url)
        try:
            store = WindowStore(redis, model)
            dropped_explained = (await explain(store, model, "steady", clock)).as_dict()
            newbie_later = (await explain(store, model, "newbie", clock)).as_dict()
        finally:
            await redis.aclose()

    dropped = _after(records, "steady", steady_seq)
    assert dropped is not None
    assert valid_alert(dropped)
    assert (dropped["previous_tier"], dropped["tier"]) == ("green", "red")
    assert dropped["cause"]["kind"] == "window_expiry"
    assert dropped["triggering_component"]["name"] == "login_trend"
    assert abs(dropped["components"]["login_trend"]["value"] - 100 * (6 - 14) / 14) < 1e-9
    assert dropped["components"]["login_trend"]["subscore"] == 0.0
    assert dropped["components"]["activity"]["subscore"] == 100.0

    steady_trend = _component(explained_steady, "login_trend")
    assert steady_trend["value"] == 0.0
    assert steady_trend["trend"] == "+0% vs the previous 7 days"
    assert "trend" not in _component(explained_steady, "activity")  # as it always was
    assert _component(dropped_explained, "login_trend")["trend"] == "-57% vs the previous 7 days"

    assert all("login_trend" not in a["components"] for a in alerts_for(records, "newbie"))
    assert any(a["tier"] == "green" for a in alerts_for(records, "newbie"))
    for shown in (explained_newbie, newbie_later):
        newbie_trend = _component(shown, "login_trend")
        assert newbie_trend["value"] is None
        assert newbie_trend["trend"] == "no previous 7 days to compare with"


def _after(records: list[dict[str, Any]], account: str, seq: int) -> dict[str, Any] | None:
    return next((a for a in alerts_for(records, account) if a["seq"] > seq), None)


def _component(explained: dict[str, Any], name: str) -> dict[str, Any]:
    component: dict[str, Any] = next(c for c in explained["components"] if c["name"] == name)
    return component


async def _settled(settings: Settings, model: Any, account: str, now: float, logins: int) -> int:
    """The seq of the account's green alert once every login sent is applied and scored
    (logins come in several batches, and an alert may come out of a part of them)."""
    redis = Redis.from_url(settings.redis_url)
    store = WindowStore(redis, model)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            state = await store.read(account, now)
            if (
                state.windows[14].get("login") == logins
                and state.published is not None
                and state.published.tier == "green"
            ):
                seq: int = state.published.seq
                return seq
            await asyncio.sleep(0.1)
    finally:
        await redis.aclose()
    raise AssertionError(f"{account} never settled green with every login")


def _explain(settings: Settings, model_path: str, account: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSCORE_")}
    env |= {"HEALTHSCORE_REDIS_URL": settings.redis_url, "HEALTHSCORE_MODEL_PATH": model_path}
    result = subprocess.run(
        [*HEALTHSCORE, "explain", account, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_check_model_shows_trends_and_names_a_trend_it_cannot_keep(tmp_path: Path) -> None:
    """As a user runs it: the example checks; a trend over a distinct count is refused,
    naming the field and why."""
    example = str(resources.files("worker").joinpath("models", "trends.example.yaml"))
    ok = subprocess.run(
        [*HEALTHSCORE, "check-model", example], capture_output=True, text=True, timeout=60
    )
    assert ok.returncode == 0, ok.stderr
    assert "login_trend          logins                   window 7 buckets vs the 7 before" in (
        ok.stdout
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        MODEL.replace("signal: logins\n    trend", "signal: distinct_features\n    trend")
    )
    result = subprocess.run(
        [*HEALTHSCORE, "check-model", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert (
        f"{bad}: components.login_trend.trend: signal 'distinct_features' counts distinct "
        "features, and a distinct count of the previous window is not known" in result.stderr
    )
