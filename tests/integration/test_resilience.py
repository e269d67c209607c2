"""The worker rides out a Redis outage and keeps every event; external clients work."""

from __future__ import annotations

import asyncio
import time

import orjson
from redis.asyncio import Redis

from tests.integration.harness import (
    Producer,
    alerts_for,
    event,
    read_until,
    running_worker,
    valid_alert,
)
from worker.embedded import EmbeddedRedis
from worker.settings import Settings


async def test_redis_outage_pauses_the_worker_and_loses_nothing(
    settings: Settings, restartable_redis: EmbeddedRedis
) -> None:
    settings = settings.replace(redis_url=restartable_redis.url, retry_backoff_max_seconds=0.5)
    async with running_worker(settings) as worker, Producer(settings) as p:
        await p.send("login", event("login", "before", user_id="u1"))
        await read_until(settings, settings.topic_alerts, lambda rs: bool(alerts_for(rs, "before")))

        restartable_redis.kill()
        for n in range(5):
            await p.send("login", event("login", "during", user_id=f"u{n}", session_seconds=600))
        registry = worker.metrics.registry
        deadline = time.monotonic() + 30
        while not registry.get_sample_value("healthscore_retries_total", {"dependency": "redis"}):
            assert time.monotonic() < deadline, "the worker never noticed Redis was gone"
            await asyncio.sleep(0.1)
        restartable_redis.start()

        alerts = await read_until(settings, settings.topic_alerts,
                                  lambda rs: bool(alerts_for(rs, "during")))
    [during] = alerts_for(alerts, "during")
    assert valid_alert(during)
    redis = Redis.from_url(restartable_redis.url)
    try:
        counters = await redis.hgetall("hs:{during}:c")
        users = await redis.zcard("hs:{during}:u")
    finally:
        await redis.aclose()
    assert sum(float(v) for k, v in counters.items() if k.endswith(b"|login")) == 5
    assert users == 5


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
            return await read_until(settings, settings.topic_alerts, lambda rs: any(
                "license_utilization" in a["components"] for a in alerts_for(rs, "umbrella")))

    alerts = alerts_for(asyncio.run(scenario()), "umbrella")
    assert all(valid_alert(a) for a in alerts)
    assert alerts[-1]["components"]["license_utilization"]["value"] == 1.0
