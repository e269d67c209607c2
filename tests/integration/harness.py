"""Drive a real worker through real topics: start it, produce to it, read what it publishes."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from worker.app import Worker
from worker.clock import Clock
from worker.contracts import validator
from worker.scoring.model import Model
from worker.settings import Settings
from worker.timefmt import rfc3339
from worker.windows.state import AccountState
from worker.windows.store import WindowStore

# A model whose windows are seconds long, so tests can watch them roll.
SHORT_WINDOWS = """
version: short-windows-test
bucket: 1s
tiers:
  margin: 3
  levels:
    - {name: green, label: Doing well, min_score: 70}
    - {name: yellow, label: Take notice, min_score: 40}
    - {name: red, label: Requires attention, min_score: 0}
components:
  login_frequency:
    signal: logins_per_active_user
    window: 3s
    weight: 1.0
    curve: {linear: {bad: 0, good: 2}}
  support_tickets:
    signal: tickets_opened
    window: 60s
    weight: 1.0
    curve: {linear: {bad: 5, good: 0}}
"""


@dataclass(frozen=True)
class Record:
    """A Kafka record as the pipeline reads it, for feeding it without a broker."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0


@contextlib.asynccontextmanager
async def running_worker(
    settings: Settings, model: Model | None = None, clock: Clock | None = None
) -> AsyncIterator[Worker]:
    """A worker assigned its partitions; with ``clock``, one whose time moves only when the
    test moves it (days pass at once)."""
    worker = Worker(settings, model=model, clock=clock)
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(_assigned(worker, task), timeout=60)
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, timeout=30)


async def _assigned(worker: Worker, task: asyncio.Task[None]) -> None:
    """Ready means the group gave this worker its partitions, not just that it subscribed."""
    registry = worker.metrics.registry
    while not registry.get_sample_value("healthscore_assigned_partitions"):
        if task.done():
            task.result()
        await asyncio.sleep(0.05)


def event(
    event_type: str, account_id: str, ts: float | None = None, **fields: Any
) -> dict[str, Any]:
    body = {
        "event_id": f"{event_type}-{uuid.uuid4().hex}",
        "account_id": account_id,
        "ts": rfc3339(time.time() if ts is None else ts),
    }
    body.update(fields)
    return body


class Producer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=2)

    async def __aenter__(self) -> Producer:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()

    async def send(self, event_type: str, body: dict[str, Any]) -> None:
        topic = {v: k for k, v in self.settings.event_topics.items()}[event_type]
        await self.raw(topic, body["account_id"].encode(), orjson.dumps(body))

    async def account(self, account_id: str, **attrs: Any) -> None:
        body = {"account_id": account_id, **attrs}
        await self.raw(self.settings.topic_accounts, account_id.encode(), orjson.dumps(body))

    async def raw(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        await self._producer.send_and_wait(topic, value, key=key)


async def read_until(
    settings: Settings,
    topic: str,
    done: Callable[[list[dict[str, Any]]], bool],
    within: float = 30.0,
) -> list[dict[str, Any]]:
    """Every JSON record on ``topic`` from the beginning, until ``done(records)`` holds."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + within
    try:
        while not done(records):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out on {topic}; got {len(records)}: {records[-5:]}")
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records += [orjson.loads(r.value) for r in batch]
    finally:
        await consumer.stop()
    return records


def valid_alert(alert: dict[str, Any]) -> bool:
    return bool(validator("alert").is_valid(alert))


def alerts_for(records: list[dict[str, Any]], account_id: str) -> list[dict[str, Any]]:
    return [a for a in records if a["account_id"] == account_id]


def poison_scoring(monkeypatch: pytest.MonkeyPatch, account_id: str) -> None:
    """Scoring ``account_id`` raises: its state comes with no windows."""
    apply = WindowStore.apply

    async def poisoned(
        self: WindowStore, plans: Any, now: float, *, read_all: bool = False
    ) -> list[AccountState]:
        states = await apply(self, plans, now, read_all=read_all)
        return [
            s._replace(windows=None, cache_valid=False) if s.account_id == account_id else s
            for s in states
        ]

    monkeypatch.setattr(WindowStore, "apply", poisoned)
