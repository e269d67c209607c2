"""What would bring an account back, with dates: the hints of ``scoring.recovery`` and
when the account (and each hinted component) gets there by itself if nothing else
happens, found by reading its windows forward in time as they will be with no new event
(``explain`` and the API; the worker's alerts carry the hints without the dates).

Only the times at which data leaves a window (the account's ``next_change``) or an
override ends can change anything, so those are the times read: a few dozen for a daily
bucket, each one read of the account.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from worker.scoring import override
from worker.scoring.coverage import enough_data
from worker.scoring.evaluate import component_values
from worker.scoring.model import Model
from worker.scoring.peers import percentile_components
from worker.scoring.recovery import AT_MOST, Hint, Recovery
from worker.scoring.rollup import rounded, score_components
from worker.timefmt import rfc3339
from worker.windows.state import AccountState
from worker.windows.store import WindowStore

MAX_READS = 400  # the longest look ahead, in change times (a 90-day window of days: < 200)


class Outlook(NamedTuple):
    recovery: Recovery
    # When the score clears the goal with no new event; None: not by itself.
    by_itself_at: float | None
    # Component -> when its value meets its hint with no new event (events aging out of
    # its window: escalations, tickets, detractors); left out: never by itself.
    hint_at: dict[str, float]

    def as_dict(self, model: Model) -> dict[str, Any]:
        rec = self.recovery
        return {
            "tier": rec.goal.tier,
            "score": rounded(rec.goal.score),
            "alone": rec.alone,
            "by_itself_at": None if self.by_itself_at is None else rfc3339(self.by_itself_at),
            "changes": [
                {
                    **hint_dict(h),
                    "description": model.component(h.component).description,
                    "signal": model.component(h.component).signal.name,
                    "by_itself_at": (
                        rfc3339(self.hint_at[h.component]) if h.component in self.hint_at else None
                    ),
                }
                for h in rec.hints
            ],
        }


def hint_dict(hint: Hint) -> dict[str, Any]:
    return {
        "component": hint.component,
        "value": hint.value,
        "op": hint.op,
        "target": hint.target,
        "subscore": None if hint.subscore is None else rounded(hint.subscore),
        "target_subscore": rounded(hint.target_subscore),
    }


async def outlook(
    store: WindowStore,
    model: Model,
    account_id: str,
    now: float,
    recovery: Recovery,
    active: override.ActiveOverride | None,
    ranked: Mapping[str, float] | None = None,
) -> Outlook:
    """Read the account forward from ``now`` until it clears the goal and every hint is
    met, or nothing more will leave its windows. ``ranked``: each percentile component's
    percentile now, kept as it is (how the peers will move is not in the windows)."""
    pending = {h.component: h for h in recovery.hints}
    hint_at: dict[str, float] = {}
    by_itself: float | None = None
    state = await store.read(account_id, now)
    at = now
    for _ in range(MAX_READS):
        following = _next_time(state, at, active)
        if following is None or (by_itself is not None and not pending):
            break
        at = following
        state = await store.read(account_id, at)
        values = component_values(
            model,
            state.windows,
            state.attrs,
            state.seen,
            {},
            None,
            state.seen_bucket,
            state.now_bucket,
        )
        if ranked is not None:
            values = _held(model, values, ranked)
        card = override.adjusted(
            score_components(model, values),
            active if active is not None and active.live_at(at) else None,
        )
        if (
            by_itself is None
            and card.score is not None
            and card.score >= recovery.goal.score
            and enough_data(model, values)
        ):
            by_itself = at
        for name, hint in list(pending.items()):
            if _met(hint, values.get(name)):
                hint_at[name] = at
                del pending[name]
    return Outlook(recovery, by_itself, hint_at)


def _held(model: Model, values: dict[str, float], ranked: Mapping[str, float]) -> dict[str, float]:
    """``values`` with each percentile component at its present percentile (left out where
    it has none now, or no data then)."""
    for name in percentile_components(model):
        if name in values and name in ranked:
            values[name] = ranked[name]
        else:
            values.pop(name, None)
    return values


def _met(hint: Hint, value: float | None) -> bool:
    """Whether the component's value then does what the hint asks. Fewer-is-better with
    no data left in its window (the escalations aged out, ``silence: unknown``) does: it
    no longer counts against the account."""
    return hint.met_by(value) or (value is None and hint.op == AT_MOST)


def _next_time(
    state: AccountState, at: float, active: override.ActiveOverride | None
) -> float | None:
    times = [
        t
        for t in (state.next_change, None if active is None else active.expires_at)
        if t is not None and t > at
    ]
    return min(times, default=None)
