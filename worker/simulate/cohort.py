"""A synthetic customer base with ground truth: who churns, renews, expands or
downgrades, on which day, and how each account behaved on the way there.

What a backtest must find, and what makes it hard, as real customer bases do:

- most churners fade first: usage, breadth and sessions shrink, tickets and
  escalations grow and survey answers turn sour, over four to sixteen weeks before
  their churn date, each by its own amount and with day-to-day noise;
- some churn without warning (a budget cut, an acquisition): healthy to the end;
- accounts that stay differ in how well they use the product, and some have a
  bad stretch of one or two weeks somewhere in the history;
- expanding accounts grow; downgrading ones fade part of the way.

Pure: draws from the ``random.Random`` passed in, stamps from the ``end`` passed in,
so a seed reproduces the base, its history and its outcomes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from worker.simulate.personas import (
    FEATURES,
    Account,
    Behaviour,
    Emitted,
    EventStream,
    Population,
    format_ts,
)

OUTCOME_MIX: tuple[tuple[str, float], ...] = (
    ("renewed", 0.60), ("churned", 0.22), ("expanded", 0.12), ("downgraded", 0.06),
)  # fmt: skip
SILENT_CHURN = 0.2  # share of churners whose usage gives no warning
BAD_STRETCH = 0.25  # share of staying accounts with one bad stretch in their history
FADE_DAYS = (28.0, 112.0)  # how long before its churn date a churner starts to fade
# Seats are kept small (the usage per user is what a score reads): a base of a few
# hundred accounts over months stays a few hundred thousand events.
_SEGMENTS = (("smb", 0.55, (3, 10)), ("mid_market", 0.30, (6, 16)), ("enterprise", 0.15, (10, 24)))
_PLANS = {"smb": "starter", "mid_market": "pro", "enterprise": "business"}
_SEAT_PRICE = {"starter": 240.0, "pro": 480.0, "business": 900.0}

# What customers say and ask, as opposed to how much they use the product.
_SENTIMENT = ("ticket_rate", "escalate_p", "survey_rate", "nps_mean", "csat_mean")
_THRIVING = Behaviour(1.0, 0.9, 11, 1100.0, 0.003, 0.05, 0.012, 9.4, 4.6)
# Where a churner ends up, relative to its own start (activity, share, features and
# sessions are scaled by the account's start; the rest are absolute).
_FADED = Behaviour(0.3, 0.4, 3, 180.0, 0.03, 0.35, 0.03, 3.5, 2.4)
_BAD = Behaviour(0.55, 0.6, 6, 450.0, 0.02, 0.25, 0.02, 6.5, 3.4)
_GROWN = Behaviour(1.3, 1.0, 13, 1300.0, 0.003, 0.04, 0.012, 9.6, 4.7)


@dataclass(frozen=True, slots=True)
class Fate:
    """An account's ground truth, in days since the history's start."""

    outcome: str
    day: float  # when the outcome takes effect; a churned account sends nothing after it
    fade_days: float  # how long before ``day`` its behaviour starts to move (0: no warning)
    bad_start: float | None = None  # a bad stretch of a staying account
    bad_days: float = 0.0


@dataclass(frozen=True, slots=True)
class Member:
    account: Account
    start: Behaviour  # how well this account uses the product when all is well
    fate: Fate


@dataclass(frozen=True, slots=True)
class Cohort:
    members: tuple[Member, ...]
    days: float  # length of the history

    @classmethod
    def create(
        cls, n_accounts: int, rng: random.Random, *, days: float, outcome_days: float
    ) -> Cohort:
        """``n_accounts`` accounts over ``days`` of history; outcomes fall in its last
        ``outcome_days``."""
        if n_accounts < 1:
            raise ValueError("a cohort needs at least one account")
        if not 0 < outcome_days <= days:
            raise ValueError("outcome_days must be positive and at most the history's length")
        members = tuple(_member(i, rng, days, outcome_days) for i in range(1, n_accounts + 1))
        return cls(members, days)

    def population(self) -> Population:
        return Population(tuple(m.account for m in self.members))

    def account_records(self, at: datetime) -> list[dict[str, Any]]:
        return [m.account.record(at) for m in self.members]

    def outcomes(self, end: datetime) -> list[dict[str, Any]]:
        """One outcome record per account (``schemas/outcome.schema.json``), by date."""
        start = end - timedelta(days=self.days)
        records = [_outcome_record(m, start) for m in self.members]
        return sorted(records, key=lambda r: (r["date"], r["account_id"]))

    def history(
        self, rng: random.Random, end: datetime, run_id: str, per_user_day: float = 1.6
    ) -> Iterator[Emitted]:
        """Every event of the history ending at ``end``, in time order (ticket lifecycles
        unfold in order). ``per_user_day``: a thriving active user's events a day."""
        stream = EventStream(self.population(), rng, run_id)
        start = end - timedelta(days=self.days)
        for day in range(int(self.days)):
            stamps: list[tuple[float, Member, Behaviour]] = []
            for member in self.members:
                b = behaviour_on(member, day + 0.5)
                if b is None:
                    continue
                # Day-to-day noise: some days are busier than others.
                expected = stream.traffic(member.account, b) * per_user_day
                expected *= max(0.0, rng.gauss(1.0, 0.25))
                count = int(expected) + (rng.random() < expected - int(expected))
                # A churner's last day ends at its churn: nothing after it.
                until = min(1.0, member.fate.day - day) if member.fate.outcome == "churned" else 1.0
                stamps.extend((day + rng.random() * until, member, b) for _ in range(count))
            stamps.sort(key=lambda s: s[0])
            for at, member, b in stamps:
                yield stream.event(member.account, b, format_ts(start + timedelta(days=at)))


def behaviour_on(member: Member, day: float) -> Behaviour | None:
    """How ``member`` behaves on ``day`` (None: it has churned and sends nothing)."""
    fate, start = member.fate, member.start
    if fate.outcome == "churned" and day >= fate.day:
        return None
    if fate.fade_days and day > fate.day - fate.fade_days:
        # Sentiment sours first, across the whole fade; usage holds up for its first
        # third, then falls: surveys and tickets warn before logins do.
        t = min(1.0, (day - (fate.day - fate.fade_days)) / fate.fade_days)
        target = _target(fate.outcome, start)
        usage = _mix(start, target, max(0.0, (t - 1 / 3) * 1.5))
        return replace(usage, **{f: getattr(_mix(start, target, t**0.7), f) for f in _SENTIMENT})
    if fate.bad_start is not None and fate.bad_start <= day < fate.bad_start + fate.bad_days:
        return _mix(start, _relative(_BAD, start), 1.0)
    return start


def _member(index: int, rng: random.Random, days: float, outcome_days: float) -> Member:
    account = _account(index, rng)
    # Accounts differ in how well they use the product, whatever their fate.
    vigour = min(1.3, max(0.3, rng.gauss(0.85, 0.3)))
    start = replace(
        _THRIVING,
        activity=vigour,
        active_share=min(0.95, 0.45 + 0.45 * vigour),
        features=max(2, round(_THRIVING.features * vigour)),
        session_median=_THRIVING.session_median * vigour,
        nps_mean=min(10.0, 6.5 + 3.0 * vigour + rng.gauss(0.0, 0.8)),
        csat_mean=min(5.0, 3.6 + 1.0 * vigour + rng.gauss(0.0, 0.3)),
    )
    # Accounts that get less out of the product leave more often: twice the churn at the
    # low end of vigour, half at the high end (the mix holds on average).
    risk = 2.0 ** ((0.85 - vigour) / 0.45)
    weights = [w * risk if o == "churned" else w for o, w in OUTCOME_MIX]
    outcome = rng.choices([o for o, _ in OUTCOME_MIX], weights=weights)[0]
    day = days - rng.uniform(0.0, outcome_days)
    if outcome == "churned":
        fade = 0.0 if rng.random() < SILENT_CHURN else rng.uniform(*FADE_DAYS)
        return Member(account, start, Fate(outcome, day, fade))
    fade = rng.uniform(*FADE_DAYS) if outcome in ("downgraded", "expanded") else 0.0
    bad_start = rng.uniform(0.0, days - 14.0) if rng.random() < BAD_STRETCH else None
    return Member(account, start, Fate(outcome, day, fade, bad_start, rng.uniform(7.0, 14.0)))


def _account(index: int, rng: random.Random) -> Account:
    segment, _, seat_range = rng.choices(_SEGMENTS, weights=[s[1] for s in _SEGMENTS])[0]
    seats = rng.randint(*seat_range)
    plan = _PLANS[segment]
    account_id = f"cust-{index:05d}"
    users = tuple(f"u{k:03d}@{account_id}" for k in range(1, seats + 1))
    arr = round(seats * _SEAT_PRICE[plan] * rng.uniform(0.85, 1.0), 2)
    return Account(
        account_id,
        "healthy",
        segment,
        plan,
        seats,
        users,
        tuple(rng.sample(FEATURES, len(FEATURES))),
        arr,
        rng.randint(20, 365),
    )


def _target(outcome: str, start: Behaviour) -> Behaviour:
    if outcome == "churned":
        return _relative(_FADED, start)
    if outcome == "downgraded":
        return _mix(start, _relative(_FADED, start), 0.5)
    return _mix(start, _GROWN, 1.0)


def _relative(end: Behaviour, start: Behaviour) -> Behaviour:
    """``end``'s usage taken as a share of the account's own usage at its start."""
    return replace(
        end,
        activity=start.activity * end.activity,
        active_share=start.active_share * end.active_share,
        features=max(1, round(start.features * end.features / _THRIVING.features)),
        session_median=start.session_median * end.session_median / _THRIVING.session_median,
    )


def _mix(a: Behaviour, b: Behaviour, t: float) -> Behaviour:
    mixed: dict[str, Any] = {
        f.name: getattr(a, f.name) + (getattr(b, f.name) - getattr(a, f.name)) * t
        for f in fields(Behaviour)
    }
    mixed["features"] = max(1, round(mixed["features"]))
    return Behaviour(**mixed)


def _outcome_record(member: Member, start: datetime) -> dict[str, Any]:
    fate, account = member.fate, member.account
    date = (start + timedelta(days=fate.day)).astimezone(UTC).date()
    change = {"churned": -1.0, "downgraded": -0.4, "expanded": 0.3, "renewed": 0.0}[fate.outcome]
    return {
        "account_id": account.account_id,
        "outcome": fate.outcome,
        "date": date.isoformat(),
        "arr_change": round(account.arr * change, 2),
    }
