"""Redis memory per account, from MEMORY USAGE of a sample of accounts' keys.

The recent-event-ids set is reported apart: it holds the ids applied in the last
``HEALTHSCORE_DEDUP_HORIZON_SECONDS``, so right after a backfill it holds every
event of the run, while live it holds only a day's worth.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass

from redis.asyncio import Redis

from worker.modelfile import load_model
from worker.windows import keys
from worker.windows.plan import distinct_sets

SAMPLES = 2000


@dataclass
class Memory:
    accounts_sampled: int
    mean_bytes: float  # all keys of an account, its due-schedule entry included
    p95_bytes: float
    mean_without_dedup_bytes: float  # what stays once the dedup horizon has passed
    dedup_mean_bytes: float
    due_entry_bytes: float  # the account's share of its partition's schedule


async def per_account(
    redis: Redis, account_ids: list[str], partitions: int, seed: int = 11
) -> Memory:
    sample = random.Random(seed).sample(account_ids, min(SAMPLES, len(account_ids)))
    sets = distinct_sets(load_model())  # the default model's, as the benchmark runs it
    async with redis.pipeline(transaction=False) as pipe:
        for account in sample:
            for key in keys.account_keys(account, sets):
                pipe.memory_usage(key, samples=0)
        sizes = await pipe.execute()
    due_total = 0
    for partition in range(partitions):
        due_total += await redis.memory_usage(keys.due_key(partition), samples=0) or 0
    scheduled = sum([await redis.zcard(keys.due_key(p)) for p in range(partitions)])
    due_entry = due_total / scheduled if scheduled else 0.0
    per_key = len(keys.account_keys("x", sets))
    totals, dedups = [], []
    for i in range(len(sample)):
        row = [s or 0 for s in sizes[i * per_key : (i + 1) * per_key]]
        dedups.append(row[2])  # hs:{A}:e, third in account_keys
        totals.append(sum(row) + due_entry)
    ordered = sorted(totals)
    return Memory(
        accounts_sampled=len(sample),
        mean_bytes=statistics.fmean(totals),
        p95_bytes=ordered[int(0.95 * (len(ordered) - 1))],
        mean_without_dedup_bytes=statistics.fmean(
            t - d for t, d in zip(totals, dedups, strict=True)
        ),
        dedup_mean_bytes=statistics.fmean(dedups),
        due_entry_bytes=due_entry,
    )
