"""The worker rides out Redis and broker outages and keeps every event; external clients work."""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from tests.integration import chaos
from tests.integration.cable import Cable
from tests.integration.harness import (
    Producer,
    alerts_for,
    event,
    read_until,
    running_worker,
    valid_alert,
)
from worker.embedded import EmbeddedBroker, EmbeddedRedis, free_port
from worker.runtime.topics import ensure_topics
from worker.settings import Settings


async def test_redis_outage_pauses_the_worker_and_loses_nothing(
    settings: Settings, restartable_redis: EmbeddedRedis
) -> None:
    settings = settings.replace(redis_url=restartable_redis.url, retry_backoff_max_seconds=0.5)
    async with running_worker(settings) as worker, Producer(settings) as p:
        await _logins_while_redis_is_down(settings, p, restartable_redis)
        await _until_retried(worker.metrics.registry, "redis")
        restartable_redis.start()

        alerts = await read_until(
            settings, settings.topic_alerts, lambda rs: bool(alerts_for(rs, "during"))
        )
    [during] = alerts_for(alerts, "during")
    assert valid_alert(during)
    async with Redis.from_url(restartable_redis.url) as redis:
        assert await redis.zcard("hs:{during}:u") == 5
    assert await _logins_of(restartable_redis, "during") == 5


async def _logins_while_redis_is_down(
    settings: Settings, p: Producer, redis: EmbeddedRedis
) -> None:
    """One account scored, Redis killed, five logins of another account sent."""
    await p.send("login", event("login", "before", user_id="u1"))
    await read_until(settings, settings.topic_alerts, lambda rs: bool(alerts_for(rs, "before")))
    redis.kill()
    for n in range(5):
        await p.send("login", event("login", "during", user_id=f"u{n}", session_seconds=600))


async def _logins_of(server: EmbeddedRedis, account: str) -> float:
    async with Redis.from_url(server.url) as redis:
        counters = await redis.hgetall(f"hs:{{{account}}}:c")
    return sum(float(v) for k, v in counters.items() if k.endswith(b"|login"))


async def test_a_redis_outage_longer_than_max_poll_interval_keeps_the_partitions(
    settings: Settings, restartable_redis: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    # Idle longer than max_poll_interval, aiokafka leaves the group: the worker must keep
    # polling (paused) through the outage, or its partitions bounce when Redis is back.
    settings = settings.replace(
        redis_url=restartable_redis.url, retry_backoff_max_seconds=0.5, max_poll_interval_ms=2000
    )
    caplog.set_level(logging.INFO, logger="worker.runtime.loop")
    async with running_worker(settings) as worker, Producer(settings) as p:
        await _logins_while_redis_is_down(settings, p, restartable_redis)
        await _until_retried(worker.metrics.registry, "redis")
        await asyncio.sleep(3 * settings.max_poll_interval_ms / 1000)
        assert worker.metrics.registry.get_sample_value("healthscore_consumption_paused") == 1
        restartable_redis.start()

        await _until_committed(settings, settings.topic_login, 6)
        assert worker.metrics.registry.get_sample_value("healthscore_consumption_paused") == 0
    assert await _logins_of(restartable_redis, "during") == 5
    loop_lines = [r.getMessage() for r in caplog.records if r.name == "worker.runtime.loop"]
    assert sum(line.startswith("assigned") for line in loop_lines) == 1, loop_lines
    assert not [line for line in loop_lines if "commit skipped" in line]
    assert sum("consumption paused" in line for line in loop_lines) == 1
    assert sum("consumption resumed" in line for line in loop_lines) == 1


async def _until_retried(registry: CollectorRegistry, dependency: str) -> None:
    deadline = time.monotonic() + 30
    while not registry.get_sample_value("healthscore_retries_total", {"dependency": dependency}):
        assert time.monotonic() < deadline, f"the worker never noticed {dependency} was gone"
        await asyncio.sleep(0.1)


async def _until_committed(settings: Settings, topic: str, offsets: int) -> None:
    """Until the group has committed ``offsets`` records of ``topic`` in all."""
    # A consumer that never subscribes reads the group's offsets without joining it.
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.group_id,
        enable_auto_commit=False,
    )
    await reader.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            committed = [
                await reader.committed(TopicPartition(topic, n))
                for n in range(settings.topic_partitions)
            ]
            total = sum(offset or 0 for offset in committed)
            if total >= offsets:
                return
            assert time.monotonic() < deadline, f"committed {total} of {offsets} on {topic}"
            await asyncio.sleep(0.2)
    finally:
        await reader.stop()


# Longer than the worker's session timeout (6 s in tests): its membership lapses too.
OUTAGE_SECONDS = 7.0
# How long Redis holds writes around the cut.
PAUSE_MS = 1500


@pytest.fixture
def cabled_broker() -> Iterator[Cable]:
    """A private broker that clients reach only through a ``Cable`` (it advertises the
    cable's port): cutting the cable is a broker outage that keeps every topic."""
    port = free_port()
    with Cable(port) as cable, EmbeddedBroker(port, advertised_port=cable.port):
        yield cable


async def test_a_broker_outage_mid_stream_loses_nothing(
    settings: Settings, cabled_broker: Cable, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    # Publishes and commits give up on the broker after 2 s instead of 40: the worker
    # retries them (logged, counted) several times within the outage.
    settings = settings.replace(
        kafka_bootstrap=cabled_broker.address,
        batch_max_records=500,
        retry_backoff_max_seconds=0.5,
        broker_timeout_ms=2000,
    )
    stream = chaos.stream(random.Random(5), 15_000)
    expected = chaos.reference(stream)
    await ensure_topics(settings)
    ends = await chaos.produce_to(settings, stream)
    worker = chaos.start_worker(settings, log)
    try:
        async with Redis.from_url(settings.redis_url) as redis:
            await chaos.wait_for_progress(redis, log)
            # Cut while a batch is in hand: Redis holds the worker's next write (reads go
            # on), so its publish and commit meet the outage. A cut between two fetches
            # instead left it idle through the whole outage, nothing retried.
            await redis.client_pause(PAUSE_MS, all=False)
            await asyncio.sleep(PAUSE_MS / 3000)
            cabled_broker.cut()
            assert await chaos.stored_counters(redis) != expected, "done before the cut"
            await asyncio.sleep(OUTAGE_SECONDS)
            assert worker.poll() is None, chaos.tail(log)
            cabled_broker.mend()
            await chaos.wait_for_state(redis, expected, [worker], log, within=40)
            await chaos.wait_for_commits(settings, ends, log)
            assert worker.poll() is None, chaos.tail(log)
            chaos.stop([worker])
            # Scores, published tiers and every alert too, not only the windows.
            await chaos.verify(settings, redis, stream)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert "kafka unavailable" in log.read_text(), chaos.tail(log)


def test_an_external_confluent_kafka_producer_gets_schema_valid_alerts(settings: Settings) -> None:
    confluent_kafka = __import__("confluent_kafka")

    async def scenario() -> list[dict[str, object]]:
        async with running_worker(settings):
            producer = confluent_kafka.Producer({"bootstrap.servers": settings.kafka_bootstrap})
            account = {"account_id": "umbrella", "segment": "smb", "seats_purchased": 2}
            producer.produce(settings.topic_accounts, key=b"umbrella", value=orjson.dumps(account))
            for n in range(2):
                body = event("login", "umbrella", user_id=f"u{n}", session_seconds=1200)
                producer.produce(settings.topic_login, key=b"umbrella", value=orjson.dumps(body))
            producer.produce(settings.topic_survey, key=b"umbrella", value=b"\x00garbage")
            assert producer.flush(10) == 0
            await read_until(settings, settings.topic_deadletter, lambda rs: len(rs) >= 1)
            # The account record and the logins may land in different batches.
            return await read_until(
                settings,
                settings.topic_alerts,
                lambda rs: any(
                    "license_utilization" in a["components"] for a in alerts_for(rs, "umbrella")
                ),
            )

    alerts = alerts_for(asyncio.run(scenario()), "umbrella")
    assert all(valid_alert(a) for a in alerts)
    assert alerts[-1]["components"]["license_utilization"]["value"] == 1.0
