"""The scoring model as plain data: components, tiers and the margin between them.

Reading, checking and compiling a model file is ``worker.modelfile``'s: this package
does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.scoring.curves import Curve
from worker.scoring.signals import Signal


@dataclass(frozen=True, slots=True)
class Component:
    name: str
    signal: Signal
    window_buckets: int
    weight: float
    curve: Curve
    description: str = ""
    # "signal": an account that sent its source events once but none within the window
    # scores on zeros; "unknown": it is left out, like a component never fed.
    silence: str = "signal"
    # "previous": the raw value is the signal's change in percent from the window of the
    # same length before (``worker.scoring.trend``); None: the signal's value itself.
    trend: str | None = None

    @property
    def span_buckets(self) -> int:
        """How far back it reads: a trend reads its window and the one before it."""
        return self.window_buckets * 2 if self.trend is not None else self.window_buckets

    def subscore(self, value: float) -> float:
        return self.curve(value)


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    label: str
    min_score: float


# The tier of an account with too little data to score (``Model.min_coverage``).
UNKNOWN_TIER = Tier("unknown", "Not enough data", 0.0)


@dataclass(frozen=True, slots=True)
class Model:
    version: str
    bucket_seconds: int
    tiers: tuple[Tier, ...]  # best first
    margin: float
    components: tuple[Component, ...]
    # Below this share of the total weight with data, the account's tier is UNKNOWN_TIER.
    min_coverage: float = 0.0
    # (event type, seconds): no event of the type for that long is a data gap.
    data_gaps: tuple[tuple[str, int], ...] = ()
    segment: str | None = None  # the segment model's name; None: the default model

    @property
    def max_window_buckets(self) -> int:
        return max(c.span_buckets for c in self.components)

    @property
    def window_lengths(self) -> tuple[int, ...]:
        """Every window length (buckets) its components read, ascending: a trend's own
        and twice it, whose sums less its own are the previous window's."""
        lengths = {c.window_buckets for c in self.components}
        lengths.update(c.span_buckets for c in self.components)
        return tuple(sorted(lengths))

    def component(self, name: str) -> Component:
        for c in self.components:
            if c.name == name:
                return c
        raise KeyError(name)

    def tier(self, name: str) -> Tier:
        if name == UNKNOWN_TIER.name:
            return UNKNOWN_TIER
        for t in self.tiers:
            if t.name == name:
                return t
        raise KeyError(name)
