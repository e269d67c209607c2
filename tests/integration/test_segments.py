"""Segment models through real topics and Redis: an account that changes segment is
rescored under its new model at once, and the alert, ``explain`` and the API name it."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
from importlib import resources
from typing import Any

import httpx
import orjson
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
from worker.modelfile.segments import load_models
from worker.pipeline import Pipeline
from worker.rescore import Outcome
from worker.settings import Settings
from worker.windows.store import WindowStore

EXAMPLE = str(resources.files("worker").joinpath("models", "segments.example.yaml"))
HEALTHSCORE = [sys.executable, "-m", "worker.cli"]


async def test_a_segment_change_rescores_under_the_new_model_at_once(settings: Settings) -> None:
    # 2 users, 16 logins each (login_frequency 75) on 3 seats (license_utilization 73.3):
    # 74.2 by the default model, green; 74.0 by enterprise's (license weight 1.5, green
    # from 80), yellow.
    settings = settings.replace(model_path=EXAMPLE)
    account = "initech"
    async with running_worker(settings), Producer(settings) as p:
        await p.account(account, segment="retail", seats_purchased=3)
        for i in range(32):
            await p.send("login", event("login", account, user_id=f"u{i % 2}"))
        seq = await _settled(settings, account)
        await p.account(account, segment="enterprise", seats_purchased=3)
        moved = await read_until(settings, settings.topic_alerts, _seq(account, seq + 1))
        explained_enterprise = _explain(settings, account)
        served = await _api_account(settings, account)
        await p.account(account, segment="retail", seats_purchased=3)
        back = await read_until(settings, settings.topic_alerts, _seq(account, seq + 2))
        explained = _explain(settings, account)

    by_seq = {a["seq"]: a for a in alerts_for(back, account)}
    green, yellow, green_again = by_seq[seq], by_seq[seq + 1], by_seq[seq + 2]
    assert _seq(account, seq + 1)(moved)
    assert all(valid_alert(a) for a in (green, yellow, green_again))
    assert (green["tier"], green["model"]) == (
        "green",
        {"version": "segments-example-2026.12", "segment": "default"},
    )
    assert yellow["previous_tier"] == "green"
    assert yellow["tier"] == "yellow"
    assert yellow["model"] == {"version": "segments-example-2026.12", "segment": "enterprise"}
    assert yellow["segment"] == "enterprise"
    assert yellow["cause"]["kind"] == "account_update"
    assert yellow["cause"]["topic"] == settings.topic_accounts
    # Every component rescored under enterprise's weights, not only the touched ones.
    assert yellow["components"]["license_utilization"]["weight"] == 1.5
    assert yellow["components"]["login_frequency"]["weight"] == 1.0
    assert abs(yellow["score"] - 74.0) < 0.01
    assert green_again["tier"] == "green"
    assert green_again["model"]["segment"] == "default"
    assert green_again["cause"]["kind"] == "account_update"
    assert green_again["components"]["license_utilization"]["weight"] == 1.0

    assert explained_enterprise["model"] == {
        "version": "segments-example-2026.12",
        "segment": "enterprise",
    }
    assert explained_enterprise["tier"] == "yellow"
    assert {c["name"]: c["weight"] for c in explained_enterprise["components"]}[
        "license_utilization"
    ] == 1.5
    assert served["segment_model"] == "enterprise"
    assert served["tier"] == "yellow"
    assert explained["model"] == {"version": "segments-example-2026.12", "segment": "default"}
    assert explained["segment"] == "retail"


def _seq(account: str, seq: int) -> Any:
    return lambda rs: any(a["seq"] == seq for a in alerts_for(rs, account))


async def _settled(settings: Settings, account: str) -> int:
    """The seq of the account's last alert once all it was sent is applied and scored:
    logins and attributes come on different topics, in no set order, and the first
    alert may come out of a part of them."""
    redis = Redis.from_url(settings.redis_url)
    store = WindowStore(redis, load_models(EXAMPLE).windows)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            state = await store.read(account, time.time())
            if (
                state.attrs.get("segment") == "retail"
                and state.published is not None
                and state.windows[30].get("login") == 32
                and state.published.tier == "green"
            ):
                seq: int = state.published.seq
                return seq
            await asyncio.sleep(0.1)
    finally:
        await redis.aclose()
    raise AssertionError(f"{account} never settled green with every login")


async def _api_account(settings: Settings, account: str) -> dict[str, Any]:
    redis = Redis.from_url(settings.redis_url)
    app = create_app(load_models(EXAMPLE), redis)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api"
        ) as client:
            response = await client.get(f"/accounts/{account}")
    finally:
        await redis.aclose()
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _explain(settings: Settings, account: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSCORE_")}
    env |= {"HEALTHSCORE_REDIS_URL": settings.redis_url, "HEALTHSCORE_MODEL_PATH": EXAMPLE}
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


async def test_a_new_segment_model_reads_its_own_windows_not_the_old_values(
    settings: Settings,
) -> None:
    # Onboarding counts logins over 14 days, the default over 30: 30 logins 20 days ago
    # and 2 today are login_frequency 16 (75) by the default model and 1 (0) by
    # onboarding's. A value kept from the default model's scoring would keep it green.
    settings = settings.replace(model_path=EXAMPLE)
    account = "hooli"
    async with running_worker(settings), Producer(settings) as p:
        await p.account(account, segment="retail", seats_purchased=3)
        for i in range(30):
            await p.send(
                "login", event("login", account, ts=time.time() - 20 * 86400, user_id=f"u{i % 2}")
            )
        for i in range(2):
            await p.send("login", event("login", account, user_id=f"u{i}"))
        seq = await _settled(settings, account)
        await p.account(account, segment="onboarding", seats_purchased=3)
        alerts = await read_until(settings, settings.topic_alerts, _seq(account, seq + 1))
    moved = next(a for a in alerts_for(alerts, account) if a["seq"] == seq + 1)
    assert moved["model"]["segment"] == "onboarding"
    assert moved["tier"] == "yellow"
    assert moved["tier_label"] == "Onboarding stalled"
    assert moved["components"]["login_frequency"]["value"] == 1.0
    assert "nps" not in moved["components"]


async def test_a_change_moved_by_a_component_the_new_model_dropped_is_published(
    settings: Settings, redis: Redis
) -> None:
    # Scored by the default model before its account record came (records of different
    # topics come in no set order): yellow, 55.6, with a detractor's nps at sub-score 0.
    # The record moves it to onboarding, which has no nps: 58.8 there (its seats unused
    # pull it down), yellow still, so nothing is published and the last published
    # scorecard keeps nps. Two more logins then lift it to 61.8, green; against that
    # scorecard, nps leaving it pushes the score up most, so nps is the trigger, though
    # onboarding has no such component and no record of the batch feeds it. (The
    # pipeline on real Redis, no broker: the order of the records is the test's.)
    models = load_models(EXAMPLE)
    pipeline = Pipeline(
        settings, models, WindowStore(redis, models.windows), FixedClock(time.time()), Metrics()
    )
    account, day_ago, offsets = "pied-piper", time.time() - 86400, itertools.count()

    def record(topic: str, body: dict[str, Any]) -> Record:
        return Record(topic, 0, next(offsets), account.encode(), orjson.dumps(body))

    def login() -> Record:
        return record(
            settings.topic_login,
            event("login", account, day_ago, user_id="u0", session_seconds=1200),
        )

    async def scored(records: list[Record]) -> Outcome:
        outcome = await pipeline.process(records)
        await pipeline.store.save(outcome.writes)
        assert outcome.dead_letters == []
        return outcome

    first = await scored(
        [
            *(login() for _ in range(8)),  # 8 logins of one user: login_frequency 25
            *(
                record(
                    settings.topic_feature_use,
                    event("feature_use", account, day_ago, user_id="u0", feature=f"f{n}"),
                )
                for n in range(8)
            ),  # adoption 100 by either model
            record(settings.topic_survey, event("survey", account, day_ago, kind="nps", score=0)),
        ]
    )
    assert [(a.tier, a.model.segment, round(a.score, 1)) for _, a in first.alerts] == [
        ("yellow", "default", 55.6)
    ]
    moved = await scored(
        [
            record(
                settings.topic_accounts,
                {"account_id": account, "segment": "onboarding", "seats_purchased": 100},
            )
        ]
    )
    assert moved.alerts == []
    batch = [login(), login()]
    green = await scored(batch)

    [(_, alert)] = green.alerts
    assert (alert.previous_tier, alert.tier, alert.seq) == ("yellow", "green", 2)
    assert round(alert.score, 1) == 61.8
    assert alert.model.segment == "onboarding"
    assert alert.triggering_component is not None
    assert alert.triggering_component.name == "nps"
    assert alert.triggering_component.value is None
    # No record fed it: the cause is the batch's last one.
    assert (alert.cause.kind, alert.cause.offset) == ("event", batch[-1].offset)
