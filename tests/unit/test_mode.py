"""Live or catch-up, and the rule it sets for hysteresis: the tier of a catch-up, and of
the first live evaluation after one, is the plain tier of the score."""

from __future__ import annotations

import math
from typing import cast

import pytest
from redis.asyncio import Redis

from worker.events.types import AccountUpdate, Event, SourceRef
from worker.scoring.mode import Mode, evaluation_mode, hysteresis_applies
from worker.scoring.model import Model
from worker.scoring.tierchange import Published, new_tier
from worker.scoring.tiers import plain_tier
from worker.windows import keys, wire
from worker.windows.buckets import bucket_of
from worker.windows.plan import Planner
from worker.windows.resident import Resident
from worker.windows.state import StateWrite
from worker.windows.store import WindowStore

PRESENT = 1_800_000_000.0
LAG = 300.0
LIVE, CATCH_UP = Mode.LIVE, Mode.CATCH_UP


@pytest.mark.parametrize(
    ("newest", "mode"),
    [
        (PRESENT, LIVE),
        (PRESENT + 60, LIVE),  # stamped ahead (within the allowed skew)
        (PRESENT - LAG, LIVE),  # exactly the lag behind: still live
        (PRESENT - LAG - 0.001, CATCH_UP),
        (PRESENT - 86400, CATCH_UP),
        (-math.inf, CATCH_UP),  # nothing applied: no sign of the present
    ],
)
def test_records_older_than_the_lag_are_caught_up_on(newest: float, mode: Mode) -> None:
    assert evaluation_mode(newest, PRESENT, LAG) is mode


def test_a_zero_lag_makes_only_the_present_live() -> None:
    assert evaluation_mode(PRESENT, PRESENT, 0.0) is LIVE
    assert evaluation_mode(PRESENT - 0.001, PRESENT, 0.0) is CATCH_UP


@pytest.mark.parametrize(
    ("mode", "previous", "applies"),
    [
        (LIVE, LIVE, True),
        (LIVE, CATCH_UP, False),  # the first live evaluation after a catch-up
        (CATCH_UP, LIVE, False),
        (CATCH_UP, CATCH_UP, False),
    ],
)
def test_hysteresis_only_between_two_live_evaluations(
    mode: Mode, previous: Mode, applies: bool
) -> None:
    assert hysteresis_applies(mode, previous) is applies


def _published(tier: str) -> Published:
    return Published(tier, 0.0, 1, {})


# (published tier, score, tier with hysteresis, tier without); margin 3, bars 70 and 40.
BOUNDARIES = [
    ("green", 67.0, "green", "yellow"),
    ("green", 66.99, "yellow", "yellow"),
    ("green", 69.99, "green", "yellow"),
    ("green", 70.0, "green", "green"),
    ("yellow", 72.99, "yellow", "green"),
    ("yellow", 73.0, "green", "green"),
    ("yellow", 70.0, "yellow", "green"),
    ("yellow", 39.99, "yellow", "red"),
    ("yellow", 37.0, "yellow", "red"),
    ("yellow", 36.99, "red", "red"),
    ("red", 40.0, "red", "yellow"),
    ("red", 42.99, "red", "yellow"),
    ("red", 43.0, "yellow", "yellow"),
]


@pytest.mark.parametrize(
    ("previous", "current"),
    [(LIVE, LIVE), (LIVE, CATCH_UP), (CATCH_UP, LIVE), (CATCH_UP, CATCH_UP)],
)
@pytest.mark.parametrize(("published", "score", "held", "plain"), BOUNDARIES)
def test_the_tier_at_the_boundaries(
    model: Model, previous: Mode, current: Mode, published: str, score: float, held: str, plain: str
) -> None:
    assert plain_tier(model, score).name == plain
    expected = held if (previous, current) == (LIVE, LIVE) else plain
    moved = new_tier(
        model, score, _published(published), hysteresis=hysteresis_applies(current, previous)
    )
    assert (moved or published) == expected


def test_a_first_score_is_plain_either_way(model: Model) -> None:
    for hysteresis in (True, False):
        assert new_tier(model, 69.99, None, hysteresis=hysteresis) == "yellow"


# --------------------------------------------------------------------------- the plan


def _event(ts: float, offset: int) -> Event:
    body = {"event_id": f"e{offset}", "account_id": "acme", "ts": "...", "user_id": "u1"}
    return Event("login", body["event_id"], "acme", ts, body, SourceRef("t", 0, offset))


def test_the_plan_knows_its_newest_record(model: Model) -> None:
    planner = Planner(model)
    now_bucket = bucket_of(PRESENT, model.bucket_seconds)
    update = AccountUpdate(
        "acme", {"seats_purchased": 5}, SourceRef("accounts", 0, 9), ts=PRESENT - 10
    )
    plan = planner.plan(
        "acme",
        [_event(PRESENT - 500, 1), _event(PRESENT - 20, 2), _event(PRESENT - 900, 3)],
        now_bucket,
    )
    assert plan.newest == PRESENT - 20  # the newest, not the last
    assert planner.plan("acme", [_event(PRESENT - 500, 1), update], now_bucket).newest == (
        PRESENT - 10
    )  # an update by its record's timestamp


def test_a_too_old_event_does_not_count_as_news(model: Model) -> None:
    planner = Planner(model)
    far_future = PRESENT + 365 * 86400  # every event is older than the longest window
    plan = planner.plan("acme", [_event(PRESENT, 1)], bucket_of(far_future, 86400))
    assert plan.too_old == 1
    assert plan.newest == -math.inf


# --------------------------------------------------------------------------- saving it


async def test_the_mode_is_saved_only_when_it_changes(
    model: Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[wire.Command] = []

    async def execute(
        _redis: object, commands: list[wire.Command], _timeout: float, ordered: object = ()
    ) -> list[None]:
        sent.extend(commands)
        return []

    monkeypatch.setattr(wire, "execute", execute)
    store = WindowStore(cast(Redis, None), model)
    store._residents.put(Resident("acme", 0, (30, 90), 86400))  # loaded: no mode saved
    state = keys.state_key("acme")

    async def save(mode: Mode, published: Published | None = None) -> list[object]:
        sent.clear()
        await store.save([StateWrite("acme", {}, mode=mode, published=published)])
        return list(sent)

    assert await save(LIVE) == []  # a live stream writes nothing for it
    assert await save(CATCH_UP) == [("HSET", state, keys.MODE, "catch_up")]
    assert await save(CATCH_UP) == []
    assert await save(LIVE) == [("HDEL", state, keys.MODE)]
    # With a new tier: one command for both.
    [(command, key, *fields)] = await save(CATCH_UP, _published("green"))
    assert (command, key, fields[-2:]) == ("HSET", state, [keys.MODE, "catch_up"])
