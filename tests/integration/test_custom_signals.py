"""A model file's own signal through real topics and Redis: the example model's
key-feature adoption (distinct key features used, a set of its own in Redis) moves an
account's score and tier, and ``healthscore explain`` shows the component."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from importlib import resources

from redis.asyncio import Redis

from tests.integration.harness import Producer, alerts_for, event, read_until, running_worker
from worker.settings import Settings
from worker.windows import keys

EXAMPLE = str(resources.files("worker").joinpath("models", "custom-signals.example.yaml"))
ACCOUNT = "globex"
HEALTHSCORE = [sys.executable, "-m", "worker.cli"]


def _tiers(records: list[dict[str, object]]) -> list[object]:
    return [a["tier"] for a in alerts_for(records, ACCOUNT)]


async def _score(settings: Settings) -> None:
    renewal = (datetime.now(UTC) + timedelta(days=200)).date().isoformat()
    async with running_worker(settings), Producer(settings) as p:
        await p.account(ACCOUNT, segment="smb", seats_purchased=5, renewal_date=renewal)
        for feature in ("export", "dashboards"):  # used a lot, but not key features
            await p.send("feature_use", event("feature_use", ACCOUNT, user_id="u1",
                                              feature=feature))
        records = await read_until(settings, settings.topic_alerts,
                                   lambda rs: "red" in _tiers(rs), within=60)
        [first_alert] = alerts_for(records, ACCOUNT)  # attributes alone do not score
        first = first_alert["components"]
        assert first["key_feature_adoption"]["value"] == 0.0
        assert first["key_feature_adoption"]["subscore"] == 0.0

        for feature in ("reports", "sso"):
            await p.send("feature_use", event("feature_use", ACCOUNT, user_id="u1",
                                              feature=feature))
        records = await read_until(settings, settings.topic_alerts,
                                   lambda rs: "yellow" in _tiers(rs), within=60)
    raised = next(a for a in alerts_for(records, ACCOUNT) if a["tier"] == "yellow")
    assert raised["previous_tier"] == "red"
    assert raised["components"]["key_feature_adoption"]["value"] == 2.0
    assert raised["components"]["key_feature_focus"]["value"] == 0.5  # 2 of 4 events
    assert raised["score"] > alerts_for(records, ACCOUNT)[0]["score"]
    assert raised["components"]["key_feature_adoption"]["subscore"] > 60
    redis = Redis.from_url(settings.redis_url)
    try:
        members = await redis.zrange(keys.set_key(ACCOUNT, "x:key_features"), 0, -1)
    finally:
        await redis.aclose()
    assert {m.decode() for m in members} == {"reports", "sso"}


def test_key_feature_adoption_moves_the_score(settings: Settings) -> None:
    settings = settings.replace(model_path=EXAMPLE)
    asyncio.run(_score(settings))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSCORE_")}
    env |= {"HEALTHSCORE_REDIS_URL": settings.redis_url, "HEALTHSCORE_MODEL_PATH": EXAMPLE,
            "HEALTHSCORE_METRICS_PORT": "0"}
    result = subprocess.run([*HEALTHSCORE, "explain", ACCOUNT, "--json"], env=env,
                            capture_output=True, text=True, timeout=60, check=True)
    components = {c["name"]: c for c in json.loads(result.stdout)["components"]}
    assert components["key_feature_adoption"]["value"] == 2.0
    # Counted from the end of the current day (the 1d bucket): whole days.
    assert components["renewal_runway"]["value"] in (198.0, 199.0)
    assert components["urgent_tickets"]["value"] is None  # no ticket: no data, not zero
    table = subprocess.run([*HEALTHSCORE, "explain", ACCOUNT], env=env, capture_output=True,
                           text=True, timeout=60, check=True).stdout
    assert "key_feature_adoption" in table
