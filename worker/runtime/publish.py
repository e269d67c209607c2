"""Publishing a batch's outcome: alerts and dead letters, acknowledged before anything is
saved or committed. Shared by the live loop and the replay."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from worker.pipeline import Outcome
from worker.settings import Settings


def new_producer(settings: Settings, client_id: str) -> AIOKafkaProducer:
    # acks=all: an alert counts as published only once every in-sync replica has it.
    # request_timeout_ms also bounds how long a send waits out a broker that is away;
    # after it, the send fails and the caller's retry (logged, counted) takes over.
    return AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, client_id=client_id,
                            acks="all", linger_ms=5, request_timeout_ms=settings.broker_timeout_ms)


async def publish(producer: AIOKafkaProducer, outcome: Outcome, *, alerts_topic: str,
                  deadletter_topic: str) -> None:
    """Send everything, then wait for every acknowledgement (sends are pipelined)."""
    send = producer.send
    futures: list[asyncio.Future[Any]] = []
    try:
        for key, alert in outcome.alerts:
            futures.append(await send(alerts_topic, orjson.dumps(alert), key=key.encode()))
        for raw_key, record in outcome.dead_letters:
            futures.append(await send(deadletter_topic, orjson.dumps(record), key=raw_key))
    except BaseException:
        # The caller sends the whole outcome again; what this attempt already sent may
        # still fail later with nobody awaiting it: collect that instead of an error log each.
        asyncio.gather(*futures, return_exceptions=True)
        raise
    if futures:
        await asyncio.gather(*futures)
