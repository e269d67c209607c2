"""Every account's score as of a past moment, rebuilt by the replay machinery (the live
pipeline on event time, ``worker.replay``'s way) from the retained topics into a scratch
Redis: a backtest scores with the very code the worker scores with.

Records stamped after the moment are skipped before the pipeline sees them, so the
windows hold what the worker would have held then. Nothing is published: not the tier
changes found on the way, not dead letters (the live worker already sent those).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any, NamedTuple, TypeVar

import orjson

from worker.clock import EventTimeClock
from worker.metrics import Metrics
from worker.pipeline import Pipeline
from worker.progress import Reporter
from worker.rescore import Outcome
from worker.runtime.delivery import Delivery
from worker.runtime.reader import read_to_end
from worker.runtime.retry import retrying
from worker.scoring.evaluate import component_values
from worker.scoring.rollup import score_components
from worker.scoring.segments import ModelSet
from worker.scoring.tiers import plain_tier
from worker.settings import Settings
from worker.windows import keys, rebuild
from worker.windows.store import WindowStore
from worker.windows.wire import Client

log = logging.getLogger(__name__)
T = TypeVar("T")


class Snapshot(NamedTuple):
    """One account as the model saw it at the moment."""

    account_id: str
    segment: str | None
    model: str  # the version of the model (segment model) that scored it
    score: float
    tier: str  # the tier of the score alone: no margin, no override
    subscores: dict[str, float]  # component -> 0-100, components with data only


@dataclass(slots=True)
class Rebuilt:
    snapshots: list[Snapshot] = field(default_factory=list)
    records: int = 0  # read from the input topics
    later: int = 0  # of which stamped after the moment: skipped
    unscored: int = 0  # accounts known at the moment without a score (no component data)


def scratch_settings(settings: Settings, redis_url: str) -> Settings:
    """The settings for a Redis of the backtest's own: no durability wait (it is thrown
    away), none of the live Redis' credentials."""
    return replace(
        settings,
        redis_url=redis_url,
        redis_password_file="",
        redis_ca_file="",
        redis_wait_replicas=0,
        redis_wait_aof=False,
    )


async def scores_as_of(
    settings: Settings,
    models: ModelSet,
    redis: Client,
    moment: float,
    progress: Reporter | None = None,
) -> Rebuilt:
    """Rebuild every account up to ``moment`` (epoch s) and score each as of then."""
    store = WindowStore.from_settings(
        redis, models.windows, settings, published_field=keys.REPLAY_PUBLISHED
    )
    metrics = Metrics()
    pipeline = Pipeline(settings, models, store, EventTimeClock(), metrics, history=True)
    retry = partial(_retry, settings, metrics, asyncio.Event())
    delivery = Delivery(store, _publish_nothing, retry)
    result = Rebuilt()
    on_total = progress.start if progress else None
    async for records in read_to_end(
        settings, settings.input_topics, settings.batch_max_records, on_total
    ):
        if progress:
            progress.advance(len(records))
        result.records += len(records)
        kept = [r for r in records if not _after(r.value, moment)]
        result.later += len(records) - len(kept)
        if kept:
            await delivery.deliver(await retry(partial(pipeline.process, kept), "redis"))
    async for chunk in rebuild.accounts(redis):
        for _, account_id in chunk:
            snapshot = await _snapshot(store, models, account_id, moment)
            if snapshot is None:
                result.unscored += 1
            else:
                result.snapshots.append(snapshot)
    result.snapshots.sort(key=lambda s: s.account_id)
    return result


async def _snapshot(
    store: WindowStore, models: ModelSet, account_id: str, moment: float
) -> Snapshot | None:
    """``explain``'s computation, at the moment, without the override: a backtest judges
    the model, not the CSMs' pins."""
    state = await store.read(account_id, moment)
    segment = state.attrs.get("segment")
    model = models.for_account(state.attrs, moment)  # onboarding then, or its segment's
    values = component_values(
        model, state.windows, state.attrs, state.seen, {}, None, state.seen_bucket, state.now_bucket
    )
    card = score_components(model, values)
    if card.score is None:
        return None
    return Snapshot(
        account_id,
        segment,
        model.version,
        card.score,
        plain_tier(model, card.score).name,
        {name: c.subscore for name, c in card.components.items()},
    )


def _after(raw: bytes | None, moment: float) -> bool:
    """Whether a record says it happened after ``moment``; one that cannot say (not JSON,
    no valid ``ts``) goes to the pipeline, which rejects it as the worker did."""
    if not raw:
        return False
    try:
        ts = _ts(orjson.loads(raw))
    except (orjson.JSONDecodeError, ValueError, TypeError):
        return False
    return ts is not None and ts > moment


def _ts(body: Any) -> float | None:
    if not isinstance(body, dict) or not isinstance(body.get("ts"), str):
        return None
    stamp = datetime.fromisoformat(body["ts"])
    return None if stamp.tzinfo is None else stamp.timestamp()


async def _publish_nothing(outcome: Outcome) -> None:
    """History, already told (or never to be): a backtest only reads what it rebuilt."""


async def _retry(
    settings: Settings,
    metrics: Metrics,
    stop: asyncio.Event,
    operation: Callable[[], Awaitable[T]],
    dependency: str,
) -> T:
    """As a replay does: a Redis or broker outage is waited out (``stop`` is never set:
    Ctrl-C cancels the run)."""
    return await retrying(
        operation,
        dependency,
        max_backoff=settings.retry_backoff_max_seconds,
        metrics=metrics,
        stop=stop,
    )
