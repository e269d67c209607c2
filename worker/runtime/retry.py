"""Retry with capped exponential back-off, for as long as it takes.

Whether an error is worth retrying is decided by ``worker.errors.is_retriable``;
anything else propagates. Nothing is ever skipped: the same work is retried
until it succeeds or the worker is asked to stop.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from worker.errors import is_retriable
from worker.metrics import Metrics

T = TypeVar("T")
log = logging.getLogger(__name__)


class Stopping(Exception):
    """The worker was asked to stop while waiting out a back-off."""


async def retrying(
    operation: Callable[[], Awaitable[T]],
    dependency: str,
    *,
    max_backoff: float,
    metrics: Metrics,
    stop: asyncio.Event,
) -> T:
    delay = 0.1
    while True:
        try:
            return await operation()
        except Exception as exc:
            if not is_retriable(exc):
                raise
            metrics.retries.labels(dependency).inc()
            log.warning("%s unavailable (%s: %s); retrying in %.1f s",
                        dependency, type(exc).__name__, exc, delay)
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay * random.uniform(0.8, 1.2))
        except TimeoutError:
            delay = min(delay * 2, max_backoff)
            continue
        raise Stopping(dependency)
