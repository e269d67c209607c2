"""A silent account's window keys expire by themselves: every one of them gets its
expiry, even one first written after the bucket's maintenance, at the latest when
the account is rescored for its windows rolling. Real Redis, the real pipeline."""

from __future__ import annotations

import time

import orjson
from redis.asyncio import Redis

from tests.integration.harness import Record, event
from worker.clock import FixedClock
from worker.metrics import Metrics
from worker.modelfile import load_model
from worker.pipeline import Pipeline
from worker.settings import Settings
from worker.windows import keys
from worker.windows.store import WindowStore

ACCOUNT = "expiring"


async def test_a_key_written_after_the_maintenance_expires_once_the_account_goes_silent(
    settings: Settings,
) -> None:
    redis = Redis.from_url(settings.redis_url)
    clock = FixedClock(time.time())
    model = load_model()
    pipeline = Pipeline(settings, model, WindowStore(redis, model), clock, Metrics())
    counters, _state, ids, features, users = keys.account_keys(ACCOUNT, ("features", "users"))
    try:
        # The bucket's first call maintains the account: its features set does not exist yet.
        login = event("login", ACCOUNT, clock.now(), user_id="u1")
        await pipeline.store.save(
            (
                await pipeline.process(
                    [Record(settings.topic_login, 0, 0, ACCOUNT.encode(), orjson.dumps(login))]
                )
            ).writes
        )
        use = event("feature_use", ACCOUNT, clock.now(), user_id="u1", feature="reports")
        await pipeline.store.save(
            (
                await pipeline.process(
                    [Record(settings.topic_feature_use, 0, 0, ACCOUNT.encode(), orjson.dumps(use))]
                )
            ).writes
        )
        assert await redis.ttl(features) == -1  # written after the maintenance: no expiry yet

        # Silence: the account's next rescore is its windows' first roll.
        due_at = await redis.zscore(keys.due_key(0), ACCOUNT)
        assert due_at is not None
        clock.advance(due_at - clock.now() + 1)
        due = await pipeline.due({0}, 100)
        assert due == [(0, ACCOUNT)]
        await pipeline.store.save((await pipeline.expire(due)).writes)

        # Still inside the longer windows, so still there, each with its expiry.
        for key in (counters, users, features):
            assert await redis.ttl(key) > 0, key
        # -1 would be no expiry; -2 is gone: its ids are past the de-duplication horizon.
        assert await redis.ttl(ids) != -1
    finally:
        await redis.aclose()
