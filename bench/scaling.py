"""The scaling curve: events/s against the number of workers and against the number of
accounts resident in Redis, with the CPU each side spends per event and Redis' bytes
per account: the figures the README's sizing table is derived from.

    python -m bench.scaling             # 1, 2, 4 workers; 10k, 100k, 1M accounts
    python -m bench.scaling --quick     # small sizes, to check the script itself

Each point runs on the same embedded broker and a flushed local Redis, with topics of
its own. N workers of one group start, get their partitions and settle; then the
events are written while they read them, timed from the first written to the last
committed. A worker curve point: ``events`` events over 10k accounts. An accounts
point: every account written once first (a backfill, not timed), then ``events`` more
over all of them: the steady state with that many accounts resident. Prints a line
per point and writes bench/results/scaling.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis

from bench.contender import WorkerProcess
from bench.cputime import cpu_seconds
from bench.data import Record, events, preload
from bench.run import scenario
from worker.embedded import EmbeddedStack
from worker.runtime.topics import ensure_topics
from worker.settings import Settings

RESULTS = Path(__file__).parent / "results" / "scaling.json"
QUICK = ([1, 2], [1_000], 2_000)  # workers, accounts, events: checks the script itself


@dataclasses.dataclass(frozen=True)
class Point:
    workers: int
    accounts: int
    events: int
    seconds: float
    events_per_s: float
    worker_cpu_us_per_event: float  # all workers' CPU over the events
    redis_cpu_us_per_event: float
    redis_bytes_per_account: float  # used_memory over the accounts resident
    worker_rss_mib: float  # the largest worker's, at the end


@dataclasses.dataclass(frozen=True)
class Setup:
    base: Settings
    logs: Path
    redis_pid: int
    settle_seconds: float  # for a group of several workers to settle its assignment


async def measure(
    setup: Setup, name: str, workers: int, accounts: int, total: int, *, backfill: bool
) -> Point:
    async with Redis.from_url(setup.base.redis_url) as redis:
        await redis.flushall()
        empty = int((await redis.info("memory"))["used_memory"])
        if backfill:  # every account once, untimed: the state a steady stream finds
            await _run(setup, f"{name}-fill", 1, events(accounts, accounts, seed=3, each_once=True))
        redis_cpu = cpu_seconds(setup.redis_pid)
        n, seconds, cpu, rss = await _run(setup, name, workers, events(total, accounts, seed=5))
        redis_cpu = cpu_seconds(setup.redis_pid) - redis_cpu
        used = int((await redis.info("memory"))["used_memory"]) - empty
    return Point(
        workers,
        accounts,
        n,
        round(seconds, 2),
        round(n / seconds),
        round(1e6 * cpu / n, 1),
        round(1e6 * redis_cpu / n, 1),
        round(used / accounts),
        round(rss / 2**20, 1),
    )


async def _run(
    setup: Setup, name: str, workers: int, records: Iterator[Record]
) -> tuple[int, float, float, int]:
    """The events written while ``workers`` read them: how many, the seconds from the
    first written to the last committed (the writer shares the cores), the workers'
    CPU seconds in that time, and the largest worker's RSS at the end."""
    settings, log = scenario(setup.base, name), setup.logs / f"{name}.log"
    await ensure_topics(settings)
    with contextlib.ExitStack() as stack:
        procs = [stack.enter_context(WorkerProcess(settings, log)) for _ in range(workers)]
        for proc in procs:
            await proc.wait_ready(within=120.0)
        await asyncio.sleep(setup.settle_seconds)
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await admin.start()
        try:
            cpu = sum(cpu_seconds(p.pid) for p in procs)
            started = time.perf_counter()
            total = await preload(settings, records)
            deadline = time.monotonic() + max(600.0, total / 300)
            while (await procs[0].progress(admin)).committed < total:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{total} events not committed; see {log}")
                await asyncio.sleep(0.2)
            seconds = time.perf_counter() - started
            cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu
            rss = max(p.rss_bytes() for p in procs)
        finally:
            await admin.close()
    return total, seconds, cpu, rss


async def run(
    out: dict[str, Any],
    workers: list[int],
    accounts: list[int],
    total: int,
    logs: Path,
    *,
    quick: bool,
) -> None:
    with EmbeddedStack() as stack:
        base = Settings(
            kafka_bootstrap=stack.bootstrap,
            redis_url=stack.url,
            metrics_port=0,
            session_timeout_ms=6000,
        )
        pid = stack.redis.pid
        assert pid is not None, "started by the with block"
        setup = Setup(base, logs, pid, settle_seconds=0.5 if quick else 3.0)
        if not quick:  # untimed: the broker's first reads after a start are slower
            await measure(setup, "warm-up", 1, 1_000, 5_000, backfill=False)
        for n in workers:
            point = await measure(setup, f"w{n}", n, 10_000, total, backfill=False)
            out["workers"].append(dataclasses.asdict(point))
            _print(point)
        for count in accounts:
            point = await measure(setup, f"a{count}", 1, count, total, backfill=True)
            out["accounts"].append(dataclasses.asdict(point))
            _print(point)


def _print(p: Point) -> None:
    print(
        f"{p.workers} worker(s), {p.accounts:>9,} accounts, {p.events:,} events: "
        f"{p.events_per_s:>8,.0f} events/s; CPU per event: workers "
        f"{p.worker_cpu_us_per_event:.0f} us, Redis {p.redis_cpu_us_per_event:.0f} us; "
        f"Redis {p.redis_bytes_per_account:,.0f} B/account; worker RSS {p.worker_rss_mib} MiB",
        flush=True,
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the script")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument("--logs", type=Path, default=Path("/tmp"), metavar="DIR")
    args = parser.parse_args(argv)
    workers, accounts, total = (
        QUICK if args.quick else ([1, 2, 4], [10_000, 100_000, 1_000_000], 200_000)
    )
    out: dict[str, Any] = {"workers": [], "accounts": []}
    asyncio.run(run(out, workers, accounts, total, args.logs, quick=args.quick))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written to {args.out}")
    return out


if __name__ == "__main__":
    main()
