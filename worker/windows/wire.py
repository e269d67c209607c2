"""Pipelined Redis exchanges for the hot path, one level below redis-py's Pipeline.

A batch sends thousands of commands; redis-py's Pipeline spends more time per
command (packing in Python, a timeout context per reply, response callbacks)
than Redis spends running them. Here the commands are packed by hiredis (C) and
the whole exchange has one deadline. Replies come back raw, as hiredis parsed them.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.exceptions import ResponseError

Arg = str | bytes | int | float
Command = Sequence[Arg]


async def execute(redis: Redis, commands: Sequence[Command], timeout: float) -> list[Any]:
    """Send ``commands`` in one write, read every reply; raise the first error reply.

    Past ``timeout`` a ``TimeoutError`` (retriable) is raised and the connection
    dropped: replies still due on it would answer the next exchange's commands.
    """
    if not commands:
        return []
    pool = redis.connection_pool
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        async with asyncio.timeout(timeout):
            packed = b"".join([hiredis.pack_command(tuple(c))  # type: ignore[arg-type]
                               for c in commands])
            await connection.send_packed_command(packed, check_health=False)
            # math.inf: no per-reply timeout context, the exchange has its own.
            replies = [await connection.read_response(timeout=math.inf) for _ in commands]
    except BaseException:
        await connection.disconnect()
        raise
    finally:
        await pool.release(connection)
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    return replies
