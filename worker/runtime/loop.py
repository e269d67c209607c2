"""The consume -> process -> deliver loop.

Each batch's outcome is delivered (saved, published, committed) in the order
``runtime.delivery`` owns, so a crash anywhere re-delivers the batch instead of
losing it. A rebalance waits for the batch in flight (``_in_flight``) before
giving partitions away.

While a retry waits out an outage, every partition is paused and the loop keeps
polling: aiokafka leaves the group once it has not been polled for
``max_poll_interval_ms``, and an outage must not bounce the partitions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError

from worker.errors import Retriable
from worker.events.intake import RawRecord
from worker.gaps import DataGaps, GapNews
from worker.metrics import Metrics
from worker.pipeline import Pipeline
from worker.probes import Probes
from worker.rescore import Outcome
from worker.runtime import kafka
from worker.runtime.delivery import Delivery, Offsets
from worker.runtime.modelwatch import ModelWatch
from worker.runtime.publish import co_partitioned, new_producer, publish, publish_records
from worker.runtime.remodel import Remodel
from worker.runtime.retry import Stopping, retrying
from worker.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
# How much longer than its timeout a poll during a back-off may take before it is given up.
POLL_GRACE_SECONDS = 1.0


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: ConsumerLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Let the batch in flight finish and commit before its partitions move.
        self._loop.revoking.set()
        self._loop.probes.revoking = True
        self._loop.metrics.drop_lag((tp.topic, tp.partition) for tp in revoked)
        try:
            async with self._loop.in_flight:
                self._loop.pipeline.forget({tp.partition for tp in revoked})
                if self._loop.remodel is not None:
                    self._loop.remodel.forget({tp.partition for tp in revoked})
        finally:
            self._loop.revoking.clear()
            self._loop.probes.revoking = False

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._loop.unsent_partitions |= {tp.partition for tp in assigned}
        self._loop.metrics.assigned_partitions.set(len(assigned))
        self._loop.probes.partitions = len(assigned)
        log.info("assigned %d partitions", len(assigned))
        self._loop.ready.set()


class ConsumerLoop:
    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        metrics: Metrics,
        *,
        watch: ModelWatch | None = None,
        remodel: Remodel | None = None,
    ) -> None:
        """``watch``: the model file, read again while running; ``remodel``: rescores
        every account of the partitions owned after a model change (``runtime.remodel``)."""
        self.settings = settings
        self.watch = watch
        self.remodel = remodel
        self.pipeline = pipeline
        self.metrics = metrics
        self.probes = Probes()  # read by the probe endpoint's thread
        self.in_flight = asyncio.Lock()
        self.stop_requested = asyncio.Event()
        self.ready = asyncio.Event()  # set once the group has assigned partitions
        self.revoking = asyncio.Event()  # set while a rebalance waits for the batch in flight
        self.unsent_partitions: set[int] = set()  # assigned, outboxes not yet sent
        self._paused: set[TopicPartition] | None = None  # paused by a retry, to resume
        self._co_partitioned = False  # alerts go to their input partition's number
        self.delivery = Delivery(
            pipeline.store, self._publish, self._retry, commit=self._commit_once, metrics=metrics
        )
        pipeline.gaps = self.gaps = DataGaps(pipeline.model, time.time())
        # Built by run(), not here: aiokafka's clients need the running event loop.
        self._consumer: AIOKafkaConsumer
        self._producer: AIOKafkaProducer

    def _build_clients(self) -> None:
        settings = self.settings
        self._consumer = kafka.consumer(
            settings,
            group_id=settings.group_id,
            client_id="healthscore-worker",
            enable_auto_commit=False,
            # Range, not round-robin: equal partition numbers of all input topics
            # go to one worker, so each account has exactly one owner.
            partition_assignment_strategy=(RangePartitionAssignor,),
            auto_offset_reset="earliest",
            max_poll_records=settings.batch_max_records,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=max(100, settings.session_timeout_ms // 3),
            max_poll_interval_ms=settings.max_poll_interval_ms,
            max_partition_fetch_bytes=max(1048576, settings.max_message_bytes * 4),
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
        )
        self._producer = new_producer(settings, "healthscore-worker")

    async def run(self) -> None:
        """Run until ``stop()``; retriable failures are waited out, never skipped."""
        self._build_clients()
        try:
            await self._retry(self._start, "kafka", in_group=False)
            self._consumer.subscribe(self.settings.input_topics, listener=_Rebalance(self))
            log.info("consuming %s", ", ".join(self.settings.input_topics))
            next_expiry_check = time.monotonic()
            while not self.stop_requested.is_set():
                batches = await self._consumer.getmany(
                    # A model change's rescoring does not wait for events to arrive.
                    timeout_ms=0
                    if self.remodel and self.remodel.walking
                    else self.settings.batch_timeout_ms,
                    max_records=self.settings.batch_max_records,
                )
                self._polled()
                async with self.in_flight:
                    if self.unsent_partitions:  # newly assigned: their outboxes go first
                        await self._send_unsent()
                    if batches:
                        await self._handle(batches)
                    if self.watch is not None and self.watch.due():
                        self._reload()
                    if self.remodel is not None:
                        await self._remodel_chunk(self.remodel)
                await self._measure_lag()
                if time.monotonic() >= next_expiry_check:
                    async with self.in_flight:
                        await self._gap_news(self.gaps.check(time.time(), self._owned()))
                    await self._rescore_silent()
                    await self._count_tiers()
                    next_expiry_check = time.monotonic() + self.settings.expiry_check_seconds
        except Stopping as stopping:
            log.info("stopped while waiting for %s", stopping)
        finally:
            await self._close()

    def stop(self) -> None:
        self.stop_requested.set()

    def _polled(self) -> None:
        self.probes.polled()
        # Every fetch response stamps its partitions, records or not: the broker answered.
        stamps = [self._consumer.last_poll_timestamp(tp) for tp in self._consumer.assignment()]
        if latest := max(filter(None, stamps), default=None):
            self.probes.answer("kafka", age=time.time() - latest / 1000)

    async def _start(self) -> None:
        await self._producer.start()
        await self._consumer.start()
        self._co_partitioned = await co_partitioned(
            self._producer, self.settings.topic_alerts, self.settings.input_topics
        )

    async def _handle(self, batches: dict[TopicPartition, list[Any]]) -> None:
        records: list[RawRecord] = [r for tp in sorted(batches) for r in batches[tp]]
        with self.metrics.batch_seconds.time():
            self.metrics.batch_size.observe(len(records))
            outcome = await self._retry(partial(self.pipeline.process, records), "redis")
            await self.delivery.deliver(
                outcome, {tp: recs[-1].offset + 1 for tp, recs in batches.items()}
            )
        if outcome.arrived:
            await self._gap_news(self.gaps.arrived(outcome.arrived, time.time()))

    def _reload(self) -> None:
        """A changed, valid model file: used from the next batch on. Called under
        ``in_flight``, so no batch is half scored by one model and half by the other."""
        assert self.watch is not None
        loaded = self.watch.check()
        if loaded is None:
            return
        self.pipeline.use(loaded.models)
        if self.remodel is not None:
            self.remodel.use(loaded)

    async def _remodel_chunk(self, remodel: Remodel) -> None:
        """One chunk of a model change's rescoring, delivered like any batch. Called under
        ``in_flight``: live events wait for one chunk at most."""
        chunk = await self._retry(partial(remodel.next_chunk, self._owned()), "redis")
        if chunk is None:
            return
        if chunk.accounts:
            due = [(chunk.partition, account) for account in chunk.accounts]
            outcome = await self._retry(partial(self.pipeline.expire, due, chunk.cause), "redis")
            await self.delivery.deliver(outcome)
            self.metrics.model_rescored.inc(len(due))
        await self._retry(partial(remodel.walked, chunk), "redis")

    async def _send_unsent(self) -> None:
        """What newly assigned partitions' outboxes hold, before anything is scored there."""
        partitions, self.unsent_partitions = self.unsent_partitions, set()
        await self.delivery.resend(partitions)

    def _owned(self) -> set[int]:
        return {tp.partition for tp in self._consumer.assignment()}

    async def _gap_news(self, news: GapNews) -> None:
        """Data-gap records out (not through an outbox: a lost one is found again); the
        accounts a closed gap held, rescored now. Called under ``in_flight``."""
        for event_type, gap in self.gaps.gauges().items():
            self.metrics.data_gap.labels(event_type).set(gap)
        if news.records:
            await self._retry(
                partial(publish_records, self._producer, self.settings.topic_alerts, news.records),
                "kafka",
            )
        owned = self._owned()
        released = [(p, a) for p, a in news.released if p in owned]
        if released:
            log.info("rescoring %d accounts a data gap held", len(released))
            await self.delivery.deliver(
                await self._retry(partial(self.pipeline.expire, released), "redis")
            )

    async def _rescore_silent(self) -> None:
        """Rescore the accounts of this worker's partitions whose windows have rolled.

        In chunks, each under the in-flight lock, so events are never held up
        for longer than one chunk and no account is scored twice at once.
        """
        partitions = {tp.partition for tp in self._consumer.assignment()}
        limit = self.settings.batch_max_records
        while partitions and not self.stop_requested.is_set():
            async with self.in_flight:
                due = await self._retry(partial(self.pipeline.due, partitions, limit), "redis")
                if due:
                    await self.delivery.deliver(
                        await self._retry(partial(self.pipeline.expire, due), "redis")
                    )
            if len(due) < limit:
                return

    async def _measure_lag(self) -> None:
        """Records not yet handed to this worker, per partition it owns. The high watermark
        comes with each fetch response: a partition not fetched yet has none, and no lag."""
        lags = {}
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is None:
                continue
            try:  # a fetched partition has a position: this does not wait on the broker
                lags[tp.topic, tp.partition] = max(0, high - await self._consumer.position(tp))
            except IllegalStateError:  # revoked meanwhile: its series is gone already
                continue
        self.metrics.set_lag(lags)

    async def _count_tiers(self) -> None:
        """Accounts per tier, all workers together, from the tier indexes (a ZCARD per tier).
        Between two counts the gauge moves with this worker's own changes only."""
        async with self.in_flight:
            self.metrics.set_tier_counts(await self._retry(self.pipeline.tier_counts, "redis"))

    async def _publish(self, outcome: Outcome) -> None:
        await publish(
            self._producer,
            outcome,
            alerts_topic=self.settings.topic_alerts,
            deadletter_topic=self.settings.topic_deadletter,
            co_partitioned=self._co_partitioned,
        )

    async def _commit_once(self, offsets: Offsets) -> None:
        # aiokafka retries a commit by itself for as long as the broker is away: silently,
        # and without a poll. Bounded, that wait becomes a counted retry with paused polling.
        # Giving up is safe: the request itself is shielded, and committing twice is harmless.
        try:
            await asyncio.wait_for(
                self._consumer.commit(offsets), self.settings.broker_timeout_ms / 1000
            )
        except TimeoutError:
            raise Retriable("the broker did not acknowledge the commit") from None
        except (CommitFailedError, IllegalStateError) as exc:
            # The partitions moved to another worker, which re-reads from the
            # last committed offset; nothing is lost.
            log.warning("commit skipped after rebalance: %s", exc)

    async def _retry(
        self, operation: Callable[[], Awaitable[T]], dependency: str, *, in_group: bool = True
    ) -> T:
        # Before the consumer has joined there is no membership to keep: a plain sleep.
        wait = partial(self._poll_paused, dependency) if in_group else self.probes.sleep
        try:
            result = await retrying(
                operation,
                dependency,
                max_backoff=self.settings.retry_backoff_max_seconds,
                metrics=self.metrics,
                stop=self.stop_requested,
                wait=wait,
            )
            self.probes.answer(dependency)
            return result
        finally:
            self._resume()

    async def _poll_paused(self, dependency: str, seconds: float) -> None:
        """Wait out a back-off in the group: poll, with every partition paused."""
        self.probes.beat()
        if self.revoking.is_set():
            # A rebalance waits for this batch, and getmany would wait for the rebalance.
            await asyncio.sleep(seconds)
            return
        self._pause(dependency)
        poll = self._consumer.getmany(timeout_ms=round(seconds * 1000))
        try:
            # getmany returns after its timeout unless a rebalance begins mid-poll; then
            # it waits for the new assignment, which waits for this batch: give up on it.
            # (Cancelled, it leaves aiokafka's idle clock stopped -- its fetch_context is
            # not exception-safe -- which only turns the max_poll_interval check off.)
            self._rewind(await asyncio.wait_for(poll, seconds + POLL_GRACE_SECONDS))
        except TimeoutError:
            log.debug("a rebalance began while consumption was paused")

    def _pause(self, dependency: str) -> None:
        if self._paused is not None:
            return
        # Only the ones not paused yet, so resuming gives back exactly what was taken.
        self._paused = self._consumer.assignment() - self._consumer.paused()
        self._consumer.pause(*self._paused)
        self.metrics.consumption_paused.set(1)
        self.probes.paused_for = dependency
        log.warning(
            "consumption paused on %d partitions until %s is back", len(self._paused), dependency
        )

    def _resume(self) -> None:
        if self._paused is None:
            return
        # The assignment cannot change under a retry (a rebalance waits for the batch in
        # flight), but a partition no longer assigned must not be resumed.
        self._consumer.resume(*(self._paused & self._consumer.assignment()))
        self._paused = None
        self.metrics.consumption_paused.set(0)
        self.probes.paused_for = None
        log.info("consumption resumed")

    def _rewind(self, batches: dict[TopicPartition, list[Any]]) -> None:
        # Paused partitions return nothing; should one ever return records anyway, they
        # are read again after the resume rather than skipped.
        for tp, records in batches.items():
            self._consumer.seek(tp, records[0].offset)

    async def _close(self) -> None:
        for client in (self._consumer, self._producer):
            try:
                await client.stop()
            except Exception:  # closing a half-started client must not mask the real error
                log.debug("error closing %s", type(client).__name__, exc_info=True)
