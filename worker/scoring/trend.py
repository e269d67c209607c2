"""Trend components: a signal's change from the account's own previous window.

A component with ``trend: previous`` and a window of N buckets scores the relative
change, in percent, of its signal between its window (the N buckets ending now) and
the N buckets before it::

    100 * (recent - previous) / previous

so an account whose logins halve against its own normal is noticed before any
absolute threshold would be. The windows layer keeps the sums of N and of 2N
buckets; the previous window's counter sums are the difference. Distinct sets keep
only each member's last-seen time, so a distinct count of the previous window is not
known: a trend reads counters only (``worker.modelfile`` rejects any other signal).

The change is undefined (the component left out) when the previous window's value is
0 or undefined: a new account, or one with nothing to compare against.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from worker.scoring.model import Component
from worker.scoring.signals import Attrs, WindowView

PREVIOUS = "previous"  # the one kind so far: against the window of the same length before
TRENDS = frozenset({PREVIOUS})
# A difference of two float sums below this share of the longer one is rounding, not
# data: sums of the same additions in another order may differ in the last bits.
_ROUNDING = 1e-9


def previous_view(
    recent: WindowView, both: WindowView, counters: frozenset[str], window_seconds: float
) -> WindowView:
    """The window before ``recent`` (of the same length) from ``both`` (the two of them):
    its sums are those of ``both`` less those of ``recent``, for ``counters`` alone."""
    sums: dict[str, float] = {}
    for name in counters:
        total = both.get(name)
        difference = total - recent.get(name)
        sums[name] = 0.0 if abs(difference) <= _ROUNDING * abs(total) else difference
    return WindowView(sums, {}, frozenset(), recent.end - window_seconds)


def relative_change(recent: float | None, previous: float | None) -> float | None:
    """``recent``'s change from ``previous`` in percent; None when there is nothing to
    compare with (``previous`` 0 or undefined) or ``recent`` is undefined. Divided by the
    size of ``previous``, so a fall is negative whatever its sign (an NPS of -20 to -40)."""
    if recent is None or previous is None or previous == 0:
        return None
    change = 100.0 * (recent - previous) / abs(previous)
    # A previous value next to 0 (a float's smallest) makes it infinite: as good as none.
    return change if math.isfinite(change) else None


def trend_value(
    component: Component, windows: Mapping[int, WindowView], attrs: Attrs, bucket_seconds: int
) -> float | None:
    """The raw value of a trend component: its signal's change in percent."""
    signal = component.signal
    recent = windows[component.window_buckets]
    previous = previous_view(
        recent,
        windows[component.span_buckets],
        signal.counters,
        component.window_buckets * bucket_seconds,
    )
    return relative_change(signal.compute(recent, attrs), signal.compute(previous, attrs))


def describe(value: float, window_seconds: int) -> str:
    """A trend's value in words: "-35% vs the previous 7 days"."""
    return f"{value:+.0f}% vs the previous {duration_words(window_seconds)}"


def duration_words(seconds: int) -> str:
    """A duration in its largest whole unit: "7 days", "1 hour", "90 seconds"."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"
