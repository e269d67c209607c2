"""First throughput figure: events/s one worker sustains end to end.

Pre-loads the input topics of a fresh embedded broker with schema-valid events
over many accounts, then starts one worker and times it from its first batch
to the last event scored (decode, validate, window update, rescore, alert
publish, commit). A first figure, not the benchmark suite.

    python bench/throughput.py [--events 200000] [--accounts 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid

import orjson
from aiokafka import AIOKafkaProducer

from worker.app import Worker
from worker.embedded import EmbeddedStack
from worker.runtime.topics import ensure_topics
from worker.settings import Settings
from worker.timefmt import rfc3339


def _events(n: int, accounts: int, rng: random.Random) -> list[tuple[str, str, bytes]]:
    now = time.time()
    out = []
    for i in range(n):
        account = f"acct-{rng.randrange(accounts):07d}"
        ts = rfc3339(now - rng.uniform(0, 20 * 86400))
        kind = rng.random()
        base = {"event_id": f"{uuid.uuid4().hex}", "account_id": account, "ts": ts}
        if kind < 0.55:
            body = {**base, "user_id": f"u{i % 20}", "session_seconds": rng.randint(30, 3600)}
            topic = "login"
        elif kind < 0.9:
            body = {**base, "user_id": f"u{i % 20}", "feature": f"f{rng.randrange(12)}"}
            topic = "feature_use"
        elif kind < 0.97:
            body = {**base, "ticket_id": f"t{i}", "status": rng.choice(["opened", "escalated"]),
                    "priority": "normal"}
            topic = "ticket"
        else:
            body = {**base, "kind": "nps", "score": rng.randint(0, 10)}
            topic = "survey"
        out.append((topic, account, orjson.dumps(body)))
    return out


async def _preload(settings: Settings, events: list[tuple[str, str, bytes]]) -> None:
    topic_of = {t: name for name, t in settings.event_topics.items()}
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=20,
                                max_batch_size=1 << 20)
    await producer.start()
    try:
        futures = [await producer.send(topic_of[t], v, key=a.encode()) for t, a, v in events]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _measure(settings: Settings, total: int) -> tuple[float, int]:
    worker = Worker(settings)
    task = asyncio.create_task(worker.run())
    registry = worker.metrics.registry
    start = None
    done = 0
    while done < total:
        await asyncio.sleep(0.02)
        done = int(sum(registry.get_sample_value("healthscore_events_total", {"type": t}) or 0
                       for t in settings.event_topics.values()))
        if done and start is None:
            start = time.perf_counter()
    elapsed = time.perf_counter() - (start or time.perf_counter())
    alerts = int(sum(registry.get_sample_value("healthscore_alerts_total", {"tier": t}) or 0
                     for t in ("green", "yellow", "red")))
    worker.stop()
    await task
    return elapsed, alerts


async def main(args: argparse.Namespace) -> None:
    with EmbeddedStack() as stack:
        settings = Settings(kafka_bootstrap=stack.bootstrap, redis_url=stack.url,
                            metrics_port=0, session_timeout_ms=6000,
                            batch_max_records=args.batch)
        await ensure_topics(settings)
        events = _events(args.events, args.accounts, random.Random(7))
        t0 = time.perf_counter()
        await _preload(settings, events)
        print(f"preloaded {len(events)} events over {args.accounts} accounts "
              f"in {time.perf_counter() - t0:.1f} s")
        elapsed, alerts = await _measure(settings, len(events))
        print(f"worker: {len(events)} events in {elapsed:.2f} s = "
              f"{len(events) / elapsed:,.0f} events/s ({alerts} alerts)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=10000)
    asyncio.run(main(parser.parse_args()))
