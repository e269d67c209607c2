"""``healthscore replay --from-beginning``: rebuild Redis state and scores from the retained
event topics under the current model.

1. Refuse while the consumer group lists live workers (unless forced): two
   writers of one account's state would race.
2. Reset: delete windows, offset fences, attributes and caches; keep each
   account's last published tier, then take the newest alert of each account from
   the alerts topic where Redis has none (a rebuild into an empty Redis).
3. Read every input partition from its earliest retained offset to where it ends
   at the start, through the same pipeline as the live worker, on event time
   (``EventTimeClock``): windows end at the newest event seen, and silent accounts
   expire as event time passes. The tier changes found on the way happened in the
   past; they go to ``--alerts-topic`` when one is named (a trail of what this model
   would have said), else nowhere. Dead letters were already sent live: counted only.
4. Catch up: rescore every account on the wall clock against its last published
   tier. Only where the rebuilt score's tier differs from what consumers were told
   is an alert published on the live alerts topic (``cause.kind = "replay"``), with
   the next ``seq`` of the account's chain: nothing is published twice.

Live workers started afterwards resume from their committed offsets; the offset
fences the replay left make them skip what it already applied.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from worker.alerts import REPLAY
from worker.clock import EventTimeClock, WallClock
from worker.contracts import validator
from worker.errors import ConfigError
from worker.metrics import Metrics
from worker.pipeline import Outcome, Pipeline
from worker.runtime.publish import co_partitioned, new_producer, publish
from worker.runtime.reader import read_to_end
from worker.runtime.topics import ensure_topics
from worker.scoring.model import Model, load_model
from worker.settings import Settings
from worker.windows import keys, rebuild, server
from worker.windows.store import WindowStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ReplayReport:
    records: int = 0
    dead_letters: int = 0
    accounts: int = 0
    trail_alerts: int = 0
    unreadable_alerts: int = 0  # on the alerts topic, not JSON or not an alert: skipped
    alerts: list[dict[str, Any]] = field(default_factory=list)  # published live at the end
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"replayed {self.records} records ({self.dead_letters} dead letters skipped) "
                f"into {self.accounts} accounts in {self.seconds:.1f} s; "
                f"{self.trail_alerts} tier changes on the way, "
                f"{len(self.alerts)} published now"
                + (f"; {self.unreadable_alerts} unreadable records on the alerts topic skipped"
                   if self.unreadable_alerts else ""))


class Replay:
    def __init__(self, settings: Settings, model: Model | None = None,
                 *, alerts_topic: str | None = None, force: bool = False) -> None:
        """``force``: skip the check for live workers (some brokers, the embedded one
        among them, keep listing members that left until the group rebalances)."""
        if alerts_topic == settings.topic_alerts:
            raise ConfigError("--alerts-topic must not be the live alerts topic: consumers "
                              "would get the replayed history as new tier changes")
        self.settings = settings
        self.force = force
        self.model = model or load_model(settings.model_path)
        self.alerts_topic = alerts_topic
        self.metrics = Metrics()
        self.report = ReplayReport()
        self._redis = server.connect(settings.redis_url, settings.redis_timeout_seconds)
        self._producer: AIOKafkaProducer = new_producer(settings, "healthscore-replay")

    def _pipeline(self, clock: EventTimeClock | WallClock, published_field: str) -> Pipeline:
        store = WindowStore(self._redis, self.model,
                            dedup_horizon_seconds=self.settings.dedup_horizon_seconds,
                            dedup_max_ids=self.settings.dedup_max_ids,
                            max_distinct_members=self.settings.max_distinct_members,
                            timeout=self.settings.redis_timeout_seconds,
                            published_field=published_field,
                            outbox=published_field == keys.PUBLISHED,
                            durability=server.Durability.of(self.settings))
        return Pipeline(self.settings, self.model, store, clock, self.metrics)

    async def run(self) -> ReplayReport:
        started = time.monotonic()
        try:
            await ensure_topics(self.settings, extra=[self.alerts_topic] if self.alerts_topic
                                else [])
            if not self.force:
                await _refuse_while_workers_run(self.settings)
            await self._producer.start()
            kept = await rebuild.reset(self._redis)
            seeded = await self._seed_published()
            log.info("reset; %d published tiers kept, %d taken from %s", kept, seeded,
                     self.settings.topic_alerts)
            await self._rebuild()
            await self._catch_up()
        finally:
            await self._producer.stop()
            await self._redis.aclose()
        self.report.seconds = time.monotonic() - started
        return self.report

    async def _seed_published(self) -> int:
        seeded = 0
        async for records in read_to_end(self.settings, [self.settings.topic_alerts],
                                         self.settings.batch_max_records):
            seeded += await rebuild.seed_published(self._redis, self._readable(records))
        return seeded

    def _readable(self, records: list[Any]) -> Iterator[dict[str, Any]]:
        """The alerts among ``records``; anything else another producer wrote there is
        counted and skipped, not trusted as what consumers were told."""
        is_alert = validator("alert").is_valid
        for record in records:
            try:
                alert = orjson.loads(record.value or b"")
            except orjson.JSONDecodeError:
                alert = None
            if is_alert(alert):
                yield alert
            else:
                self.report.unreadable_alerts += 1
                log.warning("skipped a record that is not an alert at %s[%d]@%d",
                            record.topic, record.partition, record.offset)

    async def _rebuild(self) -> None:
        pipeline = self._pipeline(EventTimeClock(), keys.REPLAY_PUBLISHED)
        partitions: set[int] = set()
        limit = self.settings.batch_max_records
        async for records in read_to_end(self.settings, self.settings.input_topics, limit):
            self.report.records += len(records)
            partitions.update(r.partition for r in records)
            await self._trail(pipeline, await pipeline.process(records))
            while due := await pipeline.due(partitions, limit):
                await self._trail(pipeline, await pipeline.expire(due))
                if len(due) < limit:
                    break

    async def _trail(self, pipeline: Pipeline, outcome: Outcome) -> None:
        self.report.dead_letters += len(outcome.dead_letters)
        self.report.trail_alerts += len(outcome.alerts)
        if self.alerts_topic is not None:
            await publish(self._producer, Outcome(alerts=outcome.alerts),
                          alerts_topic=self.alerts_topic,
                          deadletter_topic=self.settings.topic_deadletter)
        await pipeline.save(outcome)

    async def _catch_up(self) -> None:
        pipeline = self._pipeline(WallClock(), keys.PUBLISHED)
        # As the live workers place them: an account's alerts stay on one partition.
        same_partitions = await co_partitioned(self._producer, self.settings.topic_alerts,
                                               self.settings.input_topics)
        async for chunk in rebuild.accounts(self._redis, forget=keys.REPLAY_PUBLISHED):
            outcome = await pipeline.expire(chunk, REPLAY)
            await pipeline.save(outcome)
            await publish(self._producer, outcome, alerts_topic=self.settings.topic_alerts,
                          deadletter_topic=self.settings.topic_deadletter,
                          co_partitioned=same_partitions)
            await pipeline.sent(outcome)
            self.report.accounts += len(chunk)
            self.report.alerts += [alert for _, alert in outcome.alerts]


async def _refuse_while_workers_run(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                                client_id="healthscore-replay")
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
        raise ConfigError(f"{members} live worker(s) in consumer group {settings.group_id}: "
                          "stop them before a replay rewrites their state (or --force "
                          "if they are gone and the broker still lists them)")
