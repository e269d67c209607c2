"""The Redis edge of the window store: one pipelined script call per chunk of accounts.

The script writes and fences; what scoring reads comes from the accounts held
in memory (``resident``), loaded from Redis when they are not held or not
current. Everything here is translation between plain data (``AccountPlan``
in, ``AccountState`` out) and Redis commands; the decisions are made in
``plan`` (what to write) and ``worker.scoring`` (what it means).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import orjson
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from worker.errors import Retriable
from worker.scoring.mode import Mode
from worker.scoring.model import Model
from worker.scoring.override import OverrideState
from worker.scoring.signals import WindowView
from worker.windows import keys, overrides, server, wire
from worker.windows.buckets import bucket_of, oldest_bucket
from worker.windows.distinct import admit
from worker.windows.plan import AccountPlan, Totals
from worker.windows.resident import (
    CAPPED_PREFIX,
    NO_CHANGE,
    SEEN_TYPES,
    SETS,
    Resident,
    Residents,
    load,
)
from worker.windows.script import ApplyScript

SAVE_CHUNK = 500  # accounts per exchange of a save
# Calls of one account in one batch, each expecting what the one before found; more
# means the account keeps changing under the batch (another writer): retried later.
MAX_EXPECTATIONS = 3


class AccountState(NamedTuple):
    """An account as Redis knows it after the batch's writes."""

    account_id: str
    now_bucket: int
    cache_valid: bool
    status: str  # one letter per event of the plan: a(pplied), r(eplayed), d(uplicate)
    applied: int  # events applied now
    replayed: int  # events skipped: at or below their source's applied offset
    duplicates: int  # events skipped: same event id seen recently at another offset
    next_change: float | None  # when data next leaves a window (epoch s); None: nothing to leave
    windows: dict[int, WindowView]  # window length in buckets -> view
    attrs: dict[str, Any]
    cached_values: dict[str, float]
    published: dict[str, Any] | None
    seen: frozenset[str]
    last_mode: Mode  # of the account's evaluation before this one
    left_out: dict[str, int] | None = None  # set -> new members not tracked: it was full
    seen_bucket: dict[str, int] | None = None  # event type -> its newest bucket (explain)
    override: OverrideState | None = None  # after the batch's override records


class StateWrite(NamedTuple):
    """What scoring decided to remember about an account."""

    account_id: str
    values: dict[str, float]
    partition: int | None = None
    next_change: float | None = None  # when to rescore the account if it stays silent
    published: dict[str, Any] | None = None  # set only when a new tier was published
    alert: dict[str, Any] | None = None  # the alert that publishes it: into the outbox
    mode: Mode = Mode.LIVE  # of this evaluation: the next one asks it (saved when it changes)
    override: OverrideState | None = None  # set when scoring changed it (an expiry)


class OutboxEntry(NamedTuple):
    """An alert saved in an account's outbox: cleared once the broker has it."""

    partition: int | None
    account_id: str
    seq: int


class WindowStore:
    def __init__(self, redis: Redis, model: Model, *, dedup_horizon_seconds: float = 86400.0,
                 dedup_max_ids: int = 5000, published_field: str = keys.PUBLISHED,
                 outbox: bool = True, timeout: float = 10.0,
                 resident_accounts: int = 50_000, max_distinct_members: int = 25_000,
                 durability: server.Durability | None = None) -> None:
        """``published_field``: where the last published tier is kept; a replay that
        publishes its own trail keeps its chain apart from the live one, and needs no
        ``outbox`` (a trail is history, not a promise to consumers). ``timeout``: the
        longest wait for one batch's replies. ``resident_accounts``: how many accounts
        are held in memory at most. ``max_distinct_members``: the bound on each distinct
        set of an account (``distinct``). ``durability``: what ``durable`` waits for."""
        self._timeout = timeout
        self._durability = durability or server.Durability()
        self._redis = redis
        self._outbox = outbox
        self._published_field = published_field
        self._model = model
        self._script = ApplyScript(model, dedup_horizon_seconds, dedup_max_ids)
        self._script_loaded = False
        self._all_windows = sorted({c.window_buckets for c in model.components})
        self._max_window = model.max_window_buckets  # a max() over the model's components
        # In the order ``resident.load`` reads them.
        self._fields = [keys.VERSION, keys.ATTRS, published_field, keys.MODE,
                        *(keys.SEEN_PREFIX + t for t in SEEN_TYPES),
                        *(CAPPED_PREFIX + name for name in SETS), keys.OVERRIDE]
        self._max_members = max_distinct_members
        self._residents = Residents(resident_accounts)

    def now_bucket(self, now: float) -> int:
        return bucket_of(now, self._model.bucket_seconds)

    async def apply(self, plans: Sequence[AccountPlan], now: float,
                    *, read_all: bool = False) -> list[AccountState]:
        """Write each plan; what rescoring needs comes from the accounts held in memory
        (loaded first if they are not). ``read_all``: every component is recomputed."""
        if not plans:
            return []
        now_bucket = self.now_bucket(now)
        try:
            residents = await self._residents_of([p.account_id for p in plans], now_bucket)
            overrides.receive_all(plans, residents, now)
            replies = await self._run_script(plans, residents, now)
            stale = [r.account_id for r, (version, _, _) in zip(residents, replies, strict=True)
                     if version != r.version + 1]
            fresh = dict(zip(stale, await self._load(stale, now_bucket), strict=True))
        except BaseException:  # whether the scripts ran is unknown: load these again
            self._residents.drop(p.account_id for p in plans)
            raise
        states = []
        for plan, resident, (version, status, totals) in zip(plans, residents, replies,
                                                            strict=True):
            if resident.account_id in fresh:  # someone else wrote too: Redis has it all
                resident = fresh[resident.account_id]
            else:
                _applied(resident, plan, totals, version)
            if plan.partition is not None:
                resident.partition = plan.partition
            self._residents.put(resident)
            states.append(self._state(resident, status, read_all, totals.dropped))
        return states

    async def _residents_of(self, account_ids: Sequence[str], now_bucket: int) -> list[Resident]:
        held = [self._residents.get(a, now_bucket) for a in account_ids]
        missing = [a for a, r in zip(account_ids, held, strict=True) if r is None]
        loaded = iter(await self._load(missing, now_bucket))
        return [r if r is not None else next(loaded) for r in held]

    async def _load(self, account_ids: Sequence[str], now_bucket: int) -> list[Resident]:
        if not account_ids:
            return []
        commands: list[wire.Command] = []
        for account_id in account_ids:
            counters, users, features, state, _ = keys.account_keys(account_id)
            commands += [("HGETALL", counters), ("ZRANGE", users, 0, -1, "WITHSCORES"),
                         ("ZRANGE", features, 0, -1, "WITHSCORES"),
                         ("HMGET", state, *self._fields)]
        replies = await wire.execute(self._redis, commands, self._timeout)
        keep_from = oldest_bucket(now_bucket, self._max_window)
        return [load(account_id, now_bucket, keep_from, self._all_windows,
                     self._model.bucket_seconds, _pairs(counters), _pairs(users),
                     _pairs(features), state)
                for account_id, (counters, users, features, state)
                in zip(account_ids, _fours(replies), strict=True)]

    async def _run_script(self, plans: Sequence[AccountPlan], residents: Sequence[Resident],
                          now: float) -> list[tuple[int, str, Totals]]:
        """(version, status, what was applied) per plan. Each call first expects all its
        events applied; the few that find replays or duplicates go again, expecting those."""
        expected: list[str | None] = [None] * len(plans)
        replies: list[tuple[int, str, Totals] | None] = [None] * len(plans)
        todo: Sequence[int] = range(len(plans))
        for _ in range(MAX_EXPECTATIONS):
            totals = [admit(plans[k].totals(expected[k]), residents[k].last_seen,
                            self._max_members) for k in todo]
            call = self._script.call([plans[k] for k in todo], [residents[k] for k in todo],
                                     [expected[k] for k in todo], totals, now)
            [flat] = await self._execute([call])
            again = []
            for k, t, version, status in zip(todo, totals, flat[::2], flat[1::2], strict=True):
                if version == -1:
                    expected[k] = status.decode()
                    again.append(k)
                else:
                    replies[k] = (version, status.decode(), t)
            if not again:
                return [reply for reply in replies if reply is not None]
            todo = again
        raise Retriable(f"{len(todo)} accounts changed under every try to write them")

    async def load_script(self) -> None:
        """Load the apply script now: at start-up, a user not allowed to is told at once."""
        await self._redis.script_load(self._script.text)
        self._script_loaded = True

    async def _execute(self, calls: Sequence[wire.Command]) -> list[Any]:
        if not self._script_loaded:  # else every chunk of the first batch fails on it
            await self._load_script()
            self._script_loaded = True
        try:
            return await wire.execute(self._redis, calls, self._timeout)
        except NoScriptError:  # a restarted or flushed Redis: load the script, go again
            await self._load_script()
            return await wire.execute(self._redis, calls, self._timeout)

    async def _load_script(self) -> None:
        async with asyncio.timeout(self._timeout):
            await self._redis.script_load(self._script.text)

    def _state(self, resident: Resident, status: str, read_all: bool,
               dropped: dict[str, tuple[int, float]] | None = None) -> AccountState:
        cached = None if read_all else resident.values
        return AccountState(
            account_id=resident.account_id,
            now_bucket=resident.bucket,
            cache_valid=cached is not None,
            status=status,
            applied=status.count("a"),
            replayed=status.count("r"),
            duplicates=status.count("d"),
            next_change=(None if resident.next_change == NO_CHANGE
                         else resident.next_change * self._model.bucket_seconds),
            windows=resident.view(),
            attrs=resident.attrs,
            cached_values=cached or {},
            published=resident.published,
            seen=resident.seen,
            last_mode=resident.mode,
            left_out=None if dropped is None else {n: c for n, (c, _) in dropped.items()},
            seen_bucket=resident.seen_bucket,
            override=resident.override,
        )

    async def read(self, account_id: str, now: float) -> AccountState:
        """The account's current state as Redis has it (for ``explain``); writes nothing."""
        [resident] = await self._load([account_id], self.now_bucket(now))
        return self._state(resident, "", read_all=True)

    def held(self, account_id: str, now: float) -> AccountState | None:
        """The account as held in memory, if it is, with its component values as last
        scored (for inspection and tests)."""
        resident = self._residents.get(account_id, self.now_bucket(now))
        return None if resident is None else self._state(resident, "", read_all=False)

    def forget(self, partitions: Collection[int] | None = None) -> None:
        """Drop the accounts held for ``partitions`` (all if None): they moved away."""
        if partitions is None:
            self._residents.clear()
        else:
            self._residents.drop_partitions(partitions)

    async def save(self, writes: Sequence[StateWrite]) -> None:
        try:
            await wire.concurrently(writes, SAVE_CHUNK, self._save)
        except BaseException:  # some chunks may be saved: load these again
            self._residents.drop(w.account_id for w in writes)
            raise
        for w in writes:
            resident = self._residents.peek(w.account_id)
            if resident is not None:
                resident.values = w.values
                resident.scheduled = w.next_change
                resident.mode = w.mode
                if w.published is not None:
                    resident.published = w.published
                if w.override is not None:
                    resident.override = w.override

    async def _save(self, writes: Sequence[StateWrite]) -> list[Any]:
        """Only what changed: a new tier (with its alert in the outbox), a new time to
        rescore, a new mode. Component values stay in memory, recomputed after a load:
        writing them every batch cost more than computing them again."""
        commands: list[wire.Command] = []
        for w in writes:  # an account's commands stay in order, in one chunk
            mode = self._mode_change(w)
            if mode is Mode.LIVE:
                commands.append(("HDEL", keys.state_key(w.account_id), keys.MODE))
            elif mode is Mode.CATCH_UP and w.published is None:
                commands.append(("HSET", keys.state_key(w.account_id), keys.MODE, mode.value))
            if w.published is not None:
                fields: list[wire.Arg] = [self._published_field, orjson.dumps(w.published)]
                if mode is Mode.CATCH_UP:  # a new account in a backfill: one command
                    fields += [keys.MODE, mode.value]
                if self._outbox and w.alert is not None:
                    # Indexed first: a crash between the two leaves an index entry with
                    # nothing behind it (harmless), never an alert nobody will find.
                    if w.partition is not None:
                        commands.append(("SADD", keys.pending_key(w.partition), w.account_id))
                    fields += [keys.outbox_field(w.alert["seq"]), orjson.dumps(w.alert)]
                self._publish(commands, w, ("HSET", keys.state_key(w.account_id), *fields))
            if w.override is not None:
                commands.append(("HSET", keys.state_key(w.account_id), keys.OVERRIDE,
                                 overrides.dumps(w.override)))
            if w.partition is not None and not self._scheduled(w):
                due = keys.due_key(w.partition)
                if w.next_change is None:
                    commands.append(("ZREM", due, w.account_id))
                else:
                    commands.append(("ZADD", due, w.next_change, w.account_id))
        return await wire.execute(self._redis, commands, self._timeout)

    def _publish(self, commands: list[wire.Command], write: StateWrite,
                 save: wire.Command) -> None:
        """Save a new published tier; the live chain's also moves the account between
        the tier indexes (``keys.tier_key``) in the same MULTI, so the index never
        disagrees with ``pub``. Only tier changes pay for it."""
        if self._published_field != keys.PUBLISHED or write.alert is None:
            commands.append(save)
            return
        commands += [("MULTI",), save]
        if (previous := write.alert["previous_tier"]) is not None:
            commands.append(("ZREM", keys.tier_key(previous), write.account_id))
        commands += [("ZADD", keys.tier_key(write.alert["tier"]), 0, write.account_id),
                     ("EXEC",)]

    def _mode_change(self, write: StateWrite) -> Mode | None:
        """The mode to save, or None when Redis has it already."""
        resident = self._residents.peek(write.account_id)
        return None if resident is not None and resident.mode is write.mode else write.mode

    def _scheduled(self, write: StateWrite) -> bool:
        """The due index already has the account at ``write.next_change``."""
        resident = self._residents.peek(write.account_id)
        return resident is not None and resident.scheduled == write.next_change

    async def durable(self) -> None:
        """Until what was written so far is as durable as configured (``server.wait``)."""
        await server.wait(self._redis, self._durability, self._timeout)

    async def tier_counts(self, tiers: Sequence[str]) -> dict[str, int]:
        """Accounts per published tier, from the tier indexes: one ZCARD each, no scan."""
        replies = await wire.execute(self._redis, [("ZCARD", keys.tier_key(t)) for t in tiers],
                                     self._timeout)
        return {tier: int(count) for tier, count in zip(tiers, replies, strict=True)}

    async def sent(self, entries: Sequence[OutboxEntry]) -> None:
        """The broker has these alerts: clear them from their outboxes."""
        if not self._outbox:
            return
        commands: list[wire.Command] = []
        for e in entries:
            commands.append(("HDEL", keys.state_key(e.account_id), keys.outbox_field(e.seq)))
            if e.partition is not None:
                commands.append(("SREM", keys.pending_key(e.partition), e.account_id))
        await wire.execute(self._redis, commands, self._timeout)

    async def unsent(self, partitions: Collection[int]
                     ) -> list[tuple[OutboxEntry, dict[str, Any]]]:
        """Alerts saved on these partitions but not known to be sent, oldest first."""
        async with asyncio.timeout(self._timeout):
            return await self._unsent(partitions)

    async def _unsent(self, partitions: Collection[int]
                      ) -> list[tuple[OutboxEntry, dict[str, Any]]]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for partition in sorted(partitions):
                pipe.smembers(keys.pending_key(partition))
            members = await pipe.execute()
        owners = [(p, _text(a)) for p, accounts in zip(sorted(partitions), members, strict=True)
                  for a in sorted(accounts)]
        async with self._redis.pipeline(transaction=False) as pipe:
            for _, account in owners:
                pipe.hgetall(keys.state_key(account))
            states = await pipe.execute()
        found, stale = [], []
        for (partition, account), state in zip(owners, states, strict=True):
            alerts = [orjson.loads(v) for n, v in state.items()
                      if _text(n).startswith(keys.OUTBOX_PREFIX)]
            found += [(OutboxEntry(partition, account, a["seq"]), a) for a in alerts]
            if not alerts:
                stale.append((partition, account))
        if stale:  # a crash between indexing and saving: nothing was promised
            async with self._redis.pipeline(transaction=False) as pipe:
                for partition, account in stale:
                    pipe.srem(keys.pending_key(partition), account)
                await pipe.execute()
        return sorted(found, key=lambda item: (item[0].account_id, item[0].seq))

    async def due(self, partitions: Collection[int], now: float,
                  limit: int) -> list[tuple[int, str]]:
        """(partition, account) pairs whose windows have rolled since they were scored."""
        async with asyncio.timeout(self._timeout), self._redis.pipeline(transaction=False) as pipe:
            for partition in sorted(partitions):
                pipe.zrangebyscore(keys.due_key(partition), "-inf", now, start=0, num=limit)
            replies = await pipe.execute()
        return [(p, _text(account)) for p, accounts in zip(sorted(partitions), replies, strict=True)
                for account in accounts]


def _applied(resident: Resident, plan: AccountPlan, totals: Totals, version: int) -> None:
    """What the script did, done to the copy in memory."""
    resident.version = version
    resident.maintained, resident.expired = True, []
    resident.add(totals)
    if totals.dropped:
        resident.left_out(totals.dropped)
    if not plan.seen <= resident.seen:
        resident.seen = resident.seen | plan.seen
    for event_type, bucket in plan.last_bucket.items():
        if bucket > resident.seen_bucket.get(event_type, -1):
            resident.seen_bucket[event_type] = bucket
    if plan.attrs_changed:
        resident.attrs = plan.attrs or {}
    if plan.override is not None:
        resident.override = plan.override


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _fours(replies: list[Any]) -> Iterator[tuple[Any, Any, Any, Any]]:
    it = iter(replies)
    return zip(it, it, it, it, strict=True)


def _pairs(reply: Any) -> Iterable[tuple[bytes, bytes | float]]:
    """A hash's or a sorted set's (name, value) pairs, whichever protocol answered: RESP3
    gives a map or [member, score] pairs, RESP2 one flat list."""
    if isinstance(reply, dict):
        return reply.items()
    if reply and isinstance(reply[0], list):
        return [(name, value) for name, value in reply]
    it = iter(reply)
    return zip(it, it, strict=True)
