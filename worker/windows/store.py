"""The Redis edge of the window store: one pipelined script call per chunk of accounts.

The script writes and fences; what scoring reads comes from the accounts held
in memory (``resident``), loaded from Redis when they are not held or not
current. Everything here is translation between plain data (``AccountPlan``
in, ``AccountState`` out) and Redis commands; the decisions are made in
``plan`` (what to write) and ``worker.scoring`` (what it means).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any, NamedTuple

from worker.alerts import Alert
from worker.scoring.mode import Mode
from worker.scoring.model import Model
from worker.scoring.override import OverrideState
from worker.scoring.peers import percentile_components
from worker.scoring.signals import WindowView
from worker.scoring.tierchange import Published
from worker.scoring.vocabulary import event_types
from worker.settings import Settings
from worker.windows import keys, overrides, saving, server, wire
from worker.windows.buckets import bucket_of, oldest_bucket
from worker.windows.outbox import Outbox
from worker.windows.peers import PeerSets
from worker.windows.plan import AccountPlan, Totals, distinct_sets
from worker.windows.resident import CAPPED_PREFIX, NO_CHANGE, Resident, Residents, load
from worker.windows.schedule import Schedule
from worker.windows.script import ApplyScript
from worker.windows.scriptcall import ScriptCalls
from worker.windows.tierindex import TierIndex
from worker.windows.wire import Client

SAVE_CHUNK = 500  # accounts per exchange of a save


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
    published: Published | None
    seen: frozenset[str]
    last_mode: Mode  # of the account's evaluation before this one
    left_out: dict[str, int] | None = None  # set -> new members not tracked: it was full
    seen_bucket: dict[str, int] | None = None  # event type -> its newest bucket (explain)
    override: OverrideState | None = None  # after the batch's override records
    peer_group: str | None = None  # the peer group its values are in; None: none yet


class StateWrite(NamedTuple):
    """What scoring decided to remember about an account."""

    account_id: str
    values: dict[str, float]
    partition: int | None = None
    next_change: float | None = None  # when to rescore the account if it stays silent
    published: Published | None = None  # set only when a new tier was published
    alert: Alert | None = None  # the alert that publishes it: into the outbox
    mode: Mode = Mode.LIVE  # of this evaluation: the next one asks it (saved when it changes)
    override: OverrideState | None = None  # set when scoring changed it (an expiry)


class WindowStore:
    @classmethod
    def from_settings(cls, redis: Client, model: Model, settings: Settings, *,
                      published_field: str = keys.PUBLISHED) -> WindowStore:
        """The store as ``settings`` configure it, for every command that reads or writes
        windows. Only the live chain keeps an outbox (see ``published_field``)."""
        return cls(redis, model, dedup_horizon_seconds=settings.dedup_horizon_seconds,
                   dedup_max_ids=settings.dedup_max_ids, published_field=published_field,
                   outbox=published_field == keys.PUBLISHED,
                   timeout=settings.redis_timeout_seconds,
                   resident_accounts=settings.resident_accounts,
                   max_distinct_members=settings.max_distinct_members,
                   durability=server.Durability.of(settings))

    def __init__(self, redis: Client, model: Model, *, dedup_horizon_seconds: float = 86400.0,
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
        self._calls = ScriptCalls(self._redis, ApplyScript(model, horizon, max_ids),
                                  self._timeout, max_members)
        self._all_windows = model.window_lengths  # a trend's previous window included
        self._max_window = model.max_window_buckets  # a max() over the model's spans
        self._sets = distinct_sets(model)  # the ones its signals read
        self._seen_types = event_types()  # each has a seen:<type> field in the state hash
        # In the order ``resident.load`` reads them.
        self._fields = [keys.VERSION, keys.ATTRS, self._published_field, keys.MODE,
                        *(keys.SEEN_PREFIX + t for t in self._seen_types),
                        *(CAPPED_PREFIX + name for name in self._sets), keys.OVERRIDE]
        # Only a model with percentile components reads it: none other pays for it.
        self._peers = bool(percentile_components(model))
        if self._peers:
            self._fields.append(keys.PEERS)

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
            overrides.receive_all(plans, residents)
            replies = await self._calls.run(plans, residents, now)
            stale = [r.account_id for r, (version, _, _) in zip(residents, replies, strict=True)
                     if version != r.version + 1]
            fresh = dict(zip(stale, await self._load(stale, now_bucket), strict=True))
        except BaseException:  # whether the scripts ran is unknown: load these again
            self._residents.drop(p.account_id for p in plans)
            raise
        states = []
        for plan, resident, (version, status, totals) in zip(plans, residents, replies,
                                                            strict=True):
            if resident.account_id in fresh:  # someone else wrote too: Client has it all
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
        sets, width = self._sets, 2 + len(self._sets)
        for account_id in account_ids:
            counters, state, _, *members = keys.account_keys(account_id, sets)
            commands += [("HGETALL", counters), ("HMGET", state, *self._fields)]
            for key in members:
                commands.append(("ZRANGE", key, 0, -1, "WITHSCORES"))
        replies = await wire.execute(self._redis, commands, self._timeout)
        keep_from = oldest_bucket(now_bucket, self._max_window)
        loaded = [load(account_id, now_bucket, keep_from, self._all_windows,
                       self._model.bucket_seconds, _pairs(replies[at]),
                       map(_pairs, replies[at + 2:at + width]),
                       replies[at + 1][:-1] if self._peers else replies[at + 1],
                       sets, self._seen_types)
                  for account_id, at in zip(account_ids, range(0, len(replies), width),
                                            strict=True)]
        if self._peers:
            for resident, at in zip(loaded, range(0, len(replies), width), strict=True):
                group = replies[at + 1][-1]
                resident.peer_group = None if group is None else wire.text(group)
        return loaded

    async def load_script(self) -> None:
        """Load the apply script now: at start-up, a user not allowed to is told at once."""
        await self._calls.load()

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
            peer_group=resident.peer_group,
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
        starts = []  # an account's commands stay in order, in one chunk
        for w in writes:
            starts.append(len(commands))
            commands += saving.commands(w, self._mode_change(w), self._scheduled(w),
                                        published_field=self._published_field,
                                        outbox=self.outbox.enabled)
        return await wire.execute(self._redis, commands, self._timeout, ordered=starts)

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




def _pairs(reply: Any) -> Iterable[tuple[bytes, bytes | float]]:
    """A hash's or a sorted set's (name, value) pairs, whichever protocol answered: RESP3
    gives a map or [member, score] pairs, RESP2 one flat list."""
    if isinstance(reply, dict):
        return reply.items()
    if reply and isinstance(reply[0], list):
        return [(name, value) for name, value in reply]
    it = iter(reply)
    return zip(it, it, strict=True)
