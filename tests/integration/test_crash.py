"""Never wrong after a crash: workers SIGKILLed mid-stream, a rebalance, a Redis crash;
each run ends with exactly what a single clean run gives, as a pure computation of
the same events and model says (``chaos.verify``): the counters, distinct sets,
component values and scores of every account, in Redis and in the worker's cache,
and every tier change on the alerts topic (duplicates allowed, with one alert_id)."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from redis.asyncio import Redis

from tests.integration import chaos
from tests.integration.harness import running_worker
from worker.app import Worker
from worker.embedded import EmbeddedRedis
from worker.pipeline import Outcome, Pipeline
from worker.runtime.loop import ConsumerLoop
from worker.runtime.topics import ensure_topics
from worker.settings import Settings
from worker.windows import keys

KILLS = 4


@dataclass(frozen=True, slots=True)
class Produced:
    stream: list[tuple[str, dict[str, Any]]]
    ends: dict[TopicPartition, int]  # where each input partition ends
    expected: dict[str, dict[str, float]]  # counters per account


async def _prepared(settings: Settings, rng: random.Random, events: int = chaos.EVENTS
                    ) -> Produced:
    stream = chaos.stream(rng, events)
    await ensure_topics(settings)
    ends = await chaos.produce_to(settings, stream)
    return Produced(stream, ends, chaos.reference(stream))


async def _settled(settings: Settings, redis: Redis, produced: Produced,
                   workers: list[subprocess.Popen[bytes]], log: Path) -> chaos.Figures:
    """Once the counters are right: let the workers commit everything and stop, then
    check all they left behind."""
    await chaos.wait_for_commits(settings, produced.ends, log)
    chaos.stop(workers)
    return await chaos.verify(settings, redis, produced.stream)


async def test_sigkill_loop_ends_with_the_exact_state_of_a_pure_computation(
    settings: Settings, tmp_path: Path
) -> None:
    log = tmp_path / "workers.log"
    settings = settings.replace(batch_max_records=500)  # more batches, more places to die in
    rng = random.Random(20261122)
    produced = await _prepared(settings, rng)
    redis = Redis.from_url(settings.redis_url)
    worker = chaos.start_worker(settings, log)
    try:
        for kill in range(1, KILLS + 1):
            # Spread over the stream, however fast the worker gets through it.
            await chaos.wait_for_commits(settings, produced.ends, log,
                                         share=kill / (KILLS + 1))
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            worker = chaos.start_worker(settings, log)
        await chaos.wait_for_state(redis, produced.expected, [worker], log)
        figures = await _settled(settings, redis, produced, [worker], log)
    finally:
        chaos.stop([worker])
        await redis.aclose()
    assert len(produced.expected) == chaos.ACCOUNTS
    assert figures.accounts == chaos.ACCOUNTS
    print(figures.report(f"{KILLS} worker SIGKILLs"))


async def test_a_worker_killed_mid_stream_hands_its_partitions_over_exactly(
    settings: Settings, tmp_path: Path
) -> None:
    log = tmp_path / "workers.log"
    settings = settings.replace(batch_max_records=500)
    rng = random.Random(7)
    redis = Redis.from_url(settings.redis_url)
    await ensure_topics(settings)
    workers = [chaos.start_worker(settings, log) for _ in range(3)]
    try:
        produced = await _prepared(settings, rng, events=30_000)
        await chaos.wait_for_progress(redis, log)
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        await chaos.wait_for_state(redis, produced.expected, workers[1:], log)
        figures = await _settled(settings, redis, produced, workers, log)
    finally:
        chaos.stop(workers)
        await redis.aclose()
    assert "assigned" in log.read_text()
    assignments = log.read_text().count("assigned ")
    print(figures.report(f"1 worker SIGKILL of 3 ({assignments} partition assignments)"))


async def test_a_redis_crash_mid_stream_loses_and_doubles_nothing(
    settings: Settings, tmp_path: Path, restartable_redis: EmbeddedRedis
) -> None:
    log = tmp_path / "workers.log"
    settings = settings.replace(redis_url=restartable_redis.url, batch_max_records=500,
                                retry_backoff_max_seconds=0.5)
    rng = random.Random(11)
    produced = await _prepared(settings, rng, events=30_000)
    worker = chaos.start_worker(settings, log)
    try:
        async with Redis.from_url(settings.redis_url) as redis:
            await chaos.wait_for_progress(redis, log)
        restartable_redis.kill()  # every acknowledged write is already fsynced
        await asyncio.sleep(1.0)
        restartable_redis.start()
        async with Redis.from_url(settings.redis_url) as redis:
            await chaos.wait_for_state(redis, produced.expected, [worker], log)
            figures = await _settled(settings, redis, produced, [worker], log)
    finally:
        chaos.stop([worker])
    assert "redis unavailable" in log.read_text()
    print(figures.report("1 Redis SIGKILL and restart"))


class _Crash(Exception):
    """Stands in for a SIGKILL at one exact point of delivering a batch."""


@pytest.mark.parametrize("dies_in", ["publish", "sent"])
async def test_a_crash_between_saving_and_clearing_an_outbox_loses_and_confuses_no_alert(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dies_in: str
) -> None:
    """A random SIGKILL rarely lands between saving a batch's alerts and clearing its
    outbox; here the worker dies exactly there, once: before publishing (the next
    owner must send the saved alerts) or after (they arrive twice, same alert_id).
    The restarted worker cuts its batches differently, which must not make any seq
    mean two things."""
    settings = settings.replace(batch_max_records=500)
    produced = await _prepared(settings, random.Random(13), events=20_000)
    target: Any = ConsumerLoop if dies_in == "publish" else Pipeline
    method = "_publish" if dies_in == "publish" else "sent"
    original = getattr(target, method)

    async def dying(self: Any, outcome: Outcome) -> None:
        if sum(a["seq"] > 1 for _, a in outcome.alerts) >= 5:  # changes, not first tiers
            raise _Crash(dies_in)  # instead of publishing, or instead of clearing
        await original(self, outcome)

    monkeypatch.setattr(target, method, dying)
    with pytest.raises(_Crash):
        await Worker(settings).run()
    monkeypatch.setattr(target, method, original)

    async with running_worker(settings.replace(batch_max_records=2000)):
        async with Redis.from_url(settings.redis_url) as redis:
            deadline = time.monotonic() + 120
            while (stored := await chaos.stored_counters(redis)) != produced.expected:
                assert time.monotonic() < deadline, chaos.difference(stored, produced.expected)
                await asyncio.sleep(0.5)
        await chaos.wait_for_commits(settings, produced.ends, tmp_path / "no-log")
    async with Redis.from_url(settings.redis_url) as redis:
        figures = await chaos.verify(settings, redis, produced.stream)
        assert [k async for k in redis.scan_iter(match=keys.pending_key("*"))] == []
    if dies_in == "sent":
        assert figures.alerts.duplicates >= 5
    print(figures.report(f"a crash at {dies_in}"))
