"""The alert ids Slack acknowledged, kept in Redis: an alert is posted at most once per
webhook, across restarts and across copies of it at other offsets (the worker re-sends
an outbox alert after a crash: the same id at a new offset).

One sorted set per webhook (``hs:notify:slack:<webhook id>:posted``), member the
alert id, score the time it was acknowledged; ids older than ``KEEP_SECONDS`` are
pruned (a re-sent copy comes within minutes, a replay's alerts have new ids).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from worker.metrics import Metrics
from worker.notify.slack import Stopped
from worker.runtime.retry import Stopping, retrying
from worker.windows.wire import Client

KEEP_SECONDS = 30 * 86400.0
PRUNE_EVERY = 3600.0
T = TypeVar("T")


class Ledger:
    def __init__(
        self, redis: Client, webhook_id: str, *, max_backoff: float, stop: asyncio.Event
    ) -> None:
        self._redis, self._max_backoff, self._stop = redis, max_backoff, stop
        self.key = f"hs:notify:slack:{webhook_id}:posted"
        self._pruned = 0.0
        self._metrics = Metrics()

    async def posted(self, alert_ids: Sequence[str]) -> set[str]:
        """Which of ``alert_ids`` Slack has acknowledged already."""
        if not alert_ids:
            return set()
        scores = await self._retrying(lambda: self._redis.zmscore(self.key, list(alert_ids)))
        return {a for a, score in zip(alert_ids, scores, strict=True) if score is not None}

    async def record(self, alert_ids: Sequence[str]) -> None:
        """Remember ``alert_ids`` as acknowledged: before their offsets are committed."""
        if not alert_ids:
            return
        now = time.time()
        await self._retrying(lambda: self._redis.zadd(self.key, dict.fromkeys(alert_ids, now)))
        if now - self._pruned > PRUNE_EVERY:
            self._pruned = now
            await self._retrying(
                lambda: self._redis.zremrangebyscore(self.key, "-inf", now - KEEP_SECONDS)
            )

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        # The worker's one retry policy (capped exponential back-off, only what
        # ``is_retriable`` allows), its retries counted on the notifier's own registry.
        try:
            return await retrying(
                call, "redis", max_backoff=self._max_backoff, metrics=self._metrics, stop=self._stop
            )
        except Stopping:
            raise Stopped() from None
