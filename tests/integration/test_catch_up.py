"""Same input, same tiers: history caught up on decides an account's tier on its score
alone, so where the batches were cut cannot show in what is published; hysteresis
holds only between live evaluations. Real broker, real Redis."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

from tests.integration import chaos
from tests.integration.harness import Record, event, running_worker
from worker.alerts import as_dict
from worker.clock import FixedClock
from worker.metrics import Metrics
from worker.modelfile import load_model
from worker.pipeline import Pipeline
from worker.replay import Replay
from worker.runtime.topics import ensure_topics
from worker.settings import Settings
from worker.windows import keys
from worker.windows.store import WindowStore

HOUR = 3600.0

# CSAT answers (1-5) in the order they are sent, the account's only events: its score
# is the CSAT component's alone, linear from 2.5 (0) to 4.5 (100), so each pattern
# ends within the 3-point margin of a boundary after passing through another tier.
# A run that scores part of the history first and keeps that tier by hysteresis
# publishes the tier in brackets; the plain tier of the final score is the other.
PATTERNS: dict[str, tuple[list[int], str]] = {
    "falls-to-68.75": ([5, 5, 5, 5, 5, 2, 2, 2], "yellow"),  # (green)
    "rises-to-70.45": ([1, 1, 1, 5, 5, 5, 5, 5, 5, 5, 5], "green"),  # (yellow)
    "falls-to-37.5": ([5, 4, 2, 2], "red"),  # (yellow)
    "rises-to-41.67": ([1, 4, 5], "yellow"),  # (red)
}
PER_PATTERN = 75


def _input(now: float) -> list[tuple[str, dict[str, Any]]]:
    """Every account's answers, all an hour or more old, interleaved round-robin: each
    account's history is spread over the whole input, so small batches cut it often."""
    accounts = [
        (f"{name}-{n:03d}", answers)
        for name, (answers, _) in PATTERNS.items()
        for n in range(PER_PATTERN)
    ]
    longest = max(len(answers) for answers, _ in PATTERNS.values())
    out = []
    for k in range(longest):
        for account, answers in accounts:
            if k < len(answers):
                ts = now - 2 * HOUR + k * 60
                out.append(("survey", event("survey", account, ts, kind="csat", score=answers[k])))
    return out


def _expected(account: str) -> str:
    return PATTERNS[account.rsplit("-", 1)[0]][1]


async def _run(
    settings: Settings, batch: int, ends: Any, log: Path
) -> tuple[dict[str, str], dict[str, str]]:
    """One run of the whole input through a worker taking at most ``batch`` records a
    batch, from an empty Redis: each account's published tier and its alerts' last."""
    run = settings.replace(
        group_id=f"{settings.group_id}-{batch}",
        batch_max_records=batch,
        topic_alerts=f"{settings.topic_alerts}.{batch}",
    )
    async with Redis.from_url(settings.redis_url) as redis:
        await redis.flushdb()
        async with running_worker(run):
            await chaos.wait_for_commits(run, ends, log)
        published = {}
        async for key in redis.scan_iter(match=keys.state_key("*")):
            account = keys.account_of_state_key(key.decode())
            assert account is not None
            published[account] = orjson.loads(await redis.hget(key, keys.PUBLISHED))["tier"]
    last_alert = {}
    for alert in sorted(await chaos.read_topic(run, run.topic_alerts), key=lambda a: a["seq"]):
        last_alert[alert["account_id"]] = alert["tier"]
    return published, last_alert


async def test_one_input_gives_the_same_tiers_whatever_the_batch_sizes(
    settings: Settings, tmp_path: Path
) -> None:
    records = _input(time.time())
    await ensure_topics(settings)
    ends = await chaos.produce_to(settings, records)
    small, small_alerts = await _run(settings, 100, ends, tmp_path / "small.log")
    large, large_alerts = await _run(settings, 30_000, ends, tmp_path / "large.log")

    accounts = {r["account_id"] for _, r in records}
    assert set(small) == set(large) == set(small_alerts) == set(large_alerts) == accounts
    differ = sorted(a for a in accounts if small[a] != large[a])
    assert not differ, (
        f"{len(differ)} of {len(accounts)} accounts end in another tier with "
        f"100-record batches than with 30,000: "
        f"{[(a, small[a], large[a]) for a in differ[:5]]}"
    )
    assert small_alerts == small  # each chain ends in the tier the account remembers
    assert large_alerts == large
    # And that tier is the plain tier of the final score, whatever came before.
    wrong = sorted(a for a in accounts if small[a] != _expected(a))
    assert not wrong, (
        f"{len(wrong)} accounts not in the plain tier of their score: "
        f"{[(a, small[a], _expected(a)) for a in wrong[:5]]}"
    )


# ----------------------------------------------------------------- one account, restarts


class _Worker:
    """A pipeline fed records directly; a new one is a restart (nothing held in memory).
    ``offsets`` goes on across restarts, as the partition's offsets do."""

    def __init__(self, settings: Settings, redis: Redis, offsets: Iterator[int]) -> None:
        model = load_model()
        self.settings = settings
        self.pipeline = Pipeline(
            settings, model, WindowStore(redis, model), FixedClock(time.time()), Metrics()
        )
        self.offsets = offsets

    async def csat(self, account: str, ts: float, *answers: int) -> list[dict[str, Any]]:
        """One batch of CSAT answers stamped ``ts``; the alerts it publishes."""
        records = []
        for answer in answers:
            body = event("survey", account, ts, kind="csat", score=answer)
            records.append(
                Record(
                    self.settings.topic_survey,
                    0,
                    next(self.offsets),
                    account.encode(),
                    orjson.dumps(body),
                )
            )
        return await self._run(records)

    async def update(self, account: str, ts: float) -> list[dict[str, Any]]:
        """New attributes in a record the broker stamped ``ts``: its only time."""
        body = {"account_id": account, "segment": "smb", "seats_purchased": 10}
        return await self._run(
            [
                Record(
                    self.settings.topic_accounts,
                    0,
                    next(self.offsets),
                    account.encode(),
                    orjson.dumps(body),
                    int(ts * 1000),
                )
            ]
        )

    async def _run(self, records: list[Record]) -> list[dict[str, Any]]:
        outcome = await self.pipeline.process(records)
        await self.pipeline.store.save(outcome.writes)
        return [as_dict(alert) for _, alert in outcome.alerts]


def _tiers(alerts: list[dict[str, Any]]) -> list[tuple[str | None, str, float]]:
    return [(a["previous_tier"], a["tier"], a["score"]) for a in alerts]


async def test_hysteresis_holds_only_between_live_evaluations_across_restarts(
    settings: Settings, redis: Redis
) -> None:
    state = keys.state_key("acme")
    old = time.time() - 2 * HOUR  # well past the default 300 s lag
    offsets = itertools.count()
    worker = _Worker(settings, redis, offsets)
    assert _tiers(await worker.csat("acme", old, 5, 5, 5, 5, 5)) == [(None, "green", 100.0)]
    assert await redis.hget(state, keys.MODE) == b"catch_up"

    # A restart, then live answers: 3.875 average, 68.75, within the margin of green.
    # The account's last evaluation caught up, so this one decides on the score alone.
    worker = _Worker(settings, redis, offsets)
    assert _tiers(await worker.csat("acme", time.time(), 2, 2, 2)) == [("green", "yellow", 68.75)]
    assert not await redis.hexists(state, keys.MODE)  # live: nothing saved

    # Live after live, across another restart: 70.45 is within the margin above 70,
    # so hysteresis keeps yellow.
    worker = _Worker(settings, redis, offsets)
    assert await worker.csat("acme", time.time(), 4, 4, 4) == []
    # A stray answer older than the lag: caught up on, the tier follows the score (70.83).
    assert _tiers(await worker.csat("acme", old, 4)) == [("yellow", "green", 70.83)]
    assert await redis.hget(state, keys.MODE) == b"catch_up"


async def test_each_alert_says_whether_its_evaluation_was_live_or_caught_up(
    settings: Settings, redis: Redis
) -> None:
    worker = _Worker(settings, redis, itertools.count())
    old = time.time() - 2 * HOUR

    def told(alerts: list[dict[str, Any]]) -> list[tuple[str | None, str, str]]:
        return [(a["previous_tier"], a["tier"], a["delivery"]) for a in alerts]

    # First scores by the same rule: one from history, one from a live answer.
    assert told(await worker.csat("acme", old, 5, 5, 5, 5, 5)) == [(None, "green", "catch_up")]
    assert told(await worker.csat("beta", time.time(), 5)) == [(None, "green", "live")]
    assert told(await worker.csat("acme", time.time(), 2, 2, 2)) == [("green", "yellow", "live")]
    assert await worker.csat("acme", time.time(), 4, 4, 4) == []
    assert told(await worker.csat("acme", old, 4)) == [("yellow", "green", "catch_up")]
    assert told(await worker.csat("beta", old, 1, 1, 1, 1, 1)) == [("green", "red", "catch_up")]


async def test_the_lag_is_a_setting(settings: Settings, redis: Redis) -> None:
    # Two hours behind is live with a three-hour lag: hysteresis from the second
    # evaluation on, as before this rule.
    worker = _Worker(settings.replace(catch_up_lag_seconds=3 * HOUR), redis, itertools.count())
    old = time.time() - 2 * HOUR
    assert _tiers(await worker.csat("acme", old, 5, 5, 5, 5, 5)) == [(None, "green", 100.0)]
    assert await worker.csat("acme", old, 2, 2, 2) == []  # 68.75: green holds
    assert not await redis.hexists(keys.state_key("acme"), keys.MODE)


async def test_an_account_update_is_live_or_caught_up_by_its_record_timestamp(
    settings: Settings, redis: Redis
) -> None:
    state = keys.state_key("acme")
    worker = _Worker(settings, redis, itertools.count())
    await worker.csat("acme", time.time(), 5, 5, 5, 5, 5)
    assert not await redis.hexists(state, keys.MODE)
    await worker.update("acme", time.time() - 2 * HOUR)  # a compacted topic read again
    assert await redis.hget(state, keys.MODE) == b"catch_up"
    await worker.update("acme", time.time())
    assert not await redis.hexists(state, keys.MODE)


async def test_a_replay_settles_a_tier_held_by_the_margin_on_the_rebuilt_score(
    settings: Settings, redis: Redis
) -> None:
    # Scored live (a lag of three hours) in two batches: green, then 68.75 held green.
    old = time.time() - 2 * HOUR
    answers = [5, 5, 5, 5, 5, 2, 2, 2]
    await ensure_topics(settings)
    await chaos.produce_to(
        settings, [("survey", event("survey", "acme", old, kind="csat", score=a)) for a in answers]
    )
    worker = _Worker(settings.replace(catch_up_lag_seconds=3 * HOUR), redis, itertools.count())
    assert _tiers(await worker.csat("acme", old, *answers[:5])) == [(None, "green", 100.0)]
    assert await worker.csat("acme", old, *answers[5:]) == []

    # A replay (the default lag) applies that history as history: the rebuilt score's
    # plain tier is what consumers are told.
    report = await Replay(settings, force=True).run()
    assert _tiers(report.alerts) == [("green", "yellow", 68.75)]
    assert [(a["seq"], a["cause"]["kind"]) for a in report.alerts] == [(2, "replay")]
    assert report.alerts[0]["delivery"] == "catch_up"  # a rebuild's result, not news
