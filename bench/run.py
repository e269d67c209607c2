"""The benchmark: healthscore against the client library's limit and against its
peers, on one embedded broker and one local Redis, in one run.

    python -m bench.run            # the full run (about 15 minutes here)
    python -m bench.run --quick    # small sizes, to check the benchmark itself

Prints a table and writes the figures to bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench import ceiling, latency, memory, silent
from bench.contender import WorkerProcess, run_to_end
from bench.data import account_name, events, preload
from bench.progress import Phases
from bench.report import print_table, targets
from worker.embedded import EmbeddedStack
from worker.runtime.topics import ensure_topics
from worker.settings import Settings

RESULTS = Path(__file__).parent / "results" / "latest.json"
# The peers fast enough for the whole 10k-account set; naive faust reads the prefix only.
WHOLE_SET_PEERS = ("quix", "bytewax", "bytewax-recovery", "pathway")
PHASES = Phases()


@dataclasses.dataclass(frozen=True)
class Sizes:
    events_10k: int  # events over 10k accounts (throughput, ceiling, peers, memory)
    accounts_10k: int
    # The first of those events, in topics and a Redis database of their own, for every
    # contender side by side: the naive peer is too slow for the whole set.
    prefix_events: int
    accounts_1m: int  # events at 1M accounts: each account once
    latency_seconds: float
    latency_rate: float
    light_rate: float


FULL = Sizes(300_000, 10_000, 20_000, 1_000_000, 30.0, 5000.0, 1000.0)
# Quick: every part runs and measures something, in as little time as that takes (the
# suite runs it); the figures mean nothing at these sizes. The peers' start-up dominates,
# and naive faust (about 100 events/s here) the rest: hence its short prefix.
QUICK = Sizes(5_000, 2_000, 600, 5_000, 2.0, 1000.0, 200.0)


def scenario(base: Settings, name: str) -> Settings:
    """Topics and a group of the scenario's own, on the shared broker and Redis."""
    return dataclasses.replace(
        base,
        group_id=f"healthscore-{name}",
        **{
            f: f"{name}.{getattr(base, f)}"
            for f in (
                "topic_login",
                "topic_feature_use",
                "topic_ticket",
                "topic_survey",
                "topic_accounts",
                "topic_alerts",
                "topic_deadletter",
            )
        },
    )


async def throughput(
    settings: Settings, total: int, logs: Path, label: str, profile: Path | None
) -> dict[str, Any]:
    with (
        PHASES.phase(f"healthscore: {total} events ({label})"),
        WorkerProcess(
            settings,
            logs / f"worker-{label}.log",
            profile / f"worker-{label}.txt" if profile else None,
        ) as worker,
    ):
        await worker.wait_ready()
        seconds, start, end, quarter_rss = await run_to_end(
            worker,
            total,
            within=max(600.0, total / 500),
            report=PHASES.counter(f"healthscore ({label})", total),
        )
    # From just before its first batch: the worker is idle until then.
    cpu = end.cpu_seconds - start.cpu_seconds
    return {
        "events": end.committed,
        "seconds": seconds,
        "events_per_s": end.committed / seconds if seconds else 0.0,
        "cpu_seconds": cpu,
        "cpu_us_per_event": 1e6 * cpu / end.committed if end.committed else 0.0,
        "alerts": end.alerts,
        "rss_start_bytes": start.rss_bytes,
        "rss_quarter_bytes": quarter_rss,
        "rss_end_bytes": end.rss_bytes,
    }


async def run(
    out: dict[str, Any], sizes: Sizes, peers: bool, logs: Path, profile: Path | None
) -> None:
    """Fills ``out`` as it goes: what was measured survives a failure further on.

    Every contender a figure compares reads the same events: the ceiling, healthscore
    and the peers but naive faust the whole 10k-account set; healthscore and every peer
    again its first ``prefix_events`` side by side (a prefix is mostly first scores, so it has
    many more alerts per event than the whole set; each side's share is reported)."""
    out["sizes"] = dataclasses.asdict(sizes)
    with EmbeddedStack() as stack:
        base = Settings(
            kafka_bootstrap=stack.bootstrap,
            redis_url=stack.url,
            metrics_port=0,
            session_timeout_ms=6000,
        )
        redis = Redis.from_url(stack.url)

        small = scenario(base, "s10k")
        await ensure_topics(small)
        now = time.time()  # one clock for both: the prefix is the set's first events
        n = await _timed(
            out,
            "preload_10k",
            preload(small, events(sizes.events_10k, sizes.accounts_10k, now=now)),
        )
        with PHASES.phase("ceiling: the client library alone"):
            out["ceiling"] = await ceiling.measure(small, n)
        with PHASES.phase("ceiling: librdkafka alone"):
            out["ceiling_librdkafka"] = await asyncio.to_thread(
                ceiling.measure_librdkafka, small, n
            )
        out["healthscore_10k"] = await throughput(small, n, logs, "10k", profile)
        with PHASES.phase("healthscore: Redis memory per account"):
            out["memory"] = dataclasses.asdict(
                await memory.per_account(
                    redis,
                    [account_name(i) for i in range(sizes.accounts_10k)],
                    base.topic_partitions,
                )
            )

        # The same accounts, warm, live at a steady offered rate (the target's), and at
        # one the worker sustains with room to spare on this machine.
        # Seeds of their own: the same event ids again would be dropped as duplicates.
        for key, rate, seed in (
            ("latency", sizes.latency_rate, 9),
            ("latency_light", sizes.light_rate, 10),
        ):
            live = scenario(base, key.replace("_", "-"))
            await ensure_topics(live)
            records = list(
                events(
                    int(rate * sizes.latency_seconds), sizes.accounts_10k, seed=seed, spread_days=1
                )
            )
            with (
                PHASES.phase(f"healthscore: event-to-alert latency at {rate:g} events/s"),
                WorkerProcess(live, logs / f"worker-{key}.log") as worker,
            ):
                await worker.wait_ready()
                out[key] = dataclasses.asdict(await latency.produce_to_alert(live, records, rate))
        if peers:
            out["peers"] = {
                name: await asyncio.to_thread(_peer, name, small, n) for name in WHOLE_SET_PEERS
            }

        # The prefix is for naive faust's ratio; the other peers' prefix figures only
        # in a full run (a quick one checks the benchmark, test_peers each peer).
        await side_by_side(
            out,
            base,
            sizes,
            now,
            ("naive-faust", *(() if sizes is QUICK else WHOLE_SET_PEERS)) if peers else (),
            logs,
        )

        large = scenario(base, "s1m")
        await ensure_topics(large)
        n = await _timed(
            out,
            "preload_1m",
            preload(large, events(sizes.accounts_1m, sizes.accounts_1m, seed=8, each_once=True)),
        )
        out["healthscore_1m"] = await throughput(large, n, logs, "1m", profile)
        with PHASES.phase("healthscore: rescoring every silent account"):
            out["silent"] = dataclasses.asdict(
                await silent.rescore_all(large, redis, days_later=91)
            )

        await redis.aclose()


async def side_by_side(
    out: dict[str, Any],
    base: Settings,
    sizes: Sizes,
    now: float,
    peers: tuple[str, ...],
    logs: Path,
) -> None:
    """healthscore and ``peers`` on the first ``prefix_events`` of the 10k set."""
    # The same event ids as the whole set: a database of their own, or healthscore
    # would drop them as duplicates of what it scored before.
    prefix = scenario(base.replace(redis_url=_database(base.redis_url, 1)), "prefix")
    await ensure_topics(prefix)
    n = await _timed(
        out,
        "preload_prefix",
        preload(prefix, events(sizes.prefix_events, sizes.accounts_10k, now=now)),
    )
    side = out["side_by_side"] = {"events": n}
    side["healthscore"] = await throughput(prefix, n, logs, "prefix", None)
    for name in peers:
        side[name] = await asyncio.to_thread(_peer, name, prefix, n)


def _peer(name: str, settings: Settings, total: int) -> dict[str, Any]:
    from bench.peers.run import run_peer  # the bench extra: faust, Quix, Bytewax, Pathway

    with PHASES.phase(f"{name}: {total} events"):
        result = run_peer(
            name,
            bootstrap=settings.kafka_bootstrap,
            redis_url=settings.redis_url,
            settings=settings,
            total_events=total,
            timeout_s=max(300.0, total / 200),
            output_topic=f"{settings.topic_alerts}.{name}",
        )
    return dataclasses.asdict(result)


def _database(url: str, db: int) -> str:
    """The same Redis at another database number (``redis://host:port/0`` -> ``/db``)."""
    return f"{url.rsplit('/', 1)[0]}/{db}"


async def _timed(out: dict[str, Any], name: str, work: Any) -> int:
    started = time.perf_counter()
    with PHASES.phase(f"writing the events ({name})"):
        result: int = await work
    out.setdefault("setup_seconds", {})[name] = round(time.perf_counter() - started, 1)
    return result


def _machine() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, check=False
        ).stdout.strip()

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--", "worker")),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the benchmark")
    parser.add_argument("--no-peers", action="store_true", help="skip the peers")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument(
        "--logs",
        type=Path,
        metavar="DIR",
        help="keep the workers' logs in DIR (else a temporary directory)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="record the workers with py-spy into DIR (collapsed stacks)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    results: dict[str, Any] = {"machine": _machine()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="healthscore-bench-") as tmp:
        for folder in (args.profile, args.logs):
            if folder:
                folder.mkdir(parents=True, exist_ok=True)
        try:
            asyncio.run(
                run(results, sizes, not args.no_peers, args.logs or Path(tmp), args.profile)
            )
        except BaseException:
            args.out.write_text(json.dumps(results, indent=2) + "\n")
            print(f"failed; what was measured is in {args.out}")
            raise
    results["targets"] = targets(results)
    print_table(results)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    return results


if __name__ == "__main__":
    main()
