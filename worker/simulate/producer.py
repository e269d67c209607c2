"""The simulator's I/O edge: publishes a synthetic population to Kafka at a steady rate.

Everything synthetic comes from :mod:`worker.simulate.personas`; this module only
owns the clock, the pacing, the producer and the progress bar.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from worker.runtime import kafka
from worker.runtime.topics import ensure_topics
from worker.settings import Settings
from worker.simulate.cohort import Cohort
from worker.simulate.personas import Emitted, EventStream, Population

log = logging.getLogger(__name__)

TICK_SECONDS = 0.05  # ~20 batches a second: smooth pacing without a wake-up per event
MAX_BURST_SECONDS = 0.5  # credit kept while the broker lags: catch up a little, never flood
ARC_SECONDS = 120.0  # length of the persona arc when the run has no duration
HISTORY_CHUNK = 1000  # backfill events sent before waiting for their delivery
TOPIC_RECHECK_SECONDS = 5.0  # a missing topic is looked for again this often
CLOSE_TIMEOUT_SECONDS = 10.0


@dataclass(slots=True)
class SimulationStats:
    run_id: str
    accounts: int = 0
    sent: Counter[str] = field(default_factory=Counter)  # delivered, per event type
    history: int = 0  # of which backfilled history
    skipped: Counter[str] = field(default_factory=Counter)  # topic missing or send failed
    elapsed: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.sent.values())


async def run_simulation(
    settings: Settings,
    *,
    accounts: int,
    rate: float,
    duration: float | None,
    seed: int | None,
    progress: bool = True,
    history_days: float = 0.0,
    stop: asyncio.Event | None = None,
) -> SimulationStats:
    """Publish ``accounts`` account records, then ``rate`` events/s for ``duration`` seconds.

    ``duration=None`` runs until ``stop`` is set or the task is cancelled; either
    way the producer is flushed and closed. ``history_days`` first backfills that
    many days of history. The seed fixes the population and its behaviour, but
    each run gets fresh event ids so a rerun is not dropped as duplicates.
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    rng = random.Random(seed)
    population = Population.create(accounts, rng)
    stats = SimulationStats(run_id=uuid.uuid4().hex[:12], accounts=accounts)
    stream = EventStream(population, rng, stats.run_id)
    producer = kafka.producer(settings, client_id="healthscore-simulate", linger_ms=5)
    started = time.monotonic()
    try:
        await producer.start()
        publisher = _Publisher(producer, settings, stats)
        await publisher.check_topics()
        with _progress_bar(progress) as bar:
            now = _now()
            # The accounts are as old as their history: their records stamped at its start
            # are history too, so the first scores count as caught up (``delivery``), not
            # as a live alert for every account.
            await publisher.send(
                (("account", r) for r in population.account_records(now)),
                at=now - timedelta(days=history_days),
            )
            if history_days > 0:
                await _backfill(stream, publisher, bar, history_days)
            task = bar.add_task("events", total=rate * duration if duration else None)
            await _pace(stream, publisher, rate, duration, stop, lambda n: bar.advance(task, n))
    finally:
        stats.elapsed = time.monotonic() - started
        await _close(producer)
    return stats


async def run_cohort(
    settings: Settings,
    *,
    accounts: int,
    days: float,
    outcome_days: float,
    outcomes_file: Path,
    seed: int | None,
    per_user_day: float = 1.6,
    progress: bool = True,
) -> SimulationStats:
    """Publish a customer base with known outcomes (:mod:`worker.simulate.cohort`): its
    account records, ``days`` of history ending now as fast as the broker takes it, then
    one outcome per account to the outcomes topic, also written to ``outcomes_file``
    (JSON lines), for ``healthscore backtest`` to check a model against."""
    rng = random.Random(seed)
    cohort = Cohort.create(accounts, rng, days=days, outcome_days=outcome_days)
    stats = SimulationStats(run_id=uuid.uuid4().hex[:12], accounts=accounts)
    end = _now()
    outcomes = cohort.outcomes(end)
    _write_lines(outcomes_file, outcomes)
    await ensure_topics(settings, extra=[settings.topic_outcomes])
    producer = kafka.producer(settings, client_id="healthscore-simulate", linger_ms=5)
    started = time.monotonic()
    try:
        await producer.start()
        publisher = _Publisher(producer, settings, stats)
        await publisher.check_topics()
        with _progress_bar(progress) as bar:
            start = end - timedelta(days=days)
            await publisher.send((("account", r) for r in cohort.account_records(start)), at=start)
            task = bar.add_task("history", total=None)
            for chunk in _chunks(
                cohort.history(rng, end, stats.run_id, per_user_day), HISTORY_CHUNK
            ):
                delivered = await publisher.send(chunk)
                stats.history += delivered
                bar.advance(task, delivered)
            await publisher.send(("outcome", r) for r in outcomes)
    finally:
        stats.elapsed = time.monotonic() - started
        await _close(producer)
    return stats


def _write_lines(path: Path, records: Iterable[dict[str, object]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))


class _Publisher:
    """Sends batches keyed by account, skipping topics that do not exist (yet)."""

    def __init__(
        self, producer: AIOKafkaProducer, settings: Settings, stats: SimulationStats
    ) -> None:
        self._producer = producer
        self.stats = stats
        self._topics = {kind: topic for topic, kind in settings.event_topics.items()}
        self._topics["account"] = settings.topic_accounts
        self._topics["outcome"] = settings.topic_outcomes
        self._missing: set[str] = set()
        self._checked_at = time.monotonic()

    async def check_topics(self) -> None:
        # A send to a missing topic would block on its metadata for the whole
        # request timeout; the worker creates the topics when it starts.
        self._checked_at = time.monotonic()
        try:
            cluster = await self._producer.client.fetch_all_metadata()
        except KafkaError as exc:
            log.warning("could not list the topics: %s", exc)
            return
        missing = set(self._topics.values()) - set(cluster.topics())
        for topic in sorted(missing - self._missing):
            log.warning("topic %s does not exist; skipping its events until it does", topic)
        self._missing = missing

    async def send(self, batch: Iterable[Emitted], at: datetime | None = None) -> int:
        """Send ``batch`` and wait for its delivery; the number of records delivered.
        ``at``: the records' timestamp (default: the producer's clock)."""
        timestamp_ms = None if at is None else int(at.timestamp() * 1000)
        if self._missing and time.monotonic() - self._checked_at > TOPIC_RECHECK_SECONDS:
            await self.check_topics()
        pending: list[tuple[str, asyncio.Future[object]]] = []
        for kind, record in batch:
            topic = self._topics[kind]
            if topic in self._missing:
                self.stats.skipped[kind] += 1
                continue
            key = str(record["account_id"]).encode()
            try:
                future = await self._producer.send(
                    topic, value=orjson.dumps(record), key=key, timestamp_ms=timestamp_ms
                )
                pending.append((kind, future))
            except KafkaError as exc:
                self._fail(topic, kind, exc)
        return sum([await self._delivered(kind, future) for kind, future in pending])

    async def _delivered(self, kind: str, future: asyncio.Future[object]) -> int:
        try:
            await future
        except KafkaError as exc:
            self._fail(self._topics[kind], kind, exc)
            return 0
        self.stats.sent[kind] += 1
        return 1

    def _fail(self, topic: str, kind: str, exc: KafkaError) -> None:
        if topic not in self._missing:
            log.warning("sending to %s failed (%s); skipping it for now", topic, exc)
            self._missing.add(topic)
        self.stats.skipped[kind] += 1


async def _pace(
    stream: EventStream,
    publisher: _Publisher,
    rate: float,
    duration: float | None,
    stop: asyncio.Event | None,
    advance: Callable[[int], None],
) -> None:
    """Token bucket: each tick sends the events the elapsed time has earned, as one batch."""
    started = last = time.monotonic()
    arc = duration or ARC_SECONDS
    credit = 0.0
    while not (stop is not None and stop.is_set()):
        now = time.monotonic()
        if duration is not None and now - started >= duration:
            break
        credit = min(credit + (now - last) * rate, max(1.0, rate * MAX_BURST_SECONDS))
        last = now
        if credit >= 1.0:
            n = int(credit)
            credit -= n
            advance(await publisher.send(stream.batch(n, _now(), (now - started) / arc)))
        await asyncio.sleep(TICK_SECONDS)


async def _backfill(stream: EventStream, publisher: _Publisher, bar: Progress, days: float) -> None:
    """Send the history as fast as the broker takes it, in delivery-checked chunks."""
    history = list(stream.backfill(_now(), days))
    task = bar.add_task("history", total=len(history))
    for chunk in _chunks(iter(history), HISTORY_CHUNK):
        delivered = await publisher.send(chunk)
        publisher.stats.history += delivered
        bar.advance(task, delivered)


def _chunks(items: Iterator[Emitted], size: int) -> Iterator[list[Emitted]]:
    while chunk := list(islice(items, size)):
        yield chunk


async def _close(producer: AIOKafkaProducer) -> None:
    # Bounded, so a vanished broker cannot hang Ctrl+C; whatever is unsent then is lost.
    try:
        await asyncio.wait_for(producer.flush(), CLOSE_TIMEOUT_SECONDS)
    except (TimeoutError, KafkaError) as exc:
        log.warning("could not flush the producer: %r", exc)
    try:
        await asyncio.wait_for(producer.stop(), CLOSE_TIMEOUT_SECONDS)
    except (TimeoutError, KafkaError) as exc:
        log.warning("could not stop the producer cleanly: %r", exc)


def _now() -> datetime:
    return datetime.now(UTC)


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f}/s" if speed else "-/s", style="progress.data.speed")


def _progress_bar(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:>8}"),
        BarColumn(),
        TextColumn("{task.completed:>10,.0f} sent"),
        _RateColumn(),
        TimeElapsedColumn(),
        disable=not enabled,
    )
