"""One account's evaluation once its batch is written: the model it is scored by, its
component values, the tier change and its alert, and what is saved of it. Pure but for
the counters it counts: no I/O (``pipeline`` does the Redis exchanges around it)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from worker import causes
from worker.alerts import ONBOARDING_ENDED, Alert, Cause, build_alert, under_override
from worker.gaps import DataGaps
from worker.metrics import Metrics
from worker.overriding import overriding
from worker.peerrank import PeerRanking
from worker.scoring import override
from worker.scoring.coverage import enough_data
from worker.scoring.evaluate import component_values
from worker.scoring.mode import Mode, evaluation_mode, hysteresis_applies
from worker.scoring.model import Model
from worker.scoring.peers import PeerRank
from worker.scoring.rollup import score_components, score_of
from worker.scoring.segments import ModelSet, model_name, scoring_model
from worker.scoring.tierchange import TierChange, decide, new_tier, snapshot
from worker.tuples import make
from worker.windows.outbox import OutboxEntry
from worker.windows.plan import AccountPlan
from worker.windows.state import AccountState, StateWrite

# What ``Rescorer.values`` gives of an account, with its peer ranks (``scoring.peers``).
Ranked = tuple[Model, bool, dict[str, float], Mapping[str, PeerRank]]
CauseOf = Callable[[Model, TierChange, bool], Cause]


@dataclass(slots=True)
class Outcome:
    alerts: list[tuple[str, Alert]] = field(default_factory=list)  # (key, alert)
    dead_letters: list[tuple[bytes | None, dict[str, Any]]] = field(default_factory=list)
    writes: list[StateWrite] = field(default_factory=list)
    # outbox[i] is the entry of alerts[i] (and names its partition), cleared once sent
    outbox: list[OutboxEntry] = field(default_factory=list)
    # Kafka timestamps (s) of the records that triggered the live alerts: latency origins
    origins: list[float] = field(default_factory=list)
    arrived: set[str] = field(default_factory=set)  # event types applied (data gaps)
    held: int = 0  # tier changes a data gap held back (``worker.gaps``)


class Rescorer:
    def __init__(
        self,
        models: ModelSet,
        peers: PeerRanking | None,
        metrics: Metrics,
        *,
        history: bool,
        gaps: DataGaps | None,
    ) -> None:
        """``history``: every alert is catch-up (a replay). ``gaps``: the live loop's data
        gaps, which hold back tier changes a silence caused; None elsewhere."""
        self.models = models
        self.peers = peers
        self.gaps = gaps
        self._metrics = metrics
        self._history = history
        self._segmented = bool(models.segments)

    def score_all(
        self,
        plans: Sequence[AccountPlan],
        states: Sequence[AccountState],
        now: float,
        present: float,
        lag: float,
        outcome: Outcome,
        cause_of: Callable[[AccountPlan, Model, TierChange, bool], Cause],
        failed: Callable[[AccountPlan, Exception], None],
        applied: Counter[str],
    ) -> None:
        """Each account of a chunk, as Redis has it after its writes (``states``), counted
        and scored; ``present``: the wall clock's, ``lag``: the catch-up lag, for its mode."""
        for plan, state in zip(plans, states, strict=True):
            self.count(plan, state, applied)
            try:
                self.score(
                    plan,
                    state,
                    evaluation_mode(plan.newest, present, lag),
                    now,
                    outcome,
                    partial(cause_of, plan),
                )
            except Exception as exc:  # one account must not stop the others
                failed(plan, exc)

    def count(self, plan: AccountPlan, state: AccountState, applied: Counter[str]) -> None:
        """The plan's events the script applied, by type, into ``applied`` (too-old ones
        never reached it); its replays, duplicates and members left out into the metrics."""
        if state.applied == len(plan.events):  # the usual case: no replay, no duplicate
            for _, _, _, event in plan.events:
                applied[event.type] += 1
        else:
            for (_, _, _, event), letter in zip(plan.events, state.status, strict=True):
                if letter == "a":
                    applied[event.type] += 1
        if state.replayed:
            self._metrics.replayed.inc(state.replayed)
        if state.duplicates:
            self._metrics.duplicates.inc(state.duplicates)
        if state.left_out:
            for name, count in state.left_out.items():
                self._metrics.distinct_capped.labels(name).inc(count)

    def values(
        self, plan: AccountPlan, state: AccountState, now: float
    ) -> tuple[Model, bool, dict[str, float]]:
        """The account's scoring model, whether it just moved there, its raw values."""
        model, switched = self._model_of(plan, state, now)
        # Cached values are the last scoring model's: only an account update, or the end of
        # its onboarding, moves an account to another one.
        fresh = state.cache_valid and not (self._segmented and (plan.attrs_changed or switched))
        return (
            model,
            switched,
            component_values(
                model,
                state.windows,
                state.attrs,
                state.seen,
                state.cached_values,
                plan.touched if fresh else None,
                state.seen_bucket,
                state.now_bucket,
            ),
        )

    def score(
        self,
        plan: AccountPlan,
        state: AccountState,
        mode: Mode,
        now: float,
        outcome: Outcome,
        cause_of: CauseOf,
        ranked: Ranked | None = None,
    ) -> None:
        """Into ``outcome``: the account's alert, if its tier changed, and its write.
        ``ranked``: the model, switch and values ``values`` gave, and the account's peer
        ranks; None (every model without percentile components): computed here."""
        if ranked is None:
            model, switched, values = self.values(plan, state, now)
            scored, ranks = values, None
        else:
            model, switched, values, ranks = ranked
            # Raw values are what is cached; scoring takes each percentile component's rank.
            scored = self.peers.scored(model, values, ranks) if self.peers else values
        over = overriding(plan, state, now)  # None: no override, as nearly every account
        # No hysteresis across models: the old tier's margin is about other boundaries. Nor
        # when an override is set, cleared or runs out: the tier before it was the CSM's
        # word, or a score the override moved, not one the margin should keep. (Kept,
        # whether it applied would depend on how the batches before happened to be cut,
        # and a replay could not rebuild the tier.)
        hysteresis = (
            hysteresis_applies(mode, state.last_mode)
            and not switched
            and (over is None or over.cause is None)
        )
        if switched and not plan.attrs_changed:  # only the clock moved it: onboarding ended
            cause_of = partial(causes.fixed, ONBOARDING_ENDED)
        if over is None:
            change = self._decide(model, scored, state, hysteresis)
        else:
            change = override.decide(
                model,
                score_components(model, scored),
                state.published,
                over.active,
                hysteresis=hysteresis,
            )
            for event in over.events:
                self._metrics.overrides.labels(event).inc()
            if over.cause is not None:
                cause_of = partial(causes.fixed, over.cause)
        next_change = state.next_change if over is None else over.next_change(state.next_change)
        if self.models.onboarding is not None:  # its end rescores it too, event or not
            next_change = self.models.rescore_at(state.attrs, now, next_change)
        if ranks and self.peers is not None:  # read again by the refresh, if not before
            next_change = self.peers.next_change(plan.account_id, now, next_change, ranks)
        # A gap holds what the silence moved: never a first tier (nothing to fall from), a
        # CSM's override or a segment move.
        caused = (
            state.published is None or switched or (over is not None and over.cause is not None)
        )
        if change is not None and self.gaps is not None and not caused and self.gaps.holds(change):
            # Not saved as published, and rescored again: when the gap closes, or by then.
            recheck = self.gaps.hold(plan.partition, plan.account_id, now)
            change, next_change = None, min(recheck, next_change or recheck)
            outcome.held += 1
        published = alert = None
        if change is not None:
            alert = build_alert(
                model,
                plan.account_id,
                state.attrs.get("segment"),
                change,
                cause_of(model, change, switched),
                now,
                mode=Mode.CATCH_UP if self._history else mode,
            )
            if over is not None and over.active is not None:
                alert = under_override(alert, model, change.scorecard, over.active)
            outcome.alerts.append((plan.account_id, alert))
            outcome.outbox.append(make(OutboxEntry, (plan.partition, plan.account_id, change.seq)))
            published = snapshot(change)
            if self._segmented:  # the model it was decided on: a later switch is seen
                published = published._replace(model=model_name(model))
            if over is not None:
                published = over.mark(published)
        if published is None and state.published is None:
            # Nothing published yet: the first tier never applies hysteresis, so the mode
            # has nothing to decide, and saving it would give an account with no data at
            # all (a tombstone of an unknown account) a key.
            mode = Mode.LIVE
        save = None if over is None else over.save
        write = (plan.account_id, values, plan.partition, next_change, published, alert, mode, save)
        outcome.writes.append(make(StateWrite, write))  # every field, in order

    def _decide(
        self, model: Model, values: dict[str, float], state: AccountState, hysteresis: bool
    ) -> TierChange | None:
        covered = enough_data(model, values)
        # A first score always publishes (when there is one): no need to ask first.
        moves = (
            state.published is None
            or new_tier(
                model,
                score_of(model, values),
                state.published,
                hysteresis=hysteresis,
                covered=covered,
            )
            is not None
        )
        return (
            decide(
                model,
                score_components(model, values),
                state.published,
                hysteresis=hysteresis,
                covered=covered,
            )
            if moves
            else None
        )

    def _model_of(self, plan: AccountPlan, state: AccountState, now: float) -> tuple[Model, bool]:
        """The model of the account's segment or onboarding, and whether an account update
        or the end of its onboarding moved it there from its last published tier's."""
        if not self._segmented:
            return self.models.default, False
        return scoring_model(self.models, state.attrs, state.published, plan.attrs_changed, now)
