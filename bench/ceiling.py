"""The ceiling: what the client library allows on this broker. Consume every event
with aiokafka and decode it with orjson, nothing else; and the same with
confluent-kafka (librdkafka, C), the faster client a compiled worker could use."""

from __future__ import annotations

import statistics
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from worker.settings import Settings


async def measure(settings: Settings, total: int, runs: int = 3) -> dict[str, Any]:
    """The median of ``runs`` timed reads after an untimed one: the broker's first read
    of freshly written topics is several times slower than the next (74k against about
    290k events/s here), and the contenders it is compared with read them warm."""
    cold = await consume_and_decode(settings, total)
    timed = [await consume_and_decode(settings, total) for _ in range(runs)]
    seconds = statistics.median(timed)
    return {
        "events": total,
        "seconds": seconds,
        "events_per_s": total / seconds,
        "runs_seconds": timed,
        "cold_seconds": cold,
    }


def measure_librdkafka(settings: Settings, total: int, runs: int = 3) -> dict[str, Any]:
    """``measure`` with confluent-kafka (blocking: run it in a thread)."""
    cold = consume_and_decode_librdkafka(settings, total)
    timed = [consume_and_decode_librdkafka(settings, total) for _ in range(runs)]
    seconds = statistics.median(timed)
    return {
        "events": total,
        "seconds": seconds,
        "events_per_s": total / seconds,
        "runs_seconds": timed,
        "cold_seconds": cold,
    }


# librdkafka's defaults wait for more data in ways this broker answers slowly: it holds
# an empty fetch for the whole wait, so each wait stalls the consumer (about a second).
LIBRDKAFKA_TUNING = {
    "fetch.wait.max.ms": 50,
    "fetch.queue.backoff.ms": 10,
    "queued.min.messages": 1_000_000,
}


def consume_and_decode_librdkafka(settings: Settings, total: int, batch: int = 10_000) -> float:
    from confluent_kafka import OFFSET_BEGINNING, Consumer  # the dev and bench extras
    from confluent_kafka import TopicPartition as Partition

    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": "healthscore-ceiling",
            "enable.auto.commit": False,
            **LIBRDKAFKA_TUNING,
        }
    )
    try:
        consumer.assign(
            [
                Partition(t, p, OFFSET_BEGINNING)
                for t in settings.event_topics
                for p in range(settings.topic_partitions)
            ]
        )
        seen, started = 0, None
        while seen < total:
            records = consumer.consume(num_messages=batch, timeout=1.0)
            if started is None and records:
                started = time.perf_counter()
            for record in records:
                if record.error() is None:
                    orjson.loads(record.value())
                    seen += 1
        return time.perf_counter() - (started or time.perf_counter())
    finally:
        consumer.close()


async def consume_and_decode(settings: Settings, total: int, batch: int = 10_000) -> float:
    """Seconds from the first record to the ``total``-th, all partitions assigned by hand."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 << 20,
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(t, p)
            for t in settings.event_topics
            for p in range(settings.topic_partitions)
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen, started = 0, None
        while seen < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=batch)
            if started is None and batches:
                started = time.perf_counter()
            for records in batches.values():
                for record in records:
                    orjson.loads(record.value)
                seen += len(records)
        return time.perf_counter() - (started or time.perf_counter())
    finally:
        await consumer.stop()
