"""Each event changes the windows at most once: re-deliveries and producer duplicates are
skipped. Real Redis, the real pipeline; records are fed directly (no broker needed)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from tests.integration.harness import Record, event
from worker.clock import FixedClock
from worker.metrics import Metrics
from worker.modelfile import load_model
from worker.pipeline import Pipeline
from worker.rescore import Outcome
from worker.runtime.delivery import Delivery, once
from worker.settings import Settings
from worker.windows import keys
from worker.windows.store import WindowStore


@pytest.fixture
async def restarted(settings: Settings) -> AsyncIterator[Callable[[], Pipeline]]:
    """A new pipeline on each call, holding nothing: a worker process started afresh."""
    clients: list[Redis] = []

    def start() -> Pipeline:
        clients.append(redis := Redis.from_url(settings.redis_url))
        model = load_model()
        return Pipeline(
            settings, model, WindowStore(redis, model), FixedClock(time.time()), Metrics()
        )

    yield start
    for client in clients:
        await client.aclose()


@pytest.fixture
def pipeline(restarted: Callable[[], Pipeline]) -> Pipeline:
    return restarted()


def steps(pipeline: Pipeline) -> Delivery:
    """Delivery's Redis steps, one at a time: these tests crash before publishing."""
    return Delivery(pipeline.store, _not_published, once)


async def _not_published(outcome: Outcome) -> None:
    raise AssertionError("nothing here publishes")


def logins(settings: Settings, account: str, offsets: range, partition: int = 0) -> list[Record]:
    return [
        Record(
            settings.topic_login,
            partition,
            o,
            account.encode(),
            orjson.dumps(event("login", account, user_id=f"u{o}", session_seconds=60)),
        )
        for o in offsets
    ]


async def counters(settings: Settings, account: str) -> dict[str, float]:
    redis = Redis.from_url(settings.redis_url)
    try:
        raw = await redis.hgetall(f"hs:{{{account}}}:c")
    finally:
        await redis.aclose()
    return {k.decode().split("|")[1]: float(v) for k, v in raw.items()}


async def run(pipeline: Pipeline, records: list[Record]) -> None:
    outcome = await pipeline.process(records)
    await pipeline.store.save(outcome.writes)


def skipped(pipeline: Pipeline, name: str) -> float:
    registry = pipeline.metrics.registry
    return registry.get_sample_value(f"healthscore_events_{name}_total") or 0.0


async def test_a_redelivered_batch_is_not_applied_twice(
    settings: Settings, pipeline: Pipeline
) -> None:
    batch = logins(settings, "acme", range(0, 5))
    await run(pipeline, batch)
    await run(pipeline, batch)
    assert await counters(settings, "acme") == {"login": 5, "sess_n": 5, "sess_sum": 300}
    assert skipped(pipeline, "replayed") == 5


async def test_a_redelivery_from_an_older_offset_applies_only_the_new_events(
    settings: Settings, pipeline: Pipeline
) -> None:
    records = logins(settings, "acme", range(0, 8))
    await run(pipeline, records[:3])
    await run(pipeline, records)  # the consumer restarted from offset 0
    assert (await counters(settings, "acme"))["login"] == 8
    assert skipped(pipeline, "replayed") == 3


async def test_fences_are_per_source_partition(settings: Settings, pipeline: Pipeline) -> None:
    await run(pipeline, logins(settings, "acme", range(10, 12), partition=0))
    await run(pipeline, logins(settings, "acme", range(0, 2), partition=1))  # lower, other source
    assert (await counters(settings, "acme"))["login"] == 4


async def test_producer_duplicates_at_other_offsets_count_once(
    settings: Settings, pipeline: Pipeline
) -> None:
    body = orjson.dumps(event("login", "acme", user_id="u1"))
    dupes = [Record(settings.topic_login, 0, o, b"acme", body) for o in (3, 4, 9)]
    await run(pipeline, dupes[:2])
    await run(pipeline, dupes[2:])
    assert (await counters(settings, "acme"))["login"] == 1
    assert skipped(pipeline, "duplicate") == 2


async def test_one_account_s_huge_batch_is_applied_whole(
    settings: Settings, pipeline: Pipeline
) -> None:
    """More events, ids and users than one Redis command of the script takes at once."""
    batch = logins(settings, "hot", range(0, 9000))
    batch += [Record(r.topic, 0, 9000 + r.offset, r.key, r.value) for r in batch[:500]]
    await run(pipeline, batch)
    assert await counters(settings, "hot") == {"login": 9000, "sess_n": 9000, "sess_sum": 540000}
    assert skipped(pipeline, "duplicate") == 500
    redis = Redis.from_url(settings.redis_url)
    try:
        assert await redis.zcard("hs:{hot}:u") == 9000
    finally:
        await redis.aclose()


def sessions(settings: Settings, account: str) -> list[Record]:
    """20 logins of one user with 15-minute sessions (green), then 40 users with one
    1-minute session each: all 60 together score red."""
    bodies = [event("login", account, user_id="u0", session_seconds=900) for _ in range(20)]
    bodies += [event("login", account, user_id=f"u{n}", session_seconds=60) for n in range(1, 41)]
    return [
        Record(settings.topic_login, 0, o, account.encode(), orjson.dumps(b))
        for o, b in enumerate(bodies)
    ]


async def published(settings: Settings, account: str) -> dict[str, Any] | None:
    async with Redis.from_url(settings.redis_url) as redis:
        raw = await redis.hget(keys.state_key(account), keys.PUBLISHED)
    return None if raw is None else dict(orjson.loads(raw))


async def test_a_crash_between_saving_and_sending_resends_exactly_the_saved_alert(
    settings: Settings, pipeline: Pipeline, restarted: Callable[[], Pipeline]
) -> None:
    records = sessions(settings, "acme")
    first = await pipeline.process(records[:20])
    await steps(pipeline).save(first)  # crash here: saved with its outbox, never sent
    [(_, alert)] = first.alerts
    assert (alert.seq, alert.tier) == (1, "green")
    saved = await published(settings, "acme")
    assert saved is not None
    assert (saved["seq"], saved["tier"], round(saved["score"], 2)) == (1, "green", alert.score)

    after = restarted()  # a new process: nothing held, all it knows is in Redis
    unsent = await steps(after).unsent([0])
    assert [a for _, a in unsent.alerts] == [alert]  # the very same record
    # The re-delivery is cut differently (more events in one batch): it is decided
    # against the saved tier, so seq 1 can never come out as a second, other change.
    again = await after.process(records)
    assert [(a.seq, a.previous_tier, a.tier) for _, a in again.alerts] == [(2, "green", "red")]
    assert skipped(after, "replayed") == 20

    await steps(after).clear(unsent)
    assert (await steps(after).unsent([0])).alerts == []


async def test_an_alert_sent_before_the_crash_is_resent_unchanged(
    settings: Settings, pipeline: Pipeline, restarted: Callable[[], Pipeline]
) -> None:
    outcome = await pipeline.process(sessions(settings, "acme")[:20])
    await steps(pipeline).save(outcome)
    # sent, then the crash: the outbox was not cleared
    after = restarted()
    resent = await steps(after).unsent([0, 1, 2])
    assert resent.alerts, "nothing was saved to send again"
    assert resent.alerts == outcome.alerts
    await steps(after).clear(resent)
    assert (await steps(after).unsent([0])).alerts == []
    saved = await published(settings, "acme")
    assert saved is not None
    assert (saved["seq"], saved["tier"]) == (1, "green")


def _record(
    settings: Settings, event_type: str, offset: int, body: dict[str, object], partition: int = 0
) -> Record:
    topic = settings.event_topics
    [name] = [t for t, kind in topic.items() if kind == event_type]
    return Record(name, partition, offset, str(body["account_id"]).encode(), orjson.dumps(body))


def _ticket(event_id: str, ts: float | None = None) -> dict[str, object]:
    body = event("ticket", "acme", ts, ticket_id="T-1", status="opened", priority="high")
    return {**body, "event_id": event_id}


async def test_event_ids_are_unique_per_type_only(settings: Settings, pipeline: Pipeline) -> None:
    """A ticket reusing a login's id is another event; the same id twice under one type
    (at another offset) is a producer duplicate."""
    login = {**event("login", "acme", user_id="u1"), "event_id": "42"}
    await run(
        pipeline,
        [_record(settings, "login", 0, login), _record(settings, "ticket", 0, _ticket("42"))],
    )
    await run(pipeline, [_record(settings, "ticket", 5, _ticket("42"))])  # the producer's retry
    assert await counters(settings, "acme") == {"login": 1, "tk_open": 1}
    assert skipped(pipeline, "duplicate") == 1


def applied(pipeline: Pipeline, event_type: str) -> float:
    registry = pipeline.metrics.registry
    return registry.get_sample_value("healthscore_events_total", {"type": event_type}) or 0.0


async def test_events_total_counts_only_applied_events_by_type(
    settings: Settings, pipeline: Pipeline
) -> None:
    first = [
        _record(settings, "login", 0, event("login", "acme", user_id="u1")),
        _record(settings, "ticket", 0, _ticket("t-1")),
    ]
    await run(pipeline, first)
    assert (applied(pipeline, "login"), applied(pipeline, "ticket")) == (1, 1)
    too_old = time.time() - 200 * 86400  # before the longest window (90 days)
    await run(
        pipeline,
        [
            first[1],  # re-delivered: at its source's applied offset
            _record(settings, "ticket", 1, _ticket("t-1")),  # a producer duplicate
            _record(settings, "login", 1, event("login", "acme", too_old, user_id="u2")),
            _record(settings, "login", 2, event("login", "acme", user_id="u3")),
            _record(settings, "ticket", 2, _ticket("t-2")),
            _record(settings, "survey", 0, event("survey", "acme", kind="nps", score=9)),
        ],
    )
    assert {t: applied(pipeline, t) for t in ("login", "ticket", "survey", "feature_use")} == {
        "login": 2,
        "ticket": 2,
        "survey": 1,
        "feature_use": 0,
    }
    assert (
        skipped(pipeline, "replayed"),
        skipped(pipeline, "duplicate"),
        skipped(pipeline, "too_old"),
    ) == (1, 1, 1)
    assert await counters(settings, "acme") == {"login": 2, "tk_open": 2, "nps_n": 1, "nps_pro": 1}
