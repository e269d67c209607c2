"""The Redis edge of peer-relative components (``scoring.peers``): one sorted set per
peer group and component (``keys.peers_key``), account -> its latest raw value.

Each scored account of a model with percentile components sends, in one pipelined
exchange per chunk of accounts: its move out of its old group's sets when its
segment changed, a ZADD of each present value (a ZREM where the component has no
data), and three counts per value that give its rank (below, equal, the whole set).
Every write is idempotent, so a retried batch writes the same again. The group the
account's values are in is kept in its state hash (``keys.PEERS``), written after
the sets moved: an exchange cut short is redone in full by the retry.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any, NamedTuple

from worker.scoring.peers import PeerRank
from worker.windows import keys, wire
from worker.windows.wire import Client


class PeerUpdate(NamedTuple):
    """One account's values to rank: ``ranked`` are its percentile components under its
    scoring model; ``others`` every other component some model ranks (removed here)."""

    account_id: str
    group: str  # its peer group now
    before: str | None  # the group its values were put in last; None: none yet
    values: Mapping[str, float]
    ranked: Collection[str]
    others: Collection[str]


class Exchange(NamedTuple):
    commands: list[wire.Command]
    # Where each account's commands start: their order holds across keys (the group
    # field last), on a cluster too (``wire.execute``'s ``ordered``).
    starts: list[int]
    # Per account: (component, index of its first count reply) for each rank read.
    reads: list[list[tuple[str, int]]]
    # Per account: the group its values are in afterwards; None: in no set.
    groups: list[str | None]


def exchange(updates: Sequence[PeerUpdate]) -> Exchange:
    """The commands of one chunk's updates, and where each rank's replies will be."""
    found = Exchange([], [], [], [])
    for u in updates:
        ranked = any(_rankable(u.values.get(name)) for name in u.ranked)
        if not ranked and u.before is None:  # in no set, and none to join: nothing to do
            found.reads.append([])
            found.groups.append(None)
            continue
        found.starts.append(len(found.commands))
        found.reads.append(_account(u, found.commands))
        after = u.group if ranked else None
        # Last: the sets are as the field says once it is written, and an account in no
        # set has no field (a tombstone may then delete its state hash, as without peers).
        if after != u.before:
            state = keys.state_key(u.account_id)
            found.commands.append(
                ("HDEL", state, keys.PEERS) if after is None else ("HSET", state, keys.PEERS, after)
            )
        found.groups.append(after)
    return found


def _account(u: PeerUpdate, commands: list[wire.Command]) -> list[tuple[str, int]]:
    """One account's moves and reads, appended to ``commands``; where its ranks are."""
    mine: list[tuple[str, int]] = []
    moved = u.before is not None and u.before != u.group
    for name in (*u.ranked, *u.others):
        if moved:
            commands.append(("ZREM", keys.peers_key(name, u.before or ""), u.account_id))
        key = keys.peers_key(name, u.group)
        value = u.values.get(name) if name in u.ranked else None
        if value is None or math.isnan(value):  # no data: no place among the peers
            commands.append(("ZREM", key, u.account_id))
            continue
        score = repr(value)
        mine.append((name, len(commands) + 1))
        commands += [
            ("ZADD", key, score, u.account_id),
            ("ZCOUNT", key, "-inf", f"({score}"),
            ("ZCOUNT", key, score, score),
            ("ZCARD", key),
        ]
    return mine


def _rankable(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def ranks(
    reads: Sequence[Sequence[tuple[str, int]]], replies: Sequence[Any]
) -> list[dict[str, PeerRank]]:
    """Each account's ranks from the exchange's replies."""
    return [
        {
            name: PeerRank(int(replies[at]), int(replies[at + 1]), int(replies[at + 2]))
            for name, at in mine
        }
        for mine in reads
    ]


class PeerSets:
    def __init__(self, redis: Client, timeout: float) -> None:
        self._redis = redis
        self._timeout = timeout

    async def rank(
        self, updates: Sequence[PeerUpdate]
    ) -> tuple[list[dict[str, PeerRank]], list[str | None]]:
        """Write each account's values to its group's sets and read its ranks there:
        one round trip for the whole chunk. Also the group each is in afterwards."""
        found = exchange(updates)
        replies = await wire.execute(
            self._redis, found.commands, self._timeout, ordered=found.starts
        )
        return ranks(found.reads, replies), found.groups

    async def read(
        self, account_id: str, group: str, values: Mapping[str, float], ranked: Collection[str]
    ) -> dict[str, PeerRank]:
        """The account's ranks, writing nothing (``explain``): its value counted among
        the peers as if it were in the set, whether or not it is yet."""
        commands: list[wire.Command] = []
        reads: list[tuple[str, int]] = []
        for name in ranked:
            value = values.get(name)
            if value is None or math.isnan(value):
                continue
            key, score = keys.peers_key(name, group), repr(value)
            reads.append((name, len(commands)))
            commands += [
                ("ZCOUNT", key, "-inf", f"({score}"),
                ("ZCOUNT", key, score, score),
                ("ZCARD", key),
                ("ZSCORE", key, account_id),
            ]
        replies = await wire.execute(self._redis, commands, self._timeout)
        found = {}
        for name, at in reads:
            found[name] = _as_if_in(values[name], *replies[at : at + 4])
        return found


def _as_if_in(value: float, below: Any, equal: Any, peers: Any, own: Any) -> PeerRank:
    """A rank counted with the account at ``value``: the set may not hold it yet (a new
    account) or hold an older value of it (``own``, what the next rescore replaces)."""
    rank = PeerRank(int(below), int(equal), int(peers))
    if own is None:
        return PeerRank(rank.below, rank.equal + 1, rank.peers + 1)
    old = float(own)
    if old == value:
        return rank
    return PeerRank(rank.below - (old < value), rank.equal + 1, rank.peers)
