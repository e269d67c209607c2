"""The alert outbox: each alert saved in its account's state hash (``outbox:<seq>``)
with the tier it publishes, indexed per input partition (``hs:pending:{P}``), and
cleared once the broker has it. Whoever owns a partition next sends what its index
still names before anything else, so an alert is published at least once; its
``seq`` lets consumers drop the copies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from typing import NamedTuple

from worker import alerts
from worker.alerts import Alert
from worker.windows import keys, published, tierindex, wire
from worker.windows.wire import Client


class OutboxEntry(NamedTuple):
    """An alert saved in an account's outbox: cleared once the broker has it."""

    partition: int | None
    account_id: str
    seq: int


def encode(alert: Alert) -> bytes:
    """An alert as the outbox keeps it: re-sent exactly as saved."""
    return alerts.to_json(alert)


def decode(raw: bytes) -> Alert:
    return alerts.from_json(raw)


def save_commands(
    partition: int | None, account_id: str, alert: Alert
) -> tuple[list[wire.Command], list[wire.Arg]]:
    """What saving ``alert`` takes: commands to run before the account's state ``HSET``
    and the fields to add to it (the alert is saved with the tier it publishes)."""
    # Indexed first: a crash between the two leaves an index entry with nothing behind
    # it (harmless), never an alert nobody will find.
    index: list[wire.Command] = (
        [] if partition is None else [("SADD", keys.pending_key(partition), account_id)]
    )
    return index, [keys.outbox_field(alert.seq), encode(alert)]


class Outbox:
    def __init__(self, redis: Client, timeout: float, *, enabled: bool = True) -> None:
        """``enabled``: False for a store that keeps no outbox (a replay's trail is
        history, not a promise to consumers): ``sent`` has nothing to clear."""
        self._redis = redis
        self._timeout = timeout
        self.enabled = enabled

    async def sent(self, entries: Sequence[OutboxEntry]) -> None:
        """The broker has these alerts: clear them from their outboxes."""
        if not self.enabled:
            return
        commands: list[wire.Command] = []
        starts = []  # the alert first, then its index entry (``save_commands``' reverse)
        for e in entries:
            starts.append(len(commands))
            commands.append(("HDEL", keys.state_key(e.account_id), keys.outbox_field(e.seq)))
            if e.partition is not None:
                commands.append(("SREM", keys.pending_key(e.partition), e.account_id))
        await wire.execute(self._redis, commands, self._timeout, ordered=starts)

    async def unsent(self, partitions: Collection[int]) -> list[tuple[OutboxEntry, Alert]]:
        """Alerts saved on these partitions but not known to be sent, oldest first."""
        async with asyncio.timeout(self._timeout):
            return await self._unsent(partitions)

    async def _unsent(self, partitions: Collection[int]) -> list[tuple[OutboxEntry, Alert]]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for partition in sorted(partitions):
                pipe.smembers(keys.pending_key(partition))
            members = await pipe.execute()
        owners = [
            (p, wire.text(a))
            for p, accounts in zip(sorted(partitions), members, strict=True)
            for a in sorted(accounts)
        ]
        async with self._redis.pipeline(transaction=False) as pipe:
            for _, account in owners:
                pipe.hgetall(keys.state_key(account))
            states = await pipe.execute()
        found, stale, moves = [], [], []
        for (partition, account), state in zip(owners, states, strict=True):
            saved = [
                decode(v) for n, v in state.items() if wire.text(n).startswith(keys.OUTBOX_PREFIX)
            ]
            found += [(OutboxEntry(partition, account, a.seq), a) for a in saved]
            if not saved:
                stale.append((partition, account))
            moves += _index_move(
                account, saved, state.get(keys.PUBLISHED.encode(), state.get(keys.PUBLISHED))
            )
        if moves:
            await wire.execute(self._redis, moves, self._timeout)
        if stale:  # a crash between indexing and saving: nothing was promised
            async with self._redis.pipeline(transaction=False) as pipe:
                for partition, account in stale:
                    pipe.srem(keys.pending_key(partition), account)
                await pipe.execute()
        return sorted(found, key=lambda item: (item[0].account_id, item[0].seq))


def _index_move(account_id: str, saved: Sequence[Alert], pub: bytes | None) -> list[wire.Command]:
    """The newest saved alert's move between the tier indexes, made again (it is
    idempotent): on a Redis Cluster the index and the state hash are in different slots,
    so the tier's save and its move are no one transaction (``saving``), and a crash
    between them leaves the move undone, with the alert still in the outbox. Only while
    that alert's tier is still the published one."""
    if not saved or pub is None:
        return []
    newest = max(saved, key=lambda alert: alert.seq)
    if published.decode(pub).tier != newest.tier:
        return []
    return tierindex.move(account_id, newest.previous_tier, newest.tier)
