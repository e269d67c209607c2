"""The accounts a worker holds in memory (loaded once, then added to as the script
applies events) always equal what a fresh load from Redis gives: for new accounts,
for accounts held across batches, across a bucket boundary, and after another
writer changed an account behind the worker's back. Real Redis, the real pipeline."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable

import orjson
import pytest
from redis.asyncio import Redis

from tests.integration.harness import Record, event, poison_scoring
from worker.clock import FixedClock
from worker.metrics import Metrics
from worker.modelfile import load_model
from worker.pipeline import Pipeline
from worker.scoring.evaluate import component_values
from worker.scoring.model import Model
from worker.settings import Settings
from worker.windows import keys
from worker.windows.state import AccountState
from worker.windows.store import WindowStore

DAY = 86400.0
ACCOUNTS = [f"cache-{i}" for i in range(30)]


def _batch(
    settings: Settings, rng: random.Random, now: float, start: int, size: int
) -> list[Record]:
    out = []
    for offset in range(start, start + size):
        account = rng.choice(ACCOUNTS)
        ts = now - rng.uniform(0, 100 * DAY)  # some beyond the longest window
        if rng.random() < 0.5:
            body = event(
                "login",
                account,
                ts,
                user_id=f"u{rng.randrange(6)}",
                session_seconds=rng.uniform(10, 900),
            )
            topic = settings.topic_login
        else:
            body = event(
                "feature_use",
                account,
                ts,
                user_id=f"u{rng.randrange(6)}",
                feature=f"f{rng.randrange(9)}",
            )
            topic = settings.topic_feature_use
        out.append(Record(topic, 0, offset, account.encode(), orjson.dumps(body)))
    return out


def _view(state: AccountState) -> tuple[object, ...]:
    windows = {
        w: (
            {k: round(v, 6) for k, v in view.sums.items() if v},
            view.distinct("users"),
            view.distinct("features"),
            view.capped,
        )
        for w, view in state.windows.items()
    }
    return (windows, state.attrs, state.seen, state.published)


async def _assert_held_equal_redis(
    store: WindowStore,
    redis: Redis,
    model: Model,
    now: float,
    accounts: Iterable[str],
    label: object,
) -> int:
    compared = 0
    for account in accounts:
        held = store.held(account, now)
        if held is None:
            continue
        fresh = await WindowStore(redis, model).read(account, now)
        assert _view(held) == _view(fresh), (account, label)
        # Values kept from the last scoring, refreshed only where its events touched,
        # equal all of them computed afresh from the same windows.
        if held.cache_valid:
            assert held.cached_values == component_values(
                model, held.windows, held.attrs, held.seen, {}, None
            ), (account, label)
        # Held, the next change may come early (a member seen again has left its old
        # bucket), never late: a silent account is rescored in time.
        assert held.next_change == fresh.next_change or (
            held.next_change is not None
            and fresh.next_change is not None
            and held.next_change <= fresh.next_change
        ), (account, label)
        compared += 1
    return compared


@pytest.mark.parametrize("bound", [25_000, 3])  # 3: fewer than the users and features sent
async def test_held_accounts_equal_a_fresh_load(
    settings: Settings, redis: Redis, bound: int
) -> None:
    model = load_model()
    clock = FixedClock(time.time())
    store = WindowStore(redis, model, max_distinct_members=bound)
    pipeline = Pipeline(settings, model, store, clock, Metrics())
    rng = random.Random(5)
    offset = compared = 0
    for round_ in range(12):
        records = _batch(settings, rng, clock.now(), offset, 40)
        offset += len(records)
        await pipeline.store.save((await pipeline.process(records)).writes)
        if round_ % 4 == 3:
            clock.advance(DAY)  # the next batch starts a new bucket: everything reloads
        compared += await _assert_held_equal_redis(
            store, redis, model, clock.now(), ACCOUNTS, round_
        )
        await _assert_due_index_current(store, redis, clock.now(), round_)
    assert compared >= 100  # accounts were held often enough to mean something
    if bound < 6:  # the bound was reached and held: Redis has no more than it allows
        assert pipeline.metrics.registry.get_sample_value(
            "healthscore_distinct_capped_total", {"set": "users"}
        )
        for account in ACCOUNTS:
            users, features = keys.set_key(account, "users"), keys.set_key(account, "features")
            assert await redis.zcard(users) <= bound
            assert await redis.zcard(features) <= bound


async def _assert_due_index_current(
    store: WindowStore, redis: Redis, now: float, label: object
) -> None:
    """The due index has every held account at its next change, though a save writes it
    only when that moved."""
    for account in ACCOUNTS:
        held = store.held(account, now)
        if held is not None:
            due = await redis.zscore(keys.due_key(0), account)
            assert due == held.next_change, (account, label)


async def test_a_write_by_someone_else_is_noticed(settings: Settings, redis: Redis) -> None:
    """Two pipelines on one account, as after a rebalance that moved it and back: each
    one's next batch finds its copy a version behind and loads the account again."""
    model = load_model()
    clock = FixedClock(time.time())
    stores = [WindowStore(redis, model), WindowStore(redis, model)]
    pipelines = [Pipeline(settings, model, s, clock, Metrics()) for s in stores]
    rng = random.Random(6)
    offset = 0
    for round_ in range(8):
        records = _batch(settings, rng, clock.now(), offset, 30)
        offset += len(records)
        pipeline = pipelines[round_ % 2]
        await pipeline.store.save((await pipeline.process(records)).writes)
        # Only the batch's accounts: a copy is checked (and loaded again) when it is used.
        touched = {r.key.decode() for r in records if r.key}
        assert (
            await _assert_held_equal_redis(
                stores[round_ % 2], redis, model, clock.now(), touched, round_
            )
            > 0
        )


async def test_an_account_whose_scoring_failed_is_scored_on_all_its_data_next(
    settings: Settings, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its records are applied before it is scored: when scoring raises (they are
    dead-lettered), the values held from its last scoring miss them, and a next batch
    that touches other components must not decide on those."""
    model = load_model()
    now = time.time()
    pipeline = Pipeline(settings, model, WindowStore(redis, model), FixedClock(now), Metrics())
    offsets = iter(range(100))

    def records(topic: str, bodies: Iterable[dict[str, object]]) -> list[Record]:
        return [Record(topic, 0, next(offsets), b"acme", orjson.dumps(b)) for b in bodies]

    def logins(n: int) -> list[Record]:
        return records(
            settings.topic_login,
            (
                event("login", "acme", now - DAY, user_id="u0", session_seconds=600)
                for _ in range(n)
            ),
        )

    await pipeline.store.save((await pipeline.process(logins(5))).writes)

    with monkeypatch.context() as patch:
        poison_scoring(patch, "acme")
        features = records(
            settings.topic_feature_use,
            (
                event("feature_use", "acme", now - DAY, user_id="u0", feature=f"f{n}")
                for n in range(8)
            ),
        )
        failed = await pipeline.process(features)
    assert len(failed.dead_letters) == len(features)
    assert failed.writes == []

    [write] = (await pipeline.process(logins(1))).writes  # touches no adoption component
    fresh = await WindowStore(redis, model).read("acme", now)
    assert write.values == component_values(
        model, fresh.windows, fresh.attrs, fresh.seen, {}, None, fresh.seen_bucket, fresh.now_bucket
    )
    assert write.values["feature_adoption"] == 8
