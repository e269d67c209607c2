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

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from tests.integration.chaos import tail
from worker.settings import Settings
from worker.windows import keys

# How long a frozen worker is watched: long enough for a commit already on its way to
# land, short of the session timeout, so a worker let go keeps its partitions.
WATCH_SECONDS = 0.2


async def kill_mid_batch(worker: subprocess.Popen[bytes], settings: Settings, redis: Redis,
                         rng: random.Random, log: Path, attempts: int = 40
                         ) -> set[TopicPartition]:
    """SIGKILL ``worker`` at a moment when some records it applied to Redis are not
    committed: whoever reads those partitions next gets them again, and only the offset
    fences keep them from counting twice. Returns the partitions found so.

    The worker is frozen (SIGSTOP) to look; if it is between batches it is let go and
    tried again a little later. A partition counts only if it stays so for a while,
    so that another live worker's batch in flight is not mistaken for this one's.
    """
    seen: dict[TopicPartition, tuple[int, int]] = {}
    for _ in range(attempts):
        assert worker.poll() is None, f"the worker exited before the kill:\n{tail(log)}"
        worker.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(WATCH_SECONDS)
            first = await applied_uncommitted(settings, redis)
            await asyncio.sleep(WATCH_SECONDS)
            second = await applied_uncommitted(settings, redis)
            stuck = {tp for tp, offsets in first.items() if second.get(tp) == offsets}
            seen = second
            if stuck:
                worker.send_signal(signal.SIGKILL)
                worker.wait()
                return stuck
        finally:
            if worker.poll() is None:
                worker.send_signal(signal.SIGCONT)
        await asyncio.sleep(rng.uniform(0.05, 0.3))
    raise AssertionError(f"never caught the worker with applied, uncommitted records in "
                         f"{attempts} tries; last seen (committed, applied) {seen}\n{tail(log)}")


async def applied_uncommitted(settings: Settings, redis: Redis
                              ) -> dict[TopicPartition, tuple[int, int]]:
    """Input partitions whose highest applied offset (the fences in Redis) is at or past
    the group's committed position: (committed, applied) for each."""
    applied: dict[TopicPartition, int] = defaultdict(lambda: -1)
    async for key in redis.scan_iter(match=keys.state_key("*"), count=1000):
        for name, value in (await redis.hgetall(key)).items():
            field = name.decode()
            if field.startswith(keys.OFFSET_PREFIX):
                topic, partition = field[len(keys.OFFSET_PREFIX):].rsplit(":", 1)
                tp = TopicPartition(topic, int(partition))
                applied[tp] = max(applied[tp], int(value))
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.group_id,
                                                            partitions=list(applied))
    finally:
        await admin.close()
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
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples if sample.name == name)


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
            "or the offset fences did not skip what was applied")
        await asyncio.sleep(0.2)
    return count
