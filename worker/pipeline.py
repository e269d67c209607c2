"""One batch through the whole flow: decode -> window -> score -> alert.

Kafka-agnostic: records in, an ``Outcome`` out (alerts and dead letters to
publish, state to save). ``runtime.delivery`` saves, publishes and commits it.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from worker import causes
from worker.alerts import ONBOARDING_ENDED, WINDOW_EXPIRY, Alert, Cause, build_alert, under_override
from worker.clock import Clock
from worker.errors import is_retriable
from worker.events.intake import Intake, RawRecord
from worker.events.types import Record
from worker.gaps import DataGaps
from worker.metrics import Metrics
from worker.overriding import overriding
from worker.peerrank import PeerRanking
from worker.scoring import override
from worker.scoring.coverage import enough_data
from worker.scoring.evaluate import component_values
from worker.scoring.mode import Mode, evaluation_mode, hysteresis_applies
from worker.scoring.model import UNKNOWN_TIER, Model
from worker.scoring.peers import PeerRank
from worker.scoring.rollup import score_components, score_of
from worker.scoring.segments import ModelSet, as_model_set, model_name, scoring_model
from worker.scoring.tierchange import TierChange, decide, new_tier, snapshot
from worker.settings import Settings
from worker.windows import wire
from worker.windows.outbox import OutboxEntry
from worker.windows.plan import AccountPlan, Planner
from worker.windows.store import AccountState, StateWrite, WindowStore

log = logging.getLogger(__name__)
# What ``Pipeline._values`` gives of an account, with its peer ranks (``scoring.peers``).
Ranked = tuple[Model, bool, dict[str, float], Mapping[str, PeerRank]]
# Accounts per Redis exchange: enough to amortise a round trip, few enough that
# scoring one chunk overlaps Redis running the next.
CHUNK_ACCOUNTS = 250


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


class Pipeline:
    def __init__(self, settings: Settings, model: Model | ModelSet, store: WindowStore,
                 clock: Clock, metrics: Metrics, *, history: bool = False) -> None:
        """``history``: every alert is catch-up whatever its evaluation's mode (a replay:
        its trail and its final rescore report a rebuild, not news from the stream).
        ``model``: one model, or a set of segment models (``store`` holds its ``windows``)."""
        self._settings = settings
        self._history = history
        self._store = store
        self._clock = clock
        self.metrics = metrics
        self._lag = settings.catch_up_lag_seconds
        self.gaps: DataGaps | None = None  # set by the live loop: it holds changes in a gap
        self._use(as_model_set(model))

    def use(self, models: ModelSet) -> None:
        """Score by ``models`` from now on: a model file reloaded live (``runtime.remodel``).
        Between two batches: what is held of the accounts goes, and is loaded again."""
        self._store.use(models.windows)
        if self.gaps is not None:
            self.gaps.use(models.default, time.time())
        self._use(models)

    def _use(self, models: ModelSet) -> None:
        self.models = models
        self.model = models.default
        self._segmented = bool(models.segments)
        self._planner = Planner(models.windows)
        self._peers = PeerRanking.of(models, self._settings.peer_refresh_seconds)
        every = models.all()
        self._intake = Intake(self._settings, self._clock, self.metrics,
                              tiers={t.name for m in every for t in m.tiers},
                              components={c.name for m in every for c in m.components})

    @property
    def store(self) -> WindowStore:
        """Where outcomes are saved (``runtime.delivery``)."""
        return self._store

    async def process(self, records: Sequence[RawRecord]) -> Outcome:
        outcome = Outcome()
        by_account = self._intake.decode(records, outcome.dead_letters)
        now = self._clock.now()
        now_bucket = self._store.now_bucket(now)
        try:
            plans = [self._planner.plan(a, recs, now_bucket) for a, recs in by_account.items()]
        except Exception:  # one account's records must not stop the others'
            plans = self._plan_each(by_account, now_bucket, records, outcome)
        for plan in plans:
            if plan.too_old:
                self.metrics.too_old.inc(plan.too_old)
        await self._apply_and_score(
            plans, now, outcome,
            lambda plan, model, change, switched: causes.cause_of(
                model, by_account[plan.account_id], change, switched=switched),
            lambda plan, exc: self._intake.fail_all(by_account[plan.account_id], records, exc,
                                                    outcome.dead_letters))
        outcome.origins = _origins(records, outcome)
        return outcome

    async def due(self, partitions: Collection[int], limit: int) -> list[tuple[int, str]]:
        return await self._store.schedule.due(partitions, self._clock.now(), limit)

    async def expire(self, due: Sequence[tuple[int | None, str]],
                     cause: Cause = WINDOW_EXPIRY) -> Outcome:
        """Rescore accounts from their windows alone: no event, only the clock (or, for
        ``cause.kind == "replay"``, the rebuilt state) moved."""
        now = self._clock.now()
        outcome = Outcome()
        # Windows that rolled on the wall clock are news (live); on a replay's event-time
        # clock they are history like the records that moved it there.
        plans = [AccountPlan(account, partition, newest=now) for partition, account in due]
        await self._apply_and_score(plans, now, outcome, lambda _p, _m, _c, _s: cause,
                                    self._unscored, read_all=True)
        if cause is WINDOW_EXPIRY:
            self.metrics.expiry_rescored.inc(len(plans))
        return outcome

    async def _apply_and_score(self, plans: Sequence[AccountPlan], now: float, outcome: Outcome,
                               cause_of: Callable[[AccountPlan, Model, TierChange, bool], Cause],
                               failed: Callable[[AccountPlan, Exception], None],
                               *, read_all: bool = False) -> None:
        applied: Counter[str] = Counter()
        failed = partial(self._failed, failed)
        # The real present, whatever the scoring clock (an event-time clock trails it).
        present = max(now, time.time())
        lag = self._lag

        async def chunk(part: Sequence[AccountPlan]) -> list[None]:
            states = await self._store.apply(part, now, read_all=read_all)
            if self._peers is not None:
                await ranked(part, states, self._peers)
                return []
            for plan, state in zip(part, states, strict=True):
                self._count_skipped(state)
                _count_applied(plan, state, applied)
                try:
                    self._score(plan, state, evaluation_mode(plan.newest, present, lag), now,
                                outcome, partial(cause_of, plan))
                except Exception as exc:  # one account must not stop the others
                    failed(plan, exc)
            return []

        async def ranked(part: Sequence[AccountPlan], states: list[AccountState],
                         peers: PeerRanking) -> None:
            """``chunk`` with a model that ranks accounts among peers: values first, then
            one exchange for every rank of the chunk, then the scores."""
            ready = []
            for plan, state in zip(part, states, strict=True):
                self._count_skipped(state)
                _count_applied(plan, state, applied)
                try:
                    model, switched, values = self._values(plan, state, now)
                    ready.append((plan, state, model, switched, values))
                except Exception as exc:
                    failed(plan, exc)
            ranks = await peers.rank(self._store, [peers.update(model, state, values)
                                                   for _, state, model, _, values in ready])
            for (plan, state, model, switched, values), rank in zip(ready, ranks, strict=True):
                try:
                    self._score(plan, state, evaluation_mode(plan.newest, present, lag), now,
                                outcome, partial(cause_of, plan),
                                (model, switched, values, rank))
                except Exception as exc:
                    failed(plan, exc)

        await wire.concurrently(plans, CHUNK_ACCOUNTS, chunk)
        # Once per batch, not per event: a labelled counter takes a lock on every inc().
        for event_type, count in applied.items():
            self.metrics.events.labels(event_type).inc(count)
        outcome.arrived.update(applied)
        self._count_alerts(outcome)
        if outcome.held:
            self.metrics.held.inc(outcome.held)

    def _count_alerts(self, outcome: Outcome) -> None:
        for tier, count in Counter(alert.tier for _, alert in outcome.alerts).items():
            self.metrics.alerts.labels(tier).inc(count)

    def _count_skipped(self, state: AccountState) -> None:
        if state.replayed:
            self.metrics.replayed.inc(state.replayed)
        if state.duplicates:
            self.metrics.duplicates.inc(state.duplicates)
        if state.left_out:
            for name, count in state.left_out.items():
                self.metrics.distinct_capped.labels(name).inc(count)

    def forget(self, partitions: Collection[int]) -> None:
        """These partitions moved to another worker: drop what is held of their accounts."""
        self._store.forget(partitions)

    async def tier_counts(self) -> dict[str, int]:
        names = dict.fromkeys(tier.name for model in self.models.all() for tier in model.tiers)
        return await self._store.tiers.counts([*names, UNKNOWN_TIER.name])

    def _plan_each(self, by_account: dict[str, list[Record]], now_bucket: int,
                   records: Sequence[RawRecord], outcome: Outcome) -> list[AccountPlan]:
        """Planning the batch raised: plan account by account, and dead-letter the
        records of those whose planning fails (planning is pure, so planning again is safe)."""
        plans = []
        for account_id, account_records in list(by_account.items()):
            try:
                plans.append(self._planner.plan(account_id, account_records, now_bucket))
            except Exception as exc:
                del by_account[account_id]
                self._intake.fail_all(account_records, records, exc, outcome.dead_letters)
        return plans

    def _failed(self, failed: Callable[[AccountPlan, Exception], None], plan: AccountPlan,
                exc: Exception) -> None:
        """Scoring the account failed after the batch's records were applied to it: the
        component values held for it miss them, and its next batch would recompute only
        the components that batch touches. So it goes, and is loaded again."""
        self._store.unhold(plan.account_id)
        failed(plan, exc)

    def _unscored(self, plan: AccountPlan, exc: Exception) -> None:
        """A silent account's rescoring failed: no record to set aside; it is tried
        again at its next due time or event."""
        if is_retriable(exc):
            raise exc
        log.warning("account %s not rescored: %s: %s", plan.account_id, type(exc).__name__,
                    exc, exc_info=self._intake.first_traceback(exc))

    def _values(self, plan: AccountPlan, state: AccountState, now: float
                ) -> tuple[Model, bool, dict[str, float]]:
        """The account's scoring model, whether it just moved there, its raw values."""
        model, switched = self._model_of(plan, state, now)
        # Cached values are the last scoring model's: only an account update, or the end of
        # its onboarding, moves an account to another one.
        fresh = state.cache_valid and not (self._segmented and (plan.attrs_changed or switched))
        return model, switched, component_values(
            model, state.windows, state.attrs, state.seen, state.cached_values,
            plan.touched if fresh else None, state.seen_bucket, state.now_bucket)

    def _score(self, plan: AccountPlan, state: AccountState, mode: Mode, now: float,
               outcome: Outcome, cause_of: Callable[[Model, TierChange, bool], Cause],
               ranked: Ranked | None = None) -> None:
        """``ranked``: the model, switch and values ``_values`` gave, and the account's
        peer ranks; None (every model without percentile components): computed here."""
        if ranked is None:
            model, switched, values = self._values(plan, state, now)
            scored, ranks = values, None
        else:
            model, switched, values, ranks = ranked
            # Raw values are what is cached; scoring takes each percentile component's rank.
            scored = self._peers.scored(model, values, ranks) if self._peers else values
        # No hysteresis across models: the old tier's margin is about other boundaries.
        hysteresis = hysteresis_applies(mode, state.last_mode) and not switched
        if switched and not plan.attrs_changed:  # only the clock moved it: onboarding ended
            cause_of = partial(causes.fixed, ONBOARDING_ENDED)
        over = overriding(plan, state, now)  # None: no override, as nearly every account
        if over is None:
            change = self._decide(model, scored, state, hysteresis)
        else:
            change = override.decide(model, score_components(model, scored), state.published,
                                     over.active, hysteresis=hysteresis)
            for event in over.events:
                self.metrics.overrides.labels(event).inc()
            if over.cause is not None:
                cause_of = partial(causes.fixed, over.cause)
        next_change = state.next_change if over is None else over.next_change(state.next_change)
        if self.models.onboarding is not None:  # its end rescores it too, event or not
            next_change = self.models.rescore_at(state.attrs, now, next_change)
        if ranks and self._peers is not None:  # read again by the refresh, if not before
            next_change = self._peers.next_change(plan.account_id, now, next_change, ranks)
        # A gap holds what the silence moved: never a first tier (nothing to fall from), a
        # CSM's override or a segment move.
        caused = (state.published is None or switched
                  or (over is not None and over.cause is not None))
        if change is not None and self.gaps is not None and not caused \
                and self.gaps.holds(change):
            # Not saved as published, and rescored again: when the gap closes, or by then.
            recheck = self.gaps.hold(plan.partition, plan.account_id, now)
            change, next_change = None, min(recheck, next_change or recheck)
            outcome.held += 1
        published = alert = None
        if change is not None:
            alert = build_alert(model, plan.account_id, state.attrs.get("segment"),
                                change, cause_of(model, change, switched), now,
                                mode=Mode.CATCH_UP if self._history else mode)
            if over is not None and over.active is not None:
                alert = under_override(alert, model, change.scorecard, over.active)
            outcome.alerts.append((plan.account_id, alert))
            outcome.outbox.append(OutboxEntry(plan.partition, plan.account_id, change.seq))
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
        outcome.writes.append(StateWrite(
            plan.account_id, values, partition=plan.partition, next_change=next_change,
            published=published, alert=alert, mode=mode,
            override=None if over is None else over.save))

    def _decide(self, model: Model, values: dict[str, float], state: AccountState,
                hysteresis: bool) -> TierChange | None:
        covered = enough_data(model, values)
        # A first score always publishes (when there is one): no need to ask first.
        moves = (state.published is None
                 or new_tier(model, score_of(model, values), state.published,
                             hysteresis=hysteresis, covered=covered) is not None)
        return (decide(model, score_components(model, values), state.published,
                       hysteresis=hysteresis, covered=covered)
                if moves else None)


    def _model_of(self, plan: AccountPlan, state: AccountState,
                  now: float) -> tuple[Model, bool]:
        """The model of the account's segment or onboarding, and whether an account update
        or the end of its onboarding moved it there from its last published tier's."""
        if not self._segmented:
            return self.model, False
        return scoring_model(self.models, state.attrs, state.published, plan.attrs_changed,
                             now)


def _count_applied(plan: AccountPlan, state: AccountState, into: Counter[str]) -> None:
    """The plan's events the script applied, by type; too-old ones never reached it."""
    if state.applied == len(plan.events):  # the usual case: no replay, no duplicate
        for _, _, _, event in plan.events:
            into[event.type] += 1
    else:
        for (_, _, _, event), letter in zip(plan.events, state.status, strict=True):
            if letter == "a":
                into[event.type] += 1


def _origins(records: Sequence[RawRecord], outcome: Outcome) -> list[float]:
    """The Kafka timestamps of the records that caused the batch's live alerts.

    Catch-up alerts report history (their latency would be the backlog's age) and an
    expiry has no record: neither is measured. Records come sorted by partition and
    offset, so each cause is found by bisection, not by a pass over the batch."""
    causes = [(c.topic, c.partition, c.offset) for _, alert in outcome.alerts
              if alert.delivery == Mode.LIVE.value and (c := alert.cause).offset is not None]
    found = []
    for cause in causes:
        at = bisect_left(records, cause, key=_position)
        if at < len(records) and _position(records[at]) == cause:
            found.append(records[at].timestamp / 1000)
    return found


def _position(record: RawRecord) -> tuple[str, int, int]:
    return record.topic, record.partition, record.offset
