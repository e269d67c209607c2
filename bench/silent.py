"""Rescoring silent accounts: every account of the store has gone quiet and its
windows have rolled. The clock is moved past the longest window and the worker's
own expiry path (due -> rescore -> save -> publish -> clear the outbox) runs over
all partitions until nothing is due."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial

from redis.asyncio import Redis

from worker.clock import FixedClock
from worker.metrics import Metrics
from worker.modelfile import load_model
from worker.pipeline import Pipeline
from worker.runtime.delivery import Delivery, once
from worker.runtime.publish import new_producer, publish
from worker.settings import Settings
from worker.windows.store import WindowStore


@dataclass
class Silent:
    accounts: int
    seconds: float
    alerts: int

    @property
    def per_s(self) -> float:
        return self.accounts / self.seconds if self.seconds else 0.0


async def rescore_all(settings: Settings, redis: Redis, days_later: float) -> Silent:
    model = load_model(settings.model_path or None)
    clock = FixedClock(time.time() + days_later * 86400)
    store = WindowStore.from_settings(redis, model, settings)
    pipeline = Pipeline(settings, model, store, clock, Metrics())
    producer = new_producer(settings, "bench-silent")
    delivery = Delivery(
        store,
        partial(
            publish,
            producer,
            alerts_topic=settings.topic_alerts,
            deadletter_topic=settings.topic_deadletter,
        ),
        once,
    )
    await producer.start()
    partitions = set(range(settings.topic_partitions))
    accounts = alerts = 0
    started = time.perf_counter()
    try:
        while due := await pipeline.due(partitions, settings.batch_max_records):
            outcome = await pipeline.expire(due)
            await delivery.deliver(outcome)
            accounts += len(due)
            alerts += len(outcome.alerts)
    finally:
        await producer.stop()
    return Silent(accounts, time.perf_counter() - started, alerts)
