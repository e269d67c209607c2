"""Pipelined Redis exchanges for the hot path, one level below redis-py's Pipeline.

A batch sends thousands of commands; redis-py's Pipeline spends more time per
command (packing in Python, a timeout context per reply, response callbacks)
than Redis spends running them. Here the commands are packed by hiredis (C), the
replies are taken from hiredis' reader in one loop, and the whole exchange has
one deadline. Replies come back raw, as hiredis parsed them.
"""

from __future__ import annotations

import asyncio
import importlib
import math
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ResponseError


def _hiredis_parser(name: str) -> Any:
    # redis-py's hiredis reply parser is read from directly (``read_replies``). Looked
    # up, not imported: it is redis-py's private code, and a layout without it only
    # means the slower public way.
    try:
        return getattr(importlib.import_module("redis._parsers.hiredis"), name, None)
    except ImportError:
        return None


_HIREDIS_PARSER = _hiredis_parser("_AsyncHiredisParser")
_NOT_ENOUGH_DATA = _hiredis_parser("NOT_ENOUGH_DATA")

Arg = str | bytes | int | float
Command = Sequence[Arg]
T = TypeVar("T")
R = TypeVar("R")


async def concurrently(items: Sequence[T], size: int,
                       work: Callable[[Sequence[T]], Coroutine[Any, Any, list[R]]],
                       parallel: int = 4) -> list[R]:
    """``work`` on chunks of ``items``, each chunk an exchange of its own, results in order.

    While Redis runs one chunk's commands the worker packs the next and reads the
    replies of the one before: on two cores the two halves overlap instead of
    waiting for each other. At most ``parallel`` chunks are in flight (each holds
    a connection). Callers keep what must stay ordered (an account's commands)
    within one chunk. The first failure cancels the other chunks and is
    raised as itself, so the one place that decides about retries sees it.
    """
    chunks = [items[i:i + size] for i in range(0, len(items), size)]
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


async def execute(redis: Redis, commands: Sequence[Command], deadline: float) -> list[Any]:
    """Send ``commands`` in one write, read every reply; raise the first error reply
    (after reading them all: the connection stays usable).

    Past ``deadline`` seconds a ``TimeoutError`` (retriable) is raised and the connection
    dropped: replies still due on it would answer the next exchange's commands.
    """
    if not commands:
        return []
    pool = redis.connection_pool
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        async with asyncio.timeout(deadline):
            packed = b"".join([hiredis.pack_command(tuple(c))  # type: ignore[arg-type]
                               for c in commands])
            await connection.send_packed_command(packed, check_health=False)
            replies = await read_replies(connection, len(commands))
    except BaseException:
        await connection.disconnect()
        raise
    finally:
        await pool.release(connection)
    for reply in replies:
        if isinstance(reply, Exception):  # error replies come back as exceptions
            raise reply
    return replies


async def read_replies(connection: AbstractConnection, count: int) -> list[Any]:
    """``count`` replies, error replies among them as exception instances.

    redis-py reads a reply through several layers (a timeout context, error
    translation, push-message checks), about as long as Redis takes to run a
    simple command. Taken from hiredis' reader in one loop, a reply costs a
    fraction of that. Without the hiredis parser, the public way, per reply.
    """
    parser: Any = connection._parser
    if not fast_replies(connection):
        return [await _read_one(connection) for _ in range(count)]
    # Bound once: the reader is made anew on every (re)connect.
    gets, fill = parser._reader.gets, parser.read_from_socket
    replies: list[Any] = []
    while len(replies) < count:
        reply = gets()
        if reply is _NOT_ENOUGH_DATA:
            await fill()  # raises ConnectionError when the server hung up
        else:
            replies.append(reply)
    return replies


def fast_replies(connection: AbstractConnection) -> bool:
    """Whether ``read_replies`` takes replies straight from hiredis on this connection."""
    return (_HIREDIS_PARSER is not None and _NOT_ENOUGH_DATA is not None
            and isinstance(connection._parser, _HIREDIS_PARSER))


async def _read_one(connection: AbstractConnection) -> Any:
    try:
        # math.inf: no per-reply timeout context, the exchange has its own.
        return await connection.read_response(timeout=math.inf, disconnect_on_error=False)
    except ResponseError as error:
        return error


def text(value: bytes | str) -> str:
    """A reply's name or member as text, whichever way the client decodes."""
    return value.decode() if isinstance(value, bytes) else value
