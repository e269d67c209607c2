"""The window sums the script keeps per account (summed once per bucket, then added
to) always equal a full summing of the counters: for new accounts, for accounts
whose cache is current, and across a bucket boundary. Real Redis, the real pipeline."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator

import orjson
import pytest
from redis.asyncio import Redis

from tests.integration.harness import Record, event
from worker.clock import FixedClock
from worker.metrics import Metrics
from worker.pipeline import Pipeline
from worker.scoring.model import load_model
from worker.settings import Settings
from worker.windows import keys
from worker.windows.store import WindowStore

DAY = 86400.0
ACCOUNTS = [f"cache-{i}" for i in range(30)]


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


def _batch(settings: Settings, rng: random.Random, now: float, start: int,
           size: int) -> list[Record]:
    out = []
    for offset in range(start, start + size):
        account = rng.choice(ACCOUNTS)
        ts = now - rng.uniform(0, 100 * DAY)  # some beyond the longest window
        if rng.random() < 0.5:
            body = event("login", account, ts, user_id=f"u{rng.randrange(6)}",
                         session_seconds=rng.uniform(10, 900))
            topic = settings.topic_login
        else:
            body = event("feature_use", account, ts, user_id=f"u{rng.randrange(6)}",
                         feature=f"f{rng.randrange(9)}")
            topic = settings.topic_feature_use
        out.append(Record(topic, 0, offset, account.encode(), orjson.dumps(body)))
    return out


async def _cached(redis: Redis, account: str) -> dict[str, object] | None:
    raw = await redis.hget(keys.state_key(account), "sums")
    return None if raw is None else orjson.loads(raw)


async def test_kept_sums_equal_a_full_summing(settings: Settings, redis: Redis) -> None:
    model = load_model()
    clock = FixedClock(time.time())
    store = WindowStore(redis, model)
    pipeline = Pipeline(settings, model, store, clock, Metrics())
    rng = random.Random(5)
    offset = compared = 0
    for round_ in range(12):
        records = _batch(settings, rng, clock.now(), offset, 40)
        offset += len(records)
        await pipeline.save(await pipeline.process(records))
        if round_ % 4 == 3:
            clock.advance(DAY)  # the next batch starts a new bucket
        for account in ACCOUNTS:
            kept = await _cached(redis, account)
            if kept is None or kept["stamp"] != store.stamp(store.now_bucket(clock.now())):
                continue
            await store.read(account, clock.now())  # sums everything again, in the script
            summed = await _cached(redis, account)
            assert summed is not None
            assert _rounded(kept["sums"]) == _rounded(summed["sums"]), (account, round_)
            # Kept, the next change may be early (a refreshed member), never late.
            assert -1 < kept["next"] <= summed["next"] or kept["next"] == summed["next"] == -1
            compared += 1
    assert compared >= 100  # the kept sums were current often enough to mean something


def _rounded(sums: object) -> list[dict[str, float]]:
    assert isinstance(sums, list)
    return [{k: round(float(v), 6) for k, v in window.items()} if window else {}
            for window in sums]
