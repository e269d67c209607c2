"""Delivering an outcome, in the one order that makes scoring exactly once.

1. **Save** the state, each new tier with its alert in the account's outbox, in one
   Redis transaction per account. First, because from here on the alert cannot be
   lost: whoever owns the partition next finds it in the outbox.
2. **Wait** until replicas or the AOF have it, as configured (``Retriable`` if
   they do not in time). Before anything leaves: an alert published, or an offset
   committed, for a write a failover then loses would tell consumers of a tier
   Redis no longer knows, or skip records whose effect is gone.
3. **Publish** the alerts and dead letters, and wait for the broker to
   acknowledge them all. After the save: an alert published and never saved
   would be decided again, perhaps differently, under the same ``seq``.
4. **Clear** the outbox. After the acknowledgement: a crash in between leaves the
   alert in the outbox, and it is sent again, exactly as saved (same ``alert_id``
   and ``seq``, so consumers drop the copy). Alerts are at least once here, and
   exactly once for consumers that de-duplicate by ``seq``.
5. **Commit** the input offsets, last: a crash before it re-delivers the batch,
   whose events the offset fences skip (they were saved in step 1), and whose
   alerts step 4 has already sent or the outbox still holds.

``resend`` is steps 2-4 for what outboxes of newly assigned partitions still hold
(an earlier owner died between 1 and 4): before anything else is scored there, so
no ``seq`` can be decided twice.

Every step is retried on its own until it succeeds, with the caller's policy (the
live loop pauses consumption and keeps polling; a replay backs off); a step never
runs before the one ahead of it has succeeded. A replay has no offsets to commit
(``commit=None``), and its trail keeps no outbox (the store's ``outbox.enabled``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from functools import partial
from typing import Protocol, TypeVar

from aiokafka import TopicPartition

from worker.alerts import Alert
from worker.metrics import Metrics
from worker.rescore import Outcome
from worker.windows.outbox import OutboxEntry
from worker.windows.state import StateWrite

log = logging.getLogger(__name__)
T = TypeVar("T")
Offsets = dict[TopicPartition, int]


class Outbox(Protocol):
    async def sent(self, entries: Sequence[OutboxEntry]) -> None: ...

    async def unsent(self, partitions: Collection[int]) -> list[tuple[OutboxEntry, Alert]]: ...


class Store(Protocol):
    """The Redis side (``WindowStore``)."""

    @property
    def outbox(self) -> Outbox: ...

    async def save(self, writes: Sequence[StateWrite]) -> None: ...

    async def durable(self) -> None: ...


class Retry(Protocol):
    """Runs ``operation`` until it succeeds, waiting out ``dependency`` between tries."""

    def __call__(self, operation: Callable[[], Awaitable[T]], dependency: str) -> Awaitable[T]: ...


Publish = Callable[[Outcome], Awaitable[None]]  # returns once the broker acknowledged all
Commit = Callable[[Offsets], Awaitable[None]]  # one attempt


class Delivery:
    def __init__(
        self,
        store: Store,
        publish: Publish,
        retry: Retry,
        *,
        commit: Commit | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """``commit``: None where nothing is committed (a replay reads without a group).
        ``metrics``: tier changes and produce-to-alert latency, for a live worker."""
        self._store = store
        self._publish = publish
        self._retry = retry
        self._commit = commit
        self._metrics = metrics

    async def deliver(self, outcome: Outcome, offsets: Offsets | None = None) -> None:
        """Save, wait, publish, clear, then commit ``offsets`` (when given)."""
        await self._retry(partial(self.save, outcome), "redis")
        if self._metrics is not None:
            self._metrics.tier_changes(outcome.alerts)
        await self._send(outcome)
        if offsets and self._commit is not None:
            await self._retry(partial(self._commit, offsets), "kafka")

    async def resend(self, partitions: Collection[int]) -> Outcome:
        """Send what the outboxes of ``partitions`` still hold, exactly as saved."""
        outcome = await self._retry(partial(self.unsent, partitions), "redis")
        if outcome.alerts:
            log.info("sending %d alerts saved but maybe not sent before", len(outcome.alerts))
        await self._send(outcome)
        return outcome

    async def _send(self, outcome: Outcome) -> None:
        await self._retry(partial(self._publish, outcome), "kafka")
        if self._metrics is not None:
            self._metrics.observe_latency(outcome.origins, time.time())
        await self._retry(partial(self.clear, outcome), "redis")

    async def save(self, outcome: Outcome) -> None:
        """Steps 1 and 2, once: the state with the alerts' outbox, as durable as configured."""
        await self._store.save(outcome.writes)
        await self._store.durable()

    async def unsent(self, partitions: Collection[int]) -> Outcome:
        """Alerts an earlier owner of these partitions saved but may not have sent."""
        found = await self._store.outbox.unsent(partitions)
        if found:  # an owner that died before its wait left them: as durable first
            await self._store.durable()
        return Outcome(
            alerts=[(entry.account_id, alert) for entry, alert in found],
            outbox=[entry for entry, _ in found],
        )

    async def clear(self, outcome: Outcome) -> None:
        """Step 4, once: the broker has these alerts."""
        await self._store.outbox.sent(outcome.outbox)


async def once(operation: Callable[[], Awaitable[T]], dependency: str) -> T:
    """No retry: a failure ends the delivery (tools and tests that stop on any error)."""
    return await operation()
