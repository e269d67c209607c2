"""Publishing a batch's outcome: alerts and dead letters, acknowledged before anything is
saved or committed. Shared by the live loop and the replay."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from worker.alerts import to_json
from worker.rescore import Outcome
from worker.runtime import kafka
from worker.settings import Settings

# Room for a few hundred alerts per produce request, well under brokers' message limits.
MAX_BATCH_BYTES = 512 * 1024


def new_producer(settings: Settings, client_id: str) -> AIOKafkaProducer:
    # acks=all: an alert counts as published only once every in-sync replica has it.
    # request_timeout_ms also bounds how long a send waits out a broker that is away;
    # after it, the send fails and the caller's retry (logged, counted) takes over.
    return kafka.producer(
        settings,
        client_id=client_id,
        acks="all",
        linger_ms=5,
        max_batch_size=MAX_BATCH_BYTES,
        max_request_size=settings.max_request_bytes,
        request_timeout_ms=settings.broker_timeout_ms,
    )


async def co_partitioned(
    producer: AIOKafkaProducer, alerts_topic: str, input_topics: Iterable[str]
) -> bool:
    """Whether the alerts topic has as many partitions as every input topic.

    Then an account's alerts can go to its input partition's number: with keyed
    input that is where the default partitioner would put them anyway, without
    hashing every key in Python, and they can be sent as one batch per partition.
    """
    try:
        counts = {len(await producer.partitions_for(t)) for t in (alerts_topic, *input_topics)}
    except Exception:  # unknown topic or no metadata: hash the keys like any producer
        return False
    return len(counts) == 1


async def publish(
    producer: AIOKafkaProducer,
    outcome: Outcome,
    *,
    alerts_topic: str,
    deadletter_topic: str,
    co_partitioned: bool = False,
) -> None:
    """Send everything, then wait for every acknowledgement (sends are pipelined).

    ``co_partitioned``: alerts whose outbox entry names a partition go to that
    partition, batched; the others are keyed sends.
    """
    futures: list[asyncio.Future[Any]] = []
    try:
        batched, keyed = _split(outcome, co_partitioned)
        for partition, records in batched.items():
            futures += await _send_batches(producer, alerts_topic, partition, records)
        for key, value in keyed:
            futures.append(await producer.send(alerts_topic, value, key=key))
        for raw_key, record in outcome.dead_letters:
            futures.append(await producer.send(deadletter_topic, orjson.dumps(record), key=raw_key))
    except BaseException:
        # The caller sends the whole outcome again; what this attempt already sent may
        # still fail later with nobody awaiting it: collect that instead of an error log each.
        asyncio.gather(*futures, return_exceptions=True)
        raise
    if futures:
        await asyncio.gather(*futures)


Records = list[tuple[bytes, bytes]]  # (key, value)


def _split(outcome: Outcome, co_partitioned: bool) -> tuple[dict[int, Records], Records]:
    partitions: Sequence[int | None] = [None] * len(outcome.alerts)
    if co_partitioned and len(outcome.outbox) == len(outcome.alerts):
        partitions = [entry.partition for entry in outcome.outbox]
    batched: dict[int, Records] = {}
    keyed: Records = []
    for (key, alert), partition in zip(outcome.alerts, partitions, strict=True):
        record = (key.encode(), to_json(alert))
        if partition is None:
            keyed.append(record)
        else:
            batched.setdefault(partition, []).append(record)
    return batched, keyed


async def _send_batches(
    producer: AIOKafkaProducer, topic: str, partition: int, records: Records
) -> list[asyncio.Future[Any]]:
    futures = []
    batch = producer.create_batch()
    for key, value in records:
        if batch.append(key=key, value=value, timestamp=None) is None:  # full
            futures.append(await producer.send_batch(batch, topic, partition=partition))
            batch = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"an alert of {len(value)} bytes does not fit a batch")
    if batch.record_count():
        batch.close()
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures


async def publish_records(
    producer: AIOKafkaProducer, topic: str, records: Sequence[tuple[str, dict[str, Any]]]
) -> None:
    """Keyed JSON records (data gaps), each acknowledged before this returns."""
    futures = [
        await producer.send(topic, orjson.dumps(record), key=key.encode())
        for key, record in records
    ]
    await asyncio.gather(*futures)
