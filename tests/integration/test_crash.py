"""Never wrong after a crash: workers SIGKILLed mid-batch, a rebalance, a Redis crash;
each run ends with what a single clean run gives, as an independent re-implementation
of the default model says (``chaos.verify``, ``reference``): the counters and distinct
sets of every account exactly, the component values and scores the worker computes
from them, its published tier, and every tier change on the alerts topic, each right
for its components (duplicates allowed: the very same record, with one alert_id).
Each kill is made to interrupt work (records applied, not committed), and the test
checks that the next owner skipped them by their offset fence."""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from redis.asyncio import Redis

from tests.integration import chaos, kills
from tests.integration import reference as ref
from tests.integration.harness import running_worker
from worker.alerts import as_dict
from worker.app import Worker
from worker.embedded import EmbeddedRedis, free_port
from worker.rescore import Outcome
from worker.runtime.delivery import Delivery
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


async def _prepared(settings: Settings, rng: random.Random, events: int = chaos.EVENTS) -> Produced:
    stream = chaos.stream(rng, events)
    await ensure_topics(settings)
    ends = await chaos.produce_to(settings, stream)
    return Produced(stream, ends, chaos.reference(stream))


async def _settled(
    settings: Settings,
    redis: Redis,
    produced: Produced,
    workers: list[subprocess.Popen[bytes]],
    log: Path,
) -> chaos.Figures:
    """Once the counters are right: let the workers commit everything and stop, then
    check all they left behind."""
    await chaos.wait_for_commits(settings, produced.ends, log)
    chaos.stop(workers)
    return await chaos.verify(settings, redis, produced.stream)


async def test_sigkill_loop_ends_with_the_exact_state_of_a_pure_computation(
    settings: Settings, tmp_path: Path
) -> None:
    log = tmp_path / "workers.log"
    # More batches, more places to die in.
    settings = settings.replace(batch_max_records=500, session_timeout_ms=chaos.KILLED_SESSION_MS)
    rng = random.Random(20261122)
    stream = chaos.stream(rng)
    # Sent in parts, each while a kill looks for a batch in flight, so that the worker
    # has work to be caught in, however fast it is.
    parts = [stream[n :: KILLS + 1] for n in range(KILLS + 1)]
    await ensure_topics(settings)
    redis = Redis.from_url(settings.redis_url)
    ends = await chaos.produce_to(settings, parts[0])
    port = free_port()
    worker = chaos.start_worker(settings.replace(metrics_port=port), log)
    skipped = []  # by each worker started after a kill: records its predecessor applied
    try:
        await chaos.wait_for_progress(redis, log)
        for part in parts[1:]:
            # Sent a chunk (a batch or so) at a time while the kill looks for a batch in
            # flight; the rest once the worker is dead.
            feed = kills.Feeder(settings, part, chunk=300)
            await feed()
            caught = await kills.kill_mid_batch(
                worker, settings, redis, log, rng, feed=feed, within=30.0, required=False
            )
            ends |= await feed.rest()  # later parts end further on
            port = free_port()
            worker = chaos.start_worker(settings.replace(metrics_port=port), log)
            # A kill that interrupted a batch: its successor skips what was applied of it.
            skipped.append(await kills.wait_for_replayed(port) if caught else 0.0)
        await chaos.wait_for_state(redis, chaos.reference(stream), [worker], log)
        await chaos.wait_for_commits(settings, ends, log)
        chaos.stop([worker])
        figures = await chaos.verify(settings, redis, stream)
    finally:
        chaos.stop([worker])
        await redis.aclose()
    assert figures.accounts == chaos.ACCOUNTS
    assert len(skipped) == KILLS
    # Catching a worker between applying and committing takes luck with the timing; at
    # least one kill must have, or the loop proved nothing about re-deliveries.
    assert any(skipped), "no kill interrupted a batch"
    print(
        figures.report(
            f"{KILLS} worker SIGKILLs mid-batch ({skipped} re-deliveries skipped after each)"
        )
    )


@pytest.mark.parametrize("segmented", [False, True], ids=["default", "segment-models"])
async def test_a_worker_killed_mid_stream_hands_its_partitions_over_exactly(
    settings: Settings, tmp_path: Path, segmented: bool
) -> None:
    log = tmp_path / "workers.log"
    settings = settings.replace(batch_max_records=500)
    rng = random.Random(7)
    redis = Redis.from_url(settings.redis_url)
    await ensure_topics(settings)
    # Segment models: every account's alerts by its segment's model, through the kill.
    attrs = chaos.segment_attrs() if segmented else None
    if segmented:
        settings = settings.replace(model_path=chaos.SEGMENTED)
        await chaos.produce_attrs(settings, chaos.segment_attrs())
    ports = [free_port() for _ in range(3)]
    workers = [chaos.start_worker(settings.replace(metrics_port=p), log) for p in ports]
    try:
        produced = await _prepared(settings, rng, events=30_000)
        await chaos.wait_for_progress(redis, log)
        before = [await kills.replayed(p) for p in ports[1:]]
        interrupted = await kills.kill_mid_batch(workers[0], settings, redis, log, rng, others=True)
        await chaos.wait_for_state(redis, produced.expected, workers[1:], log)
        await chaos.wait_for_commits(settings, produced.ends, log)
        after = [await kills.replayed(p) for p in ports[1:]]
        chaos.stop(workers)
        figures = await chaos.verify(
            settings, redis, produced.stream, attrs, ref.EXAMPLE if segmented else ref.ONLY_DEFAULT
        )
    finally:
        chaos.stop(workers)
        await redis.aclose()
    assert "assigned" in log.read_text()
    assignments = log.read_text().count("assigned ")
    # The survivors took over what the dead worker had applied but not committed,
    # and skipped it.
    assert sum(after) > sum(before), (before, after, interrupted)
    print(
        figures.report(
            f"1 worker SIGKILL of 3 mid-batch on {sorted(interrupted)} "
            f"({assignments} partition assignments, "
            f"{sum(after) - sum(before)} re-deliveries skipped)"
        )
    )


async def test_a_redis_crash_mid_stream_loses_and_doubles_nothing(
    settings: Settings, tmp_path: Path, restartable_redis: EmbeddedRedis
) -> None:
    log = tmp_path / "workers.log"
    settings = settings.replace(
        redis_url=restartable_redis.url, batch_max_records=500, retry_backoff_max_seconds=0.5
    )
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
    # The dead worker's consumer never leaves the group: its session must run out.
    settings = settings.replace(batch_max_records=500, session_timeout_ms=chaos.KILLED_SESSION_MS)
    produced = await _prepared(settings, random.Random(13), events=20_000)
    target: Any = ConsumerLoop if dies_in == "publish" else Delivery
    method = "_publish" if dies_in == "publish" else "clear"
    original = getattr(target, method)
    crashed: list[dict[str, Any]] = []

    async def dying(self: Any, outcome: Outcome) -> None:
        if sum(a.seq > 1 for _, a in outcome.alerts) >= 5:  # changes, not first tiers
            crashed.extend(as_dict(a) for _, a in outcome.alerts)
            raise _Crash(dies_in)  # instead of publishing, or instead of clearing
        await original(self, outcome)

    monkeypatch.setattr(target, method, dying)
    with pytest.raises(_Crash):
        await Worker(settings).run()
    monkeypatch.setattr(target, method, original)
    async with Redis.from_url(settings.redis_url) as redis:
        outboxes = [k async for k in redis.scan_iter(match=keys.ALL_PENDING)]
    assert outboxes, "the crash left no alert in an outbox"

    async with running_worker(settings.replace(batch_max_records=2000)) as worker:
        async with Redis.from_url(settings.redis_url) as redis:
            deadline = time.monotonic() + 120
            while (stored := await chaos.stored_counters(redis)) != produced.expected:
                assert time.monotonic() < deadline, chaos.difference(stored, produced.expected)
                await asyncio.sleep(0.5)
        await chaos.wait_for_commits(settings, produced.ends, tmp_path / "no-log")
        # The batch that died was saved, never committed: read again, and skipped.
        replayed = worker.metrics.registry.get_sample_value("healthscore_events_replayed_total")
    assert replayed, "nothing the crashed worker applied was read again"
    async with Redis.from_url(settings.redis_url) as redis:
        figures = await chaos.verify(settings, redis, produced.stream)
        assert [k async for k in redis.scan_iter(match=keys.ALL_PENDING)] == []
    # Each alert saved by the batch that died is on the topic as it was saved: once if
    # the crash came before publishing, twice if after.
    alerts = await chaos.read_topic(settings, settings.topic_alerts)
    copies = 1 if dies_in == "publish" else 2
    assert [alerts.count(a) for a in crashed] == [copies] * len(crashed)
    if dies_in == "sent":
        assert figures.alerts.duplicates >= 5
    print(figures.report(f"a crash at {dies_in}"))
