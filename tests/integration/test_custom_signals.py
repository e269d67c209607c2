"""A model file's own signal through real topics and Redis: the example model's
key-feature adoption (distinct key features used, a set of its own in Redis) moves an
account's score and tier, and ``healthscore explain`` shows the component."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from tests.integration import chaos
from tests.integration.harness import Producer, alerts_for, event, read_until, running_worker
from worker.clock import FixedClock
from worker.explain import explain
from worker.modelfile import load_model
from worker.replay import Replay
from worker.runtime.topics import ensure_topics
from worker.scoring.model import Model
from worker.settings import Settings
from worker.windows import keys
from worker.windows.store import WindowStore

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
            await p.send(
                "feature_use", event("feature_use", ACCOUNT, user_id="u1", feature=feature)
            )
        records = await read_until(
            settings, settings.topic_alerts, lambda rs: "red" in _tiers(rs), within=60
        )
        [first_alert] = alerts_for(records, ACCOUNT)  # attributes alone do not score
        first = first_alert["components"]
        assert first["key_feature_adoption"]["value"] == 0.0
        assert first["key_feature_adoption"]["subscore"] == 0.0

        for feature in ("reports", "sso"):
            await p.send(
                "feature_use", event("feature_use", ACCOUNT, user_id="u1", feature=feature)
            )
        records = await read_until(
            settings, settings.topic_alerts, lambda rs: "yellow" in _tiers(rs), within=60
        )
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
    env |= {
        "HEALTHSCORE_REDIS_URL": settings.redis_url,
        "HEALTHSCORE_MODEL_PATH": EXAMPLE,
        "HEALTHSCORE_METRICS_PORT": "0",
    }
    result = subprocess.run(
        [*HEALTHSCORE, "explain", ACCOUNT, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    components = {c["name"]: c for c in json.loads(result.stdout)["components"]}
    assert components["key_feature_adoption"]["value"] == 2.0
    # Counted from the end of the current day (the 1d bucket): whole days.
    assert components["renewal_runway"]["value"] in (198.0, 199.0)
    assert components["urgent_tickets"]["value"] is None  # no ticket: no data, not zero
    table = subprocess.run(
        [*HEALTHSCORE, "explain", ACCOUNT],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "key_feature_adoption" in table


def _example_on_generated_features(tmp_path: Path) -> str:
    """The example model, its key features among those the chaos stream sends."""
    text = Path(EXAMPLE).read_text("utf-8").replace("[reports, api, sso]", "[f0, f1, f2]")
    path = tmp_path / "custom.yaml"
    path.write_text(text, "utf-8")
    return str(path)


async def test_a_replay_rebuilds_the_live_state_of_custom_signals(
    settings: Settings, tmp_path: Path
) -> None:
    """A replay into an empty Redis under a model with its own signals gives the live run's
    windows, sets of its own and scores, and publishes nothing."""
    settings = settings.replace(model_path=_example_on_generated_features(tmp_path))
    model = load_model(settings.model_path)
    stream = chaos.stream(random.Random(15), 3000)
    await ensure_topics(settings)
    ends = await chaos.produce_to(settings, stream)
    log = tmp_path / "live.log"
    worker = chaos.start_worker(settings, log)
    try:
        await chaos.wait_for_commits(settings, ends, log)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    now = time.time()
    live = await _custom_snapshot(settings, model, now)
    assert any(s["key_features"] for s in live.values()), "the stream uses key features"
    async with Redis.from_url(settings.redis_url) as redis:
        await redis.flushdb()
    report = await Replay(settings, force=True).run()
    assert report.alerts == []
    rebuilt = await _custom_snapshot(settings, model, now)
    assert rebuilt == live


async def _custom_snapshot(settings: Settings, model: Model, now: float) -> dict[str, Any]:
    """Per account: its counters, its key-features set and what explain gives at ``now``."""
    out: dict[str, Any] = {}
    async with Redis.from_url(settings.redis_url) as redis:
        store = WindowStore(redis, model)
        async for key in redis.scan_iter(match=keys.state_key("*")):
            account = keys.account_of_state_key(key.decode())
            assert account is not None
            why = (await explain(store, model, account, FixedClock(now))).as_dict()
            out[account] = {
                "counters": await redis.hgetall(f"hs:{{{account}}}:c"),
                "key_features": await redis.zrange(
                    keys.set_key(account, "x:key_features"), 0, -1, withscores=True
                ),
                "score": why["score"],
                "tier": why["tier"],
                "components": why["components"],
            }
    return out


def test_check_model_names_the_bad_field_of_a_signal(tmp_path: Path) -> None:
    """As a user runs it: the example checks, a typo in a signal's field is named."""
    ok = subprocess.run(
        [*HEALTHSCORE, "check-model", EXAMPLE], capture_output=True, text=True, timeout=60
    )
    assert ok.returncode == 0, ok.stderr
    assert "key_feature_adoption key_features" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(EXAMPLE).read_text("utf-8").replace("field: feature,", "field: featur,"))
    result = subprocess.run(
        [*HEALTHSCORE, "check-model", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert (
        f"{bad}: signals.key_features.distinct.field: 'featur' is not a field of "
        "feature_use events (fields: account_id, count, event_id, feature, ts, user_id)"
        in result.stderr
    )
