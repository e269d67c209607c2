"""Where "now" comes from. Windows end at ``now``.

Live, ``now`` is the wall clock. A replay of retained topics runs on event time
instead (``EventTimeClock``): windows end at the newest event time seen so far,
so a month of history replayed in minutes ages, expires and de-duplicates the
way it did when it happened, not as if it all arrived at once today.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Epoch seconds."""
        ...

    def observe(self, event_time: float) -> None:
        """The newest event time of a batch about to be applied."""
        ...


class WallClock:
    def now(self) -> float:
        return time.time()

    def observe(self, event_time: float) -> None:
        pass


class EventTimeClock:
    """The event-time watermark: the newest event time observed, never moving back.

    Late events (older than the watermark) land in their own buckets as usual;
    only events older than the longest window behind the watermark are dropped,
    as they would have been live.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def observe(self, event_time: float) -> None:
        self._now = max(self._now, event_time)


class FixedClock:
    """A clock that moves only when told to: for tests and the explain command."""

    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now

    def observe(self, event_time: float) -> None:
        pass

    def advance(self, seconds: float) -> None:
        self._now += seconds
