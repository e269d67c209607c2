"""Durability as configured, with real processes: a primary redis-server, a replica
that replicates it through a ``Cable``, a worker. A batch whose writes the replica
lacks is neither committed nor announced while the worker waits for the replica
(``HEALTHSCORE_REDIS_WAIT_REPLICAS``); the primary then dies, the replica is
promoted, and a worker on it ends with exactly what a single clean run gives
(``chaos.verify``). Without the wait the same failover loses the batch: the test
can see a loss.

The replica's link is cut rather than the replica frozen (SIGSTOP): a frozen
replica still finds in its socket buffer what the primary sent before dying, and
applies it once thawed, so a frozen replica loses nothing either way and the
test could not tell the wait from no wait. A cut link drops what was in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis

from tests.conftest import _unavailable
from tests.integration import chaos
from tests.integration.cable import Cable
from tests.integration.harness import event, running_worker
from worker.app import Worker
from worker.embedded import EmbeddedRedis, free_port
from worker.errors import Retriable
from worker.replay import Replay
from worker.runtime.topics import ensure_topics
from worker.settings import Settings, env_name
from worker.windows import server

LATE_ACCOUNTS = 30  # first seen in the batch the replica never gets


@dataclass(frozen=True, slots=True)
class Replicated:
    primary: EmbeddedRedis
    replica: EmbeddedRedis
    link: Cable  # the replica's connection to the primary


@pytest.fixture
def replicated_redis() -> Iterator[Replicated]:
    primary = EmbeddedRedis(free_port())
    try:
        primary.start()
    except Exception as exc:
        _unavailable("replicated Redis", [f"embedded: {exc}"])
    with Cable(primary.port) as link:
        replica = EmbeddedRedis(replica_of=link.port)
        try:
            replica.start()
            yield Replicated(primary, replica, link)
        finally:
            replica.stop()
            primary.stop()


def _late_events(rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    now = time.time()
    out: list[tuple[str, dict[str, Any]]] = []
    for n in range(LATE_ACCOUNTS):
        account = f"late-{n:03d}"
        for k in range(3):
            out.append(
                (
                    "login",
                    event(
                        "login",
                        account,
                        now - rng.uniform(0, 5 * chaos.DAY),
                        user_id=f"u{k}",
                        session_seconds=rng.randint(60, 3000),
                    ),
                )
            )
        out.append(
            (
                "feature_use",
                event(
                    "feature_use",
                    account,
                    now - rng.uniform(0, chaos.DAY),
                    user_id="u0",
                    feature=f"f{n % 7}",
                ),
            )
        )
    return out


@pytest.mark.parametrize("wait_replicas", [1, 0], ids=["wait-for-the-replica", "no-wait"])
async def test_a_failover_to_the_replica_the_worker_waited_for_loses_and_doubles_nothing(
    settings: Settings, replicated_redis: Replicated, tmp_path: Path, wait_replicas: int
) -> None:
    primary, replica, link = (
        replicated_redis.primary,
        replicated_redis.replica,
        replicated_redis.link,
    )
    log = tmp_path / "no-log"
    log.touch()
    settings = settings.replace(
        redis_url=primary.url,
        redis_wait_replicas=wait_replicas,
        redis_wait_timeout_seconds=0.5,
        retry_backoff_max_seconds=0.5,
        batch_max_records=500,
    )
    rng = random.Random(17)
    before, late = chaos.stream(rng, 4000), _late_events(rng)  # every account has counters
    await ensure_topics(settings)
    ends_before = await chaos.produce_to(settings, before)
    async with running_worker(settings) as worker:
        await chaos.wait_for_commits(settings, ends_before, log)
        await _until_replicated(primary, replica)
        link.cut()  # the replica gets nothing more, and acknowledges nothing
        ends = _merged(ends_before, await chaos.produce_to(settings, late))
        if wait_replicas:
            await _until_saved_and_decided(settings, worker, primary, late, ends)
            assert await _committed(settings, ends) == {
                tp: ends_before.get(tp, 0) for tp in ends
            }, "committed before the replica had it"
            alerts = await chaos.read_topic(settings, settings.topic_alerts)
            assert not [a for a in alerts if a["account_id"].startswith("late-")], (
                "an alert went out for writes the replica does not have"
            )
        else:
            await chaos.wait_for_commits(settings, ends, log)
        primary.kill()
    async with Redis.from_url(replica.url) as redis:
        await redis.execute_command("REPLICAOF", "NO", "ONE")
        # The promoted replica has no replica of its own to wait for.
        promoted = settings.replace(redis_url=replica.url, redis_wait_replicas=0)
        async with running_worker(promoted):
            await chaos.wait_for_commits(promoted, ends, log)
        if wait_replicas:
            figures = await chaos.verify(promoted, redis, before + late)
            assert figures.accounts == len(chaos.reference(before + late))
            print(figures.report("a primary SIGKILL and a failover to its lagging replica"))
        else:
            stored = await chaos.stored_counters(redis)
            assert stored == chaos.reference(before), "the failover lost nothing?"
            alerts = await chaos.read_topic(settings, settings.topic_alerts)
            # Announced, committed, and gone with the primary.
            assert {a["account_id"] for a in alerts if a["account_id"].startswith("late-")} == {
                f"late-{n:03d}" for n in range(LATE_ACCOUNTS)
            }


def _merged(*ends: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    merged: dict[TopicPartition, int] = {}
    for part in ends:
        for tp, end in part.items():
            merged[tp] = max(merged.get(tp, 0), end)
    return merged


async def _info(url: str, section: str) -> dict[str, Any]:
    async with Redis.from_url(url) as redis:
        info: dict[str, Any] = await redis.info(section)
        return info


async def _until(condition: Callable[[], Awaitable[bool]], what: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.1)


async def _until_replicated(primary: EmbeddedRedis, replica: EmbeddedRedis) -> None:
    async def caught_up() -> bool:
        mine = await _info(replica.url, "replication")
        theirs = await _info(primary.url, "replication")
        return bool(
            mine.get("master_link_status") == "up"
            and mine.get("slave_repl_offset") == theirs["master_repl_offset"]
        )

    await _until(caught_up, "the replica has every write of the primary")


async def _until_saved_and_decided(
    settings: Settings,
    worker: Worker,
    primary: EmbeddedRedis,
    late: list[tuple[str, dict[str, Any]]],
    ends: dict[TopicPartition, int],
) -> None:
    """A late batch is written to the primary, and the worker either retried (counted)
    its wait for the replica more than once, or committed everything: whatever was
    going to go out has had its chance. Some late accounts, not all: a batch whose wait
    fails is retried as it is, with consumption paused, so late events the fetch had
    not brought yet wait for Redis to be back (under load they come in several)."""
    late_accounts = {body["account_id"] for _, body in late}

    async def decided() -> bool:
        async with Redis.from_url(primary.url) as redis:
            stored = await chaos.stored_counters(redis)
        retries = (
            worker.metrics.registry.get_sample_value(
                "healthscore_retries_total", {"dependency": "redis"}
            )
            or 0
        )
        return bool(late_accounts & stored.keys()) and (
            retries >= 2 or await _committed(settings, ends) == ends
        )

    await _until(decided, "the late batch is saved and its wait for the replica retried")


async def _committed(
    settings: Settings, ends: dict[TopicPartition, int]
) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(settings.group_id, partitions=list(ends))
    finally:
        await admin.close()
    return {tp: max(0, offsets[tp].offset) if tp in offsets else 0 for tp in ends}


async def test_the_wait_covers_writes_made_on_other_connections(
    replicated_redis: Replicated,
) -> None:
    """WAIT counts its own connection's writes only; a batch writes on several. A write
    on another connection while the replica is frozen (SIGSTOP: connected, but
    acknowledging nothing) must still hold the wait up until the replica has it."""
    primary, replica = replicated_redis.primary, replicated_redis.replica
    durability = server.Durability(replicas=1, timeout=0.5)
    async with Redis.from_url(primary.url) as waiter, Redis.from_url(primary.url) as writer:
        await _until_replicated(primary, replica)
        await server.wait(waiter, durability, 10)  # the replica is there: no wait to speak of
        assert replica.pid is not None
        os.kill(replica.pid, signal.SIGSTOP)
        try:
            await writer.set("written-elsewhere", 1)
            with pytest.raises(Retriable, match="0 of 1 replicas"):
                await server.wait(waiter, durability, 10)
        finally:
            os.kill(replica.pid, signal.SIGCONT)
        await server.wait(
            waiter, server.Durability(replicas=1, timeout=30), 10
        )  # thawed: caught up
    async with Redis.from_url(replica.url) as redis:
        assert await redis.get("written-elsewhere") == b"1"


def test_a_worker_asked_for_waitaof_that_redis_cannot_give_refuses_to_start(
    settings: Settings,
) -> None:
    """No quiet fallback to a weaker guarantee: on a Redis without WAITAOF (before 7.2,
    like the Debian 7.0 here) or without appendonly, the worker exits at start-up and
    says which setting asks for what."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSCORE_")}
    env.update(
        {env_name(f.name): str(getattr(settings, f.name)) for f in dataclasses.fields(Settings)}
    )
    env[env_name("redis_wait_aof")] = "true"
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert re.search(
        r"HEALTHSCORE_REDIS_WAIT_AOF: this Redis \(\S+\) has no WAITAOF, which needs "
        r"Redis 7\.2|HEALTHSCORE_REDIS_WAIT_AOF: this Redis runs without appendonly",
        done.stderr,
    ), done.stderr[-2000:]


async def test_a_replay_saves_as_durably_as_the_worker(settings: Settings) -> None:
    """The replay's saves wait for replicas too: against a Redis with none, a replay
    asked to wait for one waits it out (counted retries, as the live loop does) instead
    of going on with state a failover would lose."""
    await ensure_topics(settings)
    await chaos.produce_to(settings, chaos.stream(random.Random(3), 50))
    waiting = settings.replace(redis_wait_replicas=1, redis_wait_timeout_seconds=0.2)
    replay = Replay(waiting, force=True)
    run = asyncio.create_task(replay.run())
    try:
        deadline = time.monotonic() + 60
        while (
            replay.metrics.registry.get_sample_value(
                "healthscore_retries_total", {"dependency": "redis"}
            )
            or 0
        ) < 2:
            assert not run.done(), "the replay finished without the replica it waits for"
            assert time.monotonic() < deadline, "the replay never retried the wait"
            await asyncio.sleep(0.1)
        assert not run.done()
    finally:
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
