"""The recent event ids an account remembers (producer duplicates are told by them): at
most ``dedup_max_ids`` of them, the newest kept, and every one remembered tells its
event's duplicate. Real Redis, the real pipeline, operations drawn by hypothesis: new
events, producer duplicates, the set expiring."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import orjson
from hypothesis import HealthCheck, given
from hypothesis import settings as given_settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from tests.integration.harness import Record, event
from worker.clock import FixedClock
from worker.metrics import Metrics
from worker.modelfile import load_model
from worker.pipeline import Pipeline
from worker.settings import Settings
from worker.windows import keys
from worker.windows.plan import event_key
from worker.windows.store import WindowStore

ACCOUNT = "ids-1"
BOUND = 6
IDS_KEY = keys.account_keys(ACCOUNT, ())[2]

# (kind, size): "new" sends `size` events never sent, "again" resends the newest `size`,
# "expire" deletes the ids set.
Step = tuple[str, int]
steps = st.lists(
    st.tuples(st.sampled_from(["new", "new", "again", "expire"]), st.integers(1, 9)),
    min_size=1,
    max_size=12,
)


class _Run:
    def __init__(self, settings: Settings, redis: Redis) -> None:
        self.settings, self.redis = settings, redis
        self.clock = FixedClock(time.time())
        model = load_model()
        self.pipeline = Pipeline(
            settings, model, WindowStore(redis, model, dedup_max_ids=BOUND), self.clock, Metrics()
        )
        self.sent: list[str] = []  # event ids, oldest first
        self.offset = 0

    async def send(self, ids: Sequence[str]) -> None:
        records = []
        for event_id in ids:
            body = event(
                "login", ACCOUNT, self.clock.now() - 60, user_id="u1", session_seconds=60.0
            )
            body["event_id"] = event_id
            records.append(
                Record(
                    self.settings.topic_login, 0, self.offset, ACCOUNT.encode(), orjson.dumps(body)
                )
            )
            self.offset += 1
        await self.pipeline.store.save((await self.pipeline.process(records)).writes)
        self.clock.advance(1)  # ids are remembered by the second they came

    def duplicates(self) -> float:
        value = self.pipeline.metrics.registry.get_sample_value(
            "healthscore_events_duplicate_total"
        )
        return value or 0.0


async def _play(settings: Settings, redis: Redis, plan: list[Step]) -> None:
    await redis.flushdb()
    run = _Run(settings, redis)
    for kind, size in plan:
        if kind == "new":
            fresh = [f"e{len(run.sent) + i}" for i in range(size)]
            await run.send(fresh)
            run.sent += fresh
        elif kind == "again" and run.sent:
            again = run.sent[-size:]
            remembered = await redis.zmscore(IDS_KEY, [event_key("login", i) for i in again])
            before = run.duplicates()
            await run.send(again)
            # Each resent id still remembered is told a duplicate, and only those.
            told = sum(score is not None for score in remembered)
            assert run.duplicates() - before == told, (plan, again)
        elif kind == "expire":
            await redis.delete(IDS_KEY)
        count = await redis.zcard(IDS_KEY)
        assert count <= BOUND, (plan, count)


def test_recent_ids_stay_bounded(settings: Settings) -> None:
    @given_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(plan=steps)
    def check(plan: list[Step]) -> None:
        async def play() -> None:
            redis = Redis.from_url(settings.redis_url)
            try:
                await _play(settings, redis, plan)
            finally:
                await redis.aclose()

        asyncio.run(play())

    check()


async def test_past_the_bound_the_oldest_ids_go(settings: Settings, redis: Redis) -> None:
    run = _Run(settings, redis)
    for i in range(BOUND + 3):  # one a second: the set keeps the newest
        await run.send([f"e{i}"])
    assert await redis.zcard(IDS_KEY) == BOUND
    await run.send(["e0"])  # trimmed away: taken as new
    assert run.duplicates() == 0
    await run.send([f"e{BOUND + 2}"])  # the newest: a duplicate
    assert run.duplicates() == 1
