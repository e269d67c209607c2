"""The Redis edge of the window store: one pipelined script call per chunk of accounts.

The script writes and fences; what scoring reads comes from the accounts held
in memory (``resident``), loaded from Redis when they are not held or not
current. Everything here is translation between plain data (``AccountPlan``
in, ``AccountState`` out) and Redis commands; the decisions are made in
``plan`` (what to write) and ``worker.scoring`` (what it means).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from worker.scoring.model import Model
from worker.scoring.peers import percentile_components
from worker.scoring.vocabulary import event_types
from worker.settings import Settings
from worker.windows import keys, overrides, saving, server, state, wire
from worker.windows.buckets import bucket_of, oldest_bucket
from worker.windows.outbox import Outbox
from worker.windows.peers import PeerSets
from worker.windows.plan import AccountPlan, distinct_sets
from worker.windows.resident import CAPPED_PREFIX, Resident, Residents, load
from worker.windows.schedule import Schedule
from worker.windows.script import ApplyScript
from worker.windows.scriptcall import ScriptCalls
from worker.windows.state import AccountState, StateWrite, state_of
from worker.windows.tierindex import TierIndex
from worker.windows.wire import Client

SAVE_CHUNK = 500  # accounts per exchange of a save


class WindowStore:
    @classmethod
    def from_settings(
        cls,
        redis: Client,
        model: Model,
        settings: Settings,
        *,
        published_field: str = keys.PUBLISHED,
    ) -> WindowStore:
        """The store as ``settings`` configure it, for every command that reads or writes
        windows. Only the live chain keeps an outbox (see ``published_field``)."""
        return cls(
            redis,
            model,
            dedup_horizon_seconds=settings.dedup_horizon_seconds,
            dedup_max_ids=settings.dedup_max_ids,
            published_field=published_field,
            outbox=published_field == keys.PUBLISHED,
            timeout=settings.redis_timeout_seconds,
            resident_accounts=settings.resident_accounts,
            max_distinct_members=settings.max_distinct_members,
            durability=server.Durability.of(settings),
        )

    def __init__(
        self,
        redis: Client,
        model: Model,
        *,
        dedup_horizon_seconds: float = 86400.0,
        dedup_max_ids: int = 5000,
        published_field: str = keys.PUBLISHED,
        outbox: bool = True,
        timeout: float = 10.0,
        resident_accounts: int = 50_000,
        max_distinct_members: int = 25_000,
        durability: server.Durability | None = None,
    ) -> None:
        """``published_field``: where the last published tier is kept; a replay that
        publishes its own trail keeps its chain apart from the live one, and needs no
        ``outbox`` (a trail is history, not a promise to consumers). ``timeout``: the
        longest wait for one batch's replies. ``resident_accounts``: how many accounts
        are held in memory at most. ``max_distinct_members``: the bound on each distinct
        set of an account (``distinct``). ``durability``: what ``durable`` waits for."""
        self._timeout = timeout
        self._durability = durability or server.Durability()
        self._redis = redis
        # Saved with the state in one MULTI, read and cleared on their own.
        self.outbox = Outbox(redis, timeout, enabled=outbox)
        self.schedule = Schedule(redis, timeout)
        self.tiers = TierIndex(redis, timeout)
        self.peers = PeerSets(redis, timeout)
        self._published_field = published_field
        self._script_limits = (dedup_horizon_seconds, dedup_max_ids, max_distinct_members)
        self._residents = Residents(resident_accounts)
        self._use(model)

    def use(self, model: Model) -> None:
        """Score by ``model`` from now on (a model reloaded live, with the same bucket): the
        accounts held are dropped, so each is loaded again with the windows it reads."""
        if model.bucket_seconds != self._model.bucket_seconds:
            raise ValueError("the bucket of a model in use cannot change")
        self._residents.clear()
        self._use(model)

    def _use(self, model: Model) -> None:
        horizon, max_ids, max_members = self._script_limits
        self._model = model
        self._calls = ScriptCalls(
            self._redis, ApplyScript(model, horizon, max_ids), self._timeout, max_members
        )
        self._all_windows = model.window_lengths  # a trend's previous window included
        self._max_window = model.max_window_buckets  # a max() over the model's spans
        self._sets = distinct_sets(model)  # the ones its signals read
        self._seen_types = event_types()  # each has a seen:<type> field in the state hash
        # In the order ``resident.load`` reads them.
        self._fields = [
            keys.VERSION,
            keys.ATTRS,
            self._published_field,
            keys.MODE,
            *(keys.SEEN_PREFIX + t for t in self._seen_types),
            *(CAPPED_PREFIX + name for name in self._sets),
            keys.OVERRIDE,
        ]
        # Only a model with percentile components reads it: none other pays for it.
        self._peers = bool(percentile_components(model))
        if self._peers:
            self._fields.append(keys.PEERS)

    def now_bucket(self, now: float) -> int:
        return bucket_of(now, self._model.bucket_seconds)

    async def apply(
        self, plans: Sequence[AccountPlan], now: float, *, read_all: bool = False
    ) -> list[AccountState]:
        """Write each plan; what rescoring needs comes from the accounts held in memory
        (loaded first if they are not). ``read_all``: every component is recomputed."""
        if not plans:
            return []
        now_bucket = self.now_bucket(now)
        try:
            residents = await self._residents_of([p.account_id for p in plans], now_bucket)
            overrides.receive_all(plans, residents)
            replies = await self._calls.run(plans, residents, now)
            stale = state.stale(residents, replies)
            fresh = dict(zip(stale, await self._load(stale, now_bucket), strict=True))
        except BaseException:  # whether the scripts ran is unknown: load these again
            self._residents.drop(p.account_id for p in plans)
            raise
        return state.settle(
            plans, residents, replies, fresh, self._residents, read_all, self._model.bucket_seconds
        )

    async def _residents_of(self, account_ids: Sequence[str], now_bucket: int) -> list[Resident]:
        held = [self._residents.get(a, now_bucket) for a in account_ids]
        missing = [a for a, r in zip(account_ids, held, strict=True) if r is None]
        loaded = iter(await self._load(missing, now_bucket))
        return [r if r is not None else next(loaded) for r in held]

    async def _load(self, account_ids: Sequence[str], now_bucket: int) -> list[Resident]:
        if not account_ids:
            return []
        commands: list[wire.Command] = []
        sets, width = self._sets, 2 + len(self._sets)
        for account_id in account_ids:
            counters, state_key, _, *members = keys.account_keys(account_id, sets)
            commands += [("HGETALL", counters), ("HMGET", state_key, *self._fields)]
            for key in members:
                commands.append(("ZRANGE", key, 0, -1, "WITHSCORES"))
        replies = await wire.execute(self._redis, commands, self._timeout)
        keep_from = oldest_bucket(now_bucket, self._max_window)
        loaded = [
            load(
                account_id,
                now_bucket,
                keep_from,
                self._all_windows,
                self._model.bucket_seconds,
                _pairs(replies[at]),
                map(_pairs, replies[at + 2 : at + width]),
                replies[at + 1][:-1] if self._peers else replies[at + 1],
                sets,
                self._seen_types,
            )
            for account_id, at in zip(account_ids, range(0, len(replies), width), strict=True)
        ]
        if self._peers:
            for resident, at in zip(loaded, range(0, len(replies), width), strict=True):
                group = replies[at + 1][-1]
                resident.peer_group = None if group is None else wire.text(group)
        return loaded

    async def load_script(self) -> None:
        """Load the apply script now: at start-up, a user not allowed to is told at once."""
        await self._calls.load()

    async def read(self, account_id: str, now: float) -> AccountState:
        """The account's current state as Redis has it (for ``explain``); writes nothing."""
        [resident] = await self._load([account_id], self.now_bucket(now))
        return state_of(resident, "", True, self._model.bucket_seconds)

    def held(self, account_id: str, now: float) -> AccountState | None:
        """The account as held in memory, if it is, with its component values as last
        scored (for inspection and tests)."""
        resident = self._residents.get(account_id, self.now_bucket(now))
        if resident is None:
            return None
        return state_of(resident, "", False, self._model.bucket_seconds)

    def unhold(self, account_id: str) -> None:
        """Drop what is held of the account: it is loaded again when next scored."""
        self._residents.drop([account_id])

    def ranked_in(self, account_id: str, group: str | None) -> None:
        """The account's values are now in ``group``'s peer sets (``windows.peers``)."""
        resident = self._residents.peek(account_id)
        if resident is not None:
            resident.peer_group = group

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
        state.remember(writes, self._residents)

    async def _save(self, writes: Sequence[StateWrite]) -> list[Any]:
        """Only what changed: a new tier (with its alert in the outbox), a new time to
        rescore, a new mode. Component values stay in memory, recomputed after a load:
        writing them every batch cost more than computing them again."""
        commands, starts = saving.batch(
            writes,
            self._residents,
            published_field=self._published_field,
            outbox=self.outbox.enabled,
        )
        return await wire.execute(self._redis, commands, self._timeout, ordered=starts)

    async def durable(self) -> None:
        """Until what was written so far is as durable as configured (``server.wait``)."""
        await server.wait(self._redis, self._durability, self._timeout)


def _pairs(reply: Any) -> Iterable[tuple[bytes, bytes | float]]:
    """A hash's or a sorted set's (name, value) pairs, whichever protocol answered: RESP3
    gives a map or [member, score] pairs, RESP2 one flat list."""
    if isinstance(reply, dict):
        return reply.items()
    if reply and isinstance(reply[0], list):
        return [(name, value) for name, value in reply]
    it = iter(reply)
    return zip(it, it, strict=True)
