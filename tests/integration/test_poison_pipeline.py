"""No record can stop the pipeline: whatever handling one record raises (other than a
dependency outage) becomes that record's dead letter, and the rest of the batch is
scored. The real pipeline on a real Redis, no broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from tests import poison
from tests.integration.harness import Record, event, poison_scoring
from worker.clock import WallClock
from worker.contracts import validator
from worker.errors import Retriable
from worker.events.decode import Decoder
from worker.metrics import Metrics
from worker.modelfile import load_model
from worker.pipeline import Pipeline
from worker.rescore import Outcome
from worker.settings import Settings
from worker.windows.plan import Planner
from worker.windows.store import WindowStore

DEEP = b"[" * 512 + b"]" * 512


@pytest.fixture
async def pipeline(settings: Settings) -> AsyncIterator[Pipeline]:
    redis = Redis.from_url(settings.redis_url)
    model = load_model()
    yield Pipeline(settings, model, WindowStore(redis, model), WallClock(), Metrics())
    await redis.aclose()


def login(
    settings: Settings, offset: int, account: str = "acme", raw_extra: bytes = b"", **extra: Any
) -> Record:
    """A valid login, or with ``extra`` fields; ``raw_extra`` is JSON text spliced in as
    is (orjson writes nothing nested deeper than 254 levels)."""
    body = orjson.dumps(event("login", account, time.time() - 60, user_id="u1", **extra))
    if raw_extra:
        body = body[:-1] + b"," + raw_extra + b"}"
    return Record(settings.topic_login, 0, offset, account.encode(), body)


def reasons(outcome: Outcome) -> list[tuple[int, str]]:
    for _, letter in outcome.dead_letters:
        assert validator("deadletter").is_valid(letter), letter
    return [(d["source"]["offset"], d["reason"]) for _, d in outcome.dead_letters]


def dead_letter_count(pipeline: Pipeline, reason: str) -> float:
    value = pipeline.metrics.registry.get_sample_value(
        "healthscore_dead_letters_total", {"reason": reason}
    )
    return value or 0.0


async def test_deep_nesting_is_a_schema_violation_on_every_topic(
    settings: Settings, pipeline: Pipeline
) -> None:
    deep_field = login(settings, 1, raw_extra=b'"x":' + DEEP)
    records = [login(settings, 0)]
    records += [Record(topic, 0, 1, b"acme", DEEP) for topic in settings.input_topics]
    records += [deep_field, login(settings, 2, "other")]
    outcome = await pipeline.process(records)
    assert sorted(reasons(outcome)) == [(1, "schema_violation")] * (len(records) - 2)
    fields = {d["field"] for _, d in outcome.dead_letters}
    assert fields == {None, "/x"}
    assert {a for a, _ in outcome.alerts} == {"acme", "other"}


async def test_an_unforeseen_decode_error_dead_letters_that_record_only(
    settings: Settings, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    decode = Decoder.decode

    def failing(self: Decoder, source: Any, key: Any, value: Any, now: float) -> Any:
        if source.offset == 1:
            raise RuntimeError("no check foresaw this")
        return decode(self, source, key, value, now)

    monkeypatch.setattr(Decoder, "decode", failing)
    pipeline = Pipeline(settings, pipeline.model, pipeline._store, WallClock(), Metrics())
    outcome = await pipeline.process(
        [login(settings, 0), login(settings, 1), login(settings, 2, "other")]
    )
    assert reasons(outcome) == [(1, "internal_error")]
    assert outcome.dead_letters[0][1]["detail"] == "RuntimeError: no check foresaw this"
    assert dead_letter_count(pipeline, "internal_error") == 1
    assert {a for a, _ in outcome.alerts} == {"acme", "other"}


async def test_an_account_whose_planning_fails_is_dead_lettered_and_the_rest_scored(
    settings: Settings, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = Planner.plan

    def failing(self: Planner, account_id: str, records: Any, now_bucket: int) -> Any:
        if account_id == "broken":
            raise OverflowError("cannot plan this")
        return plan(self, account_id, records, now_bucket)

    monkeypatch.setattr(Planner, "plan", failing)
    outcome = await pipeline.process(
        [
            login(settings, 0),
            login(settings, 1, "broken"),
            login(settings, 2, "broken"),
            login(settings, 3, "other"),
        ]
    )
    assert reasons(outcome) == [(1, "internal_error"), (2, "internal_error")]
    assert {a for a, _ in outcome.alerts} == {"acme", "other"}
    assert dead_letter_count(pipeline, "internal_error") == 2


async def test_an_account_whose_scoring_fails_is_dead_lettered_and_the_rest_scored(
    settings: Settings, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The state the store hands scoring, made to raise when read (windows of no type):
    # the compiled scoring code cannot be patched, what it is given can.
    poison_scoring(monkeypatch, "broken")
    outcome = await pipeline.process(
        [login(settings, 0), login(settings, 1, "broken"), login(settings, 2, "other")]
    )
    assert reasons(outcome) == [(1, "internal_error")]
    assert {a for a, _ in outcome.alerts} == {"acme", "other"}
    assert {w.account_id for w in outcome.writes} == {"acme", "other"}
    # A silent account whose rescoring fails is skipped, the others rescored.
    expired = await pipeline.expire([(0, "broken"), (0, "acme")])
    assert [w.account_id for w in expired.writes] == ["acme"]


async def test_a_dependency_outage_is_not_dead_lettered(
    settings: Settings, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    def away(*_: Any) -> Any:
        raise Retriable("redis is away")

    monkeypatch.setattr(Decoder, "decode", away)
    pipeline = Pipeline(settings, pipeline.model, pipeline._store, WallClock(), Metrics())
    with pytest.raises(Retriable):
        await pipeline.process([login(settings, 0)])


# --------------------------------------------------------------------------- hostile batches

KINDS = ["login", "feature_use", "ticket", "survey", "account"]


def _valid(kind: str, account: str) -> dict[str, Any]:
    fields: dict[str, dict[str, Any]] = {
        "login": {"user_id": "u1", "session_seconds": 600},
        "feature_use": {"user_id": "u2", "feature": "reports"},
        "ticket": {"ticket_id": "T-1", "status": "opened", "priority": "low"},
        "survey": {"kind": "nps", "score": 3},
    }
    if kind == "account":
        return {"account_id": account, "segment": "smb", "seats_purchased": 4}
    return event(kind, account, time.time() - 60, **fields[kind])


@st.composite
def hostile_batch(draw: st.DrawFn, settings: Settings) -> list[Record]:
    topics = {
        **{kind: topic for topic, kind in settings.event_topics.items()},
        "account": settings.topic_accounts,
    }
    records = []
    for offset in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(KINDS))
        account = draw(st.sampled_from(["acme", "globex", "initech"]))
        valid = _valid(kind, account)
        key, topic, value = account.encode(), topics[kind], orjson.dumps(valid)
        # About half of them hostile, so the batches hold accounts to score as well.
        hostile = draw(st.integers(0, 7))
        if hostile == 1:
            key = draw(poison.keys)
        elif hostile == 2:
            topic = draw(st.sampled_from(settings.input_topics))
        elif hostile == 3:
            value = draw(poison.hostile_body(kind, valid))
        elif hostile == 4:
            value = draw(st.binary(max_size=300) | poison.deep_nesting())
        records.append(Record(topic, offset % 2, offset, key, value))
    return records


def test_hostile_batches_score_or_dead_letter_every_record(settings: Settings) -> None:
    """Each record is applied or scored, or it is exactly one valid dead letter with a
    reason the checks name; nothing raises, and nothing is an internal error."""

    async def one(records: list[Record]) -> None:
        redis = Redis.from_url(settings.redis_url)
        try:
            model = load_model()
            pipeline = Pipeline(settings, model, WindowStore(redis, model), WallClock(), Metrics())
            outcome = await pipeline.process(records)
            await pipeline.store.save(outcome.writes)
        finally:
            await redis.aclose()
        dead = reasons(outcome)
        assert len({offset for offset, _ in dead}) == len(dead), "one dead letter per record"
        assert "internal_error" not in {reason for _, reason in dead}
        registry = pipeline.metrics.registry
        handled = sum(
            registry.get_sample_value("healthscore_events_total", {"type": t}) or 0 for t in KINDS
        )
        handled += registry.get_sample_value("healthscore_account_updates_total") or 0
        # Examples share one Redis: an event seen in an earlier example is skipped here
        # (offset fence, or its id), and an old one dropped, each in a counter of its own.
        handled += sum(
            registry.get_sample_value(f"healthscore_events_{skip}_total") or 0
            for skip in ("replayed", "duplicate", "too_old")
        )
        assert handled + len(dead) == len(records)

    @hyp_settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(records=hostile_batch(settings))
    def check(records: list[Record]) -> None:
        asyncio.run(one(records))

    check()
