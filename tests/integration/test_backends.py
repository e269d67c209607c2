"""The session backends are real: a record goes through the broker, a key through Redis."""

from __future__ import annotations

import asyncio
import dataclasses

import redis.asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from worker.settings import Settings


async def test_kafka_round_trip_on_a_created_topic(settings: Settings) -> None:
    topic = settings.topic_login
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, settings.topic_partitions, 1)])
        [described] = await admin.describe_topics([topic])
        assert len(described["partitions"]) == settings.topic_partitions
    finally:
        await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, b"hello", key=b"acme")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, sent.partition)])
        record = await asyncio.wait_for(consumer.getone(), timeout=15)
    finally:
        await consumer.stop()
    assert (record.key, record.value, record.offset) == (b"acme", b"hello", sent.offset)


async def test_consumer_group_joins_and_commits(settings: Settings) -> None:
    # The worker relies on group membership and committed offsets, so prove both.
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        sent = await producer.send_and_wait(settings.topic_ticket, b"t1", key=b"acme")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        settings.topic_ticket,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
        await consumer.commit()
        tp = TopicPartition(settings.topic_ticket, sent.partition)
        assert record.value == b"t1"
        assert await consumer.committed(tp) == sent.offset + 1
    finally:
        await consumer.stop()


async def test_redis_set_get(redis_client: redis.asyncio.Redis) -> None:
    await redis_client.set("healthscore:probe", b"1")
    assert await redis_client.get("healthscore:probe") == b"1"


async def test_settings_are_private_to_the_test(settings: Settings, redis_url: str) -> None:
    assert settings.metrics_port == 0
    assert settings.topic_partitions == 3
    names = [
        f.name
        for f in dataclasses.fields(Settings)
        if f.name.startswith("topic_")
        and isinstance(getattr(settings, f.name), str)
        and getattr(Settings(), f.name)
    ]  # the models topic is off unless set
    topics = {getattr(settings, name) for name in names}
    assert len(topics) == len(names) == 9
    assert settings.topic_models == ""
    assert not topics & {getattr(Settings(), name) for name in names}
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        assert await client.dbsize() == 0
    finally:
        await client.aclose()
