"""A stream with everything of issue 15 in play at once (accounts moving between the
segments of the example model file, overrides set, edited, expiring and cleared, and
events), and what the worker leaves behind of it, for comparing two runs of the real
worker with each other rather than with a reference that would have to restate them."""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer, TopicPartition
from redis.asyncio import Redis

from tests.integration import chaos, kills
from tests.integration.harness import event, valid_alert
from worker.clock import FixedClock
from worker.explain import explain
from worker.scoring.segments import ModelSet
from worker.settings import Settings
from worker.timefmt import rfc3339
from worker.windows import keys
from worker.windows.store import WindowStore

DAY = 86400.0
ACCOUNTS = 240
EVENTS = 8000
ACCOUNTS_TOPIC, OVERRIDES_TOPIC = "accounts", "overrides"  # stand-ins until sent
# Components every segment model of the example file has: an adjust must name one.
ADJUSTABLE = ("escalations", "login_frequency", "feature_adoption")


def model_text() -> str:
    """THE model file of these tests, written to a temporary file by each test.

    The example with segment models as shipped, plus signals of the file's own: key
    features (a filtered distinct count), urgent tickets (a filtered count) and their
    share of all tickets (a ratio), read by components of the default model and so of
    every segment's, so the crash, rebalance and replay comparisons run with them too."""
    text = resources.files("worker").joinpath("models", "segments.example.yaml").read_text()
    components, segments = text.split("\nsegments:", 1)
    return (
        components.rstrip("\n")
        + """
  key_feature_adoption:
    signal: key_features
    window: 30d
    weight: 1.0
    curve: {linear: {bad: 0, good: 3}}
  urgent_share:
    signal: urgent_share
    window: 30d
    silence: unknown
    weight: 0.5
    curve: {linear: {bad: 0.5, good: 0}}

signals:
  key_features:
    distinct: {event: feature_use, field: feature, where: {feature: {in: [f0, f1, f2]}}}
  urgent_tickets:
    count: {event: ticket, where: {priority: {in: [urgent, high]}}}
  urgent_share:
    ratio: {of: urgent_tickets, to: tickets_opened}

segments:"""
        + segments
    )


def model_file(tmp_path: Path) -> str:
    path = tmp_path / "model.yaml"
    path.write_text(model_text())
    return str(path)


# (topic stand-in or event type, key, value): the value None is a tombstone.
Rec = tuple[str, bytes, bytes | None]


@dataclass(slots=True)
class Stream:
    records: list[Rec] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    expiring: set[str] = field(default_factory=set)  # accounts given an expiring override
    latest_expiry: float = 0.0

    def account(self, account: str, segment: str, rng: random.Random) -> None:
        body = {
            "account_id": account,
            "segment": segment,
            "seats_purchased": rng.choice([5, 20, 80, 400]),
        }
        self.records.append((ACCOUNTS_TOPIC, account.encode(), orjson.dumps(body)))

    def override(self, account: str, body: dict[str, Any] | None) -> None:
        self.records.append(
            (OVERRIDES_TOPIC, account.encode(), None if body is None else orjson.dumps(body))
        )


def _override(
    rng: random.Random, account: str, oid: str, now: float, lasts: float
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "account_id": account,
        "override_id": oid,
        "reason": "renewal call went badly",
        "author": "csm@example.com",
        "set_at": rfc3339(now),
        "expires_at": rfc3339(now + lasts),
    }
    if rng.random() < 0.5:
        return {**body, "kind": "pin", "tier": rng.choice(["green", "yellow", "red"])}
    return {
        **body,
        "kind": "adjust",
        "component": rng.choice(ADJUSTABLE),
        "subscore": rng.choice([0, 15, 50, 100]),
    }


def _event(
    rng: random.Random, n: int, account: str, now: float, seeded_ids: bool
) -> tuple[str, dict[str, Any]]:
    # Within the last 10 days: every window of the file (14 days the shortest) keeps
    # them all, should a UTC midnight pass during the test.
    ts = now - rng.uniform(0, 10 * DAY)
    roll = rng.random()
    if roll < 0.5:
        kind, body = (
            "login",
            event(
                "login", account, ts, user_id=f"u{n % 13}", session_seconds=rng.randint(10, 3000)
            ),
        )
    elif roll < 0.85:
        kind, body = (
            "feature_use",
            event(
                "feature_use", account, ts, user_id=f"u{n % 11}", feature=f"f{rng.randrange(15)}"
            ),
        )
    elif roll < 0.95:
        kind, body = (
            "ticket",
            event(
                "ticket",
                account,
                ts,
                ticket_id=f"t{n}",
                priority=rng.choice(["low", "normal", "high", "urgent"]),
                status=rng.choice(["opened", "escalated", "closed"]),
            ),
        )
    else:
        kind, body = "survey", event("survey", account, ts, kind="nps", score=rng.randint(0, 10))
    if seeded_ids:  # the same ids every run of the seed (the stream's draws move on)
        body["event_id"] = f"{kind}-{rng.getrandbits(64):016x}"
    return kind, body


def stream(
    rng: random.Random,
    expire_after: tuple[float, float] = (15.0, 25.0),
    events: int = EVENTS,
    now: float | None = None,
    seeded_ids: bool = False,
) -> Stream:
    """Every account's first record up front, then events with segment moves and override
    records among them. Overrides: most last 30 days; those on every fifth of their
    accounts expire ``expire_after`` seconds from now (sent early in the stream, so they
    are in force for a while); a few are edited in place, cleared by a tombstone, or
    cleared and set again. ``now``: the wall clock's unless given; ``seeded_ids``: event
    ids drawn from ``rng`` too, for a stream that is the same bytes every run."""
    now = time.time() if now is None else now
    names = [f"acct-{n:04d}" for n in range(ACCOUNTS)]
    out = Stream()
    for n, account in enumerate(names):
        out.account(account, chaos.SEGMENTS[n % len(chaos.SEGMENTS)], rng)
    later: list[list[Rec]] = [[] for _ in range(events)]  # records to send after event n
    for n, account in enumerate(rng.sample(names, 70)):
        when = sorted(rng.sample(range(events), 3))
        expiring = n % 5 == 0
        lasts = rng.uniform(*expire_after) if expiring else 30 * DAY
        first = _override(rng, account, f"o-{n}", now, lasts)
        if expiring:
            out.expiring.add(account)
            out.latest_expiry = max(out.latest_expiry, now + lasts)
            when = [rng.randrange(events // 6)]
        plan: list[dict[str, Any] | None] = [first]
        if n % 7 == 1:  # edited in place: the same id, another tier or sub-score
            plan.append(_override(rng, account, f"o-{n}", now, lasts))
        elif n % 7 == 2:  # cleared early
            plan.append(None)
        elif n % 7 == 3:  # cleared, then another one set
            plan += [None, _override(rng, account, f"o-{n}b", now, lasts)]
        for at, body in zip(when, plan, strict=False):
            later[at].append(
                (OVERRIDES_TOPIC, account.encode(), None if body is None else orjson.dumps(body))
            )
    for account in rng.sample(names, 80):  # moves to another segment mid-stream
        segment = rng.choice(chaos.SEGMENTS)
        seats = rng.choice([5, 20, 80, 400])
        later[rng.randrange(events)].append(
            (
                ACCOUNTS_TOPIC,
                account.encode(),
                orjson.dumps({"account_id": account, "segment": segment, "seats_purchased": seats}),
            )
        )
    for n in range(events):
        kind, body = _event(rng, n, rng.choice(names), now, seeded_ids)
        copies = 2 if rng.random() < 0.02 else 1  # a producer retry: another offset
        for _ in range(copies):
            out.events.append((kind, body))
            out.records.append((kind, body["account_id"].encode(), orjson.dumps(body)))
        out.records += later[n]
    return out


def topics(settings: Settings) -> dict[str, str]:
    """Stand-in (event type, ``accounts``, ``overrides``) -> the test's topic."""
    return {
        **{kind: topic for topic, kind in settings.event_topics.items()},
        ACCOUNTS_TOPIC: settings.topic_accounts,
        OVERRIDES_TOPIC: settings.topic_overrides,
    }


async def send(settings: Settings, records: list[Rec]) -> dict[TopicPartition, int]:
    """Send ``records`` in order; where each partition written to ends."""
    topic_of = topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=20)
    await producer.start()
    try:
        futures = [await producer.send(topic_of[t], v, key=k) for t, k, v in records]
        acks = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    ends: dict[TopicPartition, int] = {}
    for ack in acks:
        tp = TopicPartition(ack.topic, ack.partition)
        ends[tp] = max(ends.get(tp, 0), ack.offset + 1)
    return ends


class Feeder(kills.Feeder):
    """``kills.Feeder`` for records of every input topic, in order. Past its records, each
    call sends a chunk of new logins (added to ``stream``'s events): a kill looking for
    a batch in flight never runs out of work to catch, however fast the workers are."""

    def __init__(
        self, settings: Settings, records: list[Rec], chunk: int, stream: Stream, rng: random.Random
    ) -> None:
        self._settings = settings
        self._records = [records[i : i + chunk] for i in range(0, len(records), chunk)]
        self._chunk, self._stream, self._rng = chunk, stream, rng
        self.ends: dict[TopicPartition, int] = {}

    async def __call__(self) -> None:
        self.ends |= await send(
            self._settings, self._records.pop(0) if self._records else self._filler()
        )

    def _filler(self) -> list[Rec]:
        now, out = time.time(), []
        for _ in range(self._chunk):
            n = len(self._stream.events)
            body = event(
                "login",
                f"acct-{self._rng.randrange(ACCOUNTS):04d}",
                now - self._rng.uniform(0, 10 * DAY),
                user_id=f"u{n % 13}",
                session_seconds=self._rng.randint(10, 3000),
            )
            self._stream.events.append(("login", body))
            out.append(("login", body["account_id"].encode(), orjson.dumps(body)))
        return out

    async def rest(self) -> dict[TopicPartition, int]:
        while self._records:
            await self()
        return self.ends


async def wait_for_expiries(
    redis: Redis, models: ModelSet, after: float, log: Path, within: float = 120.0
) -> None:
    """Until ``after`` has passed and no account holds an override in force that has
    expired: the workers have rescored every account whose override ran out."""
    store = WindowStore(redis, models.windows)
    deadline = time.monotonic() + within
    while True:
        now = time.time()
        stale = [
            a
            for a in await accounts_in(redis)
            if (o := (await store.read(a, now)).override) is not None
            and o.active is not None
            and not o.active.live_at(now)
        ]
        if now > after and not stale:
            return
        assert time.monotonic() < deadline, f"overrides never expired: {stale}\n{chaos.tail(log)}"
        await asyncio.sleep(0.5)


async def accounts_in(redis: Redis) -> list[str]:
    found = [
        keys.account_of_state_key(k.decode())
        async for k in redis.scan_iter(match=keys.state_key("*"), count=1000)
    ]
    return sorted(a for a in found if a is not None)


async def snapshot(redis: Redis, models: ModelSet, now: float) -> dict[str, Any]:
    """Per account: all ``explain`` says at ``now`` (segment and its model, attributes,
    components, score, published tier and seq, active and past overrides) but the tier
    a live evaluation would give, its counters and distinct sets."""
    store = WindowStore(redis, models.windows)
    out: dict[str, Any] = {}
    for account in await accounts_in(redis):
        tag = f"hs:{{{account}}}"
        shown = (await explain(store, models, account, FixedClock(now))).as_dict()
        # explain's "tier" is the one a live evaluation would give now, and so depends on
        # the mode of the account's last one: a silent rescore (an override expiring) is
        # live in the worker and catch-up on a replay's event-time clock (README, Tiers),
        # so within the margin of a boundary the two may name different tiers. Published
        # tier and seq, score and components must still be the same.
        shown.pop("tier")
        out[account] = {
            **shown,
            "counters": await redis.hgetall(f"{tag}:c"),
            "users": await redis.zrange(f"{tag}:u", 0, -1, withscores=True),
            "features": await redis.zrange(f"{tag}:f", 0, -1, withscores=True),
        }
    return out


def chains(alerts: list[dict[str, Any]], snap: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Each account's alerts, de-duplicated as consumers do (the first of each alert_id),
    checked: every one valid, seqs 1..n with one alert_id each (a copy sent again after
    a crash is the very same record), the last one the published tier and seq."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    first: dict[str, dict[str, Any]] = {}
    for alert in alerts:
        assert valid_alert(alert), alert
        if (seen := first.setdefault(alert["alert_id"], alert)) is not alert:
            assert seen == alert, f"one alert_id, two records: {seen} {alert}"
            continue
        out[alert["account_id"]].append(alert)
    for account, chain in out.items():
        assert [a["seq"] for a in chain] == list(range(1, len(chain) + 1)), (
            account,
            [(a["seq"], a["tier"]) for a in chain],
        )
        assert all(a["previous_tier"] == b["tier"] for b, a in pairwise(chain)), account
        state = snap[account]
        assert (chain[-1]["tier"], chain[-1]["seq"]) == (
            state["published_tier"],
            state["published_seq"],
        ), (account, chain[-1], state)
    published = {a for a, s in snap.items() if s["published_seq"] is not None}
    assert published == set(out), published ^ set(out)
    return out


def differ(rebuilt: dict[str, Any], live: dict[str, Any]) -> str:
    """The first account and fields that differ, for a failure message."""
    wrong = sorted(a for a in rebuilt.keys() | live.keys() if rebuilt.get(a) != live.get(a))
    if not wrong:
        return "equal"
    a, b = rebuilt.get(wrong[0], {}), live.get(wrong[0], {})
    fields = {k: (a.get(k), b.get(k)) for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
    return f"{len(wrong)} accounts differ; {wrong[0]}: (rebuilt, live) {fields}"
