"""The backtest's arithmetic without a broker: who counts as a sample, AUC, deciles,
tiers, the weight fit judged on held-out accounts, the fitted model file, and outcome
records that are not valid."""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from worker.backtest import outcomes, report
from worker.backtest.fit import auc, fit_weights
from worker.backtest.history import Snapshot, _after
from worker.backtest.output import fitted_model, text
from worker.modelfile.load import default_model_text, load_model
from worker.modelfile.segments import parse_models
from worker.scoring.tiers import plain_tier

DAY = 86400.0
MODEL = load_model()


def _snap(account: str, score: float, subscores: dict[str, float] | None = None) -> Snapshot:
    return Snapshot(
        account,
        "smb",
        MODEL.version,
        score,
        plain_tier(MODEL, score).name,
        subscores or {"login_frequency": score},
    )


def test_samples_leave_out_accounts_gone_before_the_moment_and_label_the_horizon() -> None:
    snaps = [_snap("early", 50), _snap("within", 40), _snap("later", 60), _snap("never", 80)]
    churn_at = {"early": 9 * DAY, "within": 30 * DAY, "later": 200 * DAY}
    items, gone = report.samples(snaps, churn_at, moment=10 * DAY, horizon=90 * DAY)
    assert gone == 1
    assert {s.snapshot.account_id: s.churned for s in items} == {
        "within": True,
        "later": False,
        "never": False,
    }


def test_auc_is_one_when_every_churner_scored_lowest_and_none_without_both_kinds() -> None:
    assert auc([True, True, False, False], [10, 20, 30, 40]) == 1.0
    assert auc([False, False, True, True], [10, 20, 30, 40]) == 0.0
    assert auc([True, False], [50, 50]) == 0.5
    assert auc([True, True], [10, 20]) is None
    assert auc([], []) is None


def test_deciles_split_by_score_lowest_first_and_tiers_follow_the_model() -> None:
    items = [report.Sample(_snap(f"a{i:03d}", float(i)), i < 20) for i in range(100)]
    deciles = report.deciles(items)
    assert [g.accounts for g in deciles] == [10] * 10
    assert [g.churned for g in deciles] == [10, 10] + [0] * 8
    assert (deciles[0].min_score, deciles[0].max_score) == (0.0, 9.0)
    tiers = report.tiers(MODEL, items)
    assert [g.name for g in tiers] == ["green", "yellow", "red"]
    assert sum(g.accounts for g in tiers) == 100
    assert tiers[2].churn_rate == 0.5  # red: scores 0-39, 20 of 40 churned


def _population(seed: int, n: int) -> list[report.Sample]:
    """Churn follows NPS alone; the other components are noise."""
    rng = random.Random(seed)
    items = []
    for i in range(n):
        nps = rng.uniform(0, 100)
        subscores = {c.name: rng.uniform(0, 100) for c in MODEL.components}
        subscores["nps"] = nps
        card = sum(c.weight * subscores[c.name] for c in MODEL.components) / sum(
            c.weight for c in MODEL.components
        )
        churned = rng.random() < 0.9 * (1 - nps / 100) ** 2
        items.append(report.Sample(_snap(f"acct-{seed}-{i:04d}", card, subscores), churned))
    return items


def test_the_fit_weighs_the_component_that_tells_churners_apart_and_beats_the_model() -> None:
    result = report.build(
        MODEL, _population(3, 1200), moment="2026-09-01T00:00:00+00:00", horizon_days=90, skipped={}
    )
    fit = result.fit
    assert fit is not None
    assert max(fit.weights, key=fit.weights.__getitem__) == "nps"
    assert sum(fit.weights.values()) == pytest.approx(
        sum(c.weight for c in MODEL.components), rel=0.05
    )
    assert fit.held_out_auc_fitted is not None
    assert fit.held_out_auc_model is not None
    assert fit.held_out_auc_fitted > fit.held_out_auc_model
    assert fit.trained_on + fit.held_out == 1200
    assert 0.2 < fit.held_out / 1200 < 0.4


def test_no_fit_from_too_few_churners() -> None:
    items = [report.Sample(_snap(f"a{i}", 50.0 + i), i < 3) for i in range(60)]
    assert (
        fit_weights(
            MODEL,
            [(s.snapshot.subscores, s.churned) for s in items],
            [(s.snapshot.subscores, s.snapshot.score, s.churned) for s in items],
        )
        is None
    )


def test_the_fitted_model_file_loads_with_the_fitted_weights_and_a_new_version() -> None:
    result = report.build(
        MODEL,
        _population(4, 800),
        moment="2026-09-01T00:00:00+00:00",
        horizon_days=90,
        skipped={"churned before the moment": 2},
    )
    assert result.fit is not None
    written = fitted_model(default_model_text(), "default model", result, result.fit)
    models = parse_models(written, "fitted")
    assert models.default.version == f"{MODEL.version}-fitted"
    for name, weight in result.fit.weights.items():
        assert models.default.component(name).weight == weight
    assert written.startswith("# Weights fitted by `healthscore backtest`")
    assert yaml.safe_load(written)["tiers"] == yaml.safe_load(default_model_text())["tiers"]
    shown = text(result, [Path("backtest/report.json")])
    assert "score AUC" in shown
    assert "not counted: 2 churned before the moment" in shown
    assert "-> " in shown


def test_outcome_lines_that_are_not_valid_are_counted_and_skipped() -> None:
    lines = [
        b'{"account_id": "a1", "outcome": "churned", "date": "2026-10-01"}',
        b"",
        b'{"account_id": "a2", "outcome": "left", "date": "2026-10-01"}',
        b'{"account_id": "a3", "outcome": "renewed"}',
        b"not json",
        b'{"account_id": "a1", "outcome": "churned", "date": "2026-09-01"}',
    ]
    read = outcomes.from_lines(lines, "f.jsonl")
    assert read.rejected == 3
    assert [o.account_id for o in read.records] == ["a1", "a1"]
    assert outcomes.churn_dates(read.records) == {
        "a1": outcomes.Outcome("a1", "churned", date(2026, 9, 1)).at
    }


@given(st.lists(st.binary(max_size=200), max_size=20))
def test_no_outcome_line_stops_the_reading(lines: list[bytes]) -> None:
    read = outcomes.from_lines(lines, "hostile")
    assert read.rejected + len(read.records) <= len(lines)


@given(st.binary(max_size=300))
def test_no_record_stops_the_cut_at_the_moment(raw: bytes) -> None:
    assert _after(raw, 0.0) in (True, False)


def test_records_after_the_moment_are_cut_and_the_rest_go_to_the_pipeline() -> None:
    moment = 1_790_000_000.0
    assert _after(b'{"ts": "2026-09-22T00:00:01+00:00"}', 1_790_035_200.0) is True
    assert _after(b'{"ts": "2026-09-21T23:59:59+00:00"}', 1_790_035_200.0) is False
    assert _after(b'{"ts": "2026-09-22T00:00:01"}', moment) is False  # no offset: rejected later
    assert _after(b"[1, 2", moment) is False
    assert _after(None, moment) is False
