"""Retry with capped exponential back-off, for as long as it takes.

Whether an error is worth retrying is decided by ``worker.errors.is_retriable``;
anything else propagates. Nothing is ever skipped: the same work is retried
until it succeeds or the worker is asked to stop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from worker.errors import is_retriable
from worker.metrics import Metrics

T = TypeVar("T")
# Waits out one back-off of the given seconds; the default is asyncio.sleep.
Wait = Callable[[float], Awaitable[None]]
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
    wait: Wait | None = None,
) -> T:
    """``operation()`` until it succeeds; between attempts ``wait(seconds)`` (default: sleep).

    ``Stopping`` is raised as soon as ``stop`` is set, even in the middle of a wait.
    """
    delay = 0.1
    while True:
        try:
            return await operation()
        except Exception as exc:
            if not is_retriable(exc):
                raise
            metrics.retries.labels(dependency).inc()
            log.warning(
                "%s unavailable (%s: %s); retrying in %.1f s",
                dependency,
                type(exc).__name__,
                exc,
                delay,
            )
        await _back_off(delay * random.uniform(0.8, 1.2), dependency, stop, wait or asyncio.sleep)
        delay = min(delay * 2, max_backoff)


async def _back_off(seconds: float, dependency: str, stop: asyncio.Event, wait: Wait) -> None:
    # A wait that ends early (a retriable error of its own) is topped up by a plain sleep,
    # so a failing wait can never turn the retries into a busy loop.
    deadline = time.monotonic() + seconds
    for pause in (wait, asyncio.sleep):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        await _unless_stopped(pause(remaining), dependency, stop)


async def _unless_stopped(pause: Awaitable[None], dependency: str, stop: asyncio.Event) -> None:
    pausing = asyncio.ensure_future(pause)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((pausing, stopping), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (pausing, stopping):
            task.cancel()
        await asyncio.wait((pausing, stopping))  # nothing of the wait outlives it
    if stop.is_set():
        raise Stopping(dependency)
    if not pausing.cancelled() and (exc := pausing.exception()) is not None:
        if not is_retriable(exc):
            raise exc
        log.debug("%s: waiting out the back-off failed too: %r", dependency, exc)
