"""A pure, in-memory computation of what a single clean run must leave behind, and
the pure checks of a run's alerts against it.

It replays the same events through nothing but dictionaries: each distinct event
(by ``event_id``) once, in any order, into the same model's counters and distinct
sets, then scores the windows with the worker's own pure scoring functions. What
it gives is what Redis and the worker's cached scores must equal, however many
times the worker died on the way.

It ignores the worker's trimming of data older than the longest window: the chaos
stream spans 20 days, far inside the model's 30- and 90-day windows.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tests.integration.harness import valid_alert
from worker.scoring.evaluate import component_values
from worker.scoring.model import Model
from worker.scoring.rollup import Scorecard, rounded, score_components
from worker.scoring.signals import WindowView
from worker.scoring.tierchange import decide
from worker.windows.buckets import bucket_of, oldest_bucket
from worker.windows.plan import COUNTERS_OF, DISTINCT_FIELDS

Events = Iterable[tuple[str, dict[str, Any]]]


@dataclass(slots=True)
class Account:
    """One account's windows as a clean run stores them (``hs:{A}:c``, ``:u``, ``:f``)."""

    counters: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    distinct: dict[str, dict[str, float]] = field(default_factory=dict)  # set -> member -> ts
    seen: set[str] = field(default_factory=set)  # event types, the ``seen:<type>`` fields


def accounts(events: Events, model: Model) -> dict[str, Account]:
    """Every account's reference windows; producer duplicates (same event_id) count once."""
    used_counters = {name for c in model.components for name in c.signal.counters}
    # Sets no component reads are never written, like counters no component reads.
    used_sets = {name for c in model.components for name in c.signal.distinct}
    seen_ids: set[str] = set()
    out: dict[str, Account] = defaultdict(Account)
    for event_type, body in events:
        if body["event_id"] in seen_ids:
            continue
        seen_ids.add(body["event_id"])
        account = out[body["account_id"]]
        _add(account, event_type, body, model, used_counters, used_sets)
    return dict(out)


def _add(account: Account, event_type: str, body: dict[str, Any], model: Model,
         used_counters: set[str], used_sets: set[str]) -> None:
    # Parsed as the worker's decoder parses it, so both sides hold the same float.
    ts = datetime.fromisoformat(body["ts"]).timestamp()
    bucket = bucket_of(ts, model.bucket_seconds)
    account.seen.add(event_type)
    for counter, delta in COUNTERS_OF[event_type](body):
        if counter in used_counters:
            account.counters[f"{bucket}|{counter}"] += delta
    for name in used_sets:
        source_field = DISTINCT_FIELDS[name].get(event_type)
        member = body.get(source_field) if source_field else None
        if member is not None:
            members = account.distinct.setdefault(name, {})
            members[member] = max(members.get(member, ts), ts)  # last seen, as ZADD GT keeps


def counters(events: Events, model: Model) -> dict[str, dict[str, float]]:
    """Counter hash per account: ``<bucket>|<counter>`` -> sum."""
    return {a: dict(account.counters) for a, account in accounts(events, model).items()}


def windows(account: Account, model: Model, now_bucket: int) -> dict[int, WindowView]:
    """What the worker's read gives for each of the model's windows ending in ``now_bucket``."""
    views = {}
    for window in {c.window_buckets for c in model.components}:
        first = oldest_bucket(now_bucket, window)
        sums: dict[str, float] = defaultdict(float)
        for key, value in account.counters.items():
            bucket, counter = key.split("|", 1)
            if int(bucket) >= first:
                sums[counter] += value
        since = first * model.bucket_seconds
        views[window] = WindowView(dict(sums), _count_since(account, "users", since),
                                   _count_since(account, "features", since))
    return views


def _count_since(account: Account, name: str, since: float) -> int:
    return sum(1 for ts in account.distinct.get(name, {}).values() if ts >= since)


def values(account: Account, model: Model, now_bucket: int) -> dict[str, float]:
    """Every component's value from scratch: no cache, nothing touched incrementally.

    The chaos stream sends no account updates, so there are no attributes.
    """
    return component_values(model, windows(account, model, now_bucket), {}, account.seen,
                            {}, None)


def scorecard(account: Account, model: Model, now_bucket: int) -> Scorecard:
    return score_components(model, values(account, model, now_bucket))


@dataclass(slots=True)
class AlertCount:
    read: int = 0  # records on the topic
    distinct: int = 0  # distinct alert_ids
    republished: int = 0  # alert_ids on the topic more than once

    @property
    def duplicates(self) -> int:
        return self.read - self.distinct


def alert_chains(alerts: Iterable[dict[str, Any]]
                 ) -> tuple[dict[str, list[dict[str, Any]]], AlertCount]:
    """Each account's alerts in publishing order, every alert_id once.

    ``alerts`` come in topic order: keyed by account, one account's alerts sit in
    one partition in the order they were published. A re-published alert (a batch
    re-delivered after a crash publishes its alerts again) must repeat its change
    exactly; its score may differ (the re-delivered batch may reach further), and
    the last copy is kept, as the one whose state the worker went on to save.
    """
    latest: dict[str, dict[str, Any]] = {}
    times: Counter[str] = Counter()
    order: dict[str, list[str]] = defaultdict(list)
    for alert in alerts:
        alert_id = alert["alert_id"]
        times[alert_id] += 1
        known = latest.get(alert_id)
        if known is None:
            order[alert["account_id"]].append(alert_id)
        else:
            assert _identity(known) == _identity(alert), f"one alert_id, two alerts: {known} {alert}"
        latest[alert_id] = alert
    count = AlertCount(sum(times.values()), len(latest), sum(1 for n in times.values() if n > 1))
    return {a: [latest[i] for i in ids] for a, ids in order.items()}, count


def _identity(alert: dict[str, Any]) -> tuple[Any, ...]:
    return alert["account_id"], alert["seq"], alert["previous_tier"], alert["tier"]


def check_chain(account: str, chain: list[dict[str, Any]], published: dict[str, Any] | None,
                card: Scorecard, model: Model) -> None:
    """Every tier change of a clean run is on the topic, once de-duplicated by alert_id.

    Which intermediate tiers an account passes through depends on where batches
    end (it is rescored once per batch, and batches are cut differently after a
    kill), so no fixed list of changes can be expected. What a clean run does
    guarantee, and this checks: the changes form one unbroken chain (seq 1..n,
    each starting from the tier the one before ended in, the first from none);
    the last is the tier the worker remembers publishing (``pub``); and from that
    tier the model, hysteresis included, sees no change to publish for the
    reference's final score. So no change was lost, neither in between (a gap)
    nor at the end (a final tier left unpublished).
    """
    shown = [(a["seq"], a["previous_tier"], a["tier"], a["score"]) for a in chain]
    assert [a["seq"] for a in chain] == list(range(1, len(chain) + 1)), (
        f"{account}: seqs not 1..n in (seq, from, to, score) {shown}")
    froms = [a["previous_tier"] for a in chain]
    assert froms == [None, *(a["tier"] for a in chain[:-1])], f"{account}: broken chain {shown}"
    assert published is not None, f"{account}: alerts {shown} but no published tier saved"
    last = chain[-1]
    assert (last["seq"], last["tier"], last["score"]) == (
        published["seq"], published["tier"], rounded(published["score"])), (
        f"{account}: alerts {shown} but saved seq {published['seq']} {published['tier']} "
        f"{published['score']}")
    change = decide(model, card, published)
    assert change is None, (f"{account}: final score {card.score} should move it from "
                            f"{published['tier']} to {change and change.tier}")


def check_alerts(alerts: list[dict[str, Any]], published: dict[str, dict[str, Any] | None],
                 cards: dict[str, Scorecard], model: Model) -> AlertCount:
    """Every tier change on the topic, at least once (see ``check_chain``).

    ``published``: each account's last published tier as the worker saved it;
    ``cards``: each account's reference scorecard.
    """
    assert all(valid_alert(a) for a in alerts), [a for a in alerts if not valid_alert(a)][:3]
    chains, count = alert_chains(alerts)
    assert set(chains) <= set(cards), f"alerts for unknown accounts {set(chains) - set(cards)}"
    failures = []
    for account, card in cards.items():
        try:
            assert account in chains, f"{account}: has events but no alert"
            check_chain(account, chains[account], published[account], card, model)
        except AssertionError as failure:
            failures.append(str(failure))
    assert not failures, (f"{len(failures)} of {len(cards)} accounts' alerts are wrong "
                          f"({count}); e.g. {failures[0]}")
    return count
