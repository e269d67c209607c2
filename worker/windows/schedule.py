"""The due schedule: per input partition, each account's next window boundary
(``hs:due:{P}``), so the partition's owner rescores silent accounts when their
windows roll, reading by range rather than scanning all accounts."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from worker.windows import keys, wire
from worker.windows.wire import Client


def reschedule(partition: int, account_id: str, next_change: float | None) -> wire.Command:
    """Due at ``next_change`` (epoch s); None: nothing left to leave a window."""
    due = keys.due_key(partition)
    if next_change is None:
        return ("ZREM", due, account_id)
    return ("ZADD", due, next_change, account_id)


class Schedule:
    def __init__(self, redis: Client, timeout: float) -> None:
        self._redis = redis
        self._timeout = timeout

    async def due(
        self, partitions: Collection[int], now: float, limit: int
    ) -> list[tuple[int, str]]:
        """(partition, account) pairs whose windows have rolled since they were scored."""
        async with asyncio.timeout(self._timeout), self._redis.pipeline(transaction=False) as pipe:
            for partition in sorted(partitions):
                pipe.zrangebyscore(keys.due_key(partition), "-inf", now, start=0, num=limit)
            replies = await pipe.execute()
        return [
            (p, wire.text(account))
            for p, accounts in zip(sorted(partitions), replies, strict=True)
            for account in accounts
        ]
