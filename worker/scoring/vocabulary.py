"""The event vocabulary: every event type the worker takes, and what it adds to a window.

One entry per type: its JSON schema (``schemas/<schema>.schema.json``), the
counters its validated body adds to (and how much), and the distinct sets it
feeds from which field of the body. Signals (``signals``) read these counters
and sets; the decoder, the planner and the window store take the types, the
counters and the sets from here. So a new event type is one schema file and
one entry here (its topic defaults to ``events.<type>``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

Increments = list[tuple[str, float]]


@dataclass(frozen=True, slots=True)
class EventType:
    name: str
    # Counters ``increments`` may add to: what signals can read of this type.
    counters: frozenset[str]
    # A validated body -> (counter, delta) pairs, each counter one of ``counters``.
    increments: Callable[[dict[str, Any]], Increments]
    # Distinct set name -> the body field whose value is a member (last seen at the
    # event's ts); an event without the field adds no member.
    distinct: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    schema: str = ""  # ``schemas/<schema>.schema.json``; empty: the type's name

    @property
    def schema_name(self) -> str:
        return self.schema or self.name


def _login(body: dict[str, Any]) -> Increments:
    incs: Increments = [("login", 1.0)]
    seconds = body.get("session_seconds")
    if seconds is not None:
        incs += [("sess_n", 1.0), ("sess_sum", float(seconds))]
    return incs


def _feature_use(body: dict[str, Any]) -> Increments:
    return [("feat", float(body.get("count", 1)))]


_TICKET_COUNTERS = {
    "opened": "tk_open",
    "reopened": "tk_reopen",
    "escalated": "tk_esc",
    "resolved": "tk_res",
    "closed": "tk_close",
}


def _ticket(body: dict[str, Any]) -> Increments:
    return [(_TICKET_COUNTERS[body["status"]], 1.0)]


def _survey(body: dict[str, Any]) -> Increments:
    score = body["score"]
    if body["kind"] == "nps":
        incs: Increments = [("nps_n", 1.0)]
        if score >= 9:
            incs.append(("nps_pro", 1.0))
        elif score <= 6:
            incs.append(("nps_det", 1.0))
        return incs
    return [("csat_n", 1.0), ("csat_sum", float(score))]


VOCABULARY: dict[str, EventType] = {
    t.name: t
    for t in (
        EventType(
            "login", frozenset({"login", "sess_n", "sess_sum"}), _login, {"users": "user_id"}
        ),
        EventType(
            "feature_use",
            frozenset({"feat"}),
            _feature_use,
            {"users": "user_id", "features": "feature"},
        ),
        EventType("ticket", frozenset(_TICKET_COUNTERS.values()), _ticket),
        EventType(
            "survey", frozenset({"nps_n", "nps_pro", "nps_det", "csat_n", "csat_sum"}), _survey
        ),
    )
}


def event_types() -> tuple[str, ...]:
    return tuple(VOCABULARY)


def counters() -> frozenset[str]:
    """Every counter some event type adds to."""
    return frozenset(c for t in VOCABULARY.values() for c in t.counters)


def distinct_sets() -> frozenset[str]:
    """Every distinct set some event type feeds."""
    return frozenset(name for t in VOCABULARY.values() for name in t.distinct)


def feeding(counter_names: frozenset[str], set_names: frozenset[str]) -> frozenset[str]:
    """The event types that add to any of these counters or feed any of these sets."""
    return frozenset(
        t.name
        for t in VOCABULARY.values()
        if not t.counters.isdisjoint(counter_names) or not set_names.isdisjoint(t.distinct)
    )
