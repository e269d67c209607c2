"""One batch through the whole flow: decode -> window -> score -> alert.

Kafka-agnostic: records in, an ``Outcome`` out (alerts and dead letters to
publish, state to save). ``runtime.delivery`` saves, publishes and commits it.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from functools import partial

from worker import causes
from worker.alerts import WINDOW_EXPIRY, Cause
from worker.clock import Clock
from worker.errors import is_retriable
from worker.events.intake import Intake, RawRecord
from worker.events.types import Record
from worker.gaps import DataGaps
from worker.metrics import Metrics
from worker.peerrank import PeerRanking
from worker.rescore import Outcome, Rescorer
from worker.scoring.mode import Mode, evaluation_mode
from worker.scoring.model import UNKNOWN_TIER, Model
from worker.scoring.segments import ModelSet, as_model_set
from worker.scoring.tierchange import TierChange
from worker.settings import Settings
from worker.windows import wire
from worker.windows.plan import AccountPlan, Planner
from worker.windows.state import AccountState
from worker.windows.store import WindowStore

log = logging.getLogger(__name__)
# Accounts per Redis exchange: enough to amortise a round trip, few enough that
# scoring one chunk overlaps Redis running the next.
CHUNK_ACCOUNTS = 250


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        model: Model | ModelSet,
        store: WindowStore,
        clock: Clock,
        metrics: Metrics,
        *,
        history: bool = False,
    ) -> None:
        """``history``: every alert is catch-up whatever its evaluation's mode (a replay:
        its trail and its final rescore report a rebuild, not news from the stream).
        ``model``: one model, or a set of segment models (``store`` holds its ``windows``)."""
        self._settings = settings
        self._history = history
        self._store = store
        self._clock = clock
        self.metrics = metrics
        self._lag = settings.catch_up_lag_seconds
        self._use(as_model_set(model), gaps=None)

    @property
    def gaps(self) -> DataGaps | None:
        """The live loop's data gaps (set by it): they hold back changes a silence caused."""
        return self._rescorer.gaps

    @gaps.setter
    def gaps(self, gaps: DataGaps | None) -> None:
        self._rescorer.gaps = gaps

    def use(self, models: ModelSet) -> None:
        """Score by ``models`` from now on: a model file reloaded live (``runtime.remodel``).
        Between two batches: what is held of the accounts goes, and is loaded again."""
        self._store.use(models.windows)
        if self.gaps is not None:
            self.gaps.use(models.default, time.time())
        self._use(models, self.gaps)

    def _use(self, models: ModelSet, gaps: DataGaps | None) -> None:
        self.models = models
        self.model = models.default
        self._planner = Planner(models.windows)
        self._peers = PeerRanking.of(models, self._settings.peer_refresh_seconds)
        self._rescorer = Rescorer(
            models, self._peers, self.metrics, history=self._history, gaps=gaps
        )
        every = models.all()
        self._intake = Intake(
            self._settings,
            self._clock,
            self.metrics,
            tiers={t.name for m in every for t in m.tiers},
            components={c.name for m in every for c in m.components},
        )

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
            plans,
            now,
            outcome,
            lambda plan, model, change, switched: causes.cause_of(
                model, by_account[plan.account_id], change, switched=switched
            ),
            lambda plan, exc: self._intake.fail_all(
                by_account[plan.account_id], records, exc, outcome.dead_letters
            ),
        )
        outcome.origins = _origins(records, outcome)
        return outcome

    async def due(self, partitions: Collection[int], limit: int) -> list[tuple[int, str]]:
        return await self._store.schedule.due(partitions, self._clock.now(), limit)

    async def expire(
        self, due: Sequence[tuple[int | None, str]], cause: Cause = WINDOW_EXPIRY
    ) -> Outcome:
        """Rescore accounts from their windows alone: no event, only the clock (or, for
        ``cause.kind == "replay"``, the rebuilt state) moved."""
        now = self._clock.now()
        outcome = Outcome()
        # Windows that rolled on the wall clock are news (live); on a replay's event-time
        # clock they are history like the records that moved it there.
        plans = [AccountPlan(account, partition, newest=now) for partition, account in due]
        await self._apply_and_score(
            plans, now, outcome, lambda _p, _m, _c, _s: cause, self._unscored, read_all=True
        )
        if cause is WINDOW_EXPIRY:
            self.metrics.expiry_rescored.inc(len(plans))
        return outcome

    async def _apply_and_score(
        self,
        plans: Sequence[AccountPlan],
        now: float,
        outcome: Outcome,
        cause_of: Callable[[AccountPlan, Model, TierChange, bool], Cause],
        failed: Callable[[AccountPlan, Exception], None],
        *,
        read_all: bool = False,
    ) -> None:
        applied: Counter[str] = Counter()
        failed = partial(self._failed, failed)
        # The real present, whatever the scoring clock (an event-time clock trails it).
        present = max(now, time.time())
        lag = self._lag

        async def chunk(part: Sequence[AccountPlan]) -> list[None]:
            states = await self._store.apply(part, now, read_all=read_all)
            if self._peers is not None:
                await ranked(part, states, self._peers)
            else:
                self._rescorer.score_all(
                    part, states, now, present, lag, outcome, cause_of, failed, applied
                )
            return []

        async def ranked(
            part: Sequence[AccountPlan], states: list[AccountState], peers: PeerRanking
        ) -> None:
            """``chunk`` with a model that ranks accounts among peers: values first, then
            one exchange for every rank of the chunk, then the scores."""
            ready = []
            for plan, state in zip(part, states, strict=True):
                self._rescorer.count(plan, state, applied)
                try:
                    model, switched, values = self._rescorer.values(plan, state, now)
                    ready.append((plan, state, model, switched, values))
                except Exception as exc:
                    failed(plan, exc)
            ranks = await peers.rank(
                self._store,
                [peers.update(model, state, values) for _, state, model, _, values in ready],
            )
            for (plan, state, model, switched, values), rank in zip(ready, ranks, strict=True):
                try:
                    self._rescorer.score(
                        plan,
                        state,
                        evaluation_mode(plan.newest, present, lag),
                        now,
                        outcome,
                        partial(cause_of, plan),
                        (model, switched, values, rank),
                    )
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

    def forget(self, partitions: Collection[int]) -> None:
        """These partitions moved to another worker: drop what is held of their accounts."""
        self._store.forget(partitions)

    async def tier_counts(self) -> dict[str, int]:
        names = dict.fromkeys(tier.name for model in self.models.all() for tier in model.tiers)
        return await self._store.tiers.counts([*names, UNKNOWN_TIER.name])

    def _plan_each(
        self,
        by_account: dict[str, list[Record]],
        now_bucket: int,
        records: Sequence[RawRecord],
        outcome: Outcome,
    ) -> list[AccountPlan]:
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

    def _failed(
        self, failed: Callable[[AccountPlan, Exception], None], plan: AccountPlan, exc: Exception
    ) -> None:
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
        log.warning(
            "account %s not rescored: %s: %s",
            plan.account_id,
            type(exc).__name__,
            exc,
            exc_info=self._intake.first_traceback(exc),
        )


def _origins(records: Sequence[RawRecord], outcome: Outcome) -> list[float]:
    """The Kafka timestamps of the records that caused the batch's live alerts.

    Catch-up alerts report history (their latency would be the backlog's age) and an
    expiry has no record: neither is measured. Records come sorted by partition and
    offset, so each cause is found by bisection, not by a pass over the batch."""
    causes = [
        (c.topic, c.partition, c.offset)
        for _, alert in outcome.alerts
        if alert.delivery == Mode.LIVE.value and (c := alert.cause).offset is not None
    ]
    found = []
    for cause in causes:
        at = bisect_left(records, cause, key=_position)
        if at < len(records) and _position(records[at]) == cause:
            found.append(records[at].timestamp / 1000)
    return found


def _position(record: RawRecord) -> tuple[str, int, int]:
    return record.topic, record.partition, record.offset
