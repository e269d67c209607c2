"""An independent reference for the crash, rebalance and replay tests: what a single
clean run of the default model must leave behind, and the checks of a run's alerts.

Written from the README's definitions (Key concepts: windows by event time in 1-day
buckets, the default model's table, the score, the tiers and their margin, the
attribution), not from the worker: it imports nothing of ``worker.windows`` or
``worker.scoring``, and the model is restated here rather than read from
``worker/models/default.yaml``, so a changed constant, curve or rule on either side
makes the two disagree. Raw values are computed from the events themselves (each
distinct event once per account, in any order), not from counters.

The one piece of the worker's storage layout it knows is what the counters hash of
an account (``hs:{A}:c``, ``<bucket>|<counter>`` -> sum) and its distinct sets must
hold, so that the tests can compare Redis exactly.

It ignores the worker's trimming of data older than the longest window: the chaos
stream spans 20 days, far inside the model's 30- and 90-day windows.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

Events = Iterable[tuple[str, dict[str, Any]]]
Attrs = Mapping[str, Any]
DAY = 86400  # the default model's bucket
MODEL_VERSION = "default-2026.11"
# (name, label, lowest score of the tier), best first; the margin of the hysteresis.
TIERS = (
    ("green", "Doing well", 70.0),
    ("yellow", "Take notice", 40.0),
    ("red", "Requires attention", 0.0),
)
MARGIN = 3.0
# Under this share of the total weight with data, the tier is UNKNOWN whatever the score.
MIN_COVERAGE = 0.0
UNKNOWN = ("unknown", "Not enough data")
ROUNDING = 0.005 + 1e-9  # scores and sub-scores leave the worker with two decimals


class Event(NamedTuple):
    type: str
    body: dict[str, Any]
    ts: float  # epoch seconds of the event's own ``ts``
    day: int  # its bucket


@dataclass(slots=True)
class Account:
    events: list[Event] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def seen(self) -> frozenset[str]:
        return frozenset(e.type for e in self.events)


def accounts(events: Events, attrs: Mapping[str, Attrs] | None = None) -> dict[str, Account]:
    """Every account's distinct events (a producer's duplicate, same ``event_id``, counts
    once per account) and attributes (``attrs``: the last account record of each)."""
    out: dict[str, Account] = defaultdict(Account)
    ids: dict[str, set[str]] = defaultdict(set)
    for event_type, body in events:
        account_id = body["account_id"]
        if body["event_id"] in ids[account_id]:
            continue
        ids[account_id].add(body["event_id"])
        ts = datetime.fromisoformat(body["ts"]).timestamp()
        out[account_id].events.append(Event(event_type, body, ts, math.floor(ts / DAY)))
    for account_id, values in (attrs or {}).items():
        if account_id in out:
            out[account_id].attrs = dict(values)
    return dict(out)


# What the worker's Redis holds: the counters the default model's components read,
# per bucket (event types and fields no component reads are not stored).
def _counters(e: Event) -> list[tuple[str, float]]:
    body = e.body
    if e.type == "login":
        seconds = body.get("session_seconds")
        return [("login", 1.0)] + (
            [] if seconds is None else [("sess_n", 1.0), ("sess_sum", float(seconds))]
        )
    if e.type == "ticket":
        name = {"opened": "tk_open", "reopened": "tk_reopen", "escalated": "tk_esc"}
        return [(name[body["status"]], 1.0)] if body["status"] in name else []
    if e.type == "survey" and body["kind"] == "nps":
        score = body["score"]
        return (
            [("nps_n", 1.0)] + [("nps_pro", 1.0)] * (score >= 9) + [("nps_det", 1.0)] * (score <= 6)
        )
    if e.type == "survey":
        return [("csat_n", 1.0), ("csat_sum", float(body["score"]))]
    return []


def counters(account: Account) -> dict[str, float]:
    """``<bucket>|<counter>`` -> sum, as ``hs:{A}:c`` must hold it."""
    out: dict[str, float] = defaultdict(float)
    for e in account.events:
        for name, delta in _counters(e):
            out[f"{e.day}|{name}"] += delta
    return dict(out)


def distinct(account: Account) -> dict[str, dict[str, float]]:
    """Set -> member -> last-seen time: active users (of logins and feature uses) and
    features used, as ``hs:{A}:u`` and ``:f`` must hold them."""
    out: dict[str, dict[str, float]] = {}
    for e in account.events:
        members = [("users", e.body.get("user_id"))] if e.type in _USAGE else []
        if e.type == "feature_use":
            members.append(("features", e.body["feature"]))
        for name, member in members:
            if member is not None:
                last = out.setdefault(name, {})
                last[member] = max(last.get(member, e.ts), e.ts)
    return out


# The default model's components, from the README's table. A raw value reads the
# account's events in the window; None is "no data" (an average of nothing).
_USAGE = frozenset({"login", "feature_use"})
Window = list[Event]


def _of(window: Window, *types: str) -> list[dict[str, Any]]:
    return [e.body for e in window if e.type in types]


def _users(window: Window) -> int:
    return len({b["user_id"] for b in _of(window, *_USAGE) if b.get("user_id") is not None})


def _logins_per_active_user(window: Window, _: Attrs) -> float | None:
    users = _users(window)
    return 0.0 if users == 0 else len(_of(window, "login")) / users


def _average(values: list[float]) -> float | None:
    return None if not values else sum(values) / len(values)


def _session_minutes(window: Window, _: Attrs) -> float | None:
    seconds = [b["session_seconds"] for b in _of(window, "login") if "session_seconds" in b]
    average = _average(seconds)
    return None if average is None else average / 60.0


def _license(window: Window, attrs: Attrs) -> float | None:
    seats = attrs.get("seats_purchased")
    return _users(window) / seats if seats else None


def _tickets(status: tuple[str, ...]) -> Callable[[Window, Attrs], float | None]:
    return lambda window, _: float(sum(b["status"] in status for b in _of(window, "ticket")))


def _answers(window: Window, kind: str) -> list[int]:
    return [b["score"] for b in _of(window, "survey") if b["kind"] == kind]


def _nps(window: Window, _: Attrs) -> float | None:
    answers = _answers(window, "nps")
    if not answers:
        return None
    promoters = sum(a >= 9 for a in answers)
    detractors = sum(a <= 6 for a in answers)
    return 100.0 * (promoters - detractors) / len(answers)


def _csat(window: Window, _: Attrs) -> float | None:
    return _average([float(a) for a in _answers(window, "csat")])


def linear(bad: float, good: float) -> Callable[[float], float]:
    """0 at ``bad``, 100 at ``good``, a straight line between, flat outside."""

    def curve(value: float) -> float:
        return 100.0 * min(1.0, max(0.0, (value - bad) / (good - bad)))

    return curve


def _escalation_bands(value: float) -> float:
    return 100.0 if value <= 0 else 40.0 if value <= 1 else 0.0


class Component(NamedTuple):
    name: str
    raw: Callable[[Window, Attrs], float | None]
    sources: frozenset[str]  # the events its raw value reads: once seen, it has data
    days: int
    weight: float
    curve: Callable[[float], float]
    # True: with none of its events in the window it has no data (silence: unknown);
    # False: once seen, silence scores on zeros.
    needs_recent: bool = False


COMPONENTS = (
    Component("login_frequency", _logins_per_active_user, _USAGE, 30, 1.0, linear(4, 20)),
    Component(
        "feature_adoption",
        lambda w, _: float(len({b["feature"] for b in _of(w, "feature_use")})),
        frozenset({"feature_use"}),
        30,
        1.0,
        linear(2, 8),
    ),
    Component("session_duration", _session_minutes, frozenset({"login"}), 30, 0.75, linear(2, 15)),
    Component("license_utilization", _license, _USAGE, 30, 1.0, linear(0.3, 0.8)),
    Component(
        "support_tickets",
        _tickets(("opened", "reopened")),
        frozenset({"ticket"}),
        30,
        0.75,
        linear(8, 1),
        needs_recent=True,
    ),
    Component(
        "escalations",
        _tickets(("escalated",)),
        frozenset({"ticket"}),
        90,
        1.25,
        _escalation_bands,
        needs_recent=True,
    ),
    Component("nps", _nps, frozenset({"survey"}), 90, 0.85, linear(-20, 50), needs_recent=True),
    Component("csat", _csat, frozenset({"survey"}), 90, 0.85, linear(2.5, 4.5), needs_recent=True),
)
BY_NAME = {c.name: c for c in COMPONENTS}


@dataclass(frozen=True, slots=True)
class Model:
    """One model: the default one above, or a segment's."""

    name: str  # "default", or the segment's
    components: tuple[Component, ...]
    tiers: tuple[tuple[str, str, float], ...] = TIERS
    margin: float = MARGIN
    by_name: dict[str, Component] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {c.name: c for c in self.components})


DEFAULT = Model("default", COMPONENTS)


@dataclass(frozen=True, slots=True)
class Models:
    """A model file's models: which one scores an account goes by its segment."""

    version: str
    default: Model
    segments: Mapping[str, Model] = field(default_factory=dict)

    def of_segment(self, segment: object) -> Model:
        return (
            self.segments.get(segment, self.default) if isinstance(segment, str) else (self.default)
        )

    def named(self, name: str) -> Model:
        return self.default if name == "default" else self.segments[name]


def _changed(name: str, **fields: Any) -> Component:
    return BY_NAME[name]._replace(**fields)


def _segment(
    name: str, tiers: tuple[tuple[str, str, float], ...] = TIERS, **changes: Component | None
) -> Model:
    merged = {c.name: changes.get(c.name, c) for c in COMPONENTS}
    return Model(name, tuple(c for c in merged.values() if c is not None), tiers)


ONLY_DEFAULT = Models(MODEL_VERSION, DEFAULT)
# ``worker/models/segments.example.yaml``, restated from its comments: the default model
# and four segments.
EXAMPLE = Models(
    "segments-example-2026.12",
    DEFAULT,
    {
        "enterprise": _segment(
            "enterprise",
            (
                ("green", "Doing well", 80.0),
                ("yellow", "Take notice", 50.0),
                ("red", "Requires attention", 0.0),
            ),
            license_utilization=_changed("license_utilization", weight=1.5),
            escalations=_changed("escalations", weight=1.5),
            support_tickets=_changed("support_tickets", curve=linear(20, 4)),
        ),
        "mid_market": _segment(
            "mid_market", feature_adoption=_changed("feature_adoption", weight=1.25)
        ),
        "smb": _segment(
            "smb",
            license_utilization=_changed("license_utilization", weight=0.5),
            login_frequency=_changed("login_frequency", weight=1.25),
            nps=_changed("nps", weight=0.5),
        ),
        "onboarding": _segment(
            "onboarding",
            (
                ("green", "Onboarding on track", 60.0),
                ("yellow", "Onboarding stalled", 30.0),
                ("red", "Onboarding at risk", 0.0),
            ),
            feature_adoption=_changed("feature_adoption", weight=1.5, days=14, curve=linear(1, 5)),
            login_frequency=_changed("login_frequency", days=14),
            nps=None,
            csat=None,
        ),
    },
)


class Card(NamedTuple):
    values: dict[str, float]  # components with data only
    score: float | None


def values(account: Account, today: int, model: Model = DEFAULT) -> dict[str, float]:
    """Every component's raw value with the windows ending in bucket ``today``; a
    component whose events the account never sent, or whose value is undefined, has
    none (left out, never a zero); nor has a ticket or survey component whose window
    holds none of its events."""
    out = {}
    for c in model.components:
        if c.sources.isdisjoint(account.seen):
            continue
        window = [e for e in account.events if today - c.days < e.day <= today]
        if c.needs_recent and not any(e.type in c.sources for e in window):
            continue
        value = c.raw(window, account.attrs)
        if value is not None:
            out[c.name] = value
    return out


def score(components: Mapping[str, float], model: Model = DEFAULT) -> float | None:
    """The weighted mean of the sub-scores of the components with data."""
    by_name = model.by_name
    weights = sum(by_name[n].weight for n in components)
    if not weights:
        return None
    return sum(by_name[n].weight * by_name[n].curve(v) for n, v in components.items()) / weights


def card(account: Account, today: int, model: Model = DEFAULT) -> Card:
    found = values(account, today, model)
    return Card(found, score(found, model))


def rank(tier: str, model: Model = DEFAULT) -> int:
    return [name for name, _, _ in model.tiers].index(tier)


def _plain(score: float, model: Model) -> str:
    return next((name for name, _, low in model.tiers if score >= low), model.tiers[-1][0])


def covered(components: Mapping[str, float], model: Model = DEFAULT) -> bool:
    """Enough of the model's weight has data to give the account a tier by its score."""
    total = sum(c.weight for c in model.components)
    by_name = model.by_name
    return MIN_COVERAGE <= 0 or sum(by_name[n].weight for n in components) >= MIN_COVERAGE * total


def tier_of(components: Mapping[str, float], previous: str | None, model: Model = DEFAULT) -> str:
    """``tier_after`` for the score of ``components``, or unknown when too few have data;
    no margin applies to or from unknown."""
    if not covered(components, model):
        return UNKNOWN[0]
    value = score(components, model)
    assert value is not None
    return tier_after(value, None if previous == UNKNOWN[0] else previous, model)


def tier_after(score: float, previous: str | None, model: Model = DEFAULT) -> str:
    """The tier of ``score`` for an account last published in ``previous``.

    The hysteresis: the boundaries around the current tier move away from it by the
    margin, so a move up needs the bar plus 3 (73 for green) and a move down a score
    below the bar minus 3 (67 for green). Without a previous tier, the plain bars.
    """
    plain = _plain(score, model)
    if previous is None:
        return plain
    if rank(plain, model) < rank(previous, model):
        up = _plain(score - model.margin, model)
        return up if rank(up, model) < rank(previous, model) else previous
    if rank(plain, model) > rank(previous, model):
        down = _plain(score + model.margin, model)
        return down if rank(down, model) > rank(previous, model) else previous
    return previous


def close(got: float | None, want: float | None, within: float = 1e-9) -> bool:
    if got is None or want is None:
        return got is want
    return abs(got - want) <= within * max(1.0, abs(want))


def attribution(
    before: Mapping[str, float] | None,
    after: Mapping[str, float],
    model: Model = DEFAULT,
    before_model: Model | None = None,
) -> dict[str, float]:
    """Each component's share of the score change: ``(w'(s' - S) - w(s - S)) / W'``, a
    missing component with no weight; with no earlier score, ``S`` is the new one.
    ``before_model``: the model of the earlier score, when the account changed models."""
    was = before_model or model
    base = score(before, was) if before is not None else None
    base = score(after, model) if base is None else base
    assert base is not None
    total = sum(model.by_name[n].weight for n in after)

    def pull(components: Mapping[str, float] | None, name: str, of: Model) -> float:
        if components is None or name not in components:
            return 0.0
        c = of.by_name[name]
        return c.weight * (c.curve(components[name]) - base)

    return {
        n: (pull(after, n, model) - pull(before, n, was)) / total
        for n in sorted((before or {}).keys() | after.keys())
    }
