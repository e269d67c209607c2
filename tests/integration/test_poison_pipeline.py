"""No record can stop the pipeline: whatever handling one record raises (other than a
dependency outage) becomes that record's dead letter, and the rest of the batch is
scored. The real pipeline on a real Redis, no broker."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from tests.integration.harness import Record, event
from worker.clock import WallClock
from worker.contracts import validator
from worker.errors import Retriable
from worker.events.decode import Decoder
from worker.metrics import Metrics
from worker.pipeline import Outcome, Pipeline
from worker.scoring.model import load_model
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


def login(settings: Settings, offset: int, account: str = "acme", raw_extra: bytes = b"",
          **extra: Any) -> Record:
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
        "healthscore_dead_letters_total", {"reason": reason})
    return value or 0.0


async def test_deep_nesting_is_a_schema_violation_on_every_topic(
        settings: Settings, pipeline: Pipeline) -> None:
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
        settings: Settings, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    decode = Decoder.decode

    def failing(self: Decoder, source: Any, key: Any, value: Any, now: float) -> Any:
        if source.offset == 1:
            raise RuntimeError("no check foresaw this")
        return decode(self, source, key, value, now)

    monkeypatch.setattr(Decoder, "decode", failing)
    pipeline = Pipeline(settings, pipeline.model, pipeline._store, WallClock(), Metrics())
    outcome = await pipeline.process([login(settings, 0), login(settings, 1),
                                      login(settings, 2, "other")])
    assert reasons(outcome) == [(1, "internal_error")]
    assert outcome.dead_letters[0][1]["detail"] == "RuntimeError: no check foresaw this"
    assert dead_letter_count(pipeline, "internal_error") == 1
    assert {a for a, _ in outcome.alerts} == {"acme", "other"}


async def test_an_account_whose_planning_fails_is_dead_lettered_and_the_rest_scored(
        settings: Settings, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = Planner.plan

    def failing(self: Planner, account_id: str, records: Any, now_bucket: int) -> Any:
        if account_id == "broken":
            raise OverflowError("cannot plan this")
        return plan(self, account_id, records, now_bucket)

    monkeypatch.setattr(Planner, "plan", failing)
    outcome = await pipeline.process([login(settings, 0), login(settings, 1, "broken"),
                                      login(settings, 2, "broken"), login(settings, 3, "other")])
    assert reasons(outcome) == [(1, "internal_error"), (2, "internal_error")]
    assert {a for a, _ in outcome.alerts} == {"acme", "other"}
    assert dead_letter_count(pipeline, "internal_error") == 2


async def test_a_dependency_outage_is_not_dead_lettered(
        settings: Settings, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    def away(*_: Any) -> Any:
        raise Retriable("redis is away")

    monkeypatch.setattr(Decoder, "decode", away)
    pipeline = Pipeline(settings, pipeline.model, pipeline._store, WallClock(), Metrics())
    with pytest.raises(Retriable):
        await pipeline.process([login(settings, 0)])
