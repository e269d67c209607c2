"""Every account rescored under a changed model: gradually, between batches, exactly.

Each input partition records the model its accounts were last all rescored under
(``hs:model:{P}``: the model file's fingerprint and version). The owner of a partition
whose record names another model (the file was reloaded live, or changed across a
restart, or the partition came from a worker that ran another file) walks the
partition's due schedule, which holds every account with data in a window, a chunk per
turn of the loop (``HEALTHSCORE_MODEL_RESCORE_BATCH`` accounts: live events wait for one
chunk at most), rescoring each by the model in use (``cause.kind = "model_change"``),
and records the new model when the walk is through and delivered. A crash or rebalance
mid-walk leaves the old record: the next owner walks the partition again, and a
rescore that changes nothing publishes nothing. A partition with no record yet (a
new deployment) is taken to be scored by the model in use.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import NamedTuple

import orjson

from worker.alerts import Cause
from worker.runtime.modelwatch import Loaded
from worker.windows import keys, wire
from worker.windows.wire import Client

log = logging.getLogger(__name__)


class Chunk(NamedTuple):
    partition: int
    accounts: list[str]
    cause: Cause
    last: bool  # the walk of the partition is through once this chunk is delivered


class Remodel:
    def __init__(self, redis: Client, loaded: Loaded, batch: int, timeout: float) -> None:
        self._redis = redis
        self._batch = batch
        self._timeout = timeout
        self._checked: set[int] = set()  # partitions whose record was read since the model
        self._walks: dict[int, tuple[int, Cause]] = {}  # partition -> ZSCAN cursor, cause
        self.use(loaded)

    def use(self, loaded: Loaded) -> None:
        """A new model: every partition owned is read (and walked) again."""
        self._record = orjson.dumps(
            {"fingerprint": loaded.fingerprint, "version": loaded.models.default.version}
        )
        self._version = loaded.models.default.version
        self._checked.clear()
        self._walks.clear()

    def forget(self, partitions: Collection[int]) -> None:
        """Partitions gone to another worker: their owner walks them if they need it."""
        self._checked -= set(partitions)
        for partition in partitions:
            self._walks.pop(partition, None)

    @property
    def walking(self) -> bool:
        return bool(self._walks)

    async def next_chunk(self, owned: Collection[int]) -> Chunk | None:
        """The next accounts to rescore, if a partition owned needs it."""
        async with asyncio.timeout(self._timeout):
            await self._check(owned)
            for partition in sorted(self._walks.keys() & set(owned)):
                cursor, cause = self._walks[partition]
                cursor, found = await self._redis.zscan(
                    keys.due_key(partition), cursor, count=self._batch
                )
                self._walks[partition] = (cursor, cause)
                accounts = [wire.text(a) for a, _ in found if isinstance(a, bytes | str)]
                return Chunk(partition, accounts, cause, last=cursor == 0)
        return None

    async def walked(self, chunk: Chunk) -> None:
        """``chunk`` was delivered; the last of its partition records the model."""
        if not chunk.last or chunk.partition not in self._walks:
            return
        async with asyncio.timeout(self._timeout):
            await self._redis.set(keys.model_key(chunk.partition), self._record)
        del self._walks[chunk.partition]
        log.info(
            "partition %d: every account rescored under model %s", chunk.partition, self._version
        )

    async def _check(self, owned: Collection[int]) -> None:
        new = sorted(set(owned) - self._checked)
        if not new:
            return
        # One GET each, not an MGET: on a Redis Cluster the partitions' keys span slots.
        records = await wire.execute(
            self._redis, [("GET", keys.model_key(p)) for p in new], self._timeout
        )
        for partition, record in zip(new, records, strict=True):
            self._checked.add(partition)
            if record is None:  # a new deployment: scored by the model in use
                await self._redis.set(keys.model_key(partition), self._record, nx=True)
            elif record != self._record:
                previous = orjson.loads(record).get("version")
                log.info(
                    "partition %d was scored under model %s: rescoring it under %s",
                    partition,
                    previous,
                    self._version,
                )
                self._walks[partition] = (0, Cause.model_change(self._version, previous))
