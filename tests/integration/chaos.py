"""Chaos helpers: a reproducible event stream, worker processes to kill, and the
final check that what they leave behind (windows, scores, alerts) is what the
independent reference (``tests.integration.reference``) computes for a single clean
run."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import random
import subprocess
import sys
import time
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis, RedisCluster

from tests.integration import alertcheck
from tests.integration import reference as ref
from tests.integration.harness import event
from worker.modelfile.segments import load_models
from worker.scoring.evaluate import component_values
from worker.scoring.rollup import score_components
from worker.settings import Settings, env_name
from worker.windows import keys
from worker.windows.store import WindowStore

DAY = 86400.0
ACCOUNTS = 300
EVENTS = 50_000
KILLS = 4
# Counters unchanged this long, and wrong: the workers have nothing left to write.
STALLED = 30.0
# The session of workers a test SIGKILLs: the broker hands a dead member's partitions
# on once its session has run out, and a worker started after a kill got them about
# 11 s later with the fixture's 6 s, 2 s later with 3 s (Tansu). Heartbeats go every
# second (a third of it), so a worker frozen for a look (``kills.WATCH_SECONDS``) or
# busy with a batch of a few hundred records keeps its partitions. For one worker at a
# time: three started together on it once sat assigned and idle for a minute.
KILLED_SESSION_MS = 3000


def stream(rng: random.Random, events: int = EVENTS) -> list[tuple[str, dict[str, Any]]]:
    """Events over the last 20 days in random order, 2% of them sent twice."""
    now = time.time()
    out: list[tuple[str, dict[str, Any]]] = []
    for n in range(events):
        account = f"acct-{rng.randrange(ACCOUNTS):04d}"
        ts = now - rng.uniform(0, 20 * DAY)
        roll = rng.random()
        if roll < 0.5:
            out.append(
                (
                    "login",
                    event(
                        "login",
                        account,
                        ts,
                        user_id=f"u{n % 13}",
                        session_seconds=rng.randint(10, 3000),
                    ),
                )
            )
        elif roll < 0.85:
            out.append(
                (
                    "feature_use",
                    event(
                        "feature_use",
                        account,
                        ts,
                        user_id=f"u{n % 11}",
                        feature=f"f{rng.randrange(15)}",
                    ),
                )
            )
        elif roll < 0.95:
            out.append(
                (
                    "ticket",
                    event(
                        "ticket",
                        account,
                        ts,
                        ticket_id=f"t{n}",
                        status=rng.choice(["opened", "escalated", "closed"]),
                        priority="normal",
                    ),
                )
            )
        else:
            out.append(
                ("survey", event("survey", account, ts, kind="nps", score=rng.randint(0, 10)))
            )
        if rng.random() < 0.02:
            out.append(out[-1])  # a producer retry: same event, another offset
    return out


# The example model file with segment models, and account records that give most
# accounts a segment with a model of its own (``retail`` has none: the default model).
SEGMENTED = str(resources.files("worker").joinpath("models", "segments.example.yaml"))
SEGMENTS = ("smb", "enterprise", "onboarding", "mid_market", "retail")


def segment_attrs() -> dict[str, dict[str, Any]]:
    return {
        f"acct-{n:04d}": {"segment": SEGMENTS[n % len(SEGMENTS)], "seats_purchased": 20}
        for n in range(ACCOUNTS)
    }


async def produce_attrs(settings: Settings, attrs: dict[str, dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
    await producer.start()
    try:
        for account, fields in attrs.items():
            await producer.send(
                settings.topic_accounts,
                orjson.dumps({"account_id": account, **fields}),
                key=account.encode(),
            )
        await producer.flush()
    finally:
        await producer.stop()


def reference(events: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Counters per account, each distinct event once: what Redis must hold."""
    return {a: ref.counters(account) for a, account in ref.accounts(events).items()}


async def produce(settings: Settings, events: list[tuple[str, dict[str, Any]]]) -> None:
    await produce_to(settings, events)


async def produce_to(
    settings: Settings, events: list[tuple[str, dict[str, Any]]]
) -> dict[TopicPartition, int]:
    """Send ``events``; returns where each partition written to ends (last offset + 1),
    from the broker's own acknowledgements."""
    topic_of = {t: name for name, t in settings.event_topics.items()}
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=20)
    await producer.start()
    try:
        futures = [
            await producer.send(topic_of[t], orjson.dumps(b), key=b["account_id"].encode())
            for t, b in events
        ]
        acks = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    ends: dict[TopicPartition, int] = {}
    for ack in acks:
        tp = TopicPartition(ack.topic, ack.partition)
        ends[tp] = max(ends.get(tp, 0), ack.offset + 1)
    return ends


async def stored_counters(redis: Redis, skip: str | None = None) -> dict[str, dict[str, float]]:
    """Every account's counters; ``skip``: leave out counters whose name starts with it."""
    stored = {}
    async for key in redis.scan_iter(match="hs:{*}:c", count=1000):
        account = key.decode()[len("hs:{") : -len("}:c")]
        fields = {k.decode(): float(v) for k, v in (await redis.hgetall(key)).items()}
        stored[account] = (
            fields
            if skip is None
            else {k: v for k, v in fields.items() if not k.split("|", 1)[1].startswith(skip)}
        )
    return stored


def env(settings: Settings) -> dict[str, str]:
    """The environment of a command run on ``settings``: every one as its
    ``HEALTHSCORE_*`` variable, none of ours."""
    found = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSCORE_")}
    found.update(
        {env_name(f.name): str(getattr(settings, f.name)) for f in dataclasses.fields(Settings)}
    )
    return found


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "worker"],
            env=env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def tail(log: Path) -> str:
    """The end of the workers' log, for a failure message."""
    return log.read_text(errors="replace")[-3000:]


async def wait_for_progress(redis: Redis, log: Path, within: float = 60.0) -> None:
    """Until the workers have written something new: the moment to pull a plug."""
    # Writes, not keys: every account has all its keys long before the stream ends.
    before = await _writes(redis)
    deadline = time.monotonic() + within
    while await _writes(redis) <= before:
        assert time.monotonic() < deadline, tail(log)
        await asyncio.sleep(0.05)


async def _writes(redis: Redis | RedisCluster) -> int:
    if isinstance(redis, RedisCluster):  # every primary's own count
        found = await redis.info("persistence", target_nodes=RedisCluster.PRIMARIES)
        return sum(int(info["rdb_changes_since_last_save"]) for info in found.values())
    return int((await redis.info("persistence"))["rdb_changes_since_last_save"])


async def wait_for_state(
    redis: Redis,
    expected: dict[str, dict[str, float]],
    workers: list[subprocess.Popen[bytes]],
    log: Path,
    within: float = 180.0,
    skip: str | None = None,
) -> None:
    """Until Redis holds exactly ``expected``; fails early if every worker died, or if
    the counters stay wrong and unchanged for ``STALLED`` seconds (the workers are done:
    what they hold is all they will)."""
    deadline = time.monotonic() + within
    last, since = None, time.monotonic()
    while (stored := await stored_counters(redis, skip)) != expected:
        assert any(w.poll() is None for w in workers), tail(log)
        assert time.monotonic() < deadline, difference(stored, expected)
        if stored != last:
            last, since = stored, time.monotonic()
        assert time.monotonic() - since < STALLED, difference(stored, expected)
        await asyncio.sleep(0.5)


def difference(stored: dict[str, Any], expected: dict[str, Any]) -> str:
    wrong = [a for a in sorted(expected.keys() | stored.keys()) if stored.get(a) != expected.get(a)]
    sample = wrong[0] if wrong else None
    return (
        f"{len(wrong)} of {len(expected)} accounts differ; e.g. {sample}: "
        f"stored {stored.get(sample or '')} expected {expected.get(sample or '')}"
    )


async def stored_distinct(redis: Redis) -> dict[str, dict[str, dict[str, float]]]:
    """Account -> distinct set ("users", "features") -> member -> last-seen ts."""
    stored: dict[str, dict[str, dict[str, float]]] = {}
    for name, suffix in (("users", "u"), ("features", "f")):
        async for key in redis.scan_iter(match=f"hs:{{*}}:{suffix}", count=1000):
            account = key.decode()[len("hs:{") : -len(f"}}:{suffix}")]
            members = await redis.zrange(key, 0, -1, withscores=True)
            stored.setdefault(account, {})[name] = {m.decode(): s for m, s in members}
    return stored


def stop(workers: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM the live ones: each finishes, saves and commits its batch in flight."""
    live = [w for w in workers if w.poll() is None]
    for worker in live:
        worker.terminate()
    for worker in live:
        worker.wait(timeout=30)


async def wait_for_commits(
    settings: Settings,
    ends: dict[TopicPartition, int],
    log: Path,
    within: float = 60.0,
    share: float = 1.0,
) -> None:
    """Until the group has committed every input record (``ends``, from ``produce_to``),
    or ``share`` of them.

    Each batch is saved before it is committed, so only then do the cached scores and
    ``pub`` reflect every record: the counters can be complete earlier, when a
    re-delivered batch is cut shorter than the one that died and the rest is still
    to be re-read.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + within
        while True:
            committed = await admin.list_consumer_group_offsets(
                settings.group_id, partitions=list(ends)
            )
            done = {
                tp: min(end, committed[tp].offset if tp in committed else 0)
                for tp, end in ends.items()
            }
            if sum(max(0, d) for d in done.values()) >= share * sum(ends.values()):
                return
            behind = {tp: end for tp, end in ends.items() if done[tp] < end}
            assert time.monotonic() < deadline, f"uncommitted: {behind}\n{tail(log)}"
            await asyncio.sleep(0.05)
    finally:
        await admin.close()


async def read_topic(settings: Settings, topic: str, within: float = 30.0) -> list[dict[str, Any]]:
    """Every JSON record on ``topic`` (written to no more), partition by partition in order.

    Read up to each partition's high watermark as fetches report it: Tansu answers
    ListOffsets(latest), hence ``end_offsets``, with an offset short of the last
    record, so that would silently miss the newest records.
    """
    tps = await _partitions(settings, topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    records: dict[TopicPartition, list[Any]] = {tp: [] for tp in tps}
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + within
        while unread := [
            tp
            for tp in tps
            if (high := consumer.highwater(tp)) is None or await consumer.position(tp) < high
        ]:
            assert time.monotonic() < deadline, f"{topic}: {unread} not read to the end"
            for tp, batch in (await consumer.getmany(timeout_ms=200)).items():
                records[tp] += batch
    finally:
        await consumer.stop()
    return [orjson.loads(r.value) for tp in tps for r in records[tp]]


async def _partitions(settings: Settings, topic: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(TopicPartition(topic, p["partition"]) for p in described["partitions"])


@dataclasses.dataclass(frozen=True, slots=True)
class Figures:
    events: int  # produced, producer retries included
    distinct_events: int
    accounts: int  # whose windows, scores and alerts were checked
    alerts: alertcheck.AlertCount

    def report(self, survived: str) -> str:
        a = self.alerts
        return (
            f"{self.events} events produced ({self.distinct_events} distinct), "
            f"{self.accounts} accounts checked, survived {survived}; {a.read} alerts read, "
            f"{a.distinct} distinct, {a.duplicates} duplicates "
            f"({a.republished} alerts published more than once)"
        )


async def verify(
    settings: Settings,
    redis: Redis,
    events: list[tuple[str, dict[str, Any]]],
    attrs: dict[str, dict[str, Any]] | None = None,
    models: ref.Models = ref.ONLY_DEFAULT,
) -> Figures:
    """Everything a single clean run leaves behind: windows and distinct sets exactly,
    component values and scores, the published tiers and every alert.

    Call once the workers are done (``wait_for_commits``, then ``stop``), so that no
    batch is half saved. ``attrs``: the account records sent, the last of each;
    ``models``: the reference's statement of the worker's model file (its segment models).
    """
    accounts = ref.accounts(events, attrs)
    expected = {a: ref.counters(r) for a, r in accounts.items()}
    assert (stored := await stored_counters(redis)) == expected, difference(stored, expected)
    await check_distinct(redis, accounts)
    states = {a: await state_hash(redis, a) for a in accounts}
    newest = max(datetime.fromisoformat(b["ts"]).timestamp() for _, b in events)
    finals = await check_scores(
        redis, accounts, states, math.floor(newest / ref.DAY), settings.model_path, models
    )
    published = {
        a: orjson.loads(state[keys.PUBLISHED]) if keys.PUBLISHED in state else None
        for a, state in states.items()
    }
    count = alertcheck.check_alerts(
        await read_topic(settings, settings.topic_alerts), published, accounts, finals, models
    )
    return Figures(len(events), len({b["event_id"] for _, b in events}), len(accounts), count)


async def check_distinct(redis: Redis, accounts: dict[str, ref.Account]) -> None:
    # Compared exactly: a ts goes to Redis as repr(float), which parses back to the
    # same double, and Redis replies with enough digits to round-trip it, so both
    # sides hold the very float parsed from the same RFC 3339 text.
    expected = {a: d for a, r in accounts.items() if (d := ref.distinct(r))}
    stored = await stored_distinct(redis)
    assert stored == expected, difference(stored, expected)


async def state_hash(redis: Redis, account: str) -> dict[str, Any]:
    raw = await redis.hgetall(keys.state_key(account))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def check_scores(
    redis: Redis,
    accounts: dict[str, ref.Account],
    states: dict[str, dict[str, Any]],
    first_day: int,
    model_path: str = "",
    models: ref.Models = ref.ONLY_DEFAULT,
) -> dict[str, ref.Card]:
    """What the worker computes from the windows in Redis (its own loading and
    signals) equals the reference's component values and score; returns, per
    account, the reference's scores at the bucket the worker last scored it in."""
    now = time.time()
    today = math.floor(now / ref.DAY)
    worker_models = load_models(model_path)
    store = WindowStore(redis, worker_models.windows)
    finals = {}
    for account, expected in accounts.items():
        reference = models.of_segment(expected.attrs.get("segment"))
        want = ref.card(expected, today, reference)
        state = await store.read(account, now)
        model = worker_models.for_segment(state.attrs.get("segment"))
        got = component_values(
            model,
            state.windows,
            state.attrs,
            state.seen,
            {},
            None,
            state.seen_bucket,
            state.now_bucket,
        )
        assert got.keys() == want.values.keys(), f"{account}: Redis gives {got}, reference {want}"
        assert all(ref.close(got[n], v) for n, v in want.values.items()), (
            f"{account}: Redis gives {got}, reference {want}"
        )
        worker_score = score_components(model, got).score
        assert ref.close(worker_score, want.score), (account, worker_score, want)
        assert state.seen == expected.seen, (account, state.seen, expected.seen)
        finals[account] = _last_scored(expected, states[account], first_day, today, reference)
    return finals


def _last_scored(
    account: ref.Account,
    state: dict[str, Any],
    first_day: int,
    today: int,
    model: ref.Model = ref.DEFAULT,
) -> ref.Card:
    """The reference's scores in the bucket the worker last scored the account in: a
    UTC midnight may have passed during the run, so the latest bucket of the run whose
    score leaves the published tier as it is (else today's, which the alert check fails)."""
    cards = [ref.card(account, day, model) for day in range(today, first_day - 1, -1)]
    if keys.PUBLISHED in state:
        published = orjson.loads(state[keys.PUBLISHED])
        for card in cards:
            if (
                card.score is not None
                and ref.tier_of(card.values, published["tier"], model) == (published["tier"])
            ):
                return card
    return cards[0]
