"""The call that writes accounts' windows (``apply.lua``): pure translation from plans and
held accounts to the script's arguments; ``store`` sends it and reads the replies."""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import MutableSequence, Sequence
from importlib import resources
from typing import Any

import orjson

from worker.scoring.model import Model
from worker.windows import keys, overrides, wire
from worker.windows.buckets import oldest_bucket, state_ttl_seconds
from worker.windows.distinct import admit
from worker.windows.plan import AccountPlan, Totals, distinct_sets
from worker.windows.resident import CAPPED_PREFIX, Resident

# What the script did to one account: its version, the letters of its events, and
# the sums it applied.
Reply = tuple[int, str, Totals]

# An event as ``apply.lua`` unpacks it ('<Hi8c8'): its source's index, its offset, the
# digest of its id (``plan.event_key``, 8 bytes).
_EVENT = struct.Struct("<Hq8s")


class ApplyScript:
    def __init__(self, model: Model, dedup_horizon_seconds: float, dedup_max_ids: int) -> None:
        self.text = resources.files("worker").joinpath("windows", "apply.lua").read_text("utf-8")
        self.sha = hashlib.sha1(self.text.encode()).hexdigest()
        self._bucket_seconds = model.bucket_seconds
        self._max_window = model.max_window_buckets  # a max() over the model's components
        self._ttl = state_ttl_seconds(self._max_window, model.bucket_seconds)
        self._horizon = dedup_horizon_seconds
        # Whole seconds: the horizon needs no more, and Redis stores an integral score in
        # a few bytes where a fraction takes twenty.
        self._ids_ttl = math.ceil(dedup_horizon_seconds + model.bucket_seconds)
        self._max_ids = dedup_max_ids
        self._sets = distinct_sets(model)

    def call(
        self,
        plans: Sequence[AccountPlan],
        residents: Sequence[Resident],
        expected: Sequence[str | None],
        totals: Sequence[Totals],
        now: float,
    ) -> wire.Command:
        """One call for all of ``plans``: each one's keys, then the shared arguments,
        then each one's own (``apply.lua`` lists them)."""
        sets = self._sets
        call: list[wire.Arg] = ["EVALSHA", self.sha, (3 + len(sets)) * len(plans)]
        for plan in plans:
            call += keys.account_keys(plan.account_id, sets)
        call += [math.floor(now), self._ttl, self._ids_ttl, self._max_ids, len(sets), len(plans)]
        for plan, resident, expect, applied in zip(plans, residents, expected, totals, strict=True):
            self._add_account(call, plan, resident, now, expect, applied)
        return call

    def _add_account(
        self,
        args: list[wire.Arg],
        plan: AccountPlan,
        resident: Resident,
        now: float,
        expected: str | None,
        totals: Totals,
    ) -> None:
        if resident.maintained:
            args += [0, 0, 0, 0]
        else:
            members_before, ids_before = self._cutoffs(resident, now)
            args += [1, members_before, ids_before, len(resident.expired), *resident.expired]
        events = plan.events
        pack = _EVENT.pack
        args += [
            len(plan.sources),
            *plan.sources,
            "a" * len(events) if expected is None else expected,
            len(events),
            b"".join([pack(source, offset, key) for source, offset, key, _ in events]),
        ]
        counters = totals.counters
        args.append(len(counters))
        args += [f"{bucket}|{counter}" for bucket, counter in counters]
        # Doubles as they are, exact (text would need a repr per number, and Lua's own
        # tostring keeps 14 digits).
        args.append(struct.pack(f"<{len(counters)}d", *counters.values()))
        members = totals.members
        for name in self._sets:
            latest = members.get(name)
            if latest is None:
                args.append(0)
                continue
            args.append(len(latest))
            for member, ts in latest.items():
                args += [ts, member]
        # seen:<type> holds the newest bucket with an event of the type (1 from versions
        # that kept a flag): written when a batch moves it, once per type and bucket.
        known = resident.seen_bucket
        sets: list[tuple[str, wire.Arg]] = [
            (keys.SEEN_PREFIX + t, bucket)
            for t, bucket in plan.last_bucket.items()
            if bucket > known.get(t, -1)
        ]
        if totals.dropped:  # rare: a set at its bound; the latest time a member was left out
            for name, (_, ts) in totals.dropped.items():
                sets.append((CAPPED_PREFIX + name, max(ts, resident.capped.get(name, ts))))
        deletes = []
        if plan.attrs_changed:
            if plan.attrs is None:
                deletes.append(keys.ATTRS)
            else:
                sets.append((keys.ATTRS, orjson.dumps(plan.attrs).decode()))
        if plan.override is not None:
            sets += overrides.field_sets(plan)
        args.append(len(sets))
        for pair in sets:
            args += pair
        args += [len(deletes), *deletes]

    def _cutoffs(self, resident: Resident, now: float) -> tuple[int, float]:
        """Distinct-set members last seen before the first, and event ids remembered
        since before the second, are out of reach: pruned by maintenance."""
        keep_from = oldest_bucket(resident.bucket, self._max_window)
        return keep_from * self._bucket_seconds, now - self._horizon


def totals_of(
    plans: Sequence[AccountPlan],
    residents: Sequence[Resident],
    expected: Sequence[str | None],
    todo: Sequence[int],
    max_members: int,
) -> list[Totals]:
    """What each account of ``todo`` adds if its events are as ``expected`` (None: all
    applied), its distinct sets bounded at ``max_members``."""
    return [admit(plans[k].totals(expected[k]), residents[k].last_seen, max_members) for k in todo]


def sort_replies(
    todo: Sequence[int],
    totals: Sequence[Totals],
    flat: Sequence[Any],
    expected: MutableSequence[str | None],
    replies: MutableSequence[Reply | None],
) -> list[int]:
    """The script's ``flat`` replies for ``todo`` (version, letters, in pairs) sorted:
    written ones into ``replies``; the accounts it found otherwise than expected are
    returned, their letters now in ``expected`` for the next call."""
    again = []
    for k, t, version, status in zip(todo, totals, flat[::2], flat[1::2], strict=True):
        if version == -1:
            expected[k] = status.decode()
            again.append(k)
        else:
            replies[k] = (version, status.decode(), t)
    return again
