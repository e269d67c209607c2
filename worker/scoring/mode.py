"""Live or catching up: whether an evaluation of an account speaks of the present.

An account is *catching up* while the records applied to it are history: older
than a lag behind the present (a backlog after an outage, a backfill, a replay).
How such history is cut into batches is an accident of the run, so a tier decided
on part of it must not stick: hysteresis, which keeps the tier last published
while the score hovers within the margin of a boundary, applies only between two
live evaluations. Everywhere else the tier is the plain tier of the score, and the
same input ends in the same tiers whatever the batch sizes.

Pure: the caller reads the clocks and passes numbers.
"""

from __future__ import annotations

from enum import StrEnum


class Mode(StrEnum):
    LIVE = "live"
    CATCH_UP = "catch_up"


def evaluation_mode(newest: float, present: float, lag: float) -> Mode:
    """The mode of one account's evaluation in one batch.

    ``newest``: the time of the newest record applied in it (an event's ``ts``, an
    account update's record timestamp), or for a rescore without records the time
    the windows end at (the scoring clock's now); ``present``: the real wall clock,
    not a replay's event-time clock, which trails it; ``lag``: how far behind the
    present records may be and still count as live (seconds)."""
    return Mode.CATCH_UP if newest < present - lag else Mode.LIVE


def hysteresis_applies(mode: Mode, previous: Mode) -> bool:
    """Whether this evaluation keeps the published tier within the margin: only when it
    and the account's evaluation before it were both live. The first live one after a
    catch-up decides on the score alone, wherever the catch-up's batches were cut."""
    return mode is Mode.LIVE and previous is Mode.LIVE
