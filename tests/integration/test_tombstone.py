"""A tombstone (a null value on the accounts topic) deletes an account's attributes and
never leaves a key without an expiry behind: for an account Redis never saw, no key
at all. Real Redis, the real pipeline."""

from __future__ import annotations

import time

import orjson
import pytest
from redis.asyncio import Redis

from tests.integration.harness import Record, event
from worker.clock import FixedClock
from worker.metrics import Metrics
from worker.modelfile import load_model
from worker.pipeline import Pipeline
from worker.settings import Settings
from worker.windows import keys
from worker.windows.store import WindowStore


@pytest.fixture
def pipeline(settings: Settings, redis: Redis) -> Pipeline:
    model = load_model()
    return Pipeline(settings, model, WindowStore(redis, model), FixedClock(time.time()), Metrics())


def _account(
    settings: Settings, account: str, offset: int, attrs: dict[str, object] | None
) -> Record:
    value = None if attrs is None else orjson.dumps({"account_id": account, **attrs})
    return Record(settings.topic_accounts, 0, offset, account.encode(), value)


async def _run(pipeline: Pipeline, records: list[Record]) -> None:
    await pipeline.store.save((await pipeline.process(records)).writes)


async def _keys_without_expiry(redis: Redis) -> list[bytes]:
    return [key async for key in redis.scan_iter() if await redis.ttl(key) == -1]


async def test_a_tombstone_for_an_unknown_account_leaves_no_key(
    settings: Settings, redis: Redis, pipeline: Pipeline
) -> None:
    await _run(pipeline, [_account(settings, "ghost", 0, None)])
    assert [key async for key in redis.scan_iter()] == []
    # Held or not, the worker goes on as if nothing happened: twice more, then real data.
    await _run(pipeline, [_account(settings, "ghost", 1, None)])
    await _run(pipeline, [_account(settings, "ghost", 2, None)])
    assert [key async for key in redis.scan_iter()] == []
    await _run(pipeline, [_account(settings, "ghost", 3, {"segment": "smb", "seats_purchased": 4})])
    assert orjson.loads(await redis.hget(keys.state_key("ghost"), keys.ATTRS) or b"{}") == {
        "account_id": "ghost",
        "segment": "smb",
        "seats_purchased": 4,
    }


async def test_a_tombstone_for_an_account_known_only_by_attributes_leaves_no_key(
    settings: Settings, redis: Redis, pipeline: Pipeline
) -> None:
    await _run(pipeline, [_account(settings, "brief", 0, {"segment": "smb", "seats_purchased": 4})])
    assert await _keys_without_expiry(redis) == [keys.state_key("brief").encode()]
    await _run(pipeline, [_account(settings, "brief", 1, None)])
    assert [key async for key in redis.scan_iter()] == []


async def test_a_tombstone_for_a_known_account_removes_its_attributes(
    settings: Settings, redis: Redis, pipeline: Pipeline
) -> None:
    login = event("login", "acme", user_id="u1")
    await _run(
        pipeline,
        [
            _account(settings, "acme", 0, {"segment": "smb", "seats_purchased": 4}),
            Record(settings.topic_login, 0, 0, b"acme", orjson.dumps(login)),
        ],
    )
    state = keys.state_key("acme")
    assert await redis.hexists(state, keys.ATTRS)
    await _run(pipeline, [_account(settings, "acme", 1, None)])
    fields = {f.decode() for f in await redis.hkeys(state)}
    assert keys.ATTRS not in fields
    # The rest stays: the fence of the login, the tier published for it.
    assert {f"off:{settings.topic_login}:0", keys.PUBLISHED} <= fields
    explained = await WindowStore(redis, load_model()).read("acme", time.time())
    assert explained.attrs == {}
