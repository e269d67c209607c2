"""Signals: how a component's raw value is computed from its window aggregates.

A component names a signal in the model file. Each signal declares what it
reads in terms of the event vocabulary (``vocabulary``: counters summed over the
window, distinct sets counted over it) and whether it reads account attributes;
the event types that feed it follow from the vocabulary, so the worker knows
which components an event touches and what the windows must hold.

A signal returns ``None`` when the value is undefined (an average of nothing,
a ratio to an unknown seat count): the component is then left out of the score.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from worker.errors import ConfigError
from worker.scoring import vocabulary

Sums = Mapping[str, float]
Attrs = Mapping[str, Any]


class WindowView(NamedTuple):
    """What one component sees: its window's counter sums and distinct counts."""

    sums: Sums
    counts: Mapping[str, int]  # distinct set name -> members seen in the window
    # Distinct sets ("users", "features") whose count here is a lower bound: the account
    # reached HEALTHSCORE_MAX_DISTINCT_MEMBERS and a member left out is in this window.
    capped: frozenset[str] = frozenset()
    end: float = math.nan  # epoch seconds the window ends at (NaN: unknown)

    def get(self, counter: str) -> float:
        return self.sums.get(counter, 0.0)

    def distinct(self, name: str) -> int:
        return self.counts.get(name, 0)


class Feed(NamedTuple):
    """What a model file's signal adds per event of ``event_type`` passing ``test``
    (None: every one): 1 or the body's ``field`` to counter ``key``, or (``distinct``) the
    ``field`` as a member of set ``key``."""

    event_type: str
    key: str
    test: Callable[[Mapping[str, Any]], bool] | None
    field: str | None
    distinct: bool


@dataclass(frozen=True, slots=True)
class Signal:
    name: str
    description: str
    # Event types that can change its value. An account that has never sent any
    # of them has no data for the signal (left out); one that has, but not within
    # the window, scores on zeros: silence is a signal.
    sources: frozenset[str]
    counters: frozenset[str]
    distinct: frozenset[str]  # distinct set names, e.g. "users"
    compute: Callable[[WindowView, Attrs], float | None]
    attributes: bool = False  # reads account attributes: an account update touches it
    feeds: tuple[Feed, ...] = ()  # a model file's signals: what the planner adds for them
    # Its values are whole numbers (a count): a recovery hint's target is rounded to one.
    whole: bool = False


def signal(
    name: str,
    description: str,
    compute: Callable[[WindowView, Attrs], float | None],
    *,
    counters: frozenset[str] = frozenset(),
    distinct: frozenset[str] = frozenset(),
    attributes: bool = False,
    whole: bool = False,
) -> Signal:
    """A signal reading these counters and distinct sets of the vocabulary; fed by the
    event types that add to them."""
    unknown = sorted((counters - vocabulary.counters()) | (distinct - vocabulary.distinct_sets()))
    if unknown:
        raise ConfigError(f"signal {name}: no event type feeds {', '.join(unknown)}")
    return Signal(
        name,
        description,
        vocabulary.feeding(counters, distinct),
        counters,
        distinct,
        compute,
        attributes,
        whole=whole,
    )


def _logins_per_active_user(w: WindowView, _: Attrs) -> float | None:
    users = w.distinct("users")
    if users == 0:
        return 0.0
    return w.get("login") / users


def _avg_session_minutes(w: WindowView, _: Attrs) -> float | None:
    sessions = w.get("sess_n")
    return None if sessions == 0 else w.get("sess_sum") / sessions / 60.0


def _active_user_share(w: WindowView, attrs: Attrs) -> float | None:
    seats = attrs.get("seats_purchased")
    if not seats:
        return None
    return w.distinct("users") / float(seats)


def _nps(w: WindowView, _: Attrs) -> float | None:
    responses = w.get("nps_n")
    if responses == 0:
        return None
    return 100.0 * (w.get("nps_pro") - w.get("nps_det")) / responses


def _csat_avg(w: WindowView, _: Attrs) -> float | None:
    responses = w.get("csat_n")
    return None if responses == 0 else w.get("csat_sum") / responses


SIGNALS: dict[str, Signal] = {
    s.name: s
    for s in (
        signal(
            "logins_per_active_user",
            "logins per distinct active user in the window",
            _logins_per_active_user,
            counters=frozenset({"login"}),
            distinct=frozenset({"users"}),
        ),
        signal(
            "logins",
            "logins in the window",
            lambda w, _: w.get("login"),
            counters=frozenset({"login"}),
            whole=True,
        ),
        signal(
            "distinct_features",
            "distinct features used in the window",
            lambda w, _: float(w.distinct("features")),
            distinct=frozenset({"features"}),
            whole=True,
        ),
        signal(
            "avg_session_minutes",
            "average session length (minutes) of logins that report one",
            _avg_session_minutes,
            counters=frozenset({"sess_n", "sess_sum"}),
        ),
        signal(
            "active_user_share",
            "distinct active users / seats purchased",
            _active_user_share,
            distinct=frozenset({"users"}),
            attributes=True,
        ),
        signal(
            "tickets_opened",
            "support tickets opened or reopened in the window",
            lambda w, _: w.get("tk_open") + w.get("tk_reopen"),
            counters=frozenset({"tk_open", "tk_reopen"}),
            whole=True,
        ),
        signal(
            "escalations",
            "ticket escalations in the window",
            lambda w, _: w.get("tk_esc"),
            counters=frozenset({"tk_esc"}),
            whole=True,
        ),
        signal(
            "nps",
            "net promoter score: % promoters (9-10) - % detractors (0-6)",
            _nps,
            counters=frozenset({"nps_n", "nps_pro", "nps_det"}),
        ),
        signal(
            "csat_avg",
            "average CSAT response (1-5)",
            _csat_avg,
            counters=frozenset({"csat_n", "csat_sum"}),
        ),
    )
}

# Signals that read account attributes: an account update touches them.
ATTRIBUTE_SIGNALS = frozenset(s.name for s in SIGNALS.values() if s.attributes)
