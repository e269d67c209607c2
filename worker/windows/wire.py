"""Pipelined Redis exchanges for the hot path, one level below redis-py's Pipeline.

A batch sends thousands of commands; redis-py's Pipeline spends more time per
command (packing in Python, a timeout context per reply, response callbacks)
than Redis spends running them. Here the commands are packed in one buffer (``resp``),
the replies are taken from hiredis' reader in one loop, and the whole exchange has
one deadline. Replies come back raw, as hiredis parsed them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from redis.asyncio import Redis, RedisCluster

from worker.windows import cluster, exchange

Arg = exchange.Arg
Command = exchange.Command
# What the worker talks to: one Redis, or a Redis Cluster (``cluster``).
Client = Redis | RedisCluster
T = TypeVar("T")
R = TypeVar("R")


async def concurrently(
    items: Sequence[T],
    size: int,
    work: Callable[[Sequence[T]], Coroutine[Any, Any, list[R]]],
    parallel: int = 4,
) -> list[R]:
    """``work`` on chunks of ``items``, each chunk an exchange of its own, results in order.

    While Redis runs one chunk's commands the worker packs the next and reads the
    replies of the one before: on two cores the two halves overlap instead of
    waiting for each other. At most ``parallel`` chunks are in flight (each holds
    a connection). Callers keep what must stay ordered (an account's commands)
    within one chunk. The first failure cancels the other chunks and is
    raised as itself, so the one place that decides about retries sees it.
    """
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    if len(chunks) <= 1:
        return await work(items)
    slots = asyncio.Semaphore(parallel)

    async def bounded(chunk: Sequence[T]) -> list[R]:
        async with slots:
            return await work(chunk)

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(bounded(chunk)) for chunk in chunks]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [result for task in tasks for result in task.result()]


async def execute(
    redis: Client, commands: Sequence[Command], deadline: float, ordered: Sequence[int] = ()
) -> list[Any]:
    """Send ``commands`` in one write, read every reply; raise the first error reply
    (after reading them all: the connection stays usable).

    Past ``deadline`` seconds a ``TimeoutError`` (retriable) is raised and the connection
    dropped: replies still due on it would answer the next exchange's commands.

    ``ordered``: where runs of commands start whose order must hold across keys (each
    run ends where the next begins). One Redis runs every command in order anyway; a
    cluster runs commands of different nodes at the same time, and keeps each run's
    order by waves (``cluster.execute``).
    """
    if not commands:
        return []
    if isinstance(redis, RedisCluster):
        return await cluster.execute(redis, commands, deadline, ordered)
    pool = redis.connection_pool
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        async with asyncio.timeout(deadline):
            replies = await exchange.send(connection, commands)
    except BaseException:
        await connection.disconnect()
        raise
    finally:
        await pool.release(connection)
    exchange.raise_first_error(replies)
    return replies


def text(value: bytes | str) -> str:
    """A reply's name or member as text, whichever way the client decodes."""
    return value.decode() if isinstance(value, bytes) else value
