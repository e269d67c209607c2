"""A new event type is a schema and a vocabulary entry: with nothing else changed, its
events are decoded from their default topic, counted, distinct-counted in a set of
their own (``hs:{A}:d:<set>``) and scored, held and loaded alike. And windows written
before sets had names load as they are. Real Redis, the real pipeline."""

from __future__ import annotations

import time

import orjson
import pytest
from redis.asyncio import Redis

from tests import vocab
from tests.integration.harness import Record, event
from worker.clock import FixedClock
from worker.metrics import Metrics
from worker.modelfile import load_model
from worker.pipeline import Pipeline
from worker.settings import Settings
from worker.windows import keys
from worker.windows.store import WindowStore

ACCOUNT = "initech"


async def test_a_new_event_type_is_counted_distinct_counted_and_scored(
    settings: Settings, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    vocab.add_page_views(monkeypatch)
    model = vocab.model_with_pages()
    clock = FixedClock(time.time())
    store = WindowStore(redis, model)
    pipeline = Pipeline(settings, model, store, clock, Metrics())
    now = clock.now()
    views = [("home", 30), ("billing", 50), ("home", 10), ("reports", 0)]
    records = [
        Record(
            vocab.TOPIC,
            0,
            offset,
            ACCOUNT.encode(),
            orjson.dumps(
                event(vocab.NAME, ACCOUNT, now - offset, user_id="u1", page=page, seconds=seconds)
            ),
        )
        for offset, (page, seconds) in enumerate(views)
    ]
    outcome = await pipeline.process(records)
    await pipeline.store.save(outcome.writes)

    assert outcome.dead_letters == []
    pages = {m.decode() for m in await redis.zrange(keys.set_key(ACCOUNT, "pages"), 0, -1)}
    assert pages == {"home", "billing", "reports"}
    assert keys.set_key(ACCOUNT, "pages") == f"hs:{{{ACCOUNT}}}:d:pages"
    counters = await redis.hgetall(keys.account_keys(ACCOUNT, ())[0])
    sums: dict[str, float] = {}  # over buckets: the events may straddle midnight
    for name, total in counters.items():
        counter = name.decode().split("|")[1]
        sums[counter] = sums.get(counter, 0.0) + float(total)
    assert sums == {"pv": 4.0}  # pv_sec: no signal of the model reads it, so not kept

    held = store.held(ACCOUNT, now)
    fresh = await WindowStore(redis, model).read(ACCOUNT, now)
    for state in (held, fresh):
        assert state is not None
        window = state.windows[30]
        assert (window.get("pv"), window.distinct("pages")) == (4, 3)
        assert "page_view" in state.seen

    [(_, alert)] = outcome.alerts  # the account's first score
    assert alert.components["page_breadth"].value == 0.75  # 3 pages / 4 views
    assert alert.components["page_breadth"].subscore == 75.0
    assert alert.score == 75.0  # the only component with data
    assert (
        pipeline.metrics.registry.get_sample_value("healthscore_events_total", {"type": vocab.NAME})
        == 4.0
    )


async def test_users_and_features_written_before_sets_had_names_load(
    settings: Settings, redis: Redis
) -> None:
    """The one-letter keys of the first two sets are kept: no migration."""
    now = time.time()
    tag = f"hs:{{{ACCOUNT}}}"
    await redis.zadd(f"{tag}:u", {"u1": now - 100, "u2": now - 40 * 86400})
    await redis.zadd(f"{tag}:f", {"reports": now - 100})
    state = await WindowStore(redis, load_model()).read(ACCOUNT, now)
    assert (state.windows[30].distinct("users"), state.windows[90].distinct("users")) == (1, 2)
    assert state.windows[30].distinct("features") == 1
