"""The simulator: schema-valid events, reproducible runs, personas that behave as advertised."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any, ClassVar

import jsonschema_rs
import orjson
import pytest

from worker.settings import Settings
from worker.simulate import personas
from worker.simulate.personas import PERSONAS, Emitted, EventStream, Population
from worker.simulate.producer import run_simulation

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
START = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
DURATION, RATE = 60.0, 200.0  # a one-minute demo run
TS_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+00:00$")
TICKET_MOVES: dict[str, set[str]] = {"opened": {"escalated", "resolved"}, "closed": set(),
    "reopened": {"escalated", "resolved"}, "escalated": {"resolved"},
    "resolved": {"reopened", "closed"}}  # fmt: skip
Run = tuple[Population, list[Emitted]]


@pytest.fixture(scope="module")
def validators() -> dict[str, Any]:
    schemas = {p.name: json.loads(p.read_text()) for p in SCHEMAS.glob("*.schema.json")}
    registry = jsonschema_rs.Registry([(s["$id"], s) for s in schemas.values()])
    new, kinds = jsonschema_rs.Draft202012Validator, ("login", "feature_use", "ticket", "survey")
    return {k: new(schemas[f"{k}.schema.json"], registry=registry, validate_formats=True)
            for k in (*kinds, "account")}  # fmt: skip


def _run(seed: int, n_accounts: int = 40, run_id: str = "run1") -> Run:
    rng = random.Random(seed)
    population = Population.create(n_accounts, rng)
    events = list(population.events(rng, start=START, rate=RATE, duration=DURATION, run_id=run_id))
    return population, events


@pytest.fixture(scope="module")
def run() -> Run:
    return _run(seed=7)


def _progress(event: dict[str, Any]) -> float:
    return (datetime.fromisoformat(event["ts"]) - START).total_seconds() / DURATION


def _of_persona(run: Run, persona: str) -> list[Emitted]:
    population, events = run
    ids = {a.account_id for a in population.accounts if a.persona == persona}
    assert ids, f"no {persona} account in the population"
    return [(kind, e) for kind, e in events if e["account_id"] in ids]


def _logins_between(events: list[Emitted], lo: float, hi: float) -> list[dict[str, Any]]:
    return [e for kind, e in events if kind == "login" and lo <= _progress(e) < hi]


def _median_session(logins: list[dict[str, Any]]) -> float:
    return float(sorted(e["session_seconds"] for e in logins)[len(logins) // 2])


def _scores(events: list[Emitted], kind: str, after: float = 0.0) -> list[int]:
    return [e["score"] for k, e in events if k == "survey" and e["kind"] == kind
            and _progress(e) >= after]  # fmt: skip


def test_every_record_is_schema_valid(validators: dict[str, Any], run: Run) -> None:
    population, events = run
    history = list(EventStream(population, random.Random(1), "hist").backfill(START, days=3))
    records = [("account", r) for r in population.account_records(START)]
    for kind, record in [*records, *history, *events]:
        errors = [e.message for e in validators[kind].iter_errors(record)]
        assert not errors, (kind, record, errors)


def test_timestamps_are_utc_rfc3339_with_milliseconds(run: Run) -> None:
    _, events = run
    assert all(TS_FORMAT.match(e["ts"]) for _, e in events)
    at = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)
    assert personas.format_ts(at) == "2026-11-22T10:00:00.123+00:00"
    with pytest.raises(ValueError, match="timezone-aware"):
        personas.format_ts(datetime(2026, 11, 22, 10, 0))


def test_a_seed_reproduces_the_run() -> None:
    population_a, events_a = _run(seed=11, n_accounts=15)
    population_b, events_b = _run(seed=11, n_accounts=15)
    assert population_a == population_b
    assert events_a == events_b
    assert _run(seed=12, n_accounts=15)[1] != events_a


def test_event_ids_are_unique_across_history_and_live_events() -> None:
    population = Population.create(10, random.Random(3))
    stream = EventStream(population, random.Random(3), "r")
    emitted = [*stream.backfill(START, days=2), *stream.batch(2000, START, 0.5)]
    ids = [e["event_id"] for _, e in emitted]
    assert len(ids) == len(set(ids)) > 2000


def test_the_mix_is_mostly_usage_with_few_tickets_and_rare_surveys(run: Run) -> None:
    _, events = run
    counts = Counter(kind for kind, _ in events)
    total = sum(counts.values())
    assert total == int(RATE * DURATION)
    assert (counts["login"] + counts["feature_use"]) / total > 0.9
    assert 0 < counts["ticket"] / total < 0.05
    assert 0 < counts["survey"] / total < counts["ticket"] / total + 0.02


def test_declining_accounts_use_the_product_less_and_less(run: Run) -> None:
    declining = _of_persona(run, "declining")
    early, late = _logins_between(declining, 0.0, 0.2), _logins_between(declining, 0.8, 1.0)
    assert len(late) < 0.7 * len(early)
    assert _median_session(late) < 120 < 600 < _median_session(early)
    late_features = {
        e["feature"] for k, e in declining if k == "feature_use" and _progress(e) > 0.8
    }
    early_features = {
        e["feature"] for k, e in declining if k == "feature_use" and _progress(e) < 0.2
    }
    assert len(late_features) < len(early_features)


def test_escalating_accounts_escalate_tickets_and_turn_detractor(run: Run) -> None:
    escalating = _of_persona(run, "escalating")
    statuses = Counter(e["status"] for k, e in escalating if k == "ticket")
    assert statuses["opened"] >= 3
    assert statuses["escalated"] >= 2
    late_nps, late_csat = _scores(escalating, "nps", 0.5), _scores(escalating, "csat", 0.5)
    assert late_nps
    assert late_csat
    assert sum(s <= 6 for s in late_nps) > 0.7 * len(late_nps)
    assert sum(late_csat) / len(late_csat) < 3


def test_healthy_accounts_stay_healthy(run: Run) -> None:
    healthy = _of_persona(run, "healthy")
    nps = _scores(healthy, "nps")
    assert sum(s >= 9 for s in nps) > 0.5 * len(nps)
    assert sum(s <= 6 for s in nps) < 0.15 * len(nps)
    assert sum(k == "ticket" and e["status"] == "escalated" for k, e in healthy) <= 2
    assert _median_session(_logins_between(healthy, 0.8, 1.0)) > 900


def test_recovering_accounts_improve_and_silent_ones_go_quiet(run: Run) -> None:
    recovering = _of_persona(run, "recovering")
    early, late = _logins_between(recovering, 0.0, 0.2), _logins_between(recovering, 0.8, 1.0)
    assert len(late) > len(early)
    assert _median_session(late) > 3 * _median_session(early)
    silent = _of_persona(run, "churned_silent")
    assert len([e for _, e in silent if _progress(e) > 0.5]) < 0.1 * len(silent)


def test_tickets_follow_their_lifecycle(run: Run) -> None:
    _, events = run
    history: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for kind, event in events:
        if kind == "ticket":
            history[event["ticket_id"]].append(event)
    assert history
    for updates in history.values():
        assert updates[0]["status"] == "opened"
        assert len({e["account_id"] for e in updates}) == 1
        for before, after in pairwise(updates):
            assert after["status"] in TICKET_MOVES[before["status"]], updates


@pytest.mark.parametrize("n", [1, 2, 3, 5, 10, 37, 200])
def test_every_population_size_gets_a_sensible_persona_mix(n: int) -> None:
    mix = Counter(personas.assign_personas(n))
    assert sum(mix.values()) == n
    assert set(mix) <= set(PERSONAS)
    assert mix["healthy"] >= max(1, n // 2)
    if n >= 3:
        assert mix["declining"] >= 1
        assert mix["escalating"] >= 1


def test_account_records_scale_seats_with_segment() -> None:
    population = Population.create(300, random.Random(5))
    seats: dict[str, list[int]] = defaultdict(list)
    for account in population.accounts:
        assert 1 <= len(account.users) <= account.seats_purchased
        seats[account.segment].append(account.seats_purchased)
    assert max(seats["smb"]) <= min(seats["mid_market"])
    assert max(seats["mid_market"]) <= min(seats["enterprise"])
    assert any(len(a.users) < 0.75 * a.seats_purchased for a in population.accounts)
    with pytest.raises(ValueError, match="at least one"):
        Population.create(0, random.Random(5))


def test_backfill_spreads_history_over_the_past_days_in_order() -> None:
    population = Population.create(8, random.Random(9))
    history = list(EventStream(population, random.Random(9), "h").backfill(START, days=5))
    stamps = [datetime.fromisoformat(e["ts"]) for _, e in history]
    assert stamps == sorted(stamps)
    assert START - timedelta(days=5) <= stamps[0] < stamps[-1] <= START
    assert stamps[-1] - stamps[0] > timedelta(days=4)


class _FakeProducer:
    """Stands in for AIOKafkaProducer: records what would have been sent."""

    existing: ClassVar[set[str]] = set()
    instances: ClassVar[list[_FakeProducer]] = []

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.timestamps: list[int | None] = []
        self.stopped = self.flushed = False
        self.client = self
        _FakeProducer.instances.append(self)

    async def fetch_all_metadata(self) -> _FakeProducer:
        return self  # doubles as the client and its cluster metadata

    def topics(self) -> set[str]:
        return self.existing

    async def start(self) -> None:
        self.stopped = False

    async def send(
        self, topic: str, value: bytes, key: bytes, timestamp_ms: int | None = None
    ) -> asyncio.Future[None]:
        self.sent.append((topic, key, value))
        self.timestamps.append(timestamp_ms)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def flush(self) -> None:
        self.flushed = True

    async def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def fake_producer(monkeypatch: pytest.MonkeyPatch) -> Fake:
    monkeypatch.setattr("worker.runtime.kafka.AIOKafkaProducer", _FakeProducer)  # the factory's
    _FakeProducer.instances = []
    _FakeProducer.existing = set(Settings().input_topics)
    return _FakeProducer


Fake = type[_FakeProducer]


async def test_run_simulation_sends_accounts_then_paced_events(fake_producer: Fake) -> None:
    settings = Settings()
    stats = await run_simulation(
        settings, accounts=12, rate=400, duration=0.5, seed=1, progress=False
    )
    (producer,) = fake_producer.instances
    assert producer.flushed
    assert producer.stopped
    assert producer.config["linger_ms"] == 5
    assert [t for t, _, _ in producer.sent[:12]] == [settings.topic_accounts] * 12
    assert stats.sent["account"] == 12
    assert 100 <= stats.total - 12 <= 200  # 400/s for 0.5 s, give or take a tick
    for topic, key, value in producer.sent[12:]:
        event = orjson.loads(value)
        assert key == event["account_id"].encode()
        assert topic in settings.event_topics


async def test_accounts_are_stamped_at_the_start_of_their_history(fake_producer: Fake) -> None:
    # Their records are history like the events after them: the worker's first scores
    # of them are catch-up, not a live alert per account.
    before = time.time()
    await run_simulation(
        Settings(), accounts=3, rate=100, duration=0.1, seed=1, progress=False, history_days=2
    )
    (producer,) = fake_producer.instances
    stamps = [
        ts
        for (topic, _, _), ts in zip(producer.sent, producer.timestamps, strict=True)
        if topic == Settings().topic_accounts
    ]
    assert len(stamps) == 3
    assert all(
        ts is not None and before - 2 * 86400 - 1 <= ts / 1000 <= before - 2 * 86400 + 60
        for ts in stamps
    ), stamps


async def test_missing_topics_are_skipped_not_fatal(fake_producer: Fake) -> None:
    settings = Settings()
    fake_producer.existing = {settings.topic_accounts, settings.topic_login}
    stats = await run_simulation(
        settings, accounts=5, rate=200, duration=0.3, seed=2, progress=False
    )
    assert set(stats.sent) == {"account", "login"}
    assert stats.skipped["feature_use"] > 0


async def test_a_cancelled_run_still_closes_the_producer(fake_producer: Fake) -> None:
    coro = run_simulation(Settings(), accounts=5, rate=100, duration=None, seed=3, progress=False)
    task = asyncio.create_task(coro)
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake_producer.instances[0].stopped
    assert len(fake_producer.instances[0].sent) > 5


async def test_setting_stop_ends_an_open_ended_run(fake_producer: Fake) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.3, stop.set)
    stats = await run_simulation(
        Settings(), accounts=5, rate=100, duration=None, seed=4, progress=False, stop=stop
    )
    assert 10 <= stats.total - 5 <= 45
    assert fake_producer.instances[0].stopped
