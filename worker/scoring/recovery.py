"""What would bring an account back: per component, the smallest change of its value that
would lift the score over the next boundary up on its own, everything else as it is.

With the score ``S = sum(w_i * s_i) / W`` over the components with data, component ``j``
alone brings the score to a goal ``T`` with the sub-score::

    s_j' = s_j + (T - S) * W / w_j      when it has data
    s_j' = T + (T - S) * W / w_j        when it has none (its weight joins W)

and its curve, inverted, gives the raw value nearest the present one that scores at
least ``s_j'`` (a whole number for a count). A component that cannot get there on its
own (``s_j'`` above what its curve gives) has no hint. Every target is checked by
scoring the card again with it, in the order the worker sums it, so a hint does exactly
what it says: floating-point rounding is stepped over, never trusted.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator
from typing import NamedTuple

from worker.scoring.curves import Bands, Curve, Linear
from worker.scoring.model import Component, Model
from worker.scoring.rollup import ComponentScore, Scorecard
from worker.scoring.tiers import rank

AT_LEAST, AT_MOST, ABOVE = ">=", "<=", ">"
NUDGES = 4  # floating-point steps tried past a target that rounding left just short
# Sub-score points beyond the need that no rounding of a weighted mean of 0-100 sub-scores
# can take back (its error is about 1e-13 points).
SLACK = 1e-6


class Goal(NamedTuple):
    """The tier above the account's, and the score a live evaluation needs for it: its
    boundary plus the model's margin (``tiers.next_tier``), which a catch-up one needs too
    (it takes less), so a hint holds either way."""

    tier: str
    score: float


class Hint(NamedTuple):
    """Component ``component`` with a value ``op`` ``target`` lifts the score to the goal."""

    component: str
    value: float | None  # now; None: no data in its window
    op: str  # AT_LEAST | AT_MOST | ABOVE
    target: float
    subscore: float | None  # now
    target_subscore: float  # what the target scores

    def met_by(self, value: float | None) -> bool:
        if value is None:
            return False
        if self.op == AT_LEAST:
            return value >= self.target
        return value <= self.target if self.op == AT_MOST else value > self.target


class Recovery(NamedTuple):
    goal: Goal
    # alone: each hint on its own reaches the goal, the smallest sub-score climb first.
    # Not alone (no component can): all of them together do, the largest gain first.
    hints: tuple[Hint, ...]
    alone: bool = True


def goal(model: Model, tier: str) -> Goal | None:
    """The goal of an account in ``tier``; None in the best tier, or one not in the model
    (``unknown``: what it lacks is data, not a better value)."""
    try:
        position = rank(model, tier)
    except KeyError:
        return None
    if position == 0:
        return None
    above = model.tiers[position - 1]
    return Goal(above.name, above.min_score + model.margin)


def recovery(
    model: Model,
    card: Scorecard,
    tier: str,
    *,
    fixed: Collection[str] = (),
    limit: int | None = None,
) -> Recovery | None:
    """The hints for an account in ``tier`` with ``card`` (None without a goal or a
    score). ``fixed``: components whose sub-score a CSM set (an override's adjustment):
    no change of their value moves them."""
    target = goal(model, tier)
    if target is None or card.score is None:
        return None
    if card.score >= target.score:  # over it already: the next evaluation moves it up
        return Recovery(target, ())
    # A curve without an inverse here (one added after this module) gives no hint: the
    # other components still may, and the account is never worse off for it. Nor does a
    # trend: its value moves with two windows at once, so no one target says what to do.
    free = [
        c
        for c in model.components
        if c.name not in fixed and c.trend is None and invertible(c.curve)
    ]
    hints: list[Hint] = []
    # The easiest first: by the sub-score points each must climb, exact arithmetic from
    # the weights, so only as many as asked for are inverted and checked.
    for _, component in sorted(_climbs(card, free, target.score)):
        hint = _hint(model, card, component, target.score)
        if hint is not None:
            hints.append(hint)
            if len(hints) == limit:
                break
    if not hints:
        return Recovery(
            target, tuple(_together(model, card, free, target.score)[:limit]), alone=False
        )
    return Recovery(target, tuple(hints))


def _climbs(
    card: Scorecard, free: list[Component], goal_score: float
) -> Iterator[tuple[tuple[float, str], Component]]:
    """(points to climb, name) of each component that may reach the goal alone."""
    score = card.score
    assert score is not None
    gap = (goal_score - score) * card.total_weight
    present = card.components
    for component in free:
        now = present.get(component.name)
        climb = gap / component.weight
        needed = (goal_score if now is None else now.subscore) + climb
        if needed <= _top(component.curve):
            yield (needed - (0.0 if now is None else now.subscore), component.name), component


def _together(
    model: Model, card: Scorecard, free: list[Component], goal_score: float
) -> list[Hint]:
    """Components at their best, the largest gain first, until the goal is in reach of
    the next one alone (its smallest change then); empty when even all cannot."""
    at_best = {c.name: (c, h) for c in free if (h := _at_best(card, c)) is not None}
    plan: list[Hint] = []
    while at_best:
        final = [h for c, _ in at_best.values() if (h := _hint(model, card, c, goal_score))]
        if final:
            return [*plan, min(final, key=lambda h: h.target_subscore - (h.subscore or 0.0))]
        # The largest gain; between equal ones the first in name order, as a replay would.
        name = min(at_best, key=lambda n: (-_gain(card, *at_best[n]), n))
        component, hint = at_best.pop(name)
        plan.append(hint)
        card = lifted(model, card, component, _probe(hint))
    return []


def _gain(card: Scorecard, component: Component, hint: Hint) -> float:
    """What ``hint`` adds to the score (for ranking; the plan's end is checked exactly)."""
    score, total, weight = card.score or 0.0, card.total_weight, component.weight
    if hint.subscore is None:
        return (score * total + weight * hint.target_subscore) / (total + weight) - score
    return weight * (hint.target_subscore - hint.subscore) / total


def _at_best(card: Scorecard, component: Component) -> Hint | None:
    """The change that gives ``component`` the best sub-score its curve has; None when it
    has it already."""
    top = _top(component.curve)
    present = card.components.get(component.name)
    if present is not None and present.subscore >= top:
        return None
    value = None if present is None else present.value
    reach = _reach(component.curve, value, top, whole=component.signal.whole)
    if reach is None:
        return None
    op, target = reach
    return Hint(
        component.name,
        value,
        op,
        target,
        None if present is None else present.subscore,
        component.curve(_probe(Hint(component.name, value, op, target, None, 0.0))),
    )


def invertible(curve: object) -> bool:
    """Whether this module can turn a sub-score of ``curve`` back into a value."""
    return isinstance(curve, Linear | Bands)


def _rewards_more(curve: Curve) -> bool:
    if isinstance(curve, Bands):
        return curve.bands[-1].score > curve.bands[0].score
    return isinstance(curve, Linear) and curve.good > curve.bad


def _top(curve: Curve) -> float:
    if isinstance(curve, Bands):
        return max(b.score for b in curve.bands)
    return 100.0


def _probe(hint: Hint) -> float:
    """The value a hint's target stands for (just past it, for ``above``)."""
    return math.nextafter(hint.target, math.inf) if hint.op == ABOVE else hint.target


def lifted(model: Model, card: Scorecard, component: Component, value: float) -> Scorecard:
    """``card`` with ``component`` at ``value``, in model order (the order the worker sums
    in, so the score is to the bit what it would compute)."""
    present = card.components
    new = ComponentScore(value, component.curve(value), component.weight)
    return Scorecard(
        {
            c.name: new if c.name == component.name else present[c.name]
            for c in model.components
            if c.name == component.name or c.name in present
        }
    )


def score_with(model: Model, card: Scorecard, component: Component, value: float) -> float:
    """``lifted(...).score`` to the bit (the same sums in the same order), without building
    the card: a hint is checked this way for every component of every alert."""
    present = card.components
    name = component.name
    total = weighted = 0.0
    for c in model.components:
        if c.name == name:
            total += c.weight
            weighted += c.weight * c.curve(value)
        elif (p := present.get(c.name)) is not None:
            total += p.weight
            weighted += p.weight * p.subscore
    return weighted / total


def _hint(model: Model, card: Scorecard, component: Component, goal_score: float) -> Hint | None:
    present = card.components.get(component.name)
    if present is None and not _rewards_more(component.curve):
        # Its data would come from what counts against it (tickets, escalations): no
        # reading of it is a step to take.
        return None
    score = card.score
    assert score is not None
    climb = (goal_score - score) * card.total_weight / component.weight
    needed = (goal_score if present is None else present.subscore) + climb
    if needed > _top(component.curve):  # out of its reach: most components of most alerts
        return None
    value = None if present is None else present.value
    reach = _reach(component.curve, value, needed, whole=component.signal.whole)
    if reach is None:
        return None
    op, first = reach
    for target in _candidates(op, first, whole=component.signal.whole):
        probe = math.nextafter(target, math.inf) if op == ABOVE else target
        subscore = component.curve(probe)
        # Clear of the need by more than rounding can take back (a count rounded up, a
        # band): it does it. Only a target at the very edge is summed again to the bit.
        if subscore > needed + SLACK or score_with(model, card, component, probe) >= goal_score:
            return Hint(
                component.name,
                value,
                op,
                target,
                None if present is None else present.subscore,
                subscore,
            )
    return None


def _candidates(op: str, target: float, *, whole: bool) -> Iterator[float]:
    """``target``, then a few steps past it in the direction that scores better."""
    if whole:
        yield target
        return
    toward = -math.inf if op == AT_MOST else math.inf
    for _ in range(NUDGES):
        yield target
        target = math.nextafter(target, toward)


def _reach(
    curve: object, value: float | None, needed: float, *, whole: bool
) -> tuple[str, float] | None:
    if isinstance(curve, Linear):
        return _reach_linear(curve, needed, whole=whole)
    if isinstance(curve, Bands):
        return _reach_bands(curve, value, needed, whole=whole)
    return None  # a new kind of curve needs its inverse here: until then, no hint


def _reach_linear(curve: Linear, needed: float, *, whole: bool) -> tuple[str, float] | None:
    if needed > 100.0:
        return None
    raw = curve.bad + max(needed, 0.0) / 100.0 * (curve.good - curve.bad)
    if curve.good > curve.bad:
        return AT_LEAST, float(_whole_up(raw)) if whole else raw
    return AT_MOST, float(_whole_down(raw)) if whole else raw


def _whole_up(raw: float) -> int:
    # A float a hair above a whole number (1e-9) is that number: the check confirms it.
    near = round(raw)
    return near if abs(raw - near) < 1e-9 else math.ceil(raw)


def _whole_down(raw: float) -> int:
    near = round(raw)
    return near if abs(raw - near) < 1e-9 else math.floor(raw)


def _reach_bands(
    curve: Bands, value: float | None, needed: float, *, whole: bool
) -> tuple[str, float] | None:
    """The nearest band scoring enough: its top (at most) when below the value, just
    past its bottom when above; with no value, the first such band."""
    best: tuple[float, str, float] | None = None
    low = -math.inf
    for band in curve.bands:
        high = math.inf if band.upto is None else band.upto
        # The value's own band does not help (its sub-score was set otherwise: an override).
        inside = value is not None and low < value <= high
        if band.score >= needed and not inside:
            if math.isfinite(high) and (value is None or high < value):
                candidate = (math.inf if value is None else value - high, AT_MOST, float(high))
            elif not math.isfinite(low):
                candidate = None
            elif whole:
                candidate = (_distance(value, low), AT_LEAST, float(math.floor(low) + 1))
            else:
                candidate = (_distance(value, low), ABOVE, float(low))
            if candidate is not None and (best is None or candidate[0] < best[0]):
                best = candidate
        low = high
    return None if best is None else (best[1], best[2])


def _distance(value: float | None, low: float) -> float:
    return math.inf if value is None else low - value
