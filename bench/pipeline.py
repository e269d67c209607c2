"""The pipeline alone, in-process, on a local Redis and no broker: where a batch's time
goes between the worker's Python and Redis. For profiling changes to the hot path.

    python -m bench.pipeline                       # 100k events over 10k accounts
    python -m bench.pipeline --accounts 100000     # every event a new account
    python -m bench.pipeline --batch 1000 --commands
    python -m bench.pipeline --cluster 3           # on a local Redis Cluster of 3 primaries
    python -m bench.pipeline --silent              # then rescore every account gone silent

Prints events/s, the CPU seconds of this process and of redis-server, and Redis'
own time in the apply script per event (``INFO commandstats``). ``--silent`` then moves the
clock past the longest window and rescores every account due, as a worker holding none
of them does (due -> load -> apply -> rescore -> save), and prints the same per account.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import zlib

from aiokafka.structs import ConsumerRecord
from redis.asyncio import RedisCluster

from bench.cputime import cpu_seconds
from bench.data import events, topic_of
from worker.app import tune_gc
from worker.clock import FixedClock, WallClock
from worker.embedded import EmbeddedRedis
from worker.embeddedcluster import EmbeddedRedisCluster
from worker.metrics import Metrics
from worker.modelfile import load_model
from worker.pipeline import Pipeline
from worker.scoring.model import Model
from worker.settings import Settings
from worker.windows import server
from worker.windows.store import WindowStore
from worker.windows.wire import Client

FIXED_NOW = 1796275470.0  # 2026-12-03: any past moment will do, the same every run
PARTITIONS = 12  # the records' partitions: the worker's are whatever its topics have
SILENT_DAYS = 91  # past the default model's longest window (90 days)


def _records(
    settings: Settings, total: int, accounts: int, now: float | None = None
) -> list[ConsumerRecord[bytes, bytes]]:
    """The records as the consumer would hand them over."""
    topics = topic_of(settings)
    out = []
    for offset, r in enumerate(events(total, accounts, each_once=accounts >= total, now=now)):
        key = r.account_id.encode()
        out.append(
            ConsumerRecord(
                topics[r.event_type],
                zlib.crc32(key) % PARTITIONS,
                offset,
                0,
                0,
                key,
                r.value,
                None,
                len(key),
                len(r.value),
                (),
            )
        )
    return out


async def run(
    total: int,
    accounts: int,
    batch: int,
    commands: bool = False,
    model_path: str = "",
    cluster: int = 0,
    fixed_clock: bool = False,
    silent: bool = False,
) -> None:
    settings = Settings()
    # A fixed clock and event times fixed to it: the same buckets, so the same commands,
    # every run (instruction counts then compare commits exactly; see bench/README).
    clock = FixedClock(FIXED_NOW) if fixed_clock else WallClock()
    records = _records(settings, total, accounts, FIXED_NOW - 3600 if fixed_clock else None)
    backend = EmbeddedRedisCluster(cluster) if cluster else EmbeddedRedis()
    with backend:
        redis = server.connect(backend.url, settings.redis_timeout_seconds)
        model = load_model(model_path)
        pipeline = Pipeline(settings, model, WindowStore(redis, model), clock, Metrics())
        pids = _pids(backend)
        redis_cpu, own_cpu = sum(map(cpu_seconds, pids)), time.process_time()
        started = time.perf_counter()
        for start in range(0, total, batch):
            await pipeline.store.save(
                (await pipeline.process(records[start : start + batch])).writes
            )
        seconds = time.perf_counter() - started
        own_cpu = time.process_time() - own_cpu
        redis_cpu = sum(map(cpu_seconds, pids)) - redis_cpu
        stats = await _commandstats(redis)
        script = stats.get("cmdstat_evalsha", {})
        rescored = await _silent(settings, redis, model, clock.now(), pids) if silent else ""
        await redis.aclose()
    if commands:  # scripts' own commands are counted too
        for name, stat in sorted(stats.items(), key=lambda item: -item[1]["usec"]):
            print(
                f"{name.removeprefix('cmdstat_'):>20} {stat['calls']:>9,} calls "
                f"{stat['usec'] / 1e6:6.2f} s {stat['usec'] / stat['calls']:6.1f} us/call"
            )
    where = f"a cluster of {cluster} primaries" if cluster else "one Redis"
    print(
        f"{total:,} events over {accounts:,} accounts in batches of {batch:,} on {where}: "
        f"{total / seconds:,.0f} events/s"
    )
    print(
        f"CPU: worker {own_cpu:.2f} s ({1e6 * own_cpu / total:.0f} us/event), "
        f"redis-server {redis_cpu:.2f} s ({1e6 * redis_cpu / total:.1f} us/event); "
        f"script {script.get('usec', 0) / 1e6:.2f} s "
        f"({script.get('usec', 0) / total:.1f} us/event)"
    )
    if rescored:
        print(rescored)


async def _silent(
    settings: Settings, redis: Client, model: Model, now: float, pids: list[int]
) -> str:
    """Every account due once the longest window has rolled past its events, rescored
    and saved by a new pipeline: nothing held, each account loaded first."""
    later = FixedClock(now + SILENT_DAYS * 86400)
    pipeline = Pipeline(settings, model, WindowStore(redis, model), later, Metrics())
    partitions = set(range(PARTITIONS))
    accounts = alerts = 0
    redis_cpu, own_cpu = sum(map(cpu_seconds, pids)), time.process_time()
    started = time.perf_counter()
    while due := await pipeline.due(partitions, settings.batch_max_records):
        outcome = await pipeline.expire(due)
        await pipeline.store.save(outcome.writes)
        accounts += len(due)
        alerts += len(outcome.alerts)
    seconds = time.perf_counter() - started
    own_cpu = time.process_time() - own_cpu
    redis_cpu = sum(map(cpu_seconds, pids)) - redis_cpu
    each = max(accounts, 1)
    return (
        f"silent: {accounts:,} accounts rescored ({alerts:,} alerts) in {seconds:.2f} s: "
        f"{accounts / seconds if seconds else 0:,.0f} accounts/s; CPU: worker "
        f"{1e6 * own_cpu / each:.0f} us/account, redis-server {1e6 * redis_cpu / each:.1f} us/account"
    )


def _pids(backend: EmbeddedRedis | EmbeddedRedisCluster) -> list[int]:
    nodes = backend.nodes if isinstance(backend, EmbeddedRedisCluster) else [backend]
    pids = [node.pid for node in nodes]
    assert None not in pids, "started by the with block"
    return [pid for pid in pids if pid is not None]


async def _commandstats(redis: Client) -> dict[str, dict[str, float]]:
    """Redis' time per command, summed over a cluster's primaries."""
    if not isinstance(redis, RedisCluster):
        return dict(await redis.info("commandstats"))
    summed: dict[str, dict[str, float]] = {}
    for node in redis.get_primaries():
        for name, stat in (await redis.info("commandstats", target_nodes=node)).items():
            into = summed.setdefault(name, {"calls": 0, "usec": 0})
            into["calls"] += stat["calls"]
            into["usec"] += stat["usec"]
    return summed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=Settings().batch_max_records)
    parser.add_argument(
        "--commands", action="store_true", help="also print Redis' time per command"
    )
    parser.add_argument(
        "--model",
        default="",
        help="a model file (default: the packaged default model); "
        "bench/custom-signals.yaml adds three filtered signals, "
        "bench/percentile.yaml ranks login frequency among peers",
    )
    parser.add_argument(
        "--fixed-clock",
        action="store_true",
        help="a fixed clock and fixed event times: the same commands every "
        "run, for instruction counts",
    )
    parser.add_argument(
        "--silent",
        action="store_true",
        help=f"then move the clock {SILENT_DAYS} days on and rescore every account due",
    )
    parser.add_argument(
        "--cluster",
        type=int,
        default=0,
        metavar="N",
        help="a local Redis Cluster of N primaries instead of one Redis",
    )
    args = parser.parse_args()
    tune_gc()  # as the worker does
    asyncio.run(
        run(
            args.events,
            args.accounts,
            args.batch,
            args.commands,
            args.model,
            args.cluster,
            args.fixed_clock,
            args.silent,
        )
    )


if __name__ == "__main__":
    main()
