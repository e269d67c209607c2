"""The synthetic customer base with ground truth: reproducible, valid records, and the
behaviour its outcomes promise (churners fade, then fall silent; the rest keep going)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from worker.contracts import validator
from worker.simulate.cohort import OUTCOME_MIX, Cohort, behaviour_on

END = datetime(2026, 11, 30, tzinfo=UTC)


def _cohort(seed: int = 1, accounts: int = 120) -> Cohort:
    return Cohort.create(accounts, random.Random(seed), days=60, outcome_days=30)


def test_a_seed_reproduces_the_base_its_history_and_its_outcomes() -> None:
    first, second = _cohort(4), _cohort(4)
    assert first == second
    assert first.outcomes(END) == second.outcomes(END)
    history = [list(c.history(random.Random(9), END, "run", 0.3)) for c in (first, second)]
    assert history[0] == history[1]


def test_every_outcome_is_valid_and_falls_in_the_last_outcome_days() -> None:
    records = _cohort().outcomes(END)
    assert len(records) == 120
    for record in records:
        assert validator("outcome").is_valid(record), record
        assert (
            END.date() - timedelta(days=31)
            <= datetime.fromisoformat(record["date"]).date()
            <= END.date()
        )


def test_the_outcome_mix_holds_on_average() -> None:
    counts = Counter(m.fate.outcome for m in _cohort(accounts=4000).members)
    for outcome, share in OUTCOME_MIX:
        assert counts[outcome] / 4000 == pytest.approx(share, abs=0.04), outcome


def test_history_is_in_time_order_and_valid_and_a_churner_is_silent_after_its_day() -> None:
    cohort = _cohort(2, 60)
    start = END - timedelta(days=cohort.days)
    churned = {
        m.account.account_id: start + timedelta(days=m.fate.day)
        for m in cohort.members
        if m.fate.outcome == "churned"
    }
    assert churned
    stamps = []
    for kind, event in cohort.history(random.Random(3), END, "run", 0.5):
        assert validator(kind).is_valid(event), event
        at = datetime.fromisoformat(event["ts"])
        stamps.append(at)
        if event["account_id"] in churned:
            assert at < churned[event["account_id"]]
    assert stamps == sorted(stamps)


def test_a_fading_churner_ends_below_where_it_started_and_a_silent_one_does_not() -> None:
    members = _cohort(5, 400).members
    fading = [m for m in members if m.fate.outcome == "churned" and m.fate.fade_days]
    silent = [m for m in members if m.fate.outcome == "churned" and not m.fate.fade_days]
    assert fading
    assert silent
    for m in fading:
        late = behaviour_on(m, m.fate.day - 0.5)
        assert late is not None
        assert late.activity < m.start.activity
        assert late.nps_mean < m.start.nps_mean
        assert behaviour_on(m, m.fate.day) is None
    for m in silent:
        assert behaviour_on(m, m.fate.day - 0.5) == m.start


def test_a_cohort_refuses_what_it_cannot_be() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Cohort.create(0, random.Random(1), days=10, outcome_days=5)
    with pytest.raises(ValueError, match="outcome_days"):
        Cohort.create(5, random.Random(1), days=10, outcome_days=20)
