"""``healthscore replay`` as an operator runs it: a subprocess, over topics a live worker
already scored, poison records among the events. It must finish, dead-letter the bad
records again with the live worker's reasons, leave exactly the live run's state, do
so again when run twice, and refuse in one line when the broker is not there. And a
replay that dies half-way (in-process here, to choose the moment) is simply run again."""

from __future__ import annotations

import asyncio
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from tests.integration import chaos
from tests.integration.harness import Producer, event, read_until
from tests.integration.test_replay import STRICT, _alerts, _same, _snapshot
from worker import replay as replay_module
from worker.embedded import EmbeddedRedis
from worker.modelfile import load_model, parse_model
from worker.pipeline import Pipeline
from worker.replay import Replay
from worker.rescore import Outcome
from worker.runtime.publish import publish
from worker.runtime.reader import read_to_end
from worker.runtime.topics import ensure_topics
from worker.settings import Settings
from worker.windows import rebuild

HEALTHSCORE = [sys.executable, "-m", "worker.cli"]
EVENTS = 1500
DEEP = 600  # nested arrays: past jsonschema_rs' recursion limit, within orjson's

# (topic kind, key, value, the reason the worker gives)
POISON: list[tuple[str, bytes | None, bytes, str]] = [
    ("login", b"acct-0001", b'{"event_id": "e1", "account_id": "acct-0001", "ts":', "invalid_json"),
    (
        "login",
        b"acct-0002",
        orjson.dumps(event("login", "acct-0002", user_id="u1", sesion_seconds=60)),
        "schema_violation",
    ),
    (
        "ticket",
        b"acct-0004",
        orjson.dumps(event("ticket", "acct-0003", ticket_id="t", status="opened", priority="low")),
        "bad_key",
    ),
    ("feature_use", b"acct-0005", b"[" * DEEP + b"]" * DEEP, "schema_violation"),
    (
        "survey",
        b"acct-0006",
        orjson.dumps(event("survey", "acct-0006", kind="nps", score=3))[:-1]
        + b', "extra": '
        + b"[" * DEEP
        + b"]" * DEEP
        + b"}",
        "schema_violation",
    ),
]


def _replay(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    # --force: the embedded broker keeps listing the stopped worker as a member.
    return subprocess.run(
        [*HEALTHSCORE, "replay", "--from-beginning", "--force", *args],
        env=chaos.env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def _live_run_with_poison(settings: Settings, log: Path) -> int:
    """A stream with attributes and poison records in every input topic, scored by one
    worker process until its state and dead letters are complete; then stopped.
    Returns how many records the input topics hold."""
    stream = chaos.stream(random.Random(7), EVENTS)
    await ensure_topics(settings)
    async with Producer(settings) as producer:
        for n in range(0, chaos.ACCOUNTS, 3):
            await producer.account(f"acct-{n:04d}", segment="smb", seats_purchased=20)
        await producer.raw(settings.topic_accounts, b"acct-0007", b"[1, 2")
        for kind, key, value, _ in POISON:
            await producer.raw(getattr(settings, f"topic_{kind}"), key, value)
    await chaos.produce(settings, stream)
    worker = chaos.start_worker(settings, log)
    try:
        async with Redis.from_url(settings.redis_url) as redis:
            # Accounts whose events add no counter (a closed ticket) have no counters key.
            expected = {account: c for account, c in chaos.reference(stream).items() if c}
            await chaos.wait_for_state(redis, expected, [worker], log)
        await read_until(
            settings,
            settings.topic_deadletter,
            lambda records: len(records) >= len(POISON) + 1,
            within=60,
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert worker.returncode == 0, chaos.tail(log)
    return len(stream) + len(POISON) + len(range(0, chaos.ACCOUNTS, 3)) + 1


async def _dead_letters(settings: Settings) -> Counter[tuple[str, str, int, int]]:
    """(reason, source topic, partition, offset) of every record on the dead-letter topic."""
    found: Counter[tuple[str, str, int, int]] = Counter()
    async for batch in read_to_end(settings, [settings.topic_deadletter], 1000):
        for record in batch:
            letter: dict[str, Any] = orjson.loads(record.value)
            source = letter["source"]
            found[letter["reason"], source["topic"], source["partition"], source["offset"]] += 1
    return found


def _summary_pattern(settings: Settings, records: int, accounts: int) -> str:
    return (
        rf"^replayed {records} records into {accounts} accounts "
        rf"in [\d.]+ s; 6 dead letters to {re.escape(settings.topic_deadletter)} "
        r"\(bad_key 1, invalid_json 2, schema_violation 3\); "
        r"\d+ tier changes on the way, 0 published now$"
    )


def test_replay_from_the_command_line_dead_letters_poison_and_rebuilds_the_live_state(
    settings: Settings, tmp_path: Path
) -> None:
    model = load_model()
    records = asyncio.run(_live_run_with_poison(settings, tmp_path / "live.log"))
    now = time.time()
    live = asyncio.run(_snapshot(settings, model, now))
    live_letters = asyncio.run(_dead_letters(settings))
    assert sorted(Counter(r for r, *_ in live_letters.elements()).items()) == [
        ("bad_key", 1),
        ("invalid_json", 2),
        ("schema_violation", 3),
    ]

    for run in (1, 2):  # a second run in a row finds what the first left, and ends the same
        result = _replay(settings)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        summary = result.stdout.strip().splitlines()[-1]
        assert re.match(_summary_pattern(settings, records, len(live)), summary), summary
        # stderr is a pipe: JSON log lines, the rebuild's progress among them.
        progress = [
            line["message"]
            for line in map(orjson.loads, result.stderr.splitlines())
            if line["logger"] == "worker.progress"
        ]
        assert re.match(r"replay: \d+ records to read$", progress[0]), progress
        assert progress[-1].startswith(f"replay: read {records} of "), progress
        _same(asyncio.run(_snapshot(settings, model, now)), live)
        # Each bad record dead-lettered once more, from the same source, for the same reason.
        letters = asyncio.run(_dead_letters(settings))
        assert letters == Counter({k: n * (run + 1) for k, n in live_letters.items()})


def test_replay_without_a_broker_fails_in_one_line_and_changes_nothing(
    settings: Settings, redis_url: str
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{sock.getsockname()[1]}"
    state = {"pub": b'{"tier": "green"}', "off:events.login:0": b"7"}

    async def seed() -> None:
        async with Redis.from_url(redis_url) as redis:
            await redis.hset("hs:{acme}:s", mapping=state)

    asyncio.run(seed())
    result = _replay(settings.replace(kafka_bootstrap=closed))  # its timeout bounds the wait

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"healthscore: cannot reach the broker at {closed}: "), last

    async def stored() -> dict[bytes, bytes]:
        async with Redis.from_url(redis_url) as redis:
            return await redis.hgetall("hs:{acme}:s")

    assert asyncio.run(stored()) == {k.encode(): v for k, v in state.items()}


class _Unplugged(Exception):
    """The replay process dying at a chosen point, after the reset."""


async def test_a_replay_that_dies_half_way_is_simply_run_again(
    settings: Settings, tmp_path: Path
) -> None:
    model = load_model()
    await _live_run_with_poison(settings, tmp_path / "live.log")
    now = time.time()
    live = await _snapshot(settings, model, now)
    small = settings.replace(batch_max_records=200)  # many batches: die in the middle of them

    class DiesOnTheThirdBatch(Replay):
        batches = 0

        async def _trail(self, pipeline: Pipeline, outcome: Outcome) -> None:
            self.batches += 1
            if self.batches == 3:
                raise _Unplugged
            await super()._trail(pipeline, outcome)

    with pytest.raises(_Unplugged):
        await DiesOnTheThirdBatch(small, force=True).run()
    half = await _snapshot(settings, model, now)
    assert half != live, "the replay died before its reset: nothing was proven"
    assert {a: s["published"] for a, s in half.items()} == {
        a: s["published"] for a, s in live.items()
    }, "the reset lost a published tier"

    report = await Replay(small, force=True).run()

    _same(await _snapshot(settings, model, now), live)
    assert report.alerts == []


async def test_a_replay_that_dies_after_publishing_some_alerts_does_not_publish_them_again(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _live_run_with_poison(settings, tmp_path / "live.log")
    strict = parse_model(STRICT, source="test")
    monkeypatch.setattr(rebuild, "SCAN_COUNT", 40)  # the catch-up in many chunks
    sends = 0

    async def publish_then_die(*args: Any, **kwargs: Any) -> None:
        nonlocal sends
        await publish(*args, **kwargs)
        if args[1].alerts and kwargs["alerts_topic"] == settings.topic_alerts:
            sends += 1
            if sends == 2:  # sent, but the outbox not cleared yet
                raise _Unplugged

    with monkeypatch.context() as patch:
        patch.setattr(replay_module, "publish", publish_then_die)
        with pytest.raises(_Unplugged):
            await Replay(settings, strict, force=True).run()
    first = _replayed(await _alerts(settings, settings.topic_alerts))
    assert first, "the replay died before the catch-up published anything"

    second = await Replay(settings, strict, force=True).run()
    third = await Replay(settings, strict, force=True).run()

    published = _replayed(await _alerts(settings, settings.topic_alerts))
    assert second.alerts
    assert not third.alerts
    assert len(published) == len(first) + len(second.alerts)
    by_account = Counter(alert["account_id"] for alert in published)
    assert max(by_account.values()) == 1, "an account was told the same change twice"


def _replayed(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [alert for alert in alerts if alert["cause"]["kind"] == "replay"]


async def test_a_replay_waits_out_a_redis_outage_after_its_reset(
    settings: Settings, tmp_path: Path, restartable_redis: EmbeddedRedis
) -> None:
    settings = settings.replace(redis_url=restartable_redis.url)
    model = load_model()
    await _live_run_with_poison(settings, tmp_path / "live.log")
    now = time.time()
    live = await _snapshot(settings, model, now)
    small = settings.replace(batch_max_records=200, retry_backoff_max_seconds=0.5)

    async def back_later() -> None:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(restartable_redis.start)

    restarts: list[asyncio.Task[None]] = []

    class LosesRedisOnTheThirdBatch(Replay):
        batches = 0

        async def _trail(self, pipeline: Pipeline, outcome: Outcome) -> None:
            self.batches += 1
            if self.batches == 3:  # this batch's writes, and the next ones, meet it gone
                restartable_redis.kill()
                restarts.append(asyncio.create_task(back_later()))
            await super()._trail(pipeline, outcome)

    replay = LosesRedisOnTheThirdBatch(small, force=True)
    report = await replay.run()
    await restarts[0]

    assert replay.metrics.registry.get_sample_value(
        "healthscore_retries_total", {"dependency": "redis"}
    ), "Redis was never missed"
    _same(await _snapshot(settings, model, now), live)
    assert report.alerts == []
