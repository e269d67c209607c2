"""Replay: the retained topics rebuild Redis into exactly the state the live run left,
on event time, without publishing again what consumers were already told."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from tests.integration import chaos
from tests.integration import reference as ref
from tests.integration.harness import Producer, running_worker, valid_alert
from worker.clock import FixedClock
from worker.errors import ConfigError
from worker.explain import explain
from worker.modelfile import load_model, parse_model
from worker.modelfile.segments import load_models
from worker.replay import Replay
from worker.runtime.reader import read_to_end
from worker.runtime.topics import ensure_topics
from worker.scoring.model import Model
from worker.scoring.segments import ModelSet, as_model_set
from worker.settings import Settings
from worker.windows import keys
from worker.windows.store import WindowStore

EVENTS = 8000


def _attrs() -> dict[str, dict[str, Any]]:
    """The account records of the live run: every third account has some."""
    return {
        f"acct-{n:04d}": {"segment": "smb", "seats_purchased": 20}
        for n in range(0, chaos.ACCOUNTS, 3)
    }


async def _live_run(
    settings: Settings, log: Path, attrs: dict[str, dict[str, Any]] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """Produce a stream with account attributes, let one worker score all of it, stop it;
    returns the event records produced."""
    attrs = _attrs() if attrs is None else attrs
    stream = chaos.stream(random.Random(31), EVENTS)
    await ensure_topics(settings)
    async with Producer(settings) as producer:
        for account, fields in attrs.items():
            await producer.account(account, **fields)
    ends = await chaos.produce_to(settings, stream)
    expected = chaos.reference(stream)
    worker = chaos.start_worker(settings, log)
    try:
        async with Redis.from_url(settings.redis_url) as redis:
            await chaos.wait_for_state(redis, expected, [worker], log)
        await chaos.wait_for_commits(settings, ends, log)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    return stream


async def _snapshot(settings: Settings, model: Model | ModelSet, now: float) -> dict[str, Any]:
    """Per account: windows, attributes, published tier and the score explain gives at ``now``."""
    out: dict[str, Any] = {}
    models = as_model_set(model)
    async with Redis.from_url(settings.redis_url) as redis:
        store = WindowStore(redis, models.windows)
        async for key in redis.scan_iter(match=keys.state_key("*")):
            account = keys.account_of_state_key(key.decode())
            assert account is not None
            tag = f"hs:{{{account}}}"
            why = (await explain(store, model, account, FixedClock(now))).as_dict()
            pub = orjson.loads(await redis.hget(key, keys.PUBLISHED) or b"null")
            out[account] = {
                "counters": await redis.hgetall(f"{tag}:c"),
                "users": await redis.zrange(f"{tag}:u", 0, -1, withscores=True),
                "features": await redis.zrange(f"{tag}:f", 0, -1, withscores=True),
                "attrs": await redis.hget(key, keys.ATTRS),
                "published": pub and (pub["tier"], pub["seq"]),
                "score": why["score"],
                "tier": why["tier"],
                "components": why["components"],
                "indexed": [
                    t.name
                    for t in models.default.tiers
                    if await redis.zscore(keys.tier_key(t.name), account) is not None
                ],
            }
    return out


def _indexed_as_published(snapshot: dict[str, Any]) -> None:
    """Each account is in the tier index of its published tier, and in no other."""
    wrong = {
        a: (s["indexed"], s["published"])
        for a, s in snapshot.items()
        if s["indexed"] != ([] if s["published"] is None else [s["published"][0]])
    }
    first = dict(sorted(wrong.items())[:5])
    assert not wrong, f"{len(wrong)} accounts indexed apart from pub; (indexed, published): {first}"


def _same(rebuilt: dict[str, Any], live: dict[str, Any]) -> None:
    """Equal, or a message naming the first account and fields that differ."""
    if rebuilt == live:
        return
    for account in sorted(set(rebuilt) | set(live)):
        a, b = rebuilt.get(account, {}), live.get(account, {})
        if a != b:
            fields = {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}
            wrong = sum(rebuilt.get(x) != live.get(x) for x in set(rebuilt) | set(live))
            raise AssertionError(f"{wrong} accounts differ; {account}: (rebuilt, live) {fields}")


async def _alerts(settings: Settings, topic: str) -> list[dict[str, Any]]:
    """Every alert on ``topic`` now (records that are not alerts left out)."""
    records = [r async for batch in read_to_end(settings, [topic], 1000) for r in batch]
    return [
        a for r in records if r.value.startswith(b"{") and valid_alert(a := orjson.loads(r.value))
    ]


async def test_a_replay_into_an_empty_redis_reproduces_the_live_state_and_publishes_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    model = load_model()
    stream = await _live_run(settings, tmp_path / "live.log")
    events = len(stream)
    async with Redis.from_url(settings.redis_url) as redis:
        await chaos.verify(settings, redis, stream, _attrs())  # the live run was right
    now = time.time()
    live = await _snapshot(settings, model, now)
    live_alerts = await _alerts(settings, settings.topic_alerts)

    async with Redis.from_url(settings.redis_url) as redis:
        await redis.flushdb()
    report = await Replay(settings, force=True).run()  # the broker lists departed members

    _indexed_as_published(live)
    _same(await _snapshot(settings, model, now), live)
    async with Redis.from_url(settings.redis_url) as redis:
        await chaos.verify(settings, redis, stream, _attrs())
    assert report.alerts == []
    assert report.records >= EVENTS
    assert report.accounts == len(live)
    assert len(await _alerts(settings, settings.topic_alerts)) == len(live_alerts)

    # A worker of a new group reads everything again: the fences the replay left skip it all.
    fresh = settings.replace(group_id=settings.group_id + "-after-replay")
    async with running_worker(fresh) as worker:
        registry = worker.metrics.registry
        deadline = time.monotonic() + 60
        while (registry.get_sample_value("healthscore_events_replayed_total") or 0) < events:
            assert time.monotonic() < deadline, "the new worker did not read every event"
            await asyncio.sleep(0.1)
        assert registry.get_sample_value("healthscore_events_replayed_total") == events
    assert await _snapshot(settings, model, now) == live
    assert len(await _alerts(settings, settings.topic_alerts)) == len(live_alerts)


async def test_a_replay_with_segment_models_reproduces_the_live_state(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.replace(model_path=chaos.SEGMENTED)
    models = load_models(chaos.SEGMENTED)
    attrs = chaos.segment_attrs()
    stream = await _live_run(settings, tmp_path / "live.log", attrs)
    async with Redis.from_url(settings.redis_url) as redis:
        # Every alert by the model of its segment, each checked against the reference's
        # restatement of the file: the live run was right.
        await chaos.verify(settings, redis, stream, attrs, ref.EXAMPLE)
    now = time.time()
    live = await _snapshot(settings, models, now)
    live_alerts = await _alerts(settings, settings.topic_alerts)
    assert {a["model"]["segment"] for a in live_alerts} == {
        "default",
        "smb",
        "enterprise",
        "onboarding",
        "mid_market",
    }

    async with Redis.from_url(settings.redis_url) as redis:
        await redis.flushdb()
    report = await Replay(settings, force=True).run()

    _indexed_as_published(live)
    _same(await _snapshot(settings, models, now), live)
    async with Redis.from_url(settings.redis_url) as redis:
        await chaos.verify(settings, redis, stream, attrs, ref.EXAMPLE)
    assert report.alerts == []
    assert len(await _alerts(settings, settings.topic_alerts)) == len(live_alerts)


STRICT = """
version: strict-replay-test
bucket: 1d
tiers:
  margin: 3
  levels:
    - {name: green, label: Doing well, min_score: 90}
    - {name: yellow, label: Take notice, min_score: 75}
    - {name: red, label: Requires attention, min_score: 0}
components:
  login_frequency:
    signal: logins_per_active_user
    window: 30d
    weight: 1.0
    curve: {linear: {bad: 4, good: 20}}
"""


async def test_a_replay_under_a_new_model_alerts_only_where_tiers_now_differ(
    settings: Settings, tmp_path: Path
) -> None:
    await _live_run(settings, tmp_path / "live.log")
    live_alerts = await _alerts(settings, settings.topic_alerts)
    last_seq = {}
    for alert in live_alerts:
        last_seq[alert["account_id"]] = max(alert["seq"], last_seq.get(alert["account_id"], 0))
    trail_topic = settings.topic_alerts + ".trail"
    async with Producer(settings) as producer:  # someone else's junk on the alerts topic
        await producer.raw(settings.topic_alerts, b"acct-0001", b"not an alert")
        await producer.raw(settings.topic_alerts, b"acct-0002", b'{"account_id": "acct-0002"}')

    report = await Replay(
        settings, parse_model(STRICT, source="test"), alerts_topic=trail_topic, force=True
    ).run()

    assert report.unreadable_alerts == 2
    assert report.alerts, "a much stricter model must move some accounts"
    for alert in report.alerts:
        assert valid_alert(alert)
        assert alert["cause"]["kind"] == "replay"
        assert alert["delivery"] == "catch_up"
        assert alert["model_version"] == "strict-replay-test"
        assert alert["seq"] == last_seq[alert["account_id"]] + 1  # the chain goes on
    published = await _alerts(settings, settings.topic_alerts)
    assert len(published) == len(live_alerts) + len(report.alerts)
    trail = await _alerts(settings, trail_topic)
    assert len(trail) == report.trail_alerts > 0
    assert all(valid_alert(a) and a["model_version"] == "strict-replay-test" for a in trail)
    assert {a["delivery"] for a in trail} == {"catch_up"}  # history, on event time
    chains: dict[str, list[int]] = {}
    for alert in trail:  # the trail is a chain of its own, from seq 1, in event time
        chains.setdefault(alert["account_id"], []).append(alert["seq"])
    assert all(seqs == list(range(1, len(seqs) + 1)) for seqs in chains.values())
    assert max(a["ts"] for a in trail) < max(a["ts"] for a in report.alerts)
    async with Redis.from_url(settings.redis_url) as redis:
        async for key in redis.scan_iter(match=keys.state_key("*")):
            assert not await redis.hexists(key, keys.REPLAY_PUBLISHED)
    _indexed_as_published(
        await _snapshot(settings, parse_model(STRICT, source="test"), time.time())
    )


async def test_a_replay_refuses_to_run_beside_live_workers(settings: Settings) -> None:
    await ensure_topics(settings)
    async with running_worker(settings):
        with pytest.raises(ConfigError, match="live worker"):
            await Replay(settings).run()
