"""The backtest's picture: churn rate by score decile and by tier, as PNG and SVG.

A model worth trusting draws a staircase: the lowest decile churns most, each higher
one less, and red churns more than yellow, yellow more than green. The dashed line is
the base rate, what a score that knew nothing would show everywhere.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no screen, no toolkit

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from worker.backtest.report import Group, Report

_TIER_COLOURS = {"green": "#2e9d4f", "yellow": "#e0b01f", "red": "#d0413a"}
_OTHER = "#8a8f98"


def draw(report: Report, stem: Path) -> list[Path]:
    """``<stem>.png`` and ``<stem>.svg``; the paths written."""
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [2.2, 1]}
    )
    _bars(
        left,
        report.deciles,
        [_decile_label(g) for g in report.deciles],
        ["#4c72b0"] * len(report.deciles),
        report.churn_rate,
    )
    left.set_title("Churn rate by score decile (lowest scores left)")
    left.set_xlabel("score range of the decile")
    tiers = [g for g in report.tiers if g.accounts]
    _bars(
        right,
        tiers,
        [f"{g.name}\n{g.accounts} accts" for g in tiers],
        [_TIER_COLOURS.get(g.name, _OTHER) for g in tiers],
        report.churn_rate,
    )
    right.set_title("Churn rate by tier")
    auc = "n/a" if report.auc is None else f"{report.auc:.2f}"
    figure.suptitle(
        f"{report.model_version}: churn within {report.horizon_days:g} days of "
        f"{report.moment[:10]}, {report.accounts} accounts, score AUC {auc}"
    )
    figure.tight_layout()
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    for path in paths:
        # No timestamp in the SVG: the same report draws the same file.
        figure.savefig(path, dpi=110, metadata={"Date": None} if path.suffix == ".svg" else None)
    plt.close(figure)
    return paths


def _bars(
    axes: Axes, groups: list[Group], labels: list[str], colours: list[str], base: float | None
) -> None:
    rates = [100.0 * (g.churn_rate or 0.0) for g in groups]
    axes.bar(range(len(groups)), rates, color=colours)
    axes.set_xticks(range(len(groups)), labels, fontsize=8)
    axes.set_ylabel("churned within the horizon (%)")
    if base is not None:
        axes.axhline(
            100.0 * base,
            color="black",
            linestyle="--",
            linewidth=1,
            label=f"all accounts {100.0 * base:.0f}%",
        )
        axes.legend(fontsize=8)
    for x, (rate, group) in enumerate(zip(rates, groups, strict=True)):
        axes.annotate(
            f"{group.churned}/{group.accounts}", (x, rate), ha="center", va="bottom", fontsize=7
        )


def _decile_label(group: Group) -> str:
    return f"{group.min_score:.0f}-{group.max_score:.0f}"
