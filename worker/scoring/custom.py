"""Signals a model file declares: counts and distinct counts of filtered events, ratios
and attributes. Pure: ``worker.modelfile.signals`` checks a model file's definitions against
the event schemas and builds these from them.

A custom count is a counter ``x:<signal>`` and a custom distinct count a distinct set
``x:<signal>``: the windows keep them like the vocabulary's own (the planner adds to
them what a signal's ``feeds`` say), so the exactly-once path does not change.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from worker.scoring.signals import Attrs, Feed, Signal, WindowView

PREFIX = "x:"  # of custom counters and sets: never a vocabulary name
Test = Callable[[Mapping[str, Any]], bool]
_MISSING = object()


def compile_where(where: Mapping[str, Mapping[str, Any]]) -> Test | None:
    """A test of an event body: every field's conditions hold (None: no filter). A body
    without the field, or with a value of another kind, does not match; it never raises."""
    checks = tuple(
        (name, _check(op, operand))
        for name, conditions in where.items()
        for op, operand in conditions.items()
    )
    if not checks:
        return None
    if len(checks) == 1:  # the common case, one call less per event
        ((name, check),) = checks

        def one(body: Mapping[str, Any]) -> bool:
            value = body.get(name, _MISSING)
            return value is not _MISSING and check(value)

        return one

    def every(body: Mapping[str, Any]) -> bool:
        for name, check in checks:
            value = body.get(name, _MISSING)
            if value is _MISSING or not check(value):
                return False
        return True

    return every


def _check(op: str, operand: Any) -> Callable[[Any], bool]:
    if op in ("in", "not_in", "eq"):
        values = frozenset(_key(v) for v in (operand if op != "eq" else [operand]))
        inside = op != "not_in"

        def member(value: Any) -> bool:
            try:
                return (_key(value) in values) is inside
            except TypeError:  # unhashable (a list, an object): not one of the values
                return False

        return member
    bound = float(operand)
    if op == "gte":
        return lambda value: _number(value) and value >= bound
    if op == "lte":
        return lambda value: _number(value) and value <= bound
    raise ValueError(f"unknown condition {op!r}")


def _key(value: Any) -> Any:
    # True == 1 in a set: keep booleans apart from numbers so `eq: 1` does not take true.
    return ("bool", value) if isinstance(value, bool) else value


def _number(value: Any) -> bool:
    return type(value) in (int, float)


def counter(name: str) -> str:
    return PREFIX + name


def count_signal(
    name: str, description: str, event_type: str, where: Test | None, sum_field: str | None = None
) -> Signal:
    """Events of ``event_type`` passing ``where`` in the window: each counts 1, or the
    value of its ``sum_field``."""
    key = counter(name)
    return Signal(
        name,
        description,
        frozenset({event_type}),
        frozenset({key}),
        frozenset(),
        lambda w, _: w.get(key),
        feeds=(Feed(event_type, key, where, sum_field, False),),
        whole=sum_field is None,
    )


def distinct_signal(
    name: str, description: str, event_type: str, field: str, where: Test | None
) -> Signal:
    """Distinct values of ``field`` among the events of ``event_type`` passing ``where``."""
    key = counter(name)
    return Signal(
        name,
        description,
        frozenset({event_type}),
        frozenset(),
        frozenset({key}),
        lambda w, _: float(w.distinct(key)),
        feeds=(Feed(event_type, key, where, field, True),),
        whole=True,
    )


def ratio_signal(name: str, description: str, of: Signal, to: Signal) -> Signal:
    """``of`` / ``to``; undefined when either is, or ``to`` is 0."""

    def compute(w: WindowView, attrs: Attrs) -> float | None:
        denominator = to.compute(w, attrs)
        if not denominator:
            return None
        numerator = of.compute(w, attrs)
        return None if numerator is None else numerator / denominator

    return Signal(
        name,
        description,
        of.sources | to.sources,
        of.counters | to.counters,
        of.distinct | to.distinct,
        compute,
        of.attributes or to.attributes,
        of.feeds + to.feeds,
    )


def attribute_signal(name: str, description: str, field: str, kind: str) -> Signal:
    """An account attribute: a number, or (``days_until``) the days from the end of the
    window to a date. Undefined when the account lacks it. No event feeds it: it has data
    whenever the account has the attribute."""

    def number(_: WindowView, attrs: Attrs) -> float | None:
        value = attrs.get(field)
        if type(value) is int or type(value) is float:  # not bool
            return float(value) if math.isfinite(value) else None
        return None

    def days_until(w: WindowView, attrs: Attrs) -> float | None:
        value = attrs.get(field)
        if not isinstance(value, str) or math.isnan(w.end):
            return None
        try:
            day = date.fromisoformat(value)
        except ValueError:
            return None
        return (day.toordinal() - date(1970, 1, 1).toordinal()) - w.end / 86400.0

    compute = days_until if kind == "days_until" else number
    return Signal(
        name, description, frozenset(), frozenset(), frozenset(), compute, attributes=True
    )
