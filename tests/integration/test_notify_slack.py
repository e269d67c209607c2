"""``healthscore notify slack`` as users run it: a subprocess on the alerts topic, posting
to a real local HTTP server that answers as Slack does (2xx, 429 + Retry-After, 500,
too slowly), killed and restarted on the way."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.integration import chaos
from tests.slackhook import FakeSlack, Reply, make_alert
from worker.runtime.topics import ensure_topics
from worker.settings import Settings

HEALTHSCORE = [sys.executable, "-m", "worker.cli"]


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


class Notifier:
    def __init__(
        self, settings: Settings, slack: FakeSlack, log: Path, *flags: str, group: str | None = None
    ) -> None:
        self.group = group or f"notify-{settings.group_id}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSCORE_")}
        env.update(
            HEALTHSCORE_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
            HEALTHSCORE_REDIS_URL=settings.redis_url,
            HEALTHSCORE_TOPIC_ALERTS=settings.topic_alerts,
            HEALTHSCORE_NOTIFY_GROUP_ID=self.group,
            HEALTHSCORE_SLACK_TIMEOUT_SECONDS="1",
            HEALTHSCORE_RETRY_BACKOFF_MAX_SECONDS="1",
            # Short: a killed notifier's partitions go to the next one sooner.
            HEALTHSCORE_SESSION_TIMEOUT_MS=str(chaos.KILLED_SESSION_MS),
            HEALTHSCORE_METRICS_PORT="0",
        )
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*HEALTHSCORE, "notify", "slack", "--webhook-url", slack.url, *flags],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def alive(self) -> None:
        assert self.proc.poll() is None, self.log.read_text()[-3000:]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)


async def until(
    condition: Callable[[], Any], what: str, notifier: Notifier | None = None, within: float = 60.0
) -> None:
    deadline = time.monotonic() + within
    while not await _holds(condition):
        if notifier is not None:
            notifier.alive()
        if time.monotonic() > deadline:
            log = notifier.log.read_text()[-3000:] if notifier else ""
            raise AssertionError(f"timed out waiting for {what}\n{log}")
        await asyncio.sleep(0.2)


async def _holds(condition: Callable[[], Any]) -> bool:
    result = condition()
    return bool(await result if asyncio.iscoroutine(result) else result)


async def produce(settings: Settings, *alerts: dict[str, Any]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for a in alerts:
            await producer.send_and_wait(
                settings.topic_alerts, orjson.dumps(a), key=a["account_id"].encode()
            )
    finally:
        await producer.stop()


async def uncommitted(settings: Settings, group: str) -> int:
    """Records on the alerts topic past the group's committed offsets."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer.topics()
        parts = consumer.partitions_for_topic(settings.topic_alerts) or set()
        tps = [TopicPartition(settings.topic_alerts, p) for p in parts]
        ends = await consumer.end_offsets(tps)
        total = 0
        for tp in tps:
            total += ends[tp] - ((await consumer.committed(tp)) or 0)
        return total
    finally:
        await consumer.stop()


def posted_accounts(slack: FakeSlack) -> Counter[str]:
    """Acknowledged single-alert messages, by account (their text starts with it)."""
    return Counter(
        r.text.split(":")[0]
        for r in slack.acknowledged()
        if not r.text.startswith("Health score digest")
    )


def digests(slack: FakeSlack) -> list[str]:
    return [r.text for r in slack.acknowledged() if r.text.startswith("Health score digest")]


async def test_each_alert_is_posted_once_through_429_500_and_a_slow_answer(
    settings: Settings, slack: FakeSlack, tmp_path: Path
) -> None:
    await ensure_topics(settings)
    slack.then(
        Reply(429, headers={"Retry-After": "1"}, body="rate_limited"),
        Reply(500, body="internal_error"),
        Reply(200, delay=2.5),
    )
    live = [make_alert(f"acct-{n}") for n in range(4)]
    other_segment = make_alert("acct-smb", segment="smb")
    notifier = Notifier(
        settings, slack, tmp_path / "notify.log", "--segments", "mid_market,enterprise"
    )
    try:
        # live[1] again at a new offset: the worker re-sending an outbox alert.
        await produce(settings, *live, other_segment, live[1])
        await until(lambda: len(posted_accounts(slack)) == 4, "four alerts posted", notifier)
        await until(_committed(settings, notifier.group), "all offsets committed", notifier)
        assert notifier.stop() == 0
    finally:
        if notifier.proc.poll() is None:
            notifier.kill()
    assert posted_accounts(slack) == {f"acct-{n}": 1 for n in range(4)}
    requests = slack.snapshot()
    assert [r.reply.status for r in requests[:3]] == [429, 500, 200]
    assert len(requests) == 4 + 3, [r.text for r in requests]  # each refusal retried once
    assert requests[1].at - requests[0].at >= 0.9, "Retry-After: 1 was not honoured"
    assert all("acct-smb" not in r.text for r in requests)
    assert slack.url not in notifier.log.read_text(), "the webhook URL (a secret) was logged"
    first = next(r for r in slack.acknowledged() if r.text.startswith("acct-0"))
    blocks = first.payload["attachments"][0]["blocks"]
    assert "escalations rose from 0 to 3 in 90 days" in str(blocks)
    assert first.payload["attachments"][0]["color"] == "#e01e5a"


def _committed(settings: Settings, group: str) -> Callable[[], Any]:
    async def check() -> bool:
        return await uncommitted(settings, group) == 0

    return check


async def test_a_killed_notifier_loses_nothing_and_reposts_nothing(
    settings: Settings, slack: FakeSlack, tmp_path: Path
) -> None:
    await ensure_topics(settings)
    alerts = [make_alert(f"acct-{n}") for n in range(5)]
    log = tmp_path / "notify.log"
    first = Notifier(settings, slack, log)
    try:
        await produce(settings, *alerts[:3])
        await until(lambda: len(posted_accounts(slack)) == 3, "three posted", first)
        await until(_committed(settings, first.group), "committed", first)
        slack.default = Reply(500, body="down")  # Slack goes away mid-way
        await produce(settings, *alerts[3:])
        await until(
            lambda: sum(r.text.startswith(("acct-3", "acct-4")) for r in slack.snapshot()) >= 2,
            "retries",
            first,
        )
    finally:
        first.kill()  # kill -9 while an alert is being retried, never acknowledged
    slack.default = Reply()
    again = Notifier(settings, slack, log)
    try:
        await produce(settings, alerts[0])  # an acknowledged alert again, at a new offset
        await until(lambda: len(posted_accounts(slack)) == 5, "all five posted", again)
        await until(_committed(settings, again.group), "committed", again)
        assert again.stop() == 0
    finally:
        if again.proc.poll() is None:
            again.kill()
    assert posted_accounts(slack) == {f"acct-{n}": 1 for n in range(5)}
    # Offsets lost altogether (a new group reads the topic from its start): the ledger
    # of acknowledged alert ids still keeps every one from being posted again.
    fresh = Notifier(settings, slack, log, group=f"fresh-{settings.group_id}")
    try:
        await until(_committed(settings, fresh.group), "the new group committed", fresh)
        assert fresh.stop() == 0
    finally:
        if fresh.proc.poll() is None:
            fresh.kill()
    assert posted_accounts(slack) == {f"acct-{n}": 1 for n in range(5)}
    assert digests(slack) == []


async def test_catch_up_alerts_come_as_one_digest(
    settings: Settings, slack: FakeSlack, tmp_path: Path
) -> None:
    await ensure_topics(settings)
    catch_up = [
        make_alert("acct-r1", delivery="catch_up"),
        make_alert("acct-r2", delivery="catch_up", score=12.0),
        make_alert("acct-y1", tier="yellow", score=55.0, delivery="catch_up"),
        make_alert(
            "acct-g1",
            seq=3,
            previous_tier="yellow",
            tier="green",
            score=88.0,
            previous_score=60.0,
            delivery="catch_up",
        ),
        make_alert(
            "acct-new", seq=1, previous_tier=None, tier="yellow", score=50.0, previous_score=None
        ),
    ]  # a first score, no delivery field
    log = tmp_path / "notify.log"
    notifier = Notifier(settings, slack, log, "--digest-minutes", "0.05")
    try:
        await produce(settings, *catch_up, make_alert("acct-live"))
        await until(lambda: digests(slack), "a digest", notifier)
        await until(_committed(settings, notifier.group), "committed", notifier)
        assert notifier.stop() == 0
    finally:
        if notifier.proc.poll() is None:
            notifier.kill()
    assert posted_accounts(slack) == {"acct-live": 1}
    [digest] = digests(slack)
    assert re.search(
        r"5 tier changes caught up on, 5 accounts \(green 1, yellow 2, red 2\)", digest
    ), digest
    payload = next(r.payload for r in slack.acknowledged() if r.text == digest)
    lowest = payload["attachments"][0]["blocks"][2]["text"]["text"]
    assert lowest.index("acct-r2") < lowest.index("acct-r1") < lowest.index("acct-y1")

    # A long digest interval: what it holds is posted when the notifier is told to stop.
    later = [make_alert("acct-r1", seq=n, delivery="catch_up") for n in (4, 5)]
    waiting = Notifier(settings, slack, log, "--digest-minutes", "60")
    try:
        await produce(
            settings,
            *later,
            make_alert("acct-r1", seq=6, previous_tier="red", tier="yellow", score=50.0),
        )
        await until(lambda: posted_accounts(slack)["acct-r1"] == 1, "the live one", waiting)
        assert await uncommitted(settings, waiting.group) >= 2  # held for the digest
        assert waiting.stop() == 0
    finally:
        if waiting.proc.poll() is None:
            waiting.kill()
    assert len(digests(slack)) == 2
    assert "2 tier changes caught up on, 1 account (red 1)" in digests(slack)[1]
    assert await uncommitted(settings, waiting.group) == 0
