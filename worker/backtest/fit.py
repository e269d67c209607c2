"""Weights fitted to outcomes, judged on accounts the fit never saw.

A logistic regression of churn on the sub-scores (0-1; a component without data takes
its mean over the training accounts) says how much each component's sub-score lowers
the odds of churn. Those coefficients, where they point the healthy way, become the
weights, scaled to the model's own total; a component whose sub-score does not lower
the odds keeps a token weight (a model file's weights must be positive). The fitted
weights then score the held-out accounts with the worker's own roll-up
(``scoring.rollup.Scorecard``: components without data left out, the rest renormalised),
next to the score the model gave them: the fit is better only if its AUC there is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from worker.scoring.model import Model
from worker.scoring.rollup import ComponentScore, Scorecard

MIN_CLASS = 5  # churners and non-churners each, in each split, for a fit worth reading
TOKEN_WEIGHT = 0.01  # share of the total weight a component without power keeps

Subscores = Mapping[str, float]


@dataclass(frozen=True, slots=True)
class Fit:
    method: str
    trained_on: int
    held_out: int
    weights: dict[str, float]  # component -> fitted weight (the default model's components)
    model_weights: dict[str, float]  # component -> the model's weight, beside them
    held_out_auc_model: float | None  # the model's own score on the held-out accounts
    held_out_auc_fitted: float | None  # the fitted weights' score on the same accounts
    note: str = ""


def fit_weights(
    model: Model,
    train: Sequence[tuple[Subscores, bool]],
    test: Sequence[tuple[Subscores, float, bool]],
) -> Fit | None:
    """None when either split has too few churners or non-churners to fit or judge."""
    if min(_classes([c for _, c in train]) + _classes([c for _, _, c in test])) < MIN_CLASS:
        return None
    names = [c.name for c in model.components]
    x = _matrix(names, [s for s, _ in train])
    regression = LogisticRegression(C=1.0, max_iter=2000).fit(x, [c for _, c in train])
    total = sum(c.weight for c in model.components)
    weights = _weights(names, regression.coef_[0], total)
    flags = [c for _, _, c in test]
    fitted = [_rollup(weights, s) for s, _, _ in test]
    scored = [(f, c) for f, c in zip(fitted, flags, strict=True) if f is not None]
    return Fit(
        "logistic regression of churn on sub-scores",
        len(train),
        len(test),
        weights,
        {c.name: c.weight for c in model.components},
        auc(flags, [score for _, score, _ in test]),
        auc([c for _, c in scored], [f for f, _ in scored]),
        ""
        if len(scored) == len(test)
        else f"{len(test) - len(scored)} held-out accounts had no component the fit weighs",
    )


def _classes(flags: Sequence[bool]) -> list[int]:
    churned = sum(flags)
    return [churned, len(flags) - churned]


def _matrix(names: Sequence[str], rows: Sequence[Subscores]) -> np.ndarray:
    raw = np.array([[r.get(n, np.nan) for n in names] for r in rows], dtype=float) / 100.0
    means = np.nanmean(np.where(np.isnan(raw).all(axis=0), 0.5, raw), axis=0)
    return np.where(np.isnan(raw), means, raw)


def _weights(names: Sequence[str], coefficients: np.ndarray, total: float) -> dict[str, float]:
    # A higher sub-score should lower the odds of churn: a negative coefficient.
    power = np.maximum(-coefficients, 0.0)
    if power.sum() == 0:
        power = np.ones(len(names))
    scaled = power / power.sum() * total
    floor = TOKEN_WEIGHT * total
    return {n: round(max(float(w), floor), 3) for n, w in zip(names, scaled, strict=True)}


def _rollup(weights: Mapping[str, float], subscores: Subscores) -> float | None:
    card = Scorecard(
        {n: ComponentScore(0.0, s, weights[n]) for n, s in subscores.items() if n in weights}
    )
    return card.score


def auc(churned: Sequence[bool], scores: Sequence[float]) -> float | None:
    """How well a low score picks out churners (ROC AUC): 1.0 every churner scored below
    every other account, 0.5 a coin toss. None when there is nothing to tell apart."""
    if not any(churned) or all(churned):
        return None
    return float(roc_auc_score(np.asarray(churned), -np.asarray(scores, dtype=float)))
