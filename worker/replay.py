"""``healthscore replay --from-beginning``: rebuild Redis state and scores from the retained
event topics under the current model.

1. Check before changing anything: Client and the broker answer, and the consumer
   group lists no live workers (unless forced: two writers of one account's state
   would race). Any of these fails the command with one line, state untouched.
2. Reset: delete windows, offset fences, attributes and caches; keep each
   account's last published tier, then take the newest alert of each account from
   the alerts topic where Redis has none (a rebuild into an empty Redis).
3. Read every input partition from its earliest retained offset to where it ends
   at the start, through the same pipeline as the live worker, on event time
   (``EventTimeClock``): windows end at the newest event seen, and silent accounts
   expire as event time passes. The tier changes found on the way happened in the
   past; they go to ``--alerts-topic`` when one is named (a trail of what this model
   would have said), else nowhere. A bad record is dead-lettered exactly as the live
   worker does it, so consumers see it again with the same source topic, partition
   and offset; it never stops the replay.
4. Catch up: rescore every account on the wall clock against its last published
   tier. Only where the rebuilt score's tier differs from what consumers were told
   is an alert published on the live alerts topic (``cause.kind = "replay"``), with
   the next ``seq`` of the account's chain: nothing is published twice.

From step 2 on, Redis or broker outages are waited out with the live loop's back-off.
A replay that stops anyway (killed, Ctrl-C) is simply run again: the reset keeps
only what consumers were told (published tiers, alerts still in an outbox), and
what a first run's catch-up published is such a tier, so the second run rebuilds
the same state and publishes nothing twice.

Live workers started afterwards resume from their committed offsets; the offset
fences the replay left make them skip what it already applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from worker.alerts import REPLAY, as_dict
from worker.clock import EventTimeClock, WallClock
from worker.contracts import validator
from worker.errors import ConfigError, Unreachable, is_retriable
from worker.metrics import Metrics
from worker.modelfile.segments import load_models
from worker.pipeline import Pipeline
from worker.progress import Reporter
from worker.rescore import Outcome
from worker.runtime import kafka
from worker.runtime.delivery import Delivery
from worker.runtime.modeltopic import newest_models
from worker.runtime.publish import co_partitioned, new_producer, publish
from worker.runtime.reader import read_to_end
from worker.runtime.retry import retrying
from worker.runtime.topics import ensure_topics
from worker.scoring.model import Model
from worker.scoring.segments import ModelSet, as_model_set
from worker.settings import Settings
from worker.windows import keys, rebuild, server
from worker.windows.store import WindowStore
from worker.windows.wire import Client

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(slots=True)
class ReplayReport:
    records: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)  # per reason, all published
    deadletter_topic: str = ""
    accounts: int = 0
    trail_alerts: int = 0
    unreadable_alerts: int = 0  # on the alerts topic, not JSON or not an alert: skipped
    alerts: list[dict[str, Any]] = field(default_factory=list)  # published live at the end
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"replayed {self.records} records into {self.accounts} accounts "
            f"in {self.seconds:.1f} s; {self._dead_lettered()}; "
            f"{self.trail_alerts} tier changes on the way, "
            f"{len(self.alerts)} published now"
            + (
                f"; {self.unreadable_alerts} unreadable records on the alerts topic skipped"
                if self.unreadable_alerts
                else ""
            )
        )

    def _dead_lettered(self) -> str:
        total = sum(self.dead_letters.values())
        if not total:
            return "no dead letters"
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(self.dead_letters.items()))
        return f"{total} dead letters to {self.deadletter_topic} ({reasons})"


class Replay:
    def __init__(
        self,
        settings: Settings,
        model: Model | ModelSet | None = None,
        *,
        alerts_topic: str | None = None,
        force: bool = False,
        progress: Reporter | None = None,
    ) -> None:
        """``force``: skip the check for live workers (some brokers, the embedded one
        among them, keep listing members that left until the group rebalances).
        ``progress`` is told how many event records the rebuild reads and has read.

        No client is built here: aiokafka's need the running event loop, so ``run``
        builds them (a command builds this object before its loop starts)."""
        if alerts_topic == settings.topic_alerts:
            raise ConfigError(
                "--alerts-topic must not be the live alerts topic: consumers "
                "would get the replayed history as new tier changes"
            )
        self.settings = settings
        self.force = force
        self.models = as_model_set(model) if model else load_models(settings.model_path)
        self.model = self.models.default
        self._from_topic = model is None and bool(settings.topic_models)  # read in ``run``
        self.alerts_topic = alerts_topic
        self.progress = progress
        self.metrics = Metrics()
        self.report = ReplayReport(deadletter_topic=settings.topic_deadletter)
        self._redis: Client
        self._producer: AIOKafkaProducer
        self._stop: asyncio.Event
        self._trail_delivery: Delivery

    def _pipeline(self, clock: EventTimeClock | WallClock, published_field: str) -> Pipeline:
        store = WindowStore.from_settings(
            self._redis, self.models.windows, self.settings, published_field=published_field
        )
        # All a replay publishes is history: a rebuild's trail, or where the rebuilt tier
        # differs from the one consumers were told, typically many accounts at once after
        # a model change; consumers batch it rather than page on it (``delivery``).
        return Pipeline(self.settings, self.models, store, clock, self.metrics, history=True)

    async def run(self) -> ReplayReport:
        """Raises ``Unreachable`` (nothing changed yet) when Redis or the broker does not
        answer at the start; once the reset has begun, outages are waited out."""
        started = time.monotonic()
        self._redis = server.client(self.settings)
        self._producer = new_producer(self.settings, "healthscore-replay")
        self._stop = asyncio.Event()  # never set: Ctrl-C cancels the run, retries and all
        if self._from_topic:  # the model the workers score with, as they would start now
            self.models = await _reaching(
                f"the broker at {self.settings.kafka_bootstrap}", newest_models(self.settings)
            )
            self.model = self.models.default
        try:
            await self._preflight()
            kept = await self._retry(partial(rebuild.reset, self._redis), "redis")
            # Both idempotent: a read of the topic or a walk of Redis that breaks off
            # starts over (each step inside is retried on its own first).
            seeded = await self._retry(self._seed_published, "kafka")
            await self._retry(partial(rebuild.reindex, self._redis), "redis")
            log.info(
                "reset; %d published tiers kept, %d taken from %s",
                kept,
                seeded,
                self.settings.topic_alerts,
            )
            await self._rebuild()
            await self._retry(self._catch_up, "redis")
        finally:
            await _close(self._producer)
            await self._redis.aclose()
        self.report.seconds = time.monotonic() - started
        return self.report

    async def _preflight(self) -> None:
        """Every check that can refuse the replay, before anything is changed."""
        broker = f"the broker at {self.settings.kafka_bootstrap}"
        await _reaching("Redis", self._redis.ping())
        # The live worker's start-up check: refuse a durability this Redis cannot give.
        await _reaching(
            "Redis",
            server.check(
                self._redis,
                server.Durability.of(self.settings),
                self.settings.redis_timeout_seconds,
            ),
        )
        await _reaching(
            broker,
            ensure_topics(self.settings, extra=[self.alerts_topic] if self.alerts_topic else []),
        )
        if not self.force:
            await _reaching(broker, _refuse_while_workers_run(self.settings))
        await _reaching(broker, self._producer.start())

    async def _retry(self, operation: Callable[[], Awaitable[T]], dependency: str) -> T:
        """As the live loop does: the same step again after a back-off, until it succeeds.
        The state is half rebuilt by then: waiting beats leaving it so."""
        return await retrying(
            operation,
            dependency,
            max_backoff=self.settings.retry_backoff_max_seconds,
            metrics=self.metrics,
            stop=self._stop,
        )

    async def _seed_published(self) -> int:
        seeded = self.report.unreadable_alerts = 0
        async for records in read_to_end(
            self.settings, [self.settings.topic_alerts], self.settings.batch_max_records
        ):
            alerts = list(self._readable(records))  # a list: a retry reads it again
            seeded += await self._retry(
                partial(rebuild.seed_published, self._redis, alerts), "redis"
            )
        return seeded

    def _readable(self, records: list[Any]) -> Iterator[dict[str, Any]]:
        """The alerts among ``records``; anything else another producer wrote there is
        counted and skipped, not trusted as what consumers were told."""
        for record in records:
            try:
                alert = orjson.loads(record.value or b"")
            except orjson.JSONDecodeError:
                alert = None
            if _is_alert(alert):
                yield alert
            else:
                self.report.unreadable_alerts += 1
                log.warning(
                    "skipped a record that is not an alert at %s[%d]@%d",
                    record.topic,
                    record.partition,
                    record.offset,
                    extra={
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                    },
                )

    async def _rebuild(self) -> None:
        pipeline = self._pipeline(EventTimeClock(), keys.REPLAY_PUBLISHED)
        self._trail_delivery = Delivery(pipeline.store, self._publish_trail, self._retry)
        partitions: set[int] = set()
        limit = self.settings.batch_max_records
        on_total = self.progress.start if self.progress else None
        async for records in read_to_end(
            self.settings, self.settings.input_topics, limit, on_total
        ):
            self.report.records += len(records)
            if self.progress:
                self.progress.advance(len(records))
            partitions.update(r.partition for r in records)
            await self._trail(
                pipeline, await self._retry(partial(pipeline.process, records), "redis")
            )
            while due := await self._retry(partial(pipeline.due, partitions, limit), "redis"):
                await self._trail(
                    pipeline, await self._retry(partial(pipeline.expire, due), "redis")
                )
                if len(due) < limit:
                    break

    async def _trail(self, pipeline: Pipeline, outcome: Outcome) -> None:
        """Bad records are dead-lettered as the live worker does (again, if it already
        did: same source topic, partition and offset); the tier changes, history now,
        go to ``--alerts-topic`` only."""
        self.report.dead_letters.update(record["reason"] for _, record in outcome.dead_letters)
        self.report.trail_alerts += len(outcome.alerts)
        await self._trail_delivery.deliver(outcome)

    async def _publish_trail(self, outcome: Outcome) -> None:
        sent = Outcome(
            alerts=outcome.alerts if self.alerts_topic else [], dead_letters=outcome.dead_letters
        )
        if sent.alerts or sent.dead_letters:
            # Without a trail topic there are no alerts here to send to the live one.
            await publish(
                self._producer,
                sent,
                alerts_topic=self.alerts_topic or self.settings.topic_alerts,
                deadletter_topic=self.settings.topic_deadletter,
            )

    async def _catch_up(self) -> None:
        """Run again after a failure, it finds the tiers the first attempt published
        saved, and publishes only what that attempt had not (``report.alerts`` keeps all)."""
        pipeline = self._pipeline(WallClock(), keys.PUBLISHED)
        self.report.accounts = 0
        # As the live workers place them: an account's alerts stay on one partition.
        same_partitions = await co_partitioned(
            self._producer, self.settings.topic_alerts, self.settings.input_topics
        )
        delivery = Delivery(
            pipeline.store, partial(self._publish_live, same_partitions), self._retry
        )
        async for chunk in rebuild.accounts(self._redis, forget=keys.REPLAY_PUBLISHED):
            outcome = await self._retry(partial(pipeline.expire, chunk, REPLAY), "redis")
            await delivery.deliver(outcome)
            self.report.accounts += len(chunk)
            self.report.alerts += [as_dict(alert) for _, alert in outcome.alerts]

    async def _publish_live(self, co_partitioned: bool, outcome: Outcome) -> None:
        await publish(
            self._producer,
            outcome,
            alerts_topic=self.settings.topic_alerts,
            deadletter_topic=self.settings.topic_deadletter,
            co_partitioned=co_partitioned,
        )


def _is_alert(alert: Any) -> bool:
    """Valid as an alert of this version or of one before ``delivery`` existed: that
    field says how consumers present an alert, nothing a published tier depends on."""
    if isinstance(alert, dict) and "delivery" not in alert:
        alert = {**alert, "delivery": "live"}
    return bool(validator("alert").is_valid(alert))


async def _reaching(dependency: str, step: Awaitable[T]) -> T:
    """A start-up step: a dependency that does not answer ends the command in one line."""
    try:
        return await step
    except Exception as exc:
        if not is_retriable(exc):
            raise
        raise Unreachable(dependency, exc) from exc


async def _close(producer: AIOKafkaProducer) -> None:
    try:
        await producer.stop()
    except Exception:  # closing a half-started client must not mask the real error
        log.debug("error closing the producer", exc_info=True)


async def _refuse_while_workers_run(settings: Settings) -> None:
    admin = kafka.admin(settings, client_id="healthscore-replay")
    await admin.start()
    try:
        responses = await admin.describe_consumer_groups([settings.group_id])
    except KafkaError as exc:  # a broker without DescribeGroups: the operator's word stands
        log.warning("could not check group %s for live workers: %s", settings.group_id, exc)
        return
    finally:
        await admin.close()
    members = sum(len(group[5]) for response in responses for group in response.groups)
    if members:
        raise ConfigError(
            f"{members} live worker(s) in consumer group {settings.group_id}: "
            "stop them before a replay rewrites their state (or --force "
            "if they are gone and the broker still lists them)"
        )
