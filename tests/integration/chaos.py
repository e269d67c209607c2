"""Chaos helpers: a reproducible event stream, its pure expected window state, and
worker processes to kill."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from tests.integration.harness import event
from worker.scoring.model import load_model
from worker.settings import Settings, env_name
from worker.windows.buckets import bucket_of
from worker.windows.plan import COUNTERS_OF

DAY = 86400.0
ACCOUNTS = 300
EVENTS = 50_000
KILLS = 4


def stream(rng: random.Random, events: int = EVENTS) -> list[tuple[str, dict[str, Any]]]:
    """Events over the last 20 days in random order, 2% of them sent twice."""
    now = time.time()
    out: list[tuple[str, dict[str, Any]]] = []
    for n in range(events):
        account = f"acct-{rng.randrange(ACCOUNTS):04d}"
        ts = now - rng.uniform(0, 20 * DAY)
        roll = rng.random()
        if roll < 0.5:
            out.append(("login", event("login", account, ts, user_id=f"u{n % 13}",
                                       session_seconds=rng.randint(10, 3000))))
        elif roll < 0.85:
            out.append(("feature_use", event("feature_use", account, ts, user_id=f"u{n % 11}",
                                             feature=f"f{rng.randrange(15)}")))
        elif roll < 0.95:
            out.append(("ticket", event("ticket", account, ts, ticket_id=f"t{n}",
                                        status=rng.choice(["opened", "escalated", "closed"]),
                                        priority="normal")))
        else:
            out.append(("survey", event("survey", account, ts, kind="nps",
                                        score=rng.randint(0, 10))))
        if rng.random() < 0.02:
            out.append(out[-1])  # a producer retry: same event, another offset
    return out


def reference(events: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Counters per account, each distinct event once: what Redis must hold."""
    model = load_model()
    stored = {name for c in model.components for name in c.signal.counters}
    seen: set[str] = set()
    counters: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for event_type, body in events:
        if body["event_id"] in seen:
            continue
        seen.add(body["event_id"])
        bucket = bucket_of(datetime.fromisoformat(body["ts"]).timestamp(), model.bucket_seconds)
        for counter, delta in COUNTERS_OF[event_type](body):
            if counter in stored:  # counters no component reads are not kept
                counters[body["account_id"]][f"{bucket}|{counter}"] += delta
    return {a: dict(c) for a, c in counters.items()}


async def produce(settings: Settings, events: list[tuple[str, dict[str, Any]]]) -> None:
    topic_of = {t: name for name, t in settings.event_topics.items()}
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=20)
    await producer.start()
    try:
        futures = [await producer.send(topic_of[t], orjson.dumps(b), key=b["account_id"].encode())
                   for t, b in events]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def stored_counters(redis: Redis) -> dict[str, dict[str, float]]:
    stored = {}
    async for key in redis.scan_iter(match="hs:{*}:c", count=1000):
        account = key.decode()[len("hs:{"):-len("}:c")]
        stored[account] = {k.decode(): float(v) for k, v in (await redis.hgetall(key)).items()}
    return stored


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSCORE_")}
    env.update({env_name(f.name): str(getattr(settings, f.name))
                for f in dataclasses.fields(Settings)})
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "worker.cli", "worker"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def tail(log: Path) -> str:
    """The end of the workers' log, for a failure message."""
    return log.read_text(errors="replace")[-3000:]


async def wait_for_progress(redis: Redis, log: Path, within: float = 60.0) -> None:
    """Until the workers have written something new: the moment to pull a plug."""
    before = await redis.dbsize()
    deadline = time.monotonic() + within
    while await redis.dbsize() <= before:
        assert time.monotonic() < deadline, tail(log)
        await asyncio.sleep(0.05)


async def wait_for_state(redis: Redis, expected: dict[str, dict[str, float]],
                         workers: list[subprocess.Popen[bytes]], log: Path,
                         within: float = 180.0) -> None:
    """Until Redis holds exactly ``expected``; fails early if every worker died."""
    deadline = time.monotonic() + within
    while (stored := await stored_counters(redis)) != expected:
        assert any(w.poll() is None for w in workers), tail(log)
        assert time.monotonic() < deadline, difference(stored, expected)
        await asyncio.sleep(0.5)


def difference(stored: dict[str, dict[str, float]], expected: dict[str, dict[str, float]]
                ) -> str:
    wrong = [a for a in expected if stored.get(a) != expected[a]]
    sample = wrong[0] if wrong else None
    return (f"{len(wrong)} of {len(expected)} accounts differ; e.g. {sample}: "
            f"stored {stored.get(sample or '')} expected {expected.get(sample or '')}")
