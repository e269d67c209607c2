"""What a backtest finds: churn by tier and by score decile, each component's and the
score's power to tell churners from the rest (ROC AUC), and weights fitted to outcomes.

Numbers only (numpy and scikit-learn, the ``calibrate`` extra): this module is imported
by the backtest command alone, never by the worker.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np

from worker.backtest.fit import Fit, auc, fit_weights
from worker.backtest.history import Snapshot
from worker.scoring.model import Model

HELD_OUT_SHARE = 30  # percent of accounts kept out of the fit, to judge it on
DECILES = 10


class Sample(NamedTuple):
    """An account at the moment, and whether it churned within the horizon after it."""

    snapshot: Snapshot
    churned: bool


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    accounts: int
    churned: int
    churn_rate: float | None
    min_score: float | None = None  # deciles: the score range they hold
    max_score: float | None = None


@dataclass(frozen=True, slots=True)
class ComponentPower:
    name: str
    accounts: int  # with data for it at the moment
    churned: int
    auc: float | None  # None: all of one kind (no churner, or only churners)
    mean_churned: float | None  # mean sub-score of those who churned
    mean_retained: float | None


@dataclass(frozen=True, slots=True)
class Report:
    model_version: str
    moment: str  # ISO date-time the scores are as of
    horizon_days: float
    accounts: int
    churned: int
    churn_rate: float | None
    auc: float | None
    tiers: list[Group]
    deciles: list[Group]
    components: list[ComponentPower]
    fit: Fit | None
    skipped: dict[str, int] = field(default_factory=dict)  # why accounts are not samples

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def samples(
    snapshots: Sequence[Snapshot], churn_at: Mapping[str, float], moment: float, horizon: float
) -> tuple[list[Sample], int]:
    """Samples, and how many accounts had churned before the moment (not samples: their
    fate was sealed). Accounts without a churn are retained, whatever else they did."""
    result, gone = [], 0
    for snap in snapshots:
        at = churn_at.get(snap.account_id)
        if at is not None and at <= moment:
            gone += 1
            continue
        result.append(Sample(snap, at is not None and at <= moment + horizon))
    return result, gone


def tiers(model: Model, items: Sequence[Sample]) -> list[Group]:
    names = [t.name for t in model.tiers]
    names += sorted({s.snapshot.tier for s in items} - set(names))  # unknown, other segments'
    return [_group(n, [s for s in items if s.snapshot.tier == n]) for n in names]


def deciles(items: Sequence[Sample]) -> list[Group]:
    """Ten groups of (nearly) equal size, lowest scores first."""
    ordered = sorted(items, key=lambda s: (s.snapshot.score, s.snapshot.account_id))
    groups = [g for g in np.array_split(np.arange(len(ordered)), DECILES) if len(g)]
    result = []
    for number, index in enumerate(groups, 1):
        members = [ordered[i] for i in index]
        scores = [m.snapshot.score for m in members]
        result.append(_group(f"D{number}", members, min(scores), max(scores)))
    return result


def components(model: Model, items: Sequence[Sample]) -> list[ComponentPower]:
    names = [c.name for c in model.components]
    names += sorted({n for s in items for n in s.snapshot.subscores} - set(names))
    result = []
    for name in names:
        having = [s for s in items if name in s.snapshot.subscores]
        flags = [s.churned for s in having]
        values = [s.snapshot.subscores[name] for s in having]
        result.append(
            ComponentPower(
                name,
                len(having),
                sum(flags),
                auc(flags, values),
                _mean([v for v, c in zip(values, flags, strict=True) if c]),
                _mean([v for v, c in zip(values, flags, strict=True) if not c]),
            )
        )
    return result


def held_out(account_id: str) -> bool:
    """A fixed ~30% of accounts, by a hash of the id: the same split on every run."""
    digest = hashlib.blake2b(account_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100 < HELD_OUT_SHARE


def build(
    model: Model,
    items: Sequence[Sample],
    *,
    moment: str,
    horizon_days: float,
    skipped: dict[str, int],
) -> Report:
    flags = [s.churned for s in items]
    train = [s for s in items if not held_out(s.snapshot.account_id)]
    test = [s for s in items if held_out(s.snapshot.account_id)]
    return Report(
        model.version,
        moment,
        horizon_days,
        len(items),
        sum(flags),
        sum(flags) / len(items) if items else None,
        auc(flags, [s.snapshot.score for s in items]),
        tiers(model, items),
        deciles(items),
        components(model, items),
        fit_weights(
            model,
            [(s.snapshot.subscores, s.churned) for s in train],
            [(s.snapshot.subscores, s.snapshot.score, s.churned) for s in test],
        ),
        skipped,
    )


def _group(
    name: str, members: Sequence[Sample], low: float | None = None, high: float | None = None
) -> Group:
    churned = sum(m.churned for m in members)
    return Group(
        name,
        len(members),
        churned,
        churned / len(members) if members else None,
        None if low is None else round(low, 2),
        None if high is None else round(high, 2),
    )


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None
