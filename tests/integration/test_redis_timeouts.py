"""Every Redis call the worker makes gives up on a frozen redis-server (SIGSTOP: the
connection stands, nothing answers) with a retriable error, within the configured
timeout rather than redis-py's own (5 s and three retries on redis-py 8, none at all
on 5): the batch exchanges, the outbox and schedule reads, the script load, the
durability wait and the start-up check. Each twice: on the connection it had, and on
a new one, whose handshake gets no answer either."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis

from tests.conftest import _unavailable
from worker.embedded import EmbeddedRedis
from worker.errors import is_retriable
from worker.modelfile import load_model
from worker.windows import server
from worker.windows.outbox import OutboxEntry
from worker.windows.plan import AccountPlan
from worker.windows.state import StateWrite
from worker.windows.store import WindowStore

TIMEOUT = 0.25
# Generous against TIMEOUT on a loaded machine, and short of redis-py 8's own 5 s
# (redis-py 5 has no timeout at all): a call left to them fails here.
GIVE_UP_WITHIN = 4.0
WAITS = server.Durability(replicas=1, timeout=0.25)

Call = Callable[[WindowStore, Redis], Awaitable[object]]
CALLS: dict[str, Call] = {
    "due": lambda store, _: store.schedule.due([0, 1, 2], time.time(), 100),
    "unsent": lambda store, _: store.outbox.unsent([0, 1, 2]),
    "script load": lambda store, _: store.load_script(),
    "apply": lambda store, _: store.apply([AccountPlan("acme", 0)], time.time()),
    "save": lambda store, _: store.save(
        [StateWrite("acme", {}, partition=0, next_change=time.time() + 60)]
    ),
    "sent": lambda store, _: store.outbox.sent([OutboxEntry(0, "acme", 1)]),
    "durability wait": lambda store, _: store.durable(),
    "tier counts": lambda store, _: store.tiers.counts(["green", "red"]),
    "start-up check": lambda _, redis: server.check(redis, WAITS, TIMEOUT),
    "read (explain)": lambda store, _: store.read("acme", time.time()),
}


@pytest.fixture
async def frozen() -> AsyncIterator[Redis]:
    """A client as the worker makes it, with a connection in its pool, on a Redis that
    then stops answering."""
    redis_server = EmbeddedRedis()
    try:
        redis_server.start()
    except Exception as exc:
        _unavailable("a Redis to freeze", [f"embedded: {exc}"])
    client = server.connect(redis_server.url, TIMEOUT)
    try:
        await client.ping()
        assert redis_server.pid is not None
        os.kill(redis_server.pid, signal.SIGSTOP)
        try:
            yield client
        finally:
            os.kill(redis_server.pid, signal.SIGCONT)
    finally:
        await client.aclose()
        redis_server.stop()


@pytest.mark.parametrize("name", list(CALLS))
async def test_every_redis_call_gives_up_on_a_frozen_redis_with_a_retriable_error(
    frozen: Redis, name: str
) -> None:
    store = WindowStore(frozen, load_model(), timeout=TIMEOUT, durability=WAITS)
    for attempt in ("pooled connection", "new connection"):
        task = asyncio.ensure_future(CALLS[name](store, frozen))
        done, _ = await asyncio.wait({task}, timeout=GIVE_UP_WITHIN)
        if not done:
            task.cancel()
            await asyncio.wait({task})
            pytest.fail(f"{name} ({attempt}): still waiting on a frozen Redis")
        error = task.exception()
        assert error is not None, f"{name} ({attempt}): answered by a frozen Redis?"
        assert is_retriable(error), f"{name} ({attempt}): {error!r} is not retriable"
