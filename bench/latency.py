"""Produce-to-alert latency at a steady offered load.

Events go out paced to the target rate; the alerts topic is read as it is
written. An alert names the event that caused it (``cause.event_id``), so its
latency is the time from handing that event to the producer to reading the alert.

Besides the whole run, the same percentiles are given for the events sent after the
first third of it: a worker that starts holds none of the accounts, and loads each
from Redis on its first event, so the first seconds measure its warm-up as well.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from bench.data import Record, topic_of
from worker.settings import Settings

TICK = 0.005  # seconds between paced sends


@dataclass
class Latency:
    offered_per_s: float
    achieved_per_s: float  # what the producer managed to send
    events: int
    alerts: int  # alerts matched to an event of this run
    p50_ms: float
    p99_ms: float
    max_ms: float
    steady_p50_ms: float  # events sent after the first third of the run
    steady_p99_ms: float


async def produce_to_alert(settings: Settings, records: list[Record], rate: float) -> Latency:
    sent_at: dict[str, float] = {}
    timed: list[tuple[float, float]] = []  # (sent at, latency)
    alerts = await _alerts_consumer(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, linger_ms=0, max_batch_size=1 << 20
    )
    await producer.start()
    reading = asyncio.create_task(_read_alerts(alerts, sent_at, timed))
    try:
        started = time.perf_counter()
        await _paced(producer, settings, records, rate, sent_at)
        sending = time.perf_counter() - started
        await producer.flush()
        await asyncio.sleep(3.0)  # the last alerts
    finally:
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
        await producer.stop()
        await alerts.stop()
    ordered = sorted(latency for _, latency in timed)
    steady = sorted(latency for sent, latency in timed if sent >= started + sending / 3)
    return Latency(
        offered_per_s=rate,
        achieved_per_s=len(records) / sending,
        events=len(records),
        alerts=len(ordered),
        p50_ms=_median_ms(ordered),
        p99_ms=_p99_ms(ordered),
        max_ms=1000 * ordered[-1] if ordered else float("nan"),
        steady_p50_ms=_median_ms(steady),
        steady_p99_ms=_p99_ms(steady),
    )


def _median_ms(ordered: list[float]) -> float:
    return 1000 * statistics.median(ordered) if ordered else float("nan")


def _p99_ms(ordered: list[float]) -> float:
    return 1000 * ordered[int(0.99 * (len(ordered) - 1))] if ordered else float("nan")


async def _paced(
    producer: AIOKafkaProducer,
    settings: Settings,
    records: list[Record],
    rate: float,
    sent_at: dict[str, float],
) -> None:
    # Everything per record that can be done before the clock starts is done here, and
    # each tick sends one batch per partition: the load generator shares the machine
    # with the worker, the broker and Redis, and must take as little of it as it can.
    topics = topic_of(settings)
    every = list(range(settings.topic_partitions))
    partitioner = DefaultPartitioner()
    prepared = [
        (
            orjson.loads(r.value)["event_id"],
            topics[r.event_type],
            partitioner(r.account_id.encode(), every, every),
            r.account_id.encode(),
            r.value,
        )
        for r in records
    ]
    t0 = time.perf_counter()
    sent = 0
    while sent < len(prepared):
        due = min(len(prepared), int((time.perf_counter() - t0) * rate) + 1)
        batches: dict[tuple[str, int], Any] = {}
        now = time.perf_counter()
        for event_id, topic, partition, key, value in prepared[sent:due]:
            batch = batches.get((topic, partition))
            if batch is None:
                batch = batches[topic, partition] = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)
            sent_at[event_id] = now
        for (topic, partition), batch in batches.items():
            batch.close()
            await producer.send_batch(batch, topic, partition=partition)
        sent = due
        await asyncio.sleep(TICK)


async def _alerts_consumer(settings: Settings) -> AIOKafkaConsumer:
    # A short fetch wait: the consumer's own polling must not be what is measured.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=5,
    )
    await consumer.start()
    partitions = [
        TopicPartition(settings.topic_alerts, p) for p in range(settings.topic_partitions)
    ]
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    return consumer


async def _read_alerts(
    consumer: AIOKafkaConsumer, sent_at: dict[str, float], timed: list[tuple[float, float]]
) -> None:
    while True:
        batches = await consumer.getmany(timeout_ms=100)
        now = time.perf_counter()
        for records in batches.values():
            for record in records:
                event_id = (orjson.loads(record.value).get("cause") or {}).get("event_id")
                if event_id in sent_at:
                    timed.append((sent_at[event_id], now - sent_at[event_id]))
