"""Never wrong after a crash: workers SIGKILLed mid-stream, a rebalance, a Redis crash;
each run ends with exactly the window state a pure computation of the same events gives."""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path

from redis.asyncio import Redis

from tests.integration import chaos
from worker.embedded import EmbeddedRedis
from worker.runtime.topics import ensure_topics
from worker.settings import Settings

KILLS = 4


async def _prepared(settings: Settings, rng: random.Random,
                    events: int = chaos.EVENTS) -> dict[str, dict[str, float]]:
    stream = chaos.stream(rng, events)
    await ensure_topics(settings)
    await chaos.produce(settings, stream)
    return chaos.reference(stream)


async def test_sigkill_loop_ends_with_the_exact_state_of_a_pure_computation(
    settings: Settings, tmp_path: Path
) -> None:
    log = tmp_path / "workers.log"
    settings = settings.replace(batch_max_records=500)  # more batches, more places to die in
    rng = random.Random(20261122)
    expected = await _prepared(settings, rng)
    redis = Redis.from_url(settings.redis_url)
    worker = chaos.start_worker(settings, log)
    try:
        for _ in range(KILLS):
            await chaos.wait_for_progress(redis, log)
            await asyncio.sleep(rng.uniform(0.0, 1.0))
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            worker = chaos.start_worker(settings, log)
        await chaos.wait_for_state(redis, expected, [worker], log)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        await redis.aclose()
    assert len(expected) == chaos.ACCOUNTS


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
        expected = await _prepared(settings, rng, events=30_000)
        await chaos.wait_for_progress(redis, log)
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        await chaos.wait_for_state(redis, expected, workers[1:], log)
    finally:
        for worker in workers[1:]:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
        await redis.aclose()
    assert "assigned" in log.read_text()


async def test_a_redis_crash_mid_stream_loses_and_doubles_nothing(
    settings: Settings, tmp_path: Path, restartable_redis: EmbeddedRedis
) -> None:
    log = tmp_path / "workers.log"
    settings = settings.replace(redis_url=restartable_redis.url, batch_max_records=500,
                                retry_backoff_max_seconds=0.5)
    rng = random.Random(11)
    expected = await _prepared(settings, rng, events=30_000)
    worker = chaos.start_worker(settings, log)
    try:
        async with Redis.from_url(settings.redis_url) as redis:
            await chaos.wait_for_progress(redis, log)
        restartable_redis.kill()  # every acknowledged write is already fsynced
        await asyncio.sleep(1.0)
        restartable_redis.start()
        async with Redis.from_url(settings.redis_url) as redis:
            await chaos.wait_for_state(redis, expected, [worker], log)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert "redis unavailable" in log.read_text()
