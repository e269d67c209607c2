"""The benchmark's input: schema-valid events over N accounts, written to the broker
once and read by every contender (healthscore, the ceiling, the peers).

The mix follows what product telemetry looks like: mostly logins and feature use,
some tickets, few surveys; timestamps spread over the last 20 days so events land
in many day buckets of the 30-day windows.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaProducer

from worker.settings import Settings
from worker.timefmt import rfc3339

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Record:
    event_type: str  # login | feature_use | ticket | survey
    account_id: str
    value: bytes  # the JSON event


def account_name(index: int) -> str:
    return f"acct-{index:07d}"


def events(
    n: int,
    accounts: int,
    seed: int = 7,
    *,
    spread_days: float = 30.0,
    each_once: bool = False,
    now: float | None = None,
) -> Iterator[Record]:
    """``n`` events over ``accounts`` accounts, drawn at random, or with ``each_once``
    every account in turn (in a shuffled order) so ``n`` events reach min(n, accounts)."""
    rng = random.Random(seed)
    now = time.time() if now is None else now
    order = list(range(accounts))
    rng.shuffle(order)
    for i in range(n):
        index = order[i % accounts] if each_once else rng.randrange(accounts)
        yield _record(i, account_name(index), now - rng.uniform(0, spread_days * DAY), rng)


def _record(i: int, account: str, ts: float, rng: random.Random) -> Record:
    base = {
        "event_id": uuid.UUID(int=rng.getrandbits(128)).hex,
        "account_id": account,
        "ts": rfc3339(ts),
    }
    kind = rng.random()
    if kind < 0.55:
        body = {**base, "user_id": f"u{i % 20}", "session_seconds": rng.randint(30, 3600)}
        event_type = "login"
    elif kind < 0.9:
        body = {**base, "user_id": f"u{i % 20}", "feature": f"f{rng.randrange(12)}"}
        event_type = "feature_use"
    elif kind < 0.97:
        body = {
            **base,
            "ticket_id": f"t{i}",
            "status": rng.choice(["opened", "escalated"]),
            "priority": "normal",
        }
        event_type = "ticket"
    else:
        body = {**base, "kind": "nps", "score": rng.randint(0, 10)}
        event_type = "survey"
    return Record(event_type, account, orjson.dumps(body))


def topic_of(settings: Settings) -> dict[str, str]:
    """Event type -> the topic it is written to."""
    return {event_type: topic for topic, event_type in settings.event_topics.items()}


async def preload(settings: Settings, records: Iterator[Record] | list[Record]) -> int:
    """Write the records to the settings' event topics, keyed by account; returns the count."""
    topics = topic_of(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, linger_ms=20, max_batch_size=1 << 20
    )
    await producer.start()
    sent = 0
    try:
        pending = []
        for record in records:
            pending.append(
                await producer.send(
                    topics[record.event_type], record.value, key=record.account_id.encode()
                )
            )
            sent += 1
            if len(pending) >= 50_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent
