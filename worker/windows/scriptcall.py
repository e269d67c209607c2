"""Calls of the apply script: loaded before the first call and again after a Redis
restart; an account whose fences or recent ids say otherwise than expected is
called again, expecting what the call before found."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import RedisCluster
from redis.exceptions import NoScriptError

from worker.errors import Retriable
from worker.windows import wire
from worker.windows.plan import AccountPlan, Totals
from worker.windows.resident import Resident
from worker.windows.script import ApplyScript, Reply, sort_replies, totals_of
from worker.windows.wire import Client

# Calls of one account in one batch, each expecting what the one before found; more
# means the account keeps changing under the batch (another writer): retried later.
MAX_EXPECTATIONS = 3


class ScriptCalls:
    def __init__(
        self, redis: Client, script: ApplyScript, timeout: float, max_members: int
    ) -> None:
        self._redis = redis
        self._script = script
        self._timeout = timeout
        self._max_members = max_members
        self._loaded = False

    async def run(
        self, plans: Sequence[AccountPlan], residents: Sequence[Resident], now: float
    ) -> list[Reply]:
        """(version, status, what was applied) per plan. Each call first expects all its
        events applied; the few that find replays or duplicates go again, expecting those."""
        expected: list[str | None] = [None] * len(plans)
        replies: list[Reply | None] = [None] * len(plans)
        todo: Sequence[int] = range(len(plans))
        for _ in range(MAX_EXPECTATIONS):
            totals = totals_of(plans, residents, expected, todo, self._max_members)
            flat = await self._call(
                [plans[k] for k in todo],
                [residents[k] for k in todo],
                [expected[k] for k in todo],
                totals,
                now,
            )
            todo = sort_replies(todo, totals, flat, expected, replies)
            if not todo:
                return [reply for reply in replies if reply is not None]
        raise Retriable(f"{len(todo)} accounts changed under every try to write them")

    async def _call(
        self,
        plans: Sequence[AccountPlan],
        residents: Sequence[Resident],
        expected: Sequence[str | None],
        totals: Sequence[Totals],
        now: float,
    ) -> list[Any]:
        """The script's replies for ``plans``, flat: one call for all of them, or on a
        cluster one per account (a script's keys must share a slot), all sent at once."""
        if not isinstance(self._redis, RedisCluster):
            [flat] = await self._execute(
                [self._script.call(plans, residents, expected, totals, now)]
            )
            return list(flat)
        calls = [
            self._script.call([p], [r], [e], [t], now)
            for p, r, e, t in zip(plans, residents, expected, totals, strict=True)
        ]
        return [reply for flat in await self._execute(calls) for reply in flat]

    async def load(self) -> None:
        """Load the script now (at start-up, a user not allowed to is told at once)."""
        async with asyncio.timeout(self._timeout):
            await self._redis.script_load(self._script.text)  # every primary of a cluster
        self._loaded = True

    async def _execute(self, calls: Sequence[wire.Command]) -> list[Any]:
        if not self._loaded:  # else every chunk of the first batch fails on it
            await self.load()
        try:
            return await wire.execute(self._redis, calls, self._timeout)
        except NoScriptError:  # a restarted or flushed Redis: load the script, go again
            await self.load()
            return await wire.execute(self._redis, calls, self._timeout)
