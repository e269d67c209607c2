"""Publishing a batch's outcome: alerts and dead letters, acknowledged before anything is
saved or committed. Shared by the live loop and the replay."""

from __future__ import annotations

import asyncio

import orjson
from aiokafka import AIOKafkaProducer

from worker.pipeline import Outcome
from worker.settings import Settings


def new_producer(settings: Settings, client_id: str) -> AIOKafkaProducer:
    # acks=all: an alert counts as published only once every in-sync replica has it.
    return AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, client_id=client_id,
                            acks="all", linger_ms=5)


async def publish(producer: AIOKafkaProducer, outcome: Outcome, *, alerts_topic: str,
                  deadletter_topic: str) -> None:
    """Send everything, then wait for every acknowledgement (sends are pipelined)."""
    send = producer.send
    futures = [
        await send(alerts_topic, orjson.dumps(alert), key=key.encode())
        for key, alert in outcome.alerts
    ]
    futures += [
        await send(deadletter_topic, orjson.dumps(record), key=key)
        for key, record in outcome.dead_letters
    ]
    if futures:
        await asyncio.gather(*futures)
