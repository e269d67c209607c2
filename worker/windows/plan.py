"""What one batch does to one account's windows: pure, so it is tested without Redis.

Each event adds to counters in the bucket of its own timestamp (late events
land where they belong) and refreshes the last-seen time of its members (its
user, its feature, as the vocabulary says) in the distinct sets the model reads. Events older than the longest window cannot
change any score: they are counted and dropped.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from worker.events.types import AccountUpdate, Event, Override
from worker.scoring.model import Model
from worker.scoring.override import OverrideState
from worker.scoring.signals import Feed
from worker.scoring.vocabulary import VOCABULARY
from worker.tuples import make
from worker.windows.buckets import oldest_bucket


def distinct_sets(model: Model) -> tuple[str, ...]:
    """The distinct sets the model's signals read, in a fixed order: those a window
    holds (any others an event type feeds are not kept)."""
    return tuple(sorted({name for c in model.components for name in c.signal.distinct}))


# One event of a plan: the index of its source in ``AccountPlan.sources`` (from 1, as
# Lua counts), its offset there, the digest of its (type, event id) for producer-duplicate
# detection, and the event. A plain tuple: one is made per event, where a named tuple's
# constructor costs several times as much.
Written = tuple[int, int, bytes, Event]


class Totals(NamedTuple):
    """What some events add up to, as Redis and the held account take them: summed
    counter deltas per (bucket, counter), and each distinct-set member's latest time."""

    counters: dict[tuple[int, str], float]
    members: dict[str, dict[str, float]]  # set -> member -> latest ts
    # set -> (new members left out, the latest time of one): the set was full
    # (``distinct.admit``); None when none was
    dropped: dict[str, tuple[int, float]] | None = None


# init=False: a dataclass's own __init__ is Python code even in the compiled build (the
# decorator writes it at import), about 7k instructions per plan; this one compiles.
@dataclass(slots=True, init=False)
class AccountPlan:
    """The writes of one batch to one account, and what needs rescoring after."""

    account_id: str
    partition: int | None  # of its records; co-partitioning makes it one number
    # Each event to apply at most once (fenced by its source offset and id), in order.
    events: list[Written]
    # "topic:partition" of the events: whose applied offset fences each of them
    sources: dict[str, int]
    # What all of ``events`` add up to, summed as they are planned (``Totals``): the
    # script is first asked to apply them all, as nearly every call does.
    counters: dict[tuple[int, str], float]
    members: dict[str, dict[str, float]]
    seen: set[str]
    # event type -> the newest bucket of its events: saved as the account's seen:<type>
    # when it is newer than the one Redis has (once per type and bucket, not per event)
    last_bucket: dict[str, int]
    attrs: dict[str, Any] | None
    attrs_changed: bool
    touched: set[str]  # component names
    too_old: int
    # The time of its newest record (event ts, account update record timestamp); for a
    # rescore without records, the time its windows end at. Decides live or catch-up.
    newest: float
    # The batch's override records, and the account's override state after them (set
    # by the store from the held account, None: unchanged) with what happened to it.
    overrides: list[Override]
    override: OverrideState | None
    override_events: list[str]
    # Sums the events again for ``totals`` of some of them (set with the first event).
    planner: Planner | None = field(compare=False, repr=False)

    def __init__(
        self,
        account_id: str,
        partition: int | None = None,
        *,
        too_old: int = 0,
        newest: float = -math.inf,
    ) -> None:
        self.account_id = account_id
        self.partition = partition
        self.events = []
        self.sources = {}
        self.counters = {}
        self.members = {}
        self.seen = set()
        self.last_bucket = {}
        self.attrs = None
        self.attrs_changed = False
        self.touched = set()
        self.too_old = too_old
        self.newest = newest
        self.overrides = []
        self.override = None
        self.override_events = []
        self.planner = None

    def totals(self, status: str | None = None) -> Totals:
        """The sum of the events whose ``status`` letter is "a" (applied); all if None."""
        if status is None or self.planner is None or status == "a" * len(self.events):
            return make(Totals, (self.counters, self.members, None))
        counters: dict[tuple[int, str], float] = {}
        members: dict[str, dict[str, float]] = {}
        for (_, _, _, event), letter in zip(self.events, status, strict=True):
            if letter == "a":
                self.planner.add(counters, members, event)
        return make(Totals, (counters, members, None))


def event_key(event_type: str, event_id: str) -> bytes:
    # Raw bytes, not hex: an account remembers thousands. 64 bits keep a false
    # "duplicate" (an event dropped) below one in 10^12 per account and horizon.
    # Producers make ids unique per event type only (a ticket may reuse a login's id),
    # so the type personalises the digest: the same id under two types is two events.
    return hashlib.blake2b(event_id.encode(), digest_size=8, person=event_type.encode()).digest()


class Planner:
    """Built once per model: knows which counters matter and what each event touches."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self._used_counters = frozenset(
            name for c in model.components for name in c.signal.counters
        )
        used_distinct = distinct_sets(model)
        self._increments = {name: t.increments for name, t in VOCABULARY.items()}
        # Per event type, the (set, body field) pairs of the sets the model reads.
        self._members = {
            name: tuple((d, t.distinct[d]) for d in used_distinct if d in t.distinct)
            for name, t in VOCABULARY.items()
        }
        self._touches = {
            event_type: frozenset(
                c.name for c in model.components if event_type in c.signal.sources
            )
            for event_type in VOCABULARY
        }
        self._max_window_buckets = model.max_window_buckets
        self._attribute_components = frozenset(
            c.name for c in model.components if c.signal.attributes
        )
        self._feeds = _feeds_by_type(model)  # the model file's signals; most models: none
        self._bucket_seconds = model.bucket_seconds
        self._source_names: dict[tuple[str, int], str] = {}  # (topic, partition) -> name

    def plan(
        self, account_id: str, records: Iterable[Event | AccountUpdate | Override], now_bucket: int
    ) -> AccountPlan:
        plan = AccountPlan(account_id)
        keep_from = oldest_bucket(now_bucket, self._max_window_buckets)
        newest = -math.inf
        for record in records:
            plan.partition = record.source.partition
            if isinstance(record, AccountUpdate):
                plan.attrs, plan.attrs_changed = record.attrs, True
                plan.touched |= self._attribute_components
            elif isinstance(record, Override):
                plan.overrides.append(record)
            elif not self._add_event(plan, record, keep_from):
                continue  # too old: leaves no trace, not even in ``newest``
            if record.ts > newest:  # not max(): this runs once per event
                newest = record.ts
        plan.newest = newest
        return plan

    def _add_event(self, plan: AccountPlan, event: Event, keep_from: int) -> bool:
        """False for an event too old to change any score (counted, not written)."""
        event_type = event.type
        bucket = self.add(plan.counters, plan.members, event, keep_from)
        if bucket is None:
            plan.too_old += 1
            return False
        plan.seen.add(event_type)
        if bucket > plan.last_bucket.get(event_type, -1):
            plan.last_bucket[event_type] = bucket
        plan.touched |= self._touches[event_type]
        source = event.source
        name = self._source_names.get(source[:2])
        if name is None:  # once per topic and partition
            name = self._source_names[source[:2]] = f"{source.topic}:{source.partition}"
        index = plan.sources.get(name)
        if index is None:
            index = plan.sources[name] = len(plan.sources) + 1
            plan.planner = self
        plan.events.append((index, source.offset, event_key(event_type, event.event_id), event))
        return True

    def add(
        self,
        counters: dict[tuple[int, str], float],
        members: dict[str, dict[str, float]],
        event: Event,
        keep_from: int | None = None,
    ) -> int | None:
        """Add what ``event`` writes to ``counters`` (summed per bucket and counter) and
        ``members`` (each member's latest time); returns its bucket, or None (nothing
        added) when it is older than ``keep_from``. Planning sums a batch's events here
        as it goes, and ``AccountPlan.totals`` some of them again the same way, so a sum
        is the same floats added in the same order either way."""
        ts = event.ts
        bucket = math.floor(ts / self._bucket_seconds)  # ``bucket_of``, inlined: per event
        if keep_from is not None and bucket < keep_from:
            return None
        event_type = event.type
        body = event.body
        used = self._used_counters
        for counter, delta in self._increments[event_type](body):
            if counter in used:
                key = (bucket, counter)
                counters[key] = counters.get(key, 0.0) + delta
        for name, source_field in self._members[event_type]:
            member = body.get(source_field)
            if member is not None:  # ``_see``, inlined: per event and set
                latest = members.get(name)
                if latest is None:
                    members[name] = {member: ts}
                elif ts > latest.get(member, ts - 1):
                    latest[member] = ts
        feeds = self._feeds.get(event_type)
        if feeds is not None:
            _fed(feeds, body, bucket, ts, counters, members)
        return bucket


def _see(members: dict[str, dict[str, float]], name: str, member: str, ts: float) -> None:
    """``member`` of the set ``name`` seen at ``ts``: its latest time is kept."""
    latest = members.get(name)
    if latest is None:
        members[name] = {member: ts}
    elif ts > latest.get(member, ts - 1):
        latest[member] = ts


def _feeds_by_type(model: Model) -> dict[str, tuple[Feed, ...]]:
    """Per event type, the feeds of the model's custom signals (each counter or set once)."""
    feeds: dict[str, dict[str, Feed]] = {}
    for c in model.components:
        for feed in c.signal.feeds:
            feeds.setdefault(feed.event_type, {})[feed.key] = feed
    return {t: tuple(by_key.values()) for t, by_key in feeds.items()}


def _fed(
    feeds: tuple[Feed, ...],
    body: dict[str, Any],
    bucket: int,
    ts: float,
    counters: dict[tuple[int, str], float],
    members: dict[str, dict[str, float]],
) -> None:
    """Add what ``feeds`` (a model file's signals) take of this body: counter increments
    after the vocabulary's, members after the vocabulary's."""
    seen: list[tuple[str, str]] = []
    for _type, key, test, source_field, is_set in feeds:
        if test is not None and not test(body):
            continue
        if is_set:
            member = body.get(source_field)  # type: ignore[arg-type]
            if member is not None:
                seen.append((key, member if type(member) is str else str(member)))
            continue
        if source_field is None:
            delta = 1.0
        else:
            value = body.get(source_field)
            if type(value) is not int and type(value) is not float:  # bool, None: nothing
                continue
            delta = float(value)
        counters[(bucket, key)] = counters.get((bucket, key), 0.0) + delta
    for name, member in seen:
        _see(members, name, member, ts)
