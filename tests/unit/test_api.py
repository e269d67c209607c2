"""The account API without a server: its committed OpenAPI document, cursors, the
listing's paging and segment filter on an in-memory Redis, the token check."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import fakeredis
import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from worker.api import listing, openapi
from worker.api.app import create_app
from worker.modelfile import load_model
from worker.windows import keys

DOCUMENT = Path(__file__).parents[2] / "docs" / "openapi.json"
REGENERATE = "python -m worker.api.openapi > docs/openapi.json"


def test_the_committed_openapi_document_is_the_apis() -> None:
    committed = json.loads(DOCUMENT.read_text("utf-8"))
    assert committed == openapi.document(), (
        f"docs/openapi.json differs from what the API serves; if the change is meant,"
        f" regenerate it: {REGENERATE}"
    )
    assert DOCUMENT.read_text("utf-8") == openapi.text(), (
        f"not formatted as generated: {REGENERATE}"
    )


def test_every_route_is_documented_with_its_errors() -> None:
    paths = openapi.document()["paths"]
    assert set(paths) == {"/accounts/{account_id}", "/accounts", "/model"}
    for path, operations in paths.items():
        responses = operations["get"]["responses"]
        assert {"200", "401", "503"} <= set(responses), path
    assert "404" in paths["/accounts/{account_id}"]["get"]["responses"]
    assert "422" in paths["/accounts"]["get"]["responses"]


@given(st.from_regex(r"[A-Za-z0-9._:@-]{1,128}", fullmatch=True))
def test_a_cursor_names_the_account_it_was_made_from(account_id: str) -> None:
    cursor = listing.encode_cursor(account_id)
    assert re.fullmatch(listing.CURSOR_PATTERN, cursor)
    assert listing.decode_cursor(cursor) == account_id.encode()


@given(st.from_regex(listing.CURSOR_PATTERN, fullmatch=True).filter(lambda c: len(c) <= 200))
def test_every_cursor_the_document_allows_is_a_position(cursor: str) -> None:
    assert isinstance(listing.decode_cursor(cursor), bytes)


@pytest.fixture
def redis() -> fakeredis.FakeAsyncRedis:
    return fakeredis.FakeAsyncRedis()


async def _publish(
    redis: fakeredis.FakeAsyncRedis, account: str, tier: str, segment: str | None
) -> None:
    pub = {"tier": tier, "score": 50.0, "seq": 1, "components": {}}
    await redis.hset(keys.state_key(account), keys.PUBLISHED, orjson.dumps(pub))
    if segment is not None:
        await redis.hset(keys.state_key(account), keys.ATTRS, orjson.dumps({"segment": segment}))
    await redis.zadd(keys.tier_key(tier), {account: 0})


async def _all_pages(
    redis: fakeredis.FakeAsyncRedis, tier: str, segment: str | None, limit: int
) -> tuple[list[str], int]:
    seen: list[str] = []
    cursor, pages = None, 0
    while True:
        rows, next_cursor = await listing.page(
            redis, tier, segment, None if cursor is None else listing.decode_cursor(cursor), limit
        )
        assert len(rows) <= limit
        seen += [r.account_id for r in rows]
        pages += 1
        if next_cursor is None:
            return seen, pages
        cursor = next_cursor


async def test_paging_returns_each_account_of_the_tier_once(
    redis: fakeredis.FakeAsyncRedis,
) -> None:
    red = [f"a{i:03d}" for i in range(0, 250, 2)]
    for i in range(250):
        await _publish(
            redis,
            f"a{i:03d}",
            "red" if i % 2 == 0 else "green",
            "smb" if i % 3 == 0 else "enterprise",
        )
    seen, pages = await _all_pages(redis, "red", None, 7)
    assert seen == red
    assert pages >= len(red) // 7
    smb, _ = await _all_pages(redis, "red", "smb", 5)
    assert smb == [a for a in red if int(a[1:]) % 3 == 0]


async def test_a_filtered_page_examines_a_bounded_part_of_the_index(
    redis: fakeredis.FakeAsyncRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "SCAN_BUDGET", 30)
    monkeypatch.setattr(listing, "CHUNK", 8)
    for i in range(100):
        await _publish(redis, f"a{i:03d}", "red", "rare" if i == 95 else "smb")
    rows, cursor = await listing.page(redis, "red", "rare", None, 10)
    assert rows == []  # budget spent: an empty page, and a cursor to go on
    assert cursor is not None
    assert listing.decode_cursor(cursor) == b"a029"
    found, _ = await _all_pages(redis, "red", "rare", 10)
    assert found == ["a095"]


async def test_an_index_entry_pub_disagrees_with_is_not_listed(
    redis: fakeredis.FakeAsyncRedis,
) -> None:
    await _publish(redis, "moved", "green", None)
    await redis.zadd(keys.tier_key("red"), {"moved": 0, "gone": 0})  # stale entries
    assert await listing.page(redis, "red", None, None, 10) == ([], None)


def _client(redis: fakeredis.FakeAsyncRedis, token: str = "") -> TestClient:
    return TestClient(create_app(load_model(""), redis, token=token))


def test_the_token_is_asked_when_set(redis: fakeredis.FakeAsyncRedis) -> None:
    with _client(redis, token="s3cret") as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            response = client.get("/model", headers=headers)
            assert response.status_code == 401, headers
            assert response.json() == {"detail": "missing or wrong bearer token"}
            assert response.headers["www-authenticate"] == "Bearer"
        assert client.get("/model", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_bad_queries_are_422_json(redis: fakeredis.FakeAsyncRedis) -> None:
    with _client(redis) as client:
        for query in (
            "",
            "?tier=purple",
            "?tier=red&limit=0",
            "?tier=red&cursor=%21%21",
            "?tier=red&cursor=abcde",
            "?tier=red&segment=",
        ):
            response = client.get("/accounts" + query)
            assert response.status_code == 422, query
            assert isinstance(response.json()["detail"], list), query
        assert client.get("/accounts/no%20spaces").status_code == 422


def test_redis_not_answering_is_503_json() -> None:
    from redis.asyncio import Redis

    from worker.windows import server

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    redis = server.connect(f"redis://127.0.0.1:{port}/0", 2.0)
    assert isinstance(redis, Redis)
    with TestClient(create_app(load_model(""), redis)) as client:
        for path in ("/accounts?tier=red", "/accounts/acme"):
            response = client.get(path)
            assert response.status_code == 503, path
            assert response.json() == {"detail": "Redis did not answer"}
