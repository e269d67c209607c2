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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition
from redis.asyncio import Redis

from tests.integration import chaos
from worker.embedded import EmbeddedRedis
from worker.runtime.topics import ensure_topics
from worker.settings import Settings

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
        for _ in range(KILLS):
            await chaos.wait_for_progress(redis, log)
            await asyncio.sleep(rng.uniform(0.0, 1.0))
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
