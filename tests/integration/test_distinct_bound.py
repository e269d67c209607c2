"""Each distinct set of an account tracks at most HEALTHSCORE_MAX_DISTINCT_MEMBERS
members: Redis holds no more, counts below the bound stay exact, tracked members keep
their last-seen times, and what is left out is counted and flagged where a window
reaches back to it; the copy held by the worker equals a fresh load throughout. Real
Redis, the real pipeline."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import orjson
import pytest
from redis.asyncio import Redis

from tests.integration.harness import Record, event
from worker.clock import FixedClock
from worker.explain import explain
from worker.metrics import Metrics
from worker.modelfile import load_model
from worker.pipeline import Pipeline
from worker.settings import Settings
from worker.windows import keys
from worker.windows.state import AccountState
from worker.windows.store import WindowStore

DAY = 86400.0
BOUND = 5


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(time.time())


@pytest.fixture
def store(redis: Redis) -> WindowStore:
    return WindowStore(redis, load_model(), max_distinct_members=BOUND)


@pytest.fixture
def pipeline(settings: Settings, store: WindowStore, clock: FixedClock) -> Pipeline:
    return Pipeline(settings, load_model(), store, clock, Metrics())


class Feed:
    def __init__(self, settings: Settings) -> None:
        self.settings, self.offset = settings, 0

    def logins(self, account: str, users: list[tuple[str, float]]) -> list[Record]:
        out = []
        for user, ts in users:
            body = event("login", account, ts, user_id=user)
            out.append(
                Record(
                    self.settings.topic_login, 0, self.offset, account.encode(), orjson.dumps(body)
                )
            )
            self.offset += 1
        return out


async def _run(pipeline: Pipeline, records: list[Record]) -> None:
    await pipeline.store.save((await pipeline.process(records)).writes)


def _left_out(pipeline: Pipeline, name: str) -> float:
    return (
        pipeline.metrics.registry.get_sample_value(
            "healthscore_distinct_capped_total", {"set": name}
        )
        or 0.0
    )


def _shape(state: AccountState) -> dict[int, tuple[int, frozenset[str]]]:
    return {w: (v.distinct("users"), v.capped) for w, v in state.windows.items()}


async def _held_equals_fresh(
    store: WindowStore, redis: Redis, account: str, now: float
) -> AccountState:
    held = store.held(account, now)
    assert held is not None
    fresh = await WindowStore(redis, load_model()).read(account, now)
    assert _shape(held) == _shape(fresh)
    assert {w: v.sums for w, v in held.windows.items()} == {
        w: v.sums for w, v in fresh.windows.items()
    }
    return fresh


async def test_a_set_stops_at_the_bound_and_says_so(
    settings: Settings, redis: Redis, store: WindowStore, pipeline: Pipeline, clock: FixedClock
) -> None:
    feed, now = Feed(settings), clock.now()
    await _run(pipeline, feed.logins("big", [(f"u{i}", now - 60 * i) for i in range(8)]))
    users = keys.set_key("big", "users")
    tracked = {m.decode(): s for m, s in await redis.zrange(users, 0, -1, withscores=True)}
    assert set(tracked) == {"u0", "u1", "u2", "u3", "u4"}  # the first five to come
    assert _left_out(pipeline, "users") == 3
    state = await _held_equals_fresh(store, redis, "big", now)
    flagged = (BOUND, frozenset({"users"}))
    assert _shape(state) == {30: flagged, 90: flagged}
    # Every login counts; only who logged in is bounded.
    assert state.windows[30].sums["login"] == 8

    # A tracked member's time moves on; a new one is still left out.
    clock.advance(60)
    await _run(pipeline, feed.logins("big", [("u3", clock.now()), ("u9", clock.now())]))
    assert await redis.zscore(users, "u3") == pytest.approx(clock.now(), abs=1e-3)  # ms in ts
    assert clock.now() - tracked["u3"] > 200
    assert await redis.zcard(users) == BOUND
    assert _left_out(pipeline, "users") == 4
    await _held_equals_fresh(store, redis, "big", clock.now())

    why = (await explain(WindowStore(redis, load_model()), load_model(), "big", clock)).as_dict()
    capped = {c["name"]: c["capped"] for c in why["components"]}
    assert capped["login_frequency"] == capped["license_utilization"] == ["users"]
    assert capped["feature_adoption"] == capped["nps"] == []


async def test_counts_below_the_bound_are_exact_and_unflagged(
    settings: Settings, redis: Redis, store: WindowStore, pipeline: Pipeline, clock: FixedClock
) -> None:
    feed, now = Feed(settings), clock.now()
    await _run(pipeline, feed.logins("small", [(f"u{i}", now - i) for i in range(BOUND)]))
    await _run(pipeline, feed.logins("small", [("u0", now), ("u1", now)]))
    assert await redis.zcard(keys.set_key("small", "users")) == BOUND
    state = await _held_equals_fresh(store, redis, "small", now)
    assert _shape(state) == {30: (BOUND, frozenset()), 90: (BOUND, frozenset())}
    assert _left_out(pipeline, "users") == 0
    assert not [f for f in await redis.hkeys(keys.state_key("small")) if f.startswith(b"capped")]


async def test_only_the_windows_that_reach_a_member_left_out_are_flagged(
    settings: Settings, redis: Redis, store: WindowStore, pipeline: Pipeline, clock: FixedClock
) -> None:
    feed, now = Feed(settings), clock.now()
    users = [(f"u{i}", now - i) for i in range(BOUND)] + [("late", now - 40 * DAY)]
    await _run(pipeline, feed.logins("old", users))
    state = await _held_equals_fresh(store, redis, "old", now)
    assert _shape(state) == {30: (BOUND, frozenset()), 90: (BOUND, frozenset({"users"}))}
    # Past the longest window the member left out no longer matters.
    clock.advance(51 * DAY)
    await _run(pipeline, feed.logins("old", [("u0", clock.now())]))
    state = await _held_equals_fresh(store, redis, "old", clock.now())
    assert _shape(state)[90][1] == frozenset()


async def test_explain_on_the_command_line_says_which_values_are_approximate(
    settings: Settings, pipeline: Pipeline, clock: FixedClock
) -> None:
    feed, now = Feed(settings), clock.now()
    await _run(pipeline, feed.logins("big", [(f"u{i}", now - i) for i in range(BOUND + 1)]))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HEALTHSCORE_")},
        "HEALTHSCORE_REDIS_URL": settings.redis_url,
    }

    def explain_cli(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "worker.cli", "explain", "big", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout

    report = json.loads(await asyncio.to_thread(explain_cli, "--json"))
    assert {c["name"]: c["capped"] for c in report["components"]}["login_frequency"] == ["users"]
    text = await asyncio.to_thread(explain_cli)
    assert "login_frequency: approximate" in text
    assert "feature_adoption: approximate" not in text
