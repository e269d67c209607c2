"""Kills that certainly interrupt work, and the worker's own count of what the next
owner then skipped: without both, a crash test can pass without testing anything."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from tests.integration.chaos import produce_to, tail
from worker.settings import Settings
from worker.windows import keys

# How long a frozen worker is watched: long enough for a commit already on its way to
# land, short of the session timeout, so a worker let go keeps its partitions.
WATCH_SECONDS = 0.2


class Feeder:
    """Records sent a chunk at a time, so that a kill can always find a batch in flight:
    a worker that has got through everything sent (it can be fast) is given more."""

    def __init__(
        self, settings: Settings, events: list[tuple[str, dict[str, Any]]], chunk: int
    ) -> None:
        self._settings = settings
        self._chunks = [events[i : i + chunk] for i in range(0, len(events), chunk)]
        self.ends: dict[TopicPartition, int] = {}

    async def __call__(self) -> None:
        if self._chunks:
            self.ends |= await produce_to(self._settings, self._chunks.pop(0))

    async def rest(self) -> dict[TopicPartition, int]:
        while self._chunks:
            await self()
        return self.ends


async def kill_mid_batch(
    worker: subprocess.Popen[bytes],
    settings: Settings,
    redis: Redis,
    log: Path,
    rng: random.Random,
    *,
    others: bool = False,
    within: float = 60.0,
    feed: Feeder | None = None,
    required: bool = True,
) -> set[TopicPartition]:
    """SIGKILL ``worker`` at a moment when some records it applied to Redis are not
    committed: whoever reads those partitions next gets them again, and only the offset
    fences keep them from counting twice. Returns the partitions found so.

    The worker is frozen (SIGSTOP) at a random moment and looked at: long enough for a
    commit already on its way to land, and, with ``others`` (more workers running),
    twice, so that another worker's batch in flight is not taken for this one's. If it
    was between batches, it is let go for a moment (given ``feed``'s next chunk, if any)
    and frozen again. Not ``required``: past ``within`` it is killed anyway and nothing
    is returned (the caller then cannot count on a re-delivery). (Watching Redis
    without freezing the worker misses the moment: applying to committing takes a few
    milliseconds, about as long as one look.)
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    tries = 0
    try:
        deadline = time.monotonic() + within
        while True:
            assert worker.poll() is None, f"the worker exited before the kill:\n{tail(log)}"
            if not required and time.monotonic() >= deadline:
                worker.send_signal(signal.SIGKILL)  # killed all the same, at a moment of ours
                worker.wait()
                return set()
            assert time.monotonic() < deadline, (
                f"never caught the worker with applied, uncommitted records in {tries} "
                f"tries\n{tail(log)}"
            )
            tries += 1
            worker.send_signal(signal.SIGSTOP)
            try:
                stuck = await _frozen(admin, settings, redis, others)
                if stuck:
                    worker.send_signal(signal.SIGKILL)
                    worker.wait()
                    return set(stuck)
            finally:
                if worker.poll() is None:
                    worker.send_signal(signal.SIGCONT)
            if feed is not None:
                await feed()
            await asyncio.sleep(rng.uniform(0.02, 0.15))
    finally:
        await admin.close()


async def _frozen(
    admin: AIOKafkaAdminClient, settings: Settings, redis: Redis, others: bool
) -> dict[TopicPartition, tuple[int, int]]:
    await asyncio.sleep(WATCH_SECONDS)
    found = await applied_uncommitted(admin, settings, redis)
    if others and found:
        await asyncio.sleep(WATCH_SECONDS)
        again = await applied_uncommitted(admin, settings, redis)
        found = {tp: offsets for tp, offsets in found.items() if again.get(tp) == offsets}
    return found


async def applied_uncommitted(
    admin: AIOKafkaAdminClient, settings: Settings, redis: Redis
) -> dict[TopicPartition, tuple[int, int]]:
    """Input partitions whose highest applied offset (the fences in Redis) is at or past
    the group's committed position: (committed, applied) for each."""
    states = [key async for key in redis.scan_iter(match=keys.state_key("*"), count=1000)]
    async with redis.pipeline(transaction=False) as pipe:
        for key in states:
            pipe.hgetall(key)
        hashes = await pipe.execute()
    applied: dict[TopicPartition, int] = defaultdict(lambda: -1)
    for fields in hashes:
        for name, value in fields.items():
            field = name.decode()
            if field.startswith(keys.OFFSET_PREFIX):
                topic, partition = field[len(keys.OFFSET_PREFIX) :].rsplit(":", 1)
                tp = TopicPartition(topic, int(partition))
                applied[tp] = max(applied[tp], int(value))
    if not applied:
        return {}
    committed = await admin.list_consumer_group_offsets(settings.group_id, partitions=list(applied))
    found = {}
    for tp, last in applied.items():
        position = committed[tp].offset if tp in committed else -1
        if last >= max(position, 0):
            found[tp] = (position, last)
    return found


def metric(port: int, name: str) -> float:
    """A worker's counter, summed over its labels, from its /metrics endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


async def replayed(port: int) -> float:
    """Re-delivered events the worker skipped by their offset fence (0 until it serves)."""
    try:
        return await asyncio.to_thread(metric, port, "healthscore_events_replayed_total")
    except OSError:  # not listening yet
        return 0.0


async def wait_for_replayed(port: int, more_than: float = 0.0, within: float = 90.0) -> float:
    """Until the worker has skipped more than ``more_than`` re-delivered events."""
    deadline = time.monotonic() + within
    while (count := await replayed(port)) <= more_than:
        assert time.monotonic() < deadline, (
            f"no re-delivered event skipped in {within} s: the kill interrupted nothing, "
            "or the offset fences did not skip what was applied"
        )
        await asyncio.sleep(0.2)
    return count
