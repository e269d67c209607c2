"""One huge account: Redis memory and the worker's held copy with and without the bound
on distinct members (HEALTHSCORE_MAX_DISTINCT_MEMBERS).

    python -m bench.distinct                      # 60k users and 60k features, bound 25k
    python -m bench.distinct --members 60000 --cap 1000000   # as good as unbounded

Feeds the pipeline in-process on a local Redis (no broker): feature-use events, each a
new user and a new feature, then prints MEMORY USAGE of each of the account's keys and
the size of the worker's copy of its members.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import orjson
from aiokafka.structs import ConsumerRecord
from redis.asyncio import Redis

from worker.clock import FixedClock
from worker.embedded import EmbeddedRedis
from worker.metrics import Metrics
from worker.modelfile import load_model
from worker.pipeline import Pipeline
from worker.settings import Settings
from worker.timefmt import rfc3339
from worker.windows import keys
from worker.windows.store import WindowStore

ACCOUNT = "huge-enterprise"
BATCH = 5000


def _records(settings: Settings, members: int, now: float) -> list[ConsumerRecord[bytes, bytes]]:
    out = []
    for i in range(members):
        body = {
            "event_id": f"e{i}",
            "account_id": ACCOUNT,
            "ts": rfc3339(now - i % 86400),
            "user_id": f"user-{i:06d}@example.com",
            "feature": f"feature-{i:06d}",
        }
        key, value = ACCOUNT.encode(), orjson.dumps(body)
        out.append(
            ConsumerRecord(
                settings.topic_feature_use, 0, i, 0, 0, key, value, None, len(key), len(value), ()
            )
        )
    return out


def _held_bytes(store: WindowStore, now: float) -> int:
    """The held copy's member dicts: the dicts, their keys and their float values."""
    resident = store._residents.get(ACCOUNT, store.now_bucket(now))
    assert resident is not None
    return sum(
        sys.getsizeof(members) + sum(sys.getsizeof(m) + 24 for m in members)
        for members in resident.last_seen.values()
    )


async def run(members: int, cap: int) -> None:
    settings = Settings()
    now = time.time()
    with EmbeddedRedis() as embedded:
        redis = Redis.from_url(embedded.url)
        model = load_model()
        store = WindowStore(redis, model, max_distinct_members=cap)
        pipeline = Pipeline(settings, model, store, FixedClock(now), Metrics())
        records = _records(settings, members, now)
        for start in range(0, members, BATCH):
            await pipeline.store.save(
                (await pipeline.process(records[start : start + BATCH])).writes
            )
        total = 0
        for key, name in zip(
            keys.account_keys(ACCOUNT, ("users", "features")),
            ("counters", "state", "recent ids", "users", "features"),
            strict=True,
        ):
            used = await redis.memory_usage(key, samples=0) or 0
            total += used
            print(f"{name:>12}: {await redis.type(key)!s:>12} {used:>12,} B")
        print(
            f"{'all keys':>12}: {'':>12} {total:>12,} B "
            f"({members:,} distinct users and features, bound {cap:,})"
        )
        print(f"{'held copy':>12}: {'':>12} {_held_bytes(store, now):>12,} B of members")
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=60_000)
    parser.add_argument("--cap", type=int, default=Settings().max_distinct_members)
    args = parser.parse_args()
    asyncio.run(run(args.members, args.cap))


if __name__ == "__main__":
    main()
