"""What an account's override means for one evaluation: the override in force, the state
to save when the clock expired it, and the cause to give a tier change it brought."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worker.alerts import OVERRIDE_EXPIRED, Cause
from worker.scoring.override import EXPIRED, ActiveOverride, OverrideState, expire
from worker.scoring.tierchange import Published
from worker.timefmt import rfc3339
from worker.windows.plan import AccountPlan
from worker.windows.state import AccountState


@dataclass(frozen=True, slots=True)
class Overriding:
    active: ActiveOverride | None
    save: OverrideState | None = None  # the state after an expiry found now
    cause: Cause | None = None  # an override set, cleared or expired in this evaluation
    events: list[str] = field(default_factory=list)  # for healthscore_overrides_total

    def next_change(self, windows: float | None) -> float | None:
        """When to rescore the account without events: its windows' next change, or the
        active override's expiry if sooner (an override never outlives it silently)."""
        if self.active is None:
            return windows
        return self.active.expires_at if windows is None else min(windows, self.active.expires_at)

    def mark(self, published: Published) -> Published:
        """A published-tier snapshot that remembers the override it was published under."""
        if self.active is not None:
            return published._replace(ovr=self.active.override_id)
        return published


def overriding(plan: AccountPlan, state: AccountState, now: float) -> Overriding | None:
    """None for an account that has and had no override (nearly all): its evaluation
    does nothing more than before."""
    current = state.override
    if (
        current is None
        and not plan.overrides
        and (state.published is None or state.published.ovr is None)
    ):
        return None
    events = list(plan.override_events)
    cause = Cause.of(plan.overrides[-1]) if plan.override is not None else None
    expired = expire(current, now)
    if expired is not None:
        current = expired
        events.append(EXPIRED)
        cause = cause or OVERRIDE_EXPIRED
    return Overriding(None if current is None else current.active, expired, cause, events)


def shown(state: OverrideState | None, at: float) -> dict[str, Any]:
    """``explain``'s view of an account's overrides at ``at``: the active one (one whose
    expiry has passed is shown in the history, as the next rescore will have it) and
    the past ones, newest first, each with how and when it ended."""
    current = expire(state, at) or state
    return {
        "override": None
        if current is None or current.active is None
        else _times(current.active.as_dict()),
        "override_history": []
        if current is None
        else [_times(p.as_dict()) for p in current.history],
    }


def _times(saved: dict[str, Any]) -> dict[str, Any]:
    for name in ("set_at", "expires_at", "ended_at"):
        if name in saved:
            saved[name] = rfc3339(saved[name])
    return saved
