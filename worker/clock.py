"""Where "now" comes from. Windows end at ``now``; live mode uses the wall clock."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Epoch seconds."""
        ...


class WallClock:
    def now(self) -> float:
        return time.time()


class FixedClock:
    """A clock that moves only when told to: for tests and the explain command."""

    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds
