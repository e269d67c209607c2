"""A synthetic customer population whose health visibly moves during a short demo run.

Pure (draws from the ``random.Random`` passed in, stamps the time passed in), so a
seed reproduces a run. Nothing leaves a window during a one-minute run, so going
quiet alone moves no score: declines also show in what new events drag down.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

Event = dict[str, Any]
Emitted = tuple[str, Event]

# Share of each persona; healthy accounts keep the population realistic.
PERSONA_MIX: tuple[tuple[str, float], ...] = (
    ("healthy", 0.60), ("declining", 0.15), ("escalating", 0.12), ("recovering", 0.08),
    ("churned_silent", 0.05),
)  # fmt: skip
PERSONAS = tuple(name for name, _ in PERSONA_MIX)

# (segment, share of accounts, seats purchased range, plans sold to it)
_SEGMENTS: tuple[tuple[str, float, tuple[int, int], tuple[str, ...]], ...] = (
    ("smb", 0.55, (3, 25), ("starter", "pro")),
    ("mid_market", 0.30, (25, 100), ("pro", "business")),
    ("enterprise", 0.15, (100, 250), ("business", "enterprise")),
)
_SEAT_PRICE = {"starter": 240.0, "pro": 480.0, "business": 900.0, "enterprise": 1500.0}
FEATURES = (
    "dashboards", "reports", "alerts", "integrations", "api", "exports", "automations",
    "workflows", "segments", "comments", "mobile_app", "forecasting", "custom_fields",
    "sso", "audit_log",
)  # fmt: skip
_PRIORITIES = ("low", "normal", "high", "urgent")


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How an account behaves at one point of its persona's arc."""

    activity: float  # traffic per active user, relative to a healthy account
    active_share: float  # share of the account's users still active
    features: int  # breadth of the feature repertoire in use
    session_median: float  # seconds
    ticket_rate: float  # ticket updates, as a share of an average account's traffic
    escalate_p: float  # chance an open ticket escalates on its next update
    survey_rate: float  # survey responses, likewise
    nps_mean: float
    csat_mean: float


_HEALTHY = Behaviour(1.0, 0.9, 11, 1100.0, 0.003, 0.05, 0.012, 9.4, 4.6)
# persona -> (behaviour at the start, at the end, the part of the run the change spans)
_ARCS: dict[str, tuple[Behaviour, Behaviour, float, float]] = {
    "healthy": (_HEALTHY, _HEALTHY, 0.0, 1.0),
    "declining": (_HEALTHY, Behaviour(0.7, 0.4, 2, 30.0, 0.004, 0.1, 0.03, 4.5, 2.8), 0.05, 0.45),
    "escalating": (_HEALTHY, Behaviour(0.9, 0.85, 9, 600.0, 0.12, 0.7, 0.06, 2.5, 1.5), 0.15, 0.55),
    "recovering": (Behaviour(0.5, 0.35, 3, 100.0, 0.04, 0.3, 0.03, 5.0, 2.8), _HEALTHY, 0.1, 0.6),
    "churned_silent": (_HEALTHY, Behaviour(0.01, 0.1, 2, 60.0, 0.0, 0.0, 0.0, 5.0, 3.0), 0.1, 0.35),
}


def behaviour(persona: str, progress: float) -> Behaviour:
    """The persona's behaviour at ``progress`` (0..1) of the run."""
    start, end, t0, t1 = _ARCS[persona]
    t = min(1.0, max(0.0, (progress - t0) / (t1 - t0)))
    mixed: dict[str, Any] = {
        f.name: getattr(start, f.name) + (getattr(end, f.name) - getattr(start, f.name)) * t
        for f in fields(Behaviour)
    }
    mixed["features"] = round(mixed["features"])
    # Geometric, so sessions shrink (or grow) by the same factor at every step.
    ratio = end.session_median / start.session_median
    mixed["session_median"] = start.session_median * ratio**t
    return Behaviour(**mixed)


@dataclass(frozen=True, slots=True)
class Account:
    account_id: str
    persona: str
    segment: str
    plan: str
    seats_purchased: int
    users: tuple[str, ...]
    features: tuple[str, ...]  # this account's repertoire, most used first
    arr: float
    renewal_in_days: int

    def record(self, now: datetime) -> Event:
        """The account's attributes, as published on the accounts topic."""
        renewal = (now.astimezone(UTC) + timedelta(days=self.renewal_in_days)).date()
        return {
            "account_id": self.account_id, "segment": self.segment, "plan": self.plan,
            "seats_purchased": self.seats_purchased, "arr": self.arr,
            "renewal_date": renewal.isoformat(), "ts": format_ts(now),
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class Population:
    accounts: tuple[Account, ...]

    @classmethod
    def create(cls, n_accounts: int, rng: random.Random) -> Population:
        if n_accounts < 1:
            raise ValueError("a population needs at least one account")
        personas = assign_personas(n_accounts)
        rng.shuffle(personas)
        return cls(tuple(_make_account(i, p, rng) for i, p in enumerate(personas, 1)))

    def account_records(self, now: datetime) -> list[Event]:
        return [account.record(now) for account in self.accounts]

    def events(
        self, rng: random.Random, *, start: datetime, rate: float, duration: float, run_id: str
    ) -> Iterator[Emitted]:
        """A whole run on a synthetic clock: ``rate`` events/s for ``duration`` seconds."""
        stream = EventStream(self, rng, run_id)
        total = int(rate * duration)
        step = max(1, int(rate / 20))  # the producer's batching: ~20 batches a second
        for done in range(0, total, step):
            at = start + timedelta(seconds=done / rate)
            yield from stream.batch(min(step, total - done), at, done / total)


def assign_personas(n: int) -> list[str]:
    """Persona of each account, by largest remainder so small demos still get the mix."""
    exact = [(name, n * share) for name, share in PERSONA_MIX]
    counts = {name: int(x) for name, x in exact}
    leftovers = sorted(exact, key=lambda item: item[1] - int(item[1]), reverse=True)
    for name, _ in leftovers[: n - sum(counts.values())]:
        counts[name] += 1
    # A demo without a declining and an escalating account would show nothing.
    for name in ("declining", "escalating"):
        if counts[name] == 0 and counts["healthy"] > 1:
            counts[name], counts["healthy"] = 1, counts["healthy"] - 1
    return [name for name, _ in PERSONA_MIX for _ in range(counts[name])]


def _make_account(index: int, persona: str, rng: random.Random) -> Account:
    segment, _, seat_range, plans = rng.choices(_SEGMENTS, weights=[s[1] for s in _SEGMENTS])[0]
    seats = rng.randint(*seat_range)
    # Most accounts use nearly every seat they bought; some bought well ahead of need.
    utilisation = rng.uniform(0.5, 0.75) if rng.random() < 0.2 else rng.uniform(0.8, 1.0)
    plan = rng.choice(plans)
    account_id = f"acct-{index:05d}"
    users = tuple(f"u{k:04d}@{account_id}" for k in range(1, round(seats * utilisation) + 1))
    arr = round(seats * _SEAT_PRICE[plan] * rng.uniform(0.85, 1.0), 2)
    features = tuple(rng.sample(FEATURES, len(FEATURES)))
    return Account(
        account_id,
        persona,
        segment,
        plan,
        seats,
        users,
        features,
        arr,
        renewal_in_days=rng.randint(20, 365),
    )


def format_ts(at: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision, e.g. ``2026-11-22T10:00:00.123+00:00``."""
    if at.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="milliseconds")


@dataclass(slots=True)
class _Ticket:
    ticket_id: str
    status: str
    priority: str


class EventStream:
    """Stateful event source: ids, ticket lifecycles and the traffic share of each account."""

    def __init__(self, population: Population, rng: random.Random, run_id: str) -> None:
        self._accounts = population.accounts
        self._rng = rng
        self._run_id = run_id
        self._seq = 0
        self._ticket_seq = 0
        self._tickets: dict[str, list[_Ticket]] = {a.account_id: [] for a in self._accounts}
        # An average account's usage: tickets and surveys keep their share of the
        # traffic whatever the population's size.
        start = [behaviour(a.persona, 0.0) for a in self._accounts]
        self._scale = sum(map(_usage, self._accounts, start)) / len(self._accounts)
        self._progress = -1.0
        self._behaviours: list[Behaviour] = []
        self._cum_weights: list[float] = []

    def batch(self, n: int, now: datetime, progress: float) -> list[Emitted]:
        """``n`` events stamped ``now``, at ``progress`` (0..1) of the run's persona arc."""
        self._update_weights(min(max(progress, 0.0), 1.0))
        ts = format_ts(now)
        picks = self._rng.choices(range(len(self._accounts)), cum_weights=self._cum_weights, k=n)
        return [self.event(self._accounts[i], self._behaviours[i], ts) for i in picks]

    def backfill(self, end: datetime, days: float, per_user_day: float = 1.6) -> Iterator[Emitted]:
        """History over the ``days`` before ``end``, as the accounts were at the start."""
        # The default 1.6 events per active user a day is ~5.6 logins a week: "good".
        span = days * 86400.0
        starts = [behaviour(a.persona, 0.0) for a in self._accounts]
        stamps: list[tuple[float, int]] = []
        for i, (account, b) in enumerate(zip(self._accounts, starts, strict=True)):
            k = round(self.traffic(account, b) * days * per_user_day)
            stamps.extend((self._rng.uniform(-span, 0.0), i) for _ in range(k))
        stamps.sort()  # chronological, so ticket lifecycles unfold in order
        for offset, i in stamps:
            at = format_ts(end + timedelta(seconds=offset))
            yield self.event(self._accounts[i], starts[i], at)

    def _update_weights(self, progress: float) -> None:
        # Recomputing every account's behaviour per event would dominate at high rates.
        if abs(progress - self._progress) < 0.01:
            return
        self._progress = progress
        self._behaviours = [behaviour(a.persona, progress) for a in self._accounts]
        self._cum_weights = list(accumulate(map(self.traffic, self._accounts, self._behaviours)))

    def traffic(self, account: Account, b: Behaviour) -> float:
        # Usage grows with the account's active users; tickets and surveys do not.
        return _usage(account, b) + (b.ticket_rate + b.survey_rate) * self._scale

    def event(self, account: Account, b: Behaviour, ts: str) -> Emitted:
        """One event of ``account`` behaving as ``b``, stamped ``ts``: a ticket, survey, login
        or feature use in the shares ``b`` gives them."""
        self._seq += 1
        base: Event = {
            "event_id": f"{self._run_id}-{self._seq:010d}",
            "ts": ts,
            "account_id": account.account_id,
            "user_id": self._user(account, b),
        }
        roll = self._rng.random() * self.traffic(account, b) / self._scale
        if roll < b.ticket_rate:
            return "ticket", self._ticket(account, b, base)
        if roll < b.ticket_rate + b.survey_rate:
            return "survey", self._survey(b, base)
        if self._rng.random() < 0.55:
            return "login", self._login(b, base)
        return "feature_use", self._feature_use(account, b, base)

    def _user(self, account: Account, b: Behaviour) -> str:
        # A skewed pick: power users generate more traffic than occasional ones.
        return account.users[int(_active_count(account, b) * self._rng.random() ** 1.3)]

    def _login(self, b: Behaviour, base: Event) -> Event:
        seconds = b.session_median * math.exp(self._rng.gauss(0.0, 0.6))
        return {**base, "session_seconds": min(86400, max(5, round(seconds)))}

    def _feature_use(self, account: Account, b: Behaviour, base: Event) -> Event:
        index = int(b.features * self._rng.random() ** 1.6)  # core features dominate
        count = min(50, 1 + int(self._rng.expovariate(0.4)))
        return {**base, "feature": account.features[index], "count": count}

    def _survey(self, b: Behaviour, base: Event) -> Event:
        if self._rng.random() < 0.6:
            score = min(10, max(0, round(self._rng.gauss(b.nps_mean, 1.3))))
            return {**base, "kind": "nps", "score": score}
        score = min(5, max(1, round(self._rng.gauss(b.csat_mean, 0.6))))
        return {**base, "kind": "csat", "score": score}

    def _ticket(self, account: Account, b: Behaviour, base: Event) -> Event:
        tickets = self._tickets[account.account_id]
        # The more tickets are open, the likelier the next update is to one of them.
        if tickets and self._rng.random() < len(tickets) / (len(tickets) + 0.6):
            ticket = self._rng.choice(tickets)
            ticket.status = _next_status(ticket.status, b.escalate_p, self._rng)
            if ticket.status == "escalated":
                ticket.priority = _PRIORITIES[min(3, _PRIORITIES.index(ticket.priority) + 1)]
            if ticket.status == "closed":
                tickets.remove(ticket)
        else:
            ticket = self._open_ticket(b)
            tickets.append(ticket)
        return {
            **base,
            "ticket_id": ticket.ticket_id,
            "status": ticket.status,
            "priority": ticket.priority,
        }

    def _open_ticket(self, b: Behaviour) -> _Ticket:
        self._ticket_seq += 1
        if self._rng.random() < b.escalate_p:
            priority = self._rng.choice(("high", "urgent"))
        else:
            priority = self._rng.choices(_PRIORITIES, weights=(35, 45, 15, 5))[0]
        return _Ticket(f"TCK-{self._run_id}-{self._ticket_seq:06d}", "opened", priority)


def _next_status(status: str, escalate_p: float, rng: random.Random) -> str:
    """Lifecycle: opened -> (escalated ->) resolved -> closed, with the odd reopen."""
    if status in ("opened", "reopened"):
        return "escalated" if rng.random() < escalate_p else "resolved"
    if status == "escalated":
        return "resolved"
    return "reopened" if rng.random() < escalate_p / 2 else "closed"


def _active_count(account: Account, b: Behaviour) -> int:
    return max(1, round(len(account.users) * b.active_share))


def _usage(account: Account, b: Behaviour) -> float:
    return b.activity * _active_count(account, b)
