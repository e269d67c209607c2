"""``healthscore api`` as users run it: a subprocess on a port, over the Redis a real
worker scored some accounts in; then each endpoint, and a schema-driven fuzz of all."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
import schemathesis
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.integration.harness import Producer, event, read_until, running_worker
from worker.settings import Settings
from worker.windows import keys

HEALTHSCORE = [sys.executable, "-m", "worker.cli"]
TOKEN = "t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# account -> (the surveys it sends, the tier they score), segment by parity
SURVEYS = {"red": [("nps", 0)], "green": [("nps", 10)], "yellow": [("csat", 3), ("csat", 4)]}
ACCOUNTS = {f"acct-{i:02d}": ("red", "green", "yellow")[i % 3] for i in range(24)}


def _segment(account: str) -> str:
    return "smb" if int(account[-2:]) % 2 == 0 else "enterprise"


@dataclasses.dataclass(frozen=True)
class Api:
    url: str
    published: dict[str, dict[str, Any]]  # account -> its last alert, from the topic

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.url + path, headers=AUTH if headers is None else headers
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:  # every error is JSON too
            return error.code, (error.headers["content-type"], json.loads(error.read()))


async def _score(settings: Settings) -> dict[str, dict[str, Any]]:
    def settled(records: list[dict[str, Any]]) -> bool:
        last = {a["account_id"]: a for a in records}
        return all(a in last and last[a]["tier"] == t for a, t in ACCOUNTS.items())

    async with running_worker(settings), Producer(settings) as p:
        for account in ACCOUNTS:
            await p.account(account, segment=_segment(account), seats_purchased=10)
        await _attributes_held(settings)
        for account, tier in ACCOUNTS.items():
            for kind, score in SURVEYS[tier]:
                await p.send("survey", event("survey", account, kind=kind, score=score))
        records = await read_until(settings, settings.topic_alerts, settled, within=90)
    return {a["account_id"]: a for a in records}


async def _attributes_held(settings: Settings, within: float = 60.0) -> None:
    """Until the worker holds every account's record. The records and the surveys are on
    topics of their own, so a survey could be scored first: its alert then names no
    segment, and the record coming after it changes no tier (no alert names it)."""
    client = redis.asyncio.Redis.from_url(settings.redis_url)
    deadline = time.monotonic() + within
    try:
        while [None] in [await client.hmget(keys.state_key(a), [keys.ATTRS]) for a in ACCOUNTS]:
            assert time.monotonic() < deadline, "the account records were not applied"
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSCORE_")}
    return {**env, "HEALTHSCORE_METRICS_PORT": "0", **extra}


@pytest.fixture(scope="module")
def api(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    suffix = uuid.uuid4().hex[:8]
    base = Settings()
    topics = {
        f.name: f"{getattr(base, f.name)}.api-{suffix}"
        for f in dataclasses.fields(base)
        if f.name.startswith("topic_")
        and isinstance(getattr(base, f.name), str)
        and getattr(base, f.name)
    }
    settings = base.replace(
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        group_id=f"healthscore-api-{suffix}",
        metrics_port=0,
        topic_partitions=3,
        session_timeout_ms=6000,
        **topics,
    )
    with redis.Redis.from_url(redis_url) as client:
        client.flushdb()
    published = asyncio.run(_score(settings))
    port = _free_port()
    log = tmp_path_factory.mktemp("api") / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*HEALTHSCORE, "api", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_env(HEALTHSCORE_REDIS_URL=redis_url, HEALTHSCORE_API_TOKEN=TOKEN),
        )
    try:
        yield _ready(Api(f"http://127.0.0.1:{port}", published), proc, log)
    finally:
        proc.terminate()
        code = proc.wait(timeout=30)
    assert code == 0, log.read_text()[-3000:]


def _ready(api: Api, proc: subprocess.Popen[bytes], log: Path) -> Api:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"healthscore api exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if api.get("/model")[0] == 200:
                return api
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"healthscore api did not answer within 60 s:\n{log.read_text()}")


def test_an_account_has_score_tier_components_last_alert_and_last_events(api: Api) -> None:
    status, body = api.get("/accounts/acct-00")
    assert status == 200
    alert = api.published["acct-00"]
    assert body["account_id"] == "acct-00"
    assert body["segment"] == "smb"
    assert body["score"] == 0.0
    assert body["tier"] == body["published_tier"] == "red"
    assert body["last_alert"] == {"seq": alert["seq"], "tier": "red", "score": alert["score"]}
    components = {c["name"]: c for c in body["components"]}
    assert components["nps"] == {
        **components["nps"],
        "value": -100.0,
        "subscore": 0.0,
        "weight": 0.85,
        "contribution": 0.0,
    }
    assert components["login_frequency"]["value"] is None  # no data: left out
    day = int(time.time()) // 86400 * 86400
    sent = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(day))
    assert list(body["last_events"]) == ["survey"]
    assert body["last_events"]["survey"].startswith(sent)


def test_an_unknown_account_is_404_json(api: Api) -> None:
    assert api.get("/accounts/nobody") == (
        404,
        ("application/json", {"detail": "unknown account: nobody"}),
    )


@pytest.mark.parametrize(
    "query",
    [
        "/accounts",
        "/accounts?tier=purple",
        "/accounts?tier=red&limit=0",
        "/accounts?tier=red&limit=x",
        "/accounts?tier=red&cursor=not.ours",
        "/accounts?tier=red&segmnet=smb",
        "/model?verbose=1",
        "/accounts?tier=red&tier=green",
        "/accounts/bad%20id",
    ],
)
def test_a_bad_query_is_422_json(api: Api, query: str) -> None:
    status, (content_type, body) = api.get(query)
    assert status == 422
    assert content_type == "application/json"
    assert body["detail"][0]["loc"][0] in ("query", "path")


def _pages(api: Api, query: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        status, body = api.get(query + ("" if cursor is None else f"&cursor={cursor}"))
        assert status == 200, body
        rows += body["accounts"]
        cursor = body["next_cursor"]
        if cursor is None:
            return rows
    raise AssertionError("paging never ended")


@pytest.mark.parametrize("tier", ["red", "green", "yellow"])
def test_paging_through_a_tier_gives_exactly_its_published_accounts(api: Api, tier: str) -> None:
    rows = _pages(api, f"/accounts?tier={tier}&limit=3")
    expected = sorted(a for a, alert in api.published.items() if alert["tier"] == tier)
    assert [r["account_id"] for r in rows] == expected
    for row in rows:
        alert = api.published[row["account_id"]]
        assert row == {
            "account_id": alert["account_id"],
            "tier": tier,
            "score": alert["score"],
            "seq": alert["seq"],
            "segment": alert["segment"],
        }


def test_the_segment_filter_keeps_that_segment(api: Api) -> None:
    rows = _pages(api, "/accounts?tier=red&segment=enterprise&limit=2")
    assert [r["account_id"] for r in rows] == sorted(
        a for a, t in ACCOUNTS.items() if t == "red" and _segment(a) == "enterprise"
    )
    assert _pages(api, "/accounts?tier=red&segment=nobody") == []


def test_the_model_is_the_running_one(api: Api) -> None:
    status, body = api.get("/model")
    assert status == 200
    assert body["version"] == next(iter(api.published.values()))["model_version"]
    assert [t["name"] for t in body["tiers"]] == ["green", "yellow", "red"]


@pytest.mark.parametrize(
    "path", ["/model", "/accounts?tier=red", "/accounts/acct-00", "/accounts/nobody"]
)
def test_the_token_is_required_when_set(api: Api, path: str) -> None:
    assert api.get(path, headers={})[0] == 401
    assert api.get(path, headers={"Authorization": "Bearer wrong"})[0] == 401


# Not schemathesis' pytest plugin (``from_fixture``): it fails on this pytest's nodes.
# Hypothesis runs each operation's strategy here instead, valid and invalid input both.
@pytest.mark.parametrize("operation", ["GET /accounts/{account_id}", "GET /accounts", "GET /model"])
def test_fuzz_every_endpoint_against_its_schema(api: Api, operation: str) -> None:
    schema = schemathesis.openapi.from_url(api.url + "/openapi.json")
    labels = {o.ok().label for o in schema.get_all_operations()}
    assert labels == {"GET /accounts/{account_id}", "GET /accounts", "GET /model"}
    found = schema.find_operation_by_label(operation)
    assert found is not None
    cases = st.one_of(
        found.as_strategy(GenerationMode.POSITIVE), found.as_strategy(GenerationMode.NEGATIVE)
    )

    @given(cases)
    @hypothesis_settings(
        max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def run(case: schemathesis.Case) -> None:
        # A query value that is an empty list is sent as nothing at all: the request
        # that goes out is not the schema-violating one the case stands for.
        assume(not any(value == [] for value in (case.query or {}).values()))
        # Every default check: no 5xx, status codes, content types and bodies as the
        # document says, invalid input refused, the token enforced.
        case.call_and_validate(headers=AUTH)

    run()


def test_a_port_in_use_or_out_of_range_is_one_line_and_an_exit_code(redis_url: str) -> None:
    env = _env(HEALTHSCORE_REDIS_URL=redis_url)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run(
            [*HEALTHSCORE, "api", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert busy.returncode == 3
    assert busy.stderr.strip().splitlines()[-1] == (
        f"healthscore: api: 127.0.0.1:{port} is already in use; set HEALTHSCORE_API_PORT"
        " (or --port) to a free port"
    )
    wrong = subprocess.run(
        [*HEALTHSCORE, "api", "--port", "70000"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrong.returncode == 2
    assert "HEALTHSCORE_API_PORT must be a port" in wrong.stderr
