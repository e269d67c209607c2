"""The commands that save one account's write: its mode, a new published tier with
its alert in the outbox (``outbox``) and its move between the tier indexes
(``tierindex``), and its place in the due schedule (``schedule``). Only what
changed is written; a new tier of the live chain and its index move share one MULTI
(on a Redis Cluster they span slots: sent in order instead, ``cluster``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from worker.alerts import Alert
from worker.scoring.mode import Mode
from worker.scoring.override import OverrideState
from worker.scoring.tierchange import Published
from worker.windows import keys, overrides, published, schedule, tierindex, wire
from worker.windows.outbox import save_commands
from worker.windows.resident import Residents


class Write(Protocol):
    """What scoring decided to remember about an account (``store.StateWrite``)."""

    @property
    def account_id(self) -> str: ...
    @property
    def partition(self) -> int | None: ...
    @property
    def next_change(self) -> float | None: ...
    @property
    def published(self) -> Published | None: ...
    @property
    def alert(self) -> Alert | None: ...
    @property
    def override(self) -> OverrideState | None: ...
    @property
    def mode(self) -> Mode: ...


def batch(
    writes: Sequence[Write], held: Residents, *, published_field: str, outbox: bool
) -> tuple[list[wire.Command], list[int]]:
    """The commands of all ``writes``, and where each account's begin (they stay in
    order, in one exchange). What the copies ``held`` say Redis has is not written."""
    found: list[wire.Command] = []
    starts = []
    for w in writes:
        starts.append(len(found))
        resident = held.peek(w.account_id)
        # None when Redis has the mode; the due index may have the time already.
        mode = None if resident is not None and resident.mode is w.mode else w.mode
        scheduled = resident is not None and resident.scheduled == w.next_change
        found += commands(w, mode, scheduled, published_field=published_field, outbox=outbox)
    return found, starts


def commands(
    write: Write, mode: Mode | None, scheduled: bool, *, published_field: str, outbox: bool
) -> list[wire.Command]:
    """``mode``: the mode to save, None when Redis has it. ``scheduled``: the schedule
    has the account at ``write.next_change`` already. ``outbox``: alerts go in it."""
    state = keys.state_key(write.account_id)
    found: list[wire.Command] = []
    if mode is Mode.LIVE:
        found.append(("HDEL", state, keys.MODE))
    elif mode is Mode.CATCH_UP and write.published is None:
        found.append(("HSET", state, keys.MODE, mode.value))
    if write.published is not None:
        found += _publish(write, write.published, mode, published_field, outbox)
    if write.override is not None:  # scoring changed it (an expiry): records did not
        found.append(("HSET", state, keys.OVERRIDE, overrides.dumps(write.override)))
    if write.partition is not None and not scheduled:
        found.append(schedule.reschedule(write.partition, write.account_id, write.next_change))
    return found


def _publish(
    write: Write, tier: Published, mode: Mode | None, published_field: str, outbox: bool
) -> list[wire.Command]:
    """A new published tier with its alert in the outbox; the live chain's also moves
    the account between the tier indexes in the same MULTI, so the index never
    disagrees with ``pub``. Only tier changes pay for it."""
    found: list[wire.Command] = []
    fields: list[wire.Arg] = [published_field, published.encode(tier)]
    if mode is Mode.CATCH_UP:  # a new account in a backfill: one command
        fields += [keys.MODE, mode.value]
    if outbox and write.alert is not None:
        index, entry = save_commands(write.partition, write.account_id, write.alert)
        found += index
        fields += entry
    save = ("HSET", keys.state_key(write.account_id), *fields)
    if published_field != keys.PUBLISHED or write.alert is None:
        return [*found, save]
    moved = tierindex.move(write.account_id, write.alert.previous_tier, write.alert.tier)
    return [*found, ("MULTI",), save, *moved, ("EXEC",)]
