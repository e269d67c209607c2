"""Signals: how a component's raw value is computed from its window aggregates.

A component names a signal in the model file. Each signal declares what it
reads (counters summed over the window, distinct counts over the window,
account attributes) and which event types feed it, so the worker knows which
components an event touches and what to fetch from the window store.

A signal returns ``None`` when the value is undefined (an average of nothing,
a ratio to an unknown seat count): the component is then left out of the score.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

Sums = Mapping[str, float]
Attrs = Mapping[str, Any]


class WindowView(NamedTuple):
    """What one component sees: its window's counter sums and distinct counts."""

    sums: Sums
    active_users: int
    distinct_features: int
    # Distinct sets ("users", "features") whose count here is a lower bound: the account
    # reached HEALTHSCORE_MAX_DISTINCT_MEMBERS and a member left out is in this window.
    capped: frozenset[str] = frozenset()

    def get(self, counter: str) -> float:
        return self.sums.get(counter, 0.0)


@dataclass(frozen=True, slots=True)
class Signal:
    name: str
    description: str
    # Event types that can change its value. An account that has never sent any
    # of them has no data for the signal (left out); one that has, but not within
    # the window, scores on zeros: silence is a signal.
    sources: frozenset[str]
    counters: frozenset[str]
    distinct: frozenset[str]  # "users" and/or "features"
    compute: Callable[[WindowView, Attrs], float | None]


def _logins_per_active_user(w: WindowView, _: Attrs) -> float | None:
    if w.active_users == 0:
        return 0.0
    return w.get("login") / w.active_users


def _avg_session_minutes(w: WindowView, _: Attrs) -> float | None:
    sessions = w.get("sess_n")
    return None if sessions == 0 else w.get("sess_sum") / sessions / 60.0


def _active_user_share(w: WindowView, attrs: Attrs) -> float | None:
    seats = attrs.get("seats_purchased")
    if not seats:
        return None
    return w.active_users / float(seats)


def _nps(w: WindowView, _: Attrs) -> float | None:
    responses = w.get("nps_n")
    if responses == 0:
        return None
    return 100.0 * (w.get("nps_pro") - w.get("nps_det")) / responses


def _csat_avg(w: WindowView, _: Attrs) -> float | None:
    responses = w.get("csat_n")
    return None if responses == 0 else w.get("csat_sum") / responses


_USAGE = frozenset({"login", "feature_use"})

SIGNALS: dict[str, Signal] = {
    s.name: s
    for s in (
        Signal("logins_per_active_user", "logins per distinct active user in the window",
               _USAGE, frozenset({"login"}), frozenset({"users"}),
               _logins_per_active_user),
        Signal("distinct_features", "distinct features used in the window",
               frozenset({"feature_use"}), frozenset(), frozenset({"features"}),
               lambda w, _: float(w.distinct_features)),
        Signal("avg_session_minutes", "average session length (minutes) of logins that report one",
               frozenset({"login"}), frozenset({"sess_n", "sess_sum"}), frozenset(),
               _avg_session_minutes),
        Signal("active_user_share", "distinct active users / seats purchased",
               _USAGE, frozenset(), frozenset({"users"}), _active_user_share),
        Signal("tickets_opened", "support tickets opened or reopened in the window",
               frozenset({"ticket"}), frozenset({"tk_open", "tk_reopen"}), frozenset(),
               lambda w, _: w.get("tk_open") + w.get("tk_reopen")),
        Signal("escalations", "ticket escalations in the window",
               frozenset({"ticket"}), frozenset({"tk_esc"}), frozenset(),
               lambda w, _: w.get("tk_esc")),
        Signal("nps", "net promoter score: % promoters (9-10) - % detractors (0-6)",
               frozenset({"survey"}), frozenset({"nps_n", "nps_pro", "nps_det"}), frozenset(),
               _nps),
        Signal("csat_avg", "average CSAT response (1-5)",
               frozenset({"survey"}), frozenset({"csat_n", "csat_sum"}), frozenset(),
               _csat_avg),
    )
}

# Signals that read account attributes: an account update touches them.
ATTRIBUTE_SIGNALS = frozenset({"active_user_share"})
