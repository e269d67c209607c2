"""Read topics from their earliest retained offset to where they end now, in batches.

For rebuilds: no consumer group (nothing is committed, no live worker's
partitions move), and a fixed end, so a replay finishes even while producers
keep writing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from aiokafka import TopicPartition

from worker.runtime import kafka
from worker.settings import Settings


async def read_to_end(
    settings: Settings,
    topics: Sequence[str],
    max_records: int,
    on_total: Callable[[int], None] | None = None,
) -> AsyncIterator[list[Any]]:
    """Batches of records (aiokafka ``ConsumerRecord``), each partition in offset order.

    ``on_total`` is told, before the first batch, how many offsets lie between the
    partitions' starts and their listed ends: about the records to read (a progress bar's
    total)."""
    consumer = kafka.consumer(
        settings,
        client_id="healthscore-reader",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=max(1048576, settings.max_message_bytes * 4),
    )
    await consumer.start()
    try:
        await consumer.topics()  # a metadata fetch: partitions_for_topic reads its cache
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        listed = await consumer.end_offsets(partitions)
        if on_total is not None:
            first = await consumer.beginning_offsets(partitions)
            on_total(sum(max(0, listed[tp] - first[tp]) for tp in partitions))
        end: dict[TopicPartition, int] = {}
        pending = set(partitions)
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=500, max_records=max_records)
            for tp in pending - end.keys():
                # The high watermark of the first fetch as well as the listed end: some
                # brokers (the embedded one) list the last batch's base offset instead.
                if (highwater := consumer.highwater(tp)) is not None:
                    end[tp] = max(listed[tp], highwater)
            records = [r for tp in sorted(batches) for r in batches[tp] if r.offset < end[tp]]
            for tp in end.keys() & pending:
                if await consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
            if records:
                yield records
    finally:
        await consumer.stop()
