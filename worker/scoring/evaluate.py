"""Incremental evaluation: recompute only the components a batch touched.

The values of the other components come from the account's cache, which is
valid for one model version and one bucket: once the clock enters a new
bucket, old buckets may have left a window, so everything is recomputed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from worker.scoring.model import Component, Model
from worker.scoring.signals import WindowView
from worker.scoring.trend import trend_value


def component_values(
    model: Model,
    windows: Mapping[int, WindowView],
    attrs: Mapping[str, Any],
    seen: Collection[str],
    cached: Mapping[str, float],
    refresh: Collection[str] | None,
    seen_bucket: Mapping[str, int] | None = None,
    now_bucket: int | None = None,
) -> dict[str, float]:
    """Raw value of every component with data; ``refresh=None`` recomputes all.

    A component has no data (and is left out) when the account never sent any
    of its source events, or when its signal is undefined (an average of
    nothing); it is never scored as zero for lack of data. A component whose model
    says ``silence: unknown`` also has none when no source event is in its window
    (``seen_bucket``: event type -> newest bucket with one, as of ``now_bucket``).
    """
    values: dict[str, float] = {}
    for component in model.components:
        if refresh is not None and component.name not in refresh:
            if component.name in cached:
                values[component.name] = cached[component.name]
            continue
        # No sources: an attribute, with data once the account has sent any event (an
        # account known only by its attributes is not scored on them alone).
        sources = component.signal.sources
        if sources.isdisjoint(seen) if sources else not seen:
            continue
        if component.silence == "unknown" and not in_window(component, seen_bucket, now_bucket):
            continue
        if component.trend is None:
            value = component.signal.compute(windows[component.window_buckets], attrs)
        else:
            value = trend_value(component, windows, attrs, model.bucket_seconds)
        if value is not None:
            values[component.name] = value
    return values


def in_window(
    component: Component, seen_bucket: Mapping[str, int] | None, now_bucket: int | None
) -> bool:
    """Whether a source event of the component arrived within its window (True when
    the caller does not know: the component then scores as if silence were a signal)."""
    if seen_bucket is None or now_bucket is None or not component.signal.sources:
        return True
    oldest = now_bucket - component.window_buckets + 1
    for event_type in component.signal.sources:  # noqa: SIM110 (a generator per component)
        if seen_bucket.get(event_type, -1) >= oldest:
            return True
    return False
