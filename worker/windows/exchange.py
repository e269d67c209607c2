"""One pipelined exchange on one connection: the commands packed in one buffer (``resp``)
and sent in one write, the replies taken from hiredis' reader in one loop. A single Redis
(``wire``) and each node of a cluster (``cluster``) are spoken to this way."""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from typing import Any

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ResponseError

from worker.windows import resp

Arg = resp.Arg
Command = resp.Command


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


async def send(connection: AbstractConnection, commands: Sequence[Command]) -> list[Any]:
    """Every reply of ``commands``, error replies among them as exception instances. A
    connection cut short is left to the caller to drop: replies may still be due on it."""
    await connection.send_packed_command(resp.pack(commands), check_health=False)
    return await read_replies(connection, len(commands))


def raise_first_error(replies: Sequence[Any]) -> None:
    for reply in replies:
        if isinstance(reply, Exception):  # error replies come back as exceptions
            raise reply


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
    return (
        _HIREDIS_PARSER is not None
        and _NOT_ENOUGH_DATA is not None
        and isinstance(connection._parser, _HIREDIS_PARSER)
    )


async def _read_one(connection: AbstractConnection) -> Any:
    try:
        # math.inf: no per-reply timeout context, the exchange has its own.
        return await connection.read_response(timeout=math.inf, disconnect_on_error=False)
    except ResponseError as error:
        return error
