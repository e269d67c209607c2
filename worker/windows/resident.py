"""Accounts held in worker memory: what scoring reads, without reading Redis back.

Redis stays the truth. A resident account is a copy of what scoring needs from
it (each window's counter sums and distinct counts, attributes, the cached
component values, the last published tier), loaded once and then kept equal
to Redis by applying to it exactly the events the apply script reports as
applied. The copy is only trusted while three things hold:

- its ``version`` is one behind what the script returns (every script call
  counts the account's state hash up), so any write by someone else (another
  owner of the partition, a Redis that lost data) is noticed and the account
  loaded again;
- its ``bucket`` is the current one (window sums are per bucket: when the clock
  enters a new one, data may have left a window, so the account is loaded
  again, which sums its counters afresh);
- nothing failed half-way: a failed exchange drops the accounts it touched.

Loading is a pure function of the raw replies (``load``), so it is tested
without Redis.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import orjson

from worker.scoring.mode import Mode
from worker.scoring.override import OverrideState
from worker.scoring.signals import WindowView
from worker.scoring.tierchange import Published
from worker.tuples import make
from worker.windows import overrides
from worker.windows.buckets import bucket_of
from worker.windows.plan import Totals
from worker.windows.published import decode as decode_published

CAPPED_PREFIX = "capped:"  # state hash: capped:<set> -> the latest time of a member left out
NO_CHANGE = -1  # next_change when no data will ever leave a window
CATCH_UP = Mode.CATCH_UP.value.encode()  # the mode field as Redis returns it


class Unknown(Enum):
    UNKNOWN = "unknown"


UNKNOWN = Unknown.UNKNOWN


# ``init=False``, and an ``__init__`` of its own: a dataclass' generated one is Python the
# decorator writes at import (about 11k instructions an account loaded); this one compiles.
@dataclass(slots=True, init=False)
class Resident:
    account_id: str
    bucket: int  # the now-bucket the window sums are for
    windows: tuple[int, ...]  # window lengths in buckets, the model's, ascending
    bucket_seconds: int
    version: int
    partition: int | None
    sums: list[dict[str, float]]  # per window
    # Per set: member -> last-seen epoch seconds, and per window how many are inside it.
    last_seen: dict[str, dict[str, float]]
    counts: dict[str, list[int]]
    next_change: int  # first bucket in which data leaves a window
    attrs: dict[str, Any]
    seen: frozenset[str]
    # event type -> the newest bucket with an event of it (the seen:<type> field)
    seen_bucket: dict[str, int]
    # Component values as last scored, kept in memory only; None until scored after the
    # load. Valid for as long as the account is held: for this bucket (a new one reloads
    # it) and the store's model.
    values: dict[str, float] | None
    # The rescore time last written to the due index (epoch s, None: not due); unknown
    # after a load, so written with the next save.
    scheduled: float | Unknown | None
    published: Published | None
    mode: Mode  # of the last evaluation, as saved: hysteresis may need it
    # Counter fields found expired by the load: deleted by the next maintenance.
    expired: list[str]
    maintained: bool  # pruned and expiries refreshed in this bucket
    # Per set that reached the distinct-member bound: the latest time of a member left
    # out. A window reaching back to it has a count that is a lower bound.
    capped: dict[str, float]
    override: OverrideState | None  # None: the account never had one
    peer_group: str | None  # the group its values are ranked in (``windows.peers``)
    # The windows as scoring sees them, built again only when a distinct count moves
    # (the sums are shared, so counters need no rebuild): most batches move none.
    _view: dict[int, WindowView] | None = field(repr=False, compare=False)

    def __init__(
        self,
        account_id: str,
        bucket: int,
        windows: tuple[int, ...],
        bucket_seconds: int,
        *,
        version: int = 0,
        partition: int | None = None,
        sums: list[dict[str, float]] | None = None,
        last_seen: dict[str, dict[str, float]] | None = None,
        counts: dict[str, list[int]] | None = None,
        attrs: dict[str, Any] | None = None,
        seen: frozenset[str] = frozenset(),
        seen_bucket: dict[str, int] | None = None,
        published: Published | None = None,
        mode: Mode = Mode.LIVE,
        maintained: bool = False,
    ) -> None:
        """``None``: empty (a new dict or list each)."""
        self.account_id = account_id
        self.bucket = bucket
        self.windows = windows
        self.bucket_seconds = bucket_seconds
        self.version = version
        self.partition = partition
        self.sums = [] if sums is None else sums
        self.last_seen = {} if last_seen is None else last_seen
        self.counts = {} if counts is None else counts
        self.next_change = NO_CHANGE
        self.attrs = {} if attrs is None else attrs
        self.seen = seen
        self.seen_bucket = {} if seen_bucket is None else seen_bucket
        self.values = None
        self.scheduled = UNKNOWN
        self.published = published
        self.mode = mode
        self.expired = []
        self.maintained = maintained
        self.capped = {}
        self.override = None
        self.peer_group = None
        self._view = None

    def view(self) -> dict[int, WindowView]:
        if self._view is None:
            view = {}
            counts = self.counts.items()
            for i, w in enumerate(self.windows):
                window_counts = {}
                for name, per_window in counts:
                    window_counts[name] = per_window[i]
                since = (self.bucket - w + 1) * self.bucket_seconds
                end = (self.bucket + 1) * self.bucket_seconds
                view[w] = make(
                    WindowView, (self.sums[i], window_counts, self._capped_since(since), end)
                )
            self._view = view
        return self._view

    def _capped_since(self, since: float) -> frozenset[str]:
        if not self.capped:
            return frozenset()
        return frozenset(name for name, ts in self.capped.items() if ts >= since)

    def left_out(self, dropped: dict[str, tuple[int, float]]) -> None:
        """New members the bound left out, as ``Totals.dropped`` has them."""
        for name, (_, ts) in dropped.items():
            if ts > self.capped.get(name, -1.0):
                self.capped[name] = ts
                self._view = None

    def add(self, totals: Totals) -> None:
        """Events the script applied: add them as the script added them to Redis."""
        self.count(totals.counters.items())
        for name, latest in totals.members.items():
            for member, ts in latest.items():
                self.see(name, member, ts)

    def count(self, deltas: Iterable[tuple[tuple[int, str], float]]) -> None:
        """For each ((bucket, counter), delta): ``delta`` more of ``counter`` in every
        window that holds ``bucket``, asked once for a run of the same bucket (an
        event's counters are one run)."""
        last_bucket = shortest = None
        all_sums = self.sums
        for (bucket, counter), delta in deltas:
            if bucket != last_bucket:
                last_bucket, shortest = bucket, self.leaves(bucket)
            if shortest is not None:
                for sums in all_sums[shortest:]:  # a longer window holds it too
                    sums[counter] = sums.get(counter, 0.0) + delta

    def see(self, name: str, member: str, ts: float) -> None:
        """A member of a distinct set (e.g. users) active at ``ts``: due for a
        rescore when that time leaves a window."""
        members = self.last_seen[name]
        before = members.get(member)
        if before is not None and before >= ts:
            return  # ZADD GT: a late event never moves a last-seen time back
        members[member] = ts
        self.leaves(bucket_of(ts, self.bucket_seconds))
        counts = self.counts[name]
        for i, w in enumerate(self.windows):
            since = (self.bucket - w + 1) * self.bucket_seconds
            if ts >= since and (before is None or before < since):
                counts[i] += 1
                self._view = None

    def leaves(self, bucket: int) -> int | None:
        """Data in ``bucket``: the score may change without any event once it leaves a
        window (silence is a signal), so the account is due for a rescore then.
        Returns the index of the shortest window holding the bucket, if any does."""
        age = self.bucket - bucket
        for i, w in enumerate(self.windows):
            if age < w:  # the shortest window that holds it lets it go first
                at = bucket + w
                if self.next_change == NO_CHANGE or at < self.next_change:
                    self.next_change = at
                return i
        return None


Pairs = Iterable[tuple[bytes, bytes | float]]


def load(
    account_id: str,
    now_bucket: int,
    keep_from: int,
    windows: Sequence[int],
    bucket_seconds: int,
    counters: Pairs,
    members: Iterable[Pairs],
    state: Sequence[bytes | None],
    sets: Sequence[str],
    seen_types: Sequence[str],
) -> Resident:
    """An account from what Redis holds: its counters (field, sum), each of its distinct
    ``sets``' (member, last seen) and its state fields: ver, attrs, the published tier,
    the last evaluation's mode, the seen flags of ``seen_types``, then the
    ``CAPPED_PREFIX`` fields of ``sets``, then its override state."""
    # Loops, not comprehensions (each a function call): a cold account (a silent
    # rescore, every account of a large population) is loaded once per batch it is in.
    n = len(windows)
    version, attrs, published, mode, *flags, override = state
    seen, capped = flags[: len(seen_types)], flags[len(seen_types) :]
    last_seen: dict[str, dict[str, float]] = {}
    counts: dict[str, list[int]] = {}
    for name in sets:
        last_seen[name] = {}
        counts[name] = [0] * n
    resident = Resident(
        account_id,
        now_bucket,
        tuple(windows),
        bucket_seconds,
        version=int(version or 0),
        sums=[{} for _ in windows],
        last_seen=last_seen,
        counts=counts,
        attrs=orjson.loads(attrs) if attrs is not None else {},
        seen=(
            frozenset(t for t, v in zip(seen_types, seen, strict=True) if v)
            if any(seen)
            else frozenset()
        ),
        seen_bucket=(
            {t: int(v) for t, v in zip(seen_types, seen, strict=True) if v} if any(seen) else {}
        ),
        published=decode_published(published) if published is not None else None,
        mode=Mode.CATCH_UP if mode == CATCH_UP else Mode.LIVE,
    )
    if override is not None:
        resident.override = overrides.parse(override)
    if any(capped):
        resident.capped = {
            name: float(ts) for name, ts in zip(sets, capped, strict=True) if ts is not None
        }
    _sum_counters(resident, counters, keep_from)
    cutoff = keep_from * bucket_seconds
    for name, pairs in zip(sets, members, strict=True):
        for member, score in pairs:
            ts = float(score)
            if ts >= cutoff:
                resident.see(name, member.decode(), ts)
    return resident


def _sum_counters(resident: Resident, counters: Pairs, keep_from: int) -> None:
    kept = []
    for field_name, total in counters:
        name = field_name.decode()
        head, _, counter = name.partition("|")
        bucket = int(head)
        if bucket < keep_from:
            resident.expired.append(name)
        else:
            kept.append(((bucket, counter), float(total)))
    kept.sort(key=_bucket)  # a hash table returns its fields in no order
    resident.count(kept)


def _bucket(item: tuple[tuple[int, str], float]) -> int:
    return item[0][0]


class Residents:
    """The accounts held in memory, least recently used dropped first past ``capacity``."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._accounts: OrderedDict[str, Resident] = OrderedDict()

    def __len__(self) -> int:
        return len(self._accounts)

    def get(self, account_id: str, now_bucket: int) -> Resident | None:
        """The account if it is held and current for ``now_bucket``."""
        resident = self._accounts.get(account_id)
        if resident is None:
            return None
        if resident.bucket != now_bucket:
            del self._accounts[account_id]
            return None
        self._accounts.move_to_end(account_id)
        return resident

    def peek(self, account_id: str) -> Resident | None:
        return self._accounts.get(account_id)

    def put(self, resident: Resident) -> None:
        self._accounts[resident.account_id] = resident
        self._accounts.move_to_end(resident.account_id)
        while len(self._accounts) > self._capacity:
            self._accounts.popitem(last=False)

    def drop(self, account_ids: Iterable[str]) -> None:
        for account_id in account_ids:
            self._accounts.pop(account_id, None)

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        gone = set(partitions)
        self.drop([a for a, r in self._accounts.items() if r.partition in gone])

    def clear(self) -> None:
        self._accounts.clear()
