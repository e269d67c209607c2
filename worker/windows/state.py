"""An account as scoring sees it after its batch's writes (``AccountState``), what scoring
decides to remember of it (``StateWrite``), and the held copy brought up to date with
what the apply script did: plain data between the Redis edge (``store``) and scoring."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from worker.alerts import Alert
from worker.scoring.mode import Mode
from worker.scoring.override import OverrideState
from worker.scoring.signals import WindowView
from worker.scoring.tierchange import Published
from worker.tuples import make
from worker.windows.plan import AccountPlan, Totals
from worker.windows.resident import NO_CHANGE, Resident, Residents
from worker.windows.script import Reply


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


def state_of(
    resident: Resident,
    status: str,
    read_all: bool,
    bucket_seconds: int,
    dropped: dict[str, tuple[int, float]] | None = None,
) -> AccountState:
    """The held account as scoring reads it; ``read_all``: its component values are
    computed again from its windows (a rescore with no event), not taken as held."""
    cached = None if read_all else resident.values
    next_change = resident.next_change
    # Every field, in order (``tuples.make``): one is made per account and batch.
    return make(
        AccountState,
        (
            resident.account_id,
            resident.bucket,
            cached is not None,
            status,
            status.count("a"),
            status.count("r"),
            status.count("d"),
            None if next_change == NO_CHANGE else next_change * bucket_seconds,
            resident.view(),
            resident.attrs,
            cached or {},
            resident.published,
            resident.seen,
            resident.mode,
            None if dropped is None else {n: c for n, (c, _) in dropped.items()},
            resident.seen_bucket,
            resident.override,
            resident.peer_group,
        ),
    )


def applied(resident: Resident, plan: AccountPlan, totals: Totals, version: int) -> None:
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


def stale(residents: Sequence[Resident], replies: Sequence[Reply]) -> list[str]:
    """The accounts someone else wrote too: the script's version is not one past the
    copy's, so the copy is loaded again."""
    return [
        r.account_id
        for r, (version, _, _) in zip(residents, replies, strict=True)
        if version != r.version + 1
    ]


def settle(
    plans: Sequence[AccountPlan],
    residents: Sequence[Resident],
    replies: Sequence[Reply],
    fresh: Mapping[str, Resident],
    held: Residents,
    read_all: bool,
    bucket_seconds: int,
) -> list[AccountState]:
    """The held copies brought up to what the script did (or replaced by ``fresh``
    loads), held again, and each account as scoring reads it."""
    states = []
    for plan, resident, (version, status, totals) in zip(plans, residents, replies, strict=True):
        loaded = fresh.get(resident.account_id)
        if loaded is not None:  # someone else wrote too: the load has it all
            resident = loaded
        else:
            applied(resident, plan, totals, version)
        if plan.partition is not None:
            resident.partition = plan.partition
        held.put(resident)
        states.append(state_of(resident, status, read_all, bucket_seconds, totals.dropped))
    return states


def remember(writes: Sequence[StateWrite], held: Residents) -> None:
    """What a save wrote, in the copies held: the next save writes only what changes."""
    for w in writes:
        resident = held.peek(w.account_id)
        if resident is not None:
            resident.values = w.values
            resident.scheduled = w.next_change
            resident.mode = w.mode
            if w.published is not None:
                resident.published = w.published
            if w.override is not None:
                resident.override = w.override
