"""Which component moved the score, and by how much.

The score change between two scorecards splits exactly into one term per
component::

    change_i = (w_i' * (s_i' - S) - w_i * (s_i - S)) / W'

where ``S`` is the earlier score, ``w, s`` a component's earlier weight and
sub-score (zero weight when it was absent), primes the new ones and ``W'`` the
new total weight. The terms add up to ``S' - S`` because the earlier
deviations ``w_i * (s_i - S)`` sum to zero. Unlike comparing raw contributions,
a component that appears or disappears is charged with its own effect, not
spread over the others by the renormalisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from worker.scoring.rollup import ComponentScore, Scorecard
from worker.tuples import make


class ComponentChange(NamedTuple):
    name: str
    previous: ComponentScore | None
    current: ComponentScore | None
    contribution_change: float


def contribution_changes(before: Scorecard | None, after: Scorecard) -> dict[str, ComponentChange]:
    """Per-component share of ``after.score - before.score`` (see module doc)."""
    old = before.components if before is not None else {}
    new = after.components
    new_total = after.total_weight
    if new_total == 0:
        return {}
    # With no earlier score, measure against the new one: the changes then sum
    # to zero and show which components pull the account up or down.
    reference = before.score if before is not None and before.score is not None else after.score
    assert reference is not None
    changes = {}
    for name in sorted(old.keys() | new.keys()):
        was, now = old.get(name), new.get(name)
        delta = _deviation(now, reference) - _deviation(was, reference)
        changes[name] = make(ComponentChange, (name, was, now, delta / new_total))
    return changes


def _deviation(component: ComponentScore | None, reference: float) -> float:
    if component is None:
        return 0.0
    return component.weight * (component.subscore - reference)


def triggering_component(
    changes: Mapping[str, ComponentChange], moved_down: bool
) -> ComponentChange | None:
    """The component that pushed the score furthest in the direction it moved.

    Ties go to the first name alphabetically, so replays pick the same one.
    """
    sign = -1.0 if moved_down else 1.0
    best: ComponentChange | None = None
    for name in sorted(changes):
        change = changes[name]
        if best is None or sign * change.contribution_change > sign * best.contribution_change:
            best = change
    return best
