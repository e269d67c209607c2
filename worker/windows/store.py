"""The Redis edge of the window store: one pipelined script call per batch.

Everything here is translation between plain data (``AccountPlan`` in,
``AccountState`` out) and the script's flat argument list; the decisions are
made in ``plan`` (what to write) and ``worker.scoring`` (what it means).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from worker.scoring.model import Model
from worker.scoring.signals import WindowView
from worker.windows import keys, wire
from worker.windows.buckets import bucket_of, oldest_bucket, state_ttl_seconds
from worker.windows.plan import COUNTERS_OF, AccountPlan

EVENT_TYPES = tuple(COUNTERS_OF)  # each has a seen:<type> flag
SAVE_CHUNK = 500  # accounts per exchange of a save


@dataclass(frozen=True, slots=True)
class AccountState:
    """An account as Redis knows it after the batch's writes."""

    account_id: str
    now_bucket: int
    cache_valid: bool
    applied: int  # events applied now
    replayed: int  # events skipped: at or below their source's applied offset
    duplicates: int  # events skipped: same event id seen recently at another offset
    next_change: float | None  # when data next leaves a window (epoch s); None: nothing to leave
    windows: dict[int, WindowView]  # window length in buckets -> view
    attrs: dict[str, Any]
    cached_values: dict[str, float]
    published: dict[str, Any] | None
    seen: frozenset[str]


@dataclass(frozen=True, slots=True)
class StateWrite:
    """What scoring decided to remember about an account."""

    account_id: str
    values: dict[str, float]
    stamp: str
    partition: int | None = None
    next_change: float | None = None  # when to rescore the account if it stays silent
    published: dict[str, Any] | None = None  # set only when a new tier was published
    alert: dict[str, Any] | None = None  # the alert that publishes it: into the outbox


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """An alert saved in an account's outbox: cleared once the broker has it."""

    partition: int | None
    account_id: str
    seq: int


class WindowStore:
    def __init__(self, redis: Redis, model: Model, *, dedup_horizon_seconds: float = 86400.0,
                 dedup_max_ids: int = 5000, published_field: str = keys.PUBLISHED,
                 outbox: bool = True, timeout: float = 10.0) -> None:
        """``published_field``: where the last published tier is kept; a replay that
        publishes its own trail keeps its chain apart from the live one, and needs no
        ``outbox`` (a trail is history, not a promise to consumers). ``timeout``: the
        longest wait for one batch's replies."""
        self._timeout = timeout
        self._redis = redis
        self._outbox = outbox
        self._published_field = published_field
        self._model = model
        self._dedup = (dedup_horizon_seconds, dedup_max_ids)
        self._script_text = resources.files("worker").joinpath("windows", "apply.lua").read_text(
            "utf-8")
        self._script_sha = hashlib.sha1(self._script_text.encode()).hexdigest()
        self._script_loaded = False
        self._all_windows = sorted({c.window_buckets for c in model.components})
        self._window_of = {c.name: c.window_buckets for c in model.components}
        self._ttl = state_ttl_seconds(model.max_window_buckets, model.bucket_seconds)
        self._fields = [keys.ATTRS, keys.VALUES, published_field,
                        *(keys.SEEN_PREFIX + t for t in EVENT_TYPES)]

    def stamp(self, now_bucket: int) -> str:
        """Cached component values are only valid for this model and this bucket."""
        return f"{self._model.version}|{now_bucket}"

    def now_bucket(self, now: float) -> int:
        return bucket_of(now, self._model.bucket_seconds)

    async def apply(self, plans: Sequence[AccountPlan], now: float,
                    *, read_all: bool = False) -> list[AccountState]:
        """Write each plan; read back what rescoring needs (every window if ``read_all``)."""
        if not plans:
            return []
        now_bucket = self.now_bucket(now)
        context = self._context(now, now_bucket, read_all)
        calls = [(keys.account_keys(plan.account_id), self._args(plan)) for plan in plans]
        if not self._script_loaded:  # else every chunk of the first batch fails on it
            await self._redis.script_load(self._script_text)
            self._script_loaded = True
        try:
            replies = await self._run_script(calls, context)
        except NoScriptError:  # a restarted or flushed Redis: load the script, go again
            await self._redis.script_load(self._script_text)
            replies = await self._run_script(calls, context)
        bucket_seconds = self._model.bucket_seconds
        return [_state(p.account_id, now_bucket, bucket_seconds, self._published_field, r)
                for p, r in zip(plans, replies, strict=True)]

    async def _run_script(self, calls: list[tuple[list[str], list[wire.Arg]]],
                          context: list[wire.Arg]) -> list[Any]:
        return await wire.execute(self._redis, [
            ("EVALSHA", self._script_sha, len(account_keys), *account_keys, *context, *args)
            for account_keys, args in calls
        ], self._timeout)

    async def read(self, account_id: str, now: float) -> AccountState:
        """The account's current state (for ``explain``). Nothing it means changes; the
        script may refresh the account's kept window sums and prune expired buckets."""
        [state] = await self.apply([AccountPlan(account_id)], now, read_all=True)
        return state

    async def save(self, writes: Sequence[StateWrite]) -> None:
        await wire.concurrently(writes, SAVE_CHUNK, self._save)

    async def _save(self, writes: Sequence[StateWrite]) -> list[Any]:
        commands: list[wire.Command] = []
        for w in writes:  # an account's commands stay in order, in one chunk
            fields: list[wire.Arg] = [keys.VALUES, orjson.dumps(w.values), keys.STAMP, w.stamp]
            if w.published is not None:
                fields += [self._published_field, orjson.dumps(w.published)]
            if self._outbox and w.alert is not None:
                # Indexed first: a crash between the two leaves an index entry with
                # nothing behind it (harmless), never an alert nobody will find.
                if w.partition is not None:
                    commands.append(("SADD", keys.pending_key(w.partition), w.account_id))
                fields += [keys.outbox_field(w.alert["seq"]), orjson.dumps(w.alert)]
            commands.append(("HSET", keys.state_key(w.account_id), *fields))
            if w.partition is not None:
                due = keys.due_key(w.partition)
                if w.next_change is None:
                    commands.append(("ZREM", due, w.account_id))
                else:
                    commands.append(("ZADD", due, repr(w.next_change), w.account_id))
        return await wire.execute(self._redis, commands, self._timeout)

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
        async with self._redis.pipeline(transaction=False) as pipe:
            for partition in sorted(partitions):
                pipe.zrangebyscore(keys.due_key(partition), "-inf", now, start=0, num=limit)
            replies = await pipe.execute()
        return [(p, _text(account)) for p, accounts in zip(sorted(partitions), replies, strict=True)
                for account in accounts]

    def _context(self, now: float, now_bucket: int, force: bool) -> list[wire.Arg]:
        """The arguments every account's call of one batch starts with."""
        model = self._model
        horizon, max_ids = self._dedup
        return [
            repr(now), now_bucket, oldest_bucket(now_bucket, model.max_window_buckets),
            model.bucket_seconds, self._ttl, self.stamp(now_bucket), repr(horizon), max_ids,
            int(force), len(self._all_windows), *self._all_windows,
            len(self._fields), *self._fields,
        ]

    def _args(self, plan: AccountPlan) -> list[wire.Arg]:
        touched = {self._window_of[name] for name in plan.touched}
        sources = {w.source for w in plan.writes}
        args: list[wire.Arg] = [len(touched), *touched, len(sources), *sources, len(plan.writes)]
        for w in plan.writes:
            # Timestamps and deltas as repr: exact, where Lua numbers keep 14 digits.
            args += [w.source, w.offset, w.event_key, repr(w.ts), w.bucket, len(w.increments)]
            for counter, delta in w.increments:
                args += [counter, repr(delta)]
            args.append(len(w.distinct))
            for pair in w.distinct:
                args += pair
        sets = [(keys.SEEN_PREFIX + t, "1") for t in sorted(plan.seen)]
        deletes = []
        if plan.attrs_changed:
            if plan.attrs is None:
                deletes.append(keys.ATTRS)
            else:
                sets.append((keys.ATTRS, orjson.dumps(plan.attrs).decode()))
        args.append(len(sets))
        for pair in sets:
            args += pair
        args += [len(deletes), *deletes]
        return args


def _state(account_id: str, now_bucket: int, bucket_seconds: int, published_field: str,
           reply: list[bytes | None]) -> AccountState:
    header, attrs, values, published, *seen_flags = reply
    cache_valid, applied, replayed, duplicates, next_change, windows = orjson.loads(header or b"")
    return AccountState(
        account_id=account_id,
        now_bucket=now_bucket,
        cache_valid=cache_valid,
        applied=applied,
        replayed=replayed,
        duplicates=duplicates,
        next_change=None if next_change < 0 else next_change * bucket_seconds,
        # An empty Lua table comes back as {} or [], whichever cjson guesses.
        windows={window: WindowView({k: float(v) for k, v in (sums or {}).items()}, users,
                                    features)
                 for window, sums, users, features in windows or ()},
        attrs=_json(attrs) or {},
        cached_values=(_json(values) or {}) if cache_valid else {},
        published=_json(published),
        seen=frozenset(t for t, flag in zip(EVENT_TYPES, seen_flags, strict=True) if flag),
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _json(value: bytes | str | None) -> Any:
    return None if value is None else orjson.loads(value)
