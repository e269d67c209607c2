"""One run of the pipeline on randomized batches, written out whole: every alert and dead
letter it gives and every Redis key it leaves. Everything in it follows from the seed (a
fixed clock, seeded ids), so two runs give the same bytes: run once compiled and once pure
(``tests.purepython``), the compiled build must write what the pure code does
(``test_compiled.py``).

    python -m tests.integration.identity --redis URL --seed 7 --model FILE --out FILE

The batches: every kind of record of the in-play stream (events of all types, accounts
moving between segments, overrides set, edited, expiring and cleared, producer
duplicates), hostile records among them, batches of random sizes, some delivered twice
(a rebalance's re-delivery), and the clock moved on between batches, by days now and
then, with the accounts whose windows rolled rescored.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import zlib
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from aiokafka.structs import ConsumerRecord
from redis.asyncio import Redis

from tests.integration import inplay
from worker import compiled
from worker.alerts import to_json
from worker.clock import FixedClock
from worker.metrics import Metrics
from worker.modelfile import load_model
from worker.pipeline import Pipeline
from worker.rescore import Outcome
from worker.runtime.delivery import Delivery, once
from worker.settings import Settings
from worker.windows import server
from worker.windows.store import WindowStore
from worker.windows.wire import Client

NOW = 1796275470.0  # 2026-12-03; any moment will do, the same every run
PARTITIONS = 4
HOURS = 3600.0
# Records no schema takes: each must become a dead letter, the same in both builds.
HOSTILE = (
    b"",
    b"{",
    b"[]",
    b"\xff\xfe",
    b'{"account_id": 5}',
    b'{"event_id":"x","account_id":"acct-0001","ts":"not a time","user_id":"u"}',
    b'{"event_id":"y","account_id":"acct-0002","ts":"2026-12-01T00:00:00Z",'
    b'"user_id":"u","session_seconds":1e308}',
)

Raw = ConsumerRecord[bytes, bytes | None]


def records(settings: Settings, seed: int, events: int) -> list[Raw]:
    """The in-play stream as the consumer hands it over, hostile records among it."""
    rng = random.Random(seed)
    stream = inplay.stream(
        rng,
        events=events,
        now=NOW - 2 * HOURS,
        expire_after=(1 * HOURS, 30 * HOURS),
        seeded_ids=True,
    )
    recs = list(stream.records)
    for body in HOSTILE:
        recs.insert(rng.randrange(len(recs)), ("login", b"acct-0003", body))
    topic_of = inplay.topics(settings)
    offsets: defaultdict[tuple[str, int], int] = defaultdict(int)
    out: list[Raw] = []
    for kind, key, value in recs:
        topic, partition = topic_of[kind], zlib.crc32(key) % PARTITIONS
        offset = offsets[topic, partition]
        offsets[topic, partition] += 1
        out.append(
            ConsumerRecord(
                topic,
                partition,
                offset,
                0,
                0,
                key,
                value,
                None,
                len(key),
                0 if value is None else len(value),
                (),
            )
        )
    return out


class Run:
    """The pipeline, its delivery and what it published, on one Redis."""

    def __init__(self, settings: Settings, model_path: str, redis: Client) -> None:
        self.clock = FixedClock(NOW)
        self.published: list[bytes] = []
        self.pipeline = Pipeline(
            settings,
            load_model(model_path),
            WindowStore(redis, load_model(model_path)),
            self.clock,
            Metrics(),
        )
        self.delivery = Delivery(self.pipeline.store, self._publish, once)

    async def _publish(self, outcome: Outcome) -> None:
        for key, alert in outcome.alerts:
            self.published.append(b"alert " + key.encode() + b" " + to_json(alert))
        for key, letter in outcome.dead_letters:  # less its time: the wall clock's
            self.published.append(
                b"dead "
                + (key or b"-")
                + b" "
                + orjson.dumps({**letter, "ts": None}, option=orjson.OPT_SORT_KEYS)
            )

    async def batches(self, rng: random.Random, recs: Sequence[Raw]) -> None:
        start = 0
        while start < len(recs):
            batch = recs[start : start + rng.randint(1, 400)]
            await self.delivery.deliver(await self.pipeline.process(batch))
            if rng.random() < 0.1:  # delivered again: every event of it a replay now
                await self.delivery.deliver(await self.pipeline.process(batch))
            start += len(batch)
            self.clock.advance(
                rng.uniform(0, 1 * HOURS) if rng.random() < 0.9 else rng.uniform(1, 3) * 24 * HOURS
            )
            await self.expiries()
        self.clock.advance(40 * 24 * HOURS)  # every window rolls past its events
        await self.expiries()

    async def expiries(self) -> None:
        due = await self.pipeline.due(range(PARTITIONS), 100_000)
        if due:
            await self.delivery.deliver(await self.pipeline.expire(due))


async def dump(redis: Redis) -> list[bytes]:
    """Every key and its content, sorted; of its expiry only whether it has one (its
    remaining time depends on when the dump ran)."""
    lines = []
    for key in sorted([k async for k in redis.scan_iter(count=1000)]):
        kind = (await redis.type(key)).decode()
        content: Any
        if kind == "string":
            content = await redis.get(key)
        elif kind == "hash":
            content = sorted((await redis.hgetall(key)).items())
        elif kind == "zset":
            content = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            content = sorted(await redis.smembers(key))
        else:
            content = await redis.lrange(key, 0, -1)
        expiring = await redis.ttl(key) >= 0
        lines.append(b"key " + repr((key, kind, expiring, content)).encode())
    return lines


async def main(redis_url: str, seed: int, model_path: str, events: int) -> list[bytes]:
    settings = Settings()
    redis = Redis.from_url(redis_url)
    client = server.connect(redis_url, settings.redis_timeout_seconds)
    try:
        await redis.flushdb()
        run = Run(settings, model_path, client)
        await run.batches(random.Random(seed), records(settings, seed, events))
        lines = [b"build " + compiled.describe().encode(), *run.published, *await dump(redis)]
    finally:
        await client.aclose()
        await redis.aclose()
    return lines


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--model", default="")
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    lines = asyncio.run(main(args.redis, args.seed, args.model, args.events))
    args.out.write_bytes(b"\n".join(lines) + b"\n")


if __name__ == "__main__":
    cli()
