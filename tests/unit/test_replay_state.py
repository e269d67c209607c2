"""The pure parts of a replay: the event-time clock, the key layout it walks, and the
published-tier snapshot it takes back from an alert; plus the reset, on fakeredis."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import fakeredis
import orjson
import pytest

from worker.alerts import Cause, as_dict, build_alert
from worker.clock import EventTimeClock, FixedClock, WallClock
from worker.replay import Replay
from worker.scoring.mode import Mode
from worker.scoring.model import Model
from worker.scoring.rollup import ComponentScore, Scorecard
from worker.scoring.tierchange import decide, scorecard_of, snapshot
from worker.settings import Settings
from worker.windows import keys, rebuild


def test_the_event_time_clock_is_the_newest_event_time_and_never_moves_back() -> None:
    clock = EventTimeClock(start=100.0)
    assert clock.now() == 100.0
    clock.observe(250.0)
    clock.observe(180.0)  # a late event
    assert clock.now() == 250.0


@pytest.mark.parametrize("clock", [WallClock(), FixedClock(5.0)])
def test_live_clocks_ignore_event_times(clock: WallClock | FixedClock) -> None:
    before = clock.now()
    clock.observe(before + 10_000)
    assert clock.now() < before + 10_000


@pytest.mark.parametrize(
    ("key", "account"),
    [
        ("hs:{acme}:s", "acme"),
        ("hs:{a:b@c.d}:s", "a:b@c.d"),
        ("hs:{acme}:c", None),
        ("hs:due:{3}", None),
        ("other:{acme}:s", None),
    ],
)
def test_state_keys_name_their_account(key: str, account: str | None) -> None:
    assert keys.account_of_state_key(key) == account


def test_state_key_round_trip() -> None:
    assert keys.account_of_state_key(keys.state_key("x-1")) == "x-1"


@pytest.mark.parametrize(
    ("fields", "partition"),
    [
        (["pub", "off:events.login:4", "off:events.ticket:4"], 4),
        (["off:events.v2:login:0"], 0),  # a topic name with a colon
        (["pub", "attrs", "values"], None),
        ([], None),
    ],
)
def test_the_partition_of_an_account_comes_from_its_offset_fences(
    fields: list[str], partition: int | None
) -> None:
    assert keys.partition_of(fields) == partition


def test_an_alert_gives_back_the_snapshot_it_was_published_from(model: Model) -> None:
    card = Scorecard(
        {
            "nps": ComponentScore(-100.0, 0.0, 0.85),
            "support_tickets": ComponentScore(1.0, 100.0, 0.75),
        }
    )
    change = decide(model, card, None)
    assert change is not None
    alert = as_dict(build_alert(model, "acme", None, change, Cause("event"), 0.0, mode=Mode.LIVE))
    taken = rebuild._snapshot(alert)
    expected = snapshot(change)
    assert taken.tier == expected.tier
    assert taken.seq == expected.seq
    assert scorecard_of(taken).components == scorecard_of(expected).components
    # The next change is decided against it exactly as against the original.
    assert decide(model, card, taken) is None


def test_a_replay_reads_alerts_published_before_they_said_their_delivery(model: Model) -> None:
    change = decide(model, Scorecard({"nps": ComponentScore(-100.0, 0.0, 0.85)}), None)
    assert change is not None
    alert = as_dict(build_alert(model, "acme", None, change, Cause("event"), 0.0, mode=Mode.LIVE))
    older = {k: v for k, v in alert.items() if k != "delivery"}
    values = [
        orjson.dumps(alert),
        orjson.dumps(older),
        b"not json",
        orjson.dumps({**alert, "delivery": "late"}),
        orjson.dumps({k: v for k, v in older.items() if k != "seq"}),
    ]
    records = [
        SimpleNamespace(topic="health.alerts", partition=0, offset=n, value=v)
        for n, v in enumerate(values)
    ]
    replay = Replay(Settings(), model)
    assert list(replay._readable(records)) == [alert, older]  # as they were, not filled in
    assert replay.report.unreadable_alerts == 3


async def test_reset_keeps_only_published_tiers_and_unsent_alerts() -> None:
    redis = fakeredis.FakeAsyncRedis()
    await redis.hset(
        keys.state_key("a"),
        mapping={
            keys.PUBLISHED: b'{"seq": 2}',
            keys.outbox_field(2): b'{"seq": 2}',
            "off:events.login:1": 7,
            "attrs": "{}",
        },
    )
    await redis.hset(keys.state_key("b"), mapping={"off:events.login:0": 3})
    await redis.hset("hs:{a}:c", "20000|login", 1)
    await redis.zadd("hs:due:{1}", {"a": 5.0})
    await redis.sadd(keys.pending_key(1), "a")
    await redis.set("unrelated", 1)

    assert await rebuild.reset(redis) == 1

    assert await redis.hgetall(keys.state_key("a")) == {
        b"pub": b'{"seq": 2}',
        b"outbox:2": b'{"seq": 2}',
    }
    assert sorted(await redis.keys("*")) == [b"hs:pending:{1}", b"hs:{a}:s", b"unrelated"]
    await redis.aclose()


async def test_accounts_walks_every_state_hash_with_its_partition() -> None:
    redis = fakeredis.FakeAsyncRedis()
    for n in range(2500):  # more than one SCAN chunk
        await redis.hset(
            keys.state_key(f"acct-{n}"),
            mapping={f"off:events.login:{n % 3}": 1, keys.REPLAY_PUBLISHED: "{}"},
        )
    await redis.hset(keys.state_key("attrs-only"), "attrs", "{}")

    seen = [
        pair
        async for chunk in rebuild.accounts(redis, forget=keys.REPLAY_PUBLISHED)
        for pair in chunk
    ]

    assert sorted(seen, key=lambda p: p[1])[:2] == [(0, "acct-0"), (1, "acct-1")]
    assert len(seen) == 2501
    assert (None, "attrs-only") in seen
    assert not await redis.hexists(keys.state_key("acct-7"), keys.REPLAY_PUBLISHED)
    await redis.aclose()


def test_a_replay_trail_never_goes_to_the_live_alerts_topic() -> None:
    from worker.errors import ConfigError
    from worker.replay import Replay
    from worker.settings import Settings

    settings = Settings()
    with pytest.raises(ConfigError, match="live alerts topic"):
        Replay(settings, alerts_topic=settings.topic_alerts)


def test_the_command_objects_build_outside_an_event_loop() -> None:
    """The command line builds them before ``asyncio.run``: aiokafka's clients, which
    need the running loop, must wait for ``run()``."""
    from worker.app import Worker
    from worker.replay import Replay
    from worker.settings import Settings

    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    settings = Settings()
    Replay(settings, alerts_topic="trail")
    Worker(settings)
