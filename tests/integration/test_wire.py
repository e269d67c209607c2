"""The hot path's Redis exchanges (``worker.windows.wire``) against a real Redis."""

from __future__ import annotations

import pytest
import redis.asyncio
from redis.exceptions import ResponseError

from worker.windows import exchange, wire


async def test_replies_come_straight_from_hiredis(redis_client: redis.asyncio.Redis) -> None:
    # The fast path reads redis-py's private parser; an upgrade that moves it must fail
    # here, not quietly fall back to the slower public way.
    connection = await redis_client.connection_pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        assert exchange.fast_replies(connection)
    finally:
        await redis_client.connection_pool.release(connection)


@pytest.mark.parametrize("fast", [True, False], ids=["hiredis", "public"])
async def test_many_replies_over_many_reads(
    redis_client: redis.asyncio.Redis, monkeypatch: pytest.MonkeyPatch, fast: bool
) -> None:
    if not fast:
        monkeypatch.setattr(exchange, "_HIREDIS_PARSER", None)
    big = b"x" * 200_000  # each reply larger than one socket read
    await redis_client.set("big", big)
    await redis_client.hset("h", mapping={"a": 1, "b": 2})
    commands: list[wire.Command] = []
    for i in range(2000):
        commands += [("GET", "big") if i % 100 == 0 else ("HGETALL", "h"), ("INCR", "n")]
    replies = await wire.execute(redis_client, commands, deadline=30)
    assert len(replies) == len(commands)
    assert replies[0] == big
    # A map in RESP3, a flat list in RESP2: raw, as hiredis parsed it.
    assert replies[2] in ({b"a": b"1", b"b": b"2"}, [b"a", b"1", b"b", b"2"])
    assert replies[1::2] == list(range(1, 2001))  # in order, none lost or doubled


@pytest.mark.parametrize("fast", [True, False], ids=["hiredis", "public"])
async def test_an_error_reply_is_raised_after_all_replies_are_read(
    redis_client: redis.asyncio.Redis, monkeypatch: pytest.MonkeyPatch, fast: bool
) -> None:
    if not fast:
        monkeypatch.setattr(exchange, "_HIREDIS_PARSER", None)
    await redis_client.set("text", "not a number")
    with pytest.raises(ResponseError, match="not an integer"):
        await wire.execute(redis_client, [("INCR", "n"), ("INCR", "text"), ("INCR", "n")], 10)
    # Every command ran (a pipeline is not a transaction) and nothing is left unread on
    # the connection to answer the next exchange.
    assert await wire.execute(redis_client, [("GET", "n"), ("PING",)], 10) == [b"2", b"PONG"]


async def test_floats_reach_redis_exactly(redis_client: redis.asyncio.Redis) -> None:
    # The apply script's counter deltas and last-seen times go out as floats, packed
    # as their repr: every digit must arrive, where a Lua tostring would keep 14.
    values = [0.1, 1763916000.123456, 123456789.12345679, 1e-9, 2.0**60, 3600.0]
    commands: list[wire.Command] = [("SET", f"f{i}", v) for i, v in enumerate(values)]
    commands += [("GET", f"f{i}") for i in range(len(values))]
    replies = await wire.execute(redis_client, commands, deadline=5)
    assert [float(r) for r in replies[len(values) :]] == values
    assert replies[len(values) :] == [repr(v).encode() for v in values]
