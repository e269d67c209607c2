"""What a backtest leaves behind: the report as text and JSON, and the fitted weights as
a model file ready for ``check-model``, a reload, or ``backtest --model`` again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml

from worker.backtest.fit import Fit
from worker.backtest.report import Report
from worker.modelfile.load import checked
from worker.modelfile.segments import parse_models


def fitted_model(text: str, source: str, report: Report, fit: Fit) -> str:
    """The model file with the default model's weights replaced by the fitted ones (its
    segment models keep theirs), a new version, and a header saying where they came from.
    Comments of the original are not kept: YAML round trips lose them."""
    raw = checked(text, source)
    for name, weight in fit.weights.items():
        raw["components"][name]["weight"] = weight
    raw["version"] = f"{raw['version']}-fitted"
    header = (
        f"# Weights fitted by `healthscore backtest` to the outcomes within "
        f"{report.horizon_days:g} days of {report.moment[:10]}\n"
        f"# ({fit.method}, {fit.trained_on} accounts). On {fit.held_out} held-out "
        f"accounts: AUC {_auc(fit.held_out_auc_fitted, 3)} with these weights, "
        f"{_auc(fit.held_out_auc_model, 3)} with {report.model_version}'s.\n"
        "# Read the report before using it: a fit follows the history it was given.\n"
    )
    result = header + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
    parse_models(result, "fitted model")  # what it writes, it can load
    return result


def as_json(report: Report, extra: dict[str, Any]) -> bytes:
    return orjson.dumps({**report.as_dict(), **extra}, option=orjson.OPT_INDENT_2)


def text(report: Report, written: list[Path]) -> str:
    lines = [
        f"backtest of {report.model_version}: scores as of {report.moment}, churn within "
        f"{report.horizon_days:g} days",
        f"{report.accounts} accounts, {report.churned} churned ({_pct(report.churn_rate)}); "
        f"score AUC {_auc(report.auc)} (0.5 = a coin toss, 1 = every churner scored lowest)",
        *(f"  not counted: {n} {why}" for why, n in report.skipped.items() if n),
        "",
        "churn by tier:",
        *(
            f"  {g.name:<10} {g.accounts:>6} accounts {g.churned:>5} churned  {_pct(g.churn_rate)}"
            for g in report.tiers
        ),
        "",
        "churn by score decile (lowest scores first):",
        *(
            f"  {g.name:<4} {g.min_score:>6.1f}-{g.max_score:<6.1f} {g.accounts:>6} accounts "
            f"{g.churned:>5} churned  {_pct(g.churn_rate)}"
            for g in report.deciles
        ),
        "",
        "components (AUC of the sub-score alone; mean sub-score churned / retained):",
        *(
            f"  {c.name:<20} AUC {_auc(c.auc):>4}  n {c.accounts:>5}  "
            f"{_num(c.mean_churned)} / {_num(c.mean_retained)}"
            for c in report.components
        ),
    ]
    lines += ["", *_fit_lines(report.fit)]
    if written:
        lines += ["", "written: " + ", ".join(str(p) for p in written)]
    return "\n".join(lines)


def _fit_lines(fit: Fit | None) -> list[str]:
    if fit is None:
        return ["fitted weights: none (too few churned or retained accounts to fit and judge)"]
    return [
        f"fitted weights ({fit.method}, {fit.trained_on} accounts; judged on "
        f"{fit.held_out} held out): AUC {_auc(fit.held_out_auc_fitted, 3)} fitted vs "
        f"{_auc(fit.held_out_auc_model, 3)} the model's",
        *(
            f"  {name:<20} {fit.model_weights[name]:>5g} -> {weight:g}"
            for name, weight in fit.weights.items()
        ),
        *([f"  note: {fit.note}"] if fit.note else []),
    ]


def _auc(value: float | None, digits: int = 2) -> str:
    """Two decimals; three where two AUCs that close are compared (the fit's)."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.1f}%"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
