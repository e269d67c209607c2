"""A batch's records in, each account's events and attribute updates out; every
record that cannot be read, or whose handling fails, is dead-lettered on the way
(the one rule: a clear error, a dead-letter record, a metric, and on)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Collection, Sequence
from typing import Any, Protocol

from worker.clock import Clock
from worker.errors import BadInput, internal_error, is_retriable
from worker.events.deadletter import dead_letter, dead_letter_key
from worker.events.decode import Decoder
from worker.events.types import AccountUpdate, Event, Record, SourceRef
from worker.metrics import Metrics
from worker.settings import Settings
from worker.tuples import make

log = logging.getLogger(__name__)
DeadLetters = list[tuple[bytes | None, dict[str, Any]]]  # (key, record) to publish


class RawRecord(Protocol):
    """The fields of a Kafka record the pipeline reads (aiokafka's ConsumerRecord fits)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int


class Intake:
    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        metrics: Metrics,
        *,
        tiers: Collection[str] | None = None,
        components: Collection[str] | None = None,
    ) -> None:
        """``tiers``, ``components``: every model's, which an override must name."""
        self._clock = clock
        self._metrics = metrics
        self._decoder = Decoder(
            settings.event_topics,
            settings.topic_accounts,
            settings.max_message_bytes,
            settings.max_future_skew_seconds,
            overrides_topic=settings.topic_overrides,
            tiers=tiers,
            components=components,
        )
        self._max_request_bytes = settings.max_request_bytes
        self._logged: set[type[Exception]] = set()  # exception types whose traceback was logged

    def decode(
        self, records: Sequence[RawRecord], dead_letters: DeadLetters
    ) -> dict[str, list[Record]]:
        # Future skew is judged against the real present whatever the scoring clock
        # (an event-time clock trails it during a replay).
        present = max(self._clock.now(), time.time())
        by_account: dict[str, list[Record]] = {}
        latest = -math.inf
        updates = 0
        decode = self._decoder.decode
        for raw in records:
            source = make(SourceRef, (raw.topic, raw.partition, raw.offset))
            try:
                record = decode(source, raw.key, raw.value, present)
            except BadInput as error:
                self._reject(raw, error, present, dead_letters)
                continue
            except Exception as exc:
                self.failed(raw, exc, present, dead_letters)
                continue
            if isinstance(record, Event):
                if record.ts > latest:  # not max(): this runs once per event
                    latest = record.ts
            else:
                updates += isinstance(record, AccountUpdate)
                record = record._replace(ts=raw.timestamp / 1000)  # its only clock
            by_account.setdefault(record.account_id, []).append(record)
        if updates:
            self._metrics.account_updates.inc(updates)
        if latest > -math.inf:
            self._clock.observe(latest)
        return by_account

    def _reject(
        self, raw: RawRecord, error: BadInput, now: float, dead_letters: DeadLetters
    ) -> None:
        self._metrics.dead_letters.labels(str(error.reason)).inc()
        source = SourceRef(raw.topic, raw.partition, raw.offset)
        dead_letters.append(
            (
                dead_letter_key(raw.key),
                dead_letter(
                    error, source, raw.key, raw.value, raw.timestamp, now, self._max_request_bytes
                ),
            )
        )

    def failed(self, raw: RawRecord, exc: Exception, now: float, dead_letters: DeadLetters) -> None:
        """The one rule: a failure while handling one record dead-letters that record
        (``internal_error``) and the worker moves on. Only a dependency outage is
        retried, and a retry is of the whole batch."""
        if is_retriable(exc):
            raise exc
        # One line per record; the traceback once per exception type, so a flood of
        # one poison kind cannot drown the log, and a new kind still shows its origin.
        log.warning(
            "record %s/%d@%d dead-lettered (internal_error): %s: %s",
            raw.topic,
            raw.partition,
            raw.offset,
            type(exc).__name__,
            exc,
            exc_info=self.first_traceback(exc),
            extra={"topic": raw.topic, "partition": raw.partition, "offset": raw.offset},
        )
        self._reject(raw, internal_error(exc), now, dead_letters)

    def fail_all(
        self,
        account_records: Sequence[Record],
        records: Sequence[RawRecord],
        exc: Exception,
        dead_letters: DeadLetters,
    ) -> None:
        """Dead-letter one account's records of the batch: planning or scoring them failed.
        (Scoring fails after Redis applied them: their dead letters say they were not scored.)"""
        raw_of = {(r.topic, r.partition, r.offset): r for r in records}
        present = max(self._clock.now(), time.time())
        for record in account_records:
            self.failed(raw_of[record.source], exc, present, dead_letters)

    def first_traceback(self, exc: Exception) -> bool:
        """Whether ``exc`` is the first of its type (its traceback worth logging)."""
        first = type(exc) not in self._logged
        self._logged.add(type(exc))
        return first
