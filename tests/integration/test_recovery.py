"""What would bring an account back, through real topics and Redis: the change
``healthscore explain`` names is made, one short of it keeps the tier, all of it moves
the tier; and an account whose escalations will age out is told when it recovers by
itself."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from typing import Any

from tests.integration.harness import (
    Producer,
    alerts_for,
    event,
    read_until,
    running_worker,
    valid_alert,
)
from worker.clock import WallClock
from worker.explain import explain
from worker.modelfile import load_model
from worker.settings import Settings
from worker.windows import server
from worker.windows.store import WindowStore

HEALTHSCORE = [sys.executable, "-m", "worker.cli"]
DAY = 86400.0


async def _explain_json(settings: Settings, account_id: str) -> dict[str, Any]:
    """``healthscore explain ACCOUNT --json`` as a user runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSCORE_")}
    env |= {"HEALTHSCORE_REDIS_URL": settings.redis_url, "HEALTHSCORE_METRICS_PORT": "0"}
    result = await asyncio.to_thread(
        subprocess.run,
        [*HEALTHSCORE, "explain", account_id, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    data: dict[str, Any] = json.loads(result.stdout)
    return data


async def _explain_text(settings: Settings, account_id: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSCORE_")}
    env |= {"HEALTHSCORE_REDIS_URL": settings.redis_url, "COLUMNS": "200"}
    result = await asyncio.to_thread(
        subprocess.run,
        [*HEALTHSCORE, "explain", account_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


async def _features_reach(
    settings: Settings, account_id: str, count: int, escalations: int = 1
) -> str | None:
    """Wait until the worker has the account's distinct features at ``count`` (and its
    escalations, attributes: every record sent before); its tier."""
    redis = server.client(settings)
    model = load_model()
    store = WindowStore.from_settings(redis, model, settings)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = await explain(store, model, account_id, WallClock())
            values = {n: c.value for n, c in found.card.components.items()}
            if (
                values.get("feature_adoption") == count
                and values.get("escalations") == escalations
                and "license_utilization" in values
            ):
                return found.tier_now()
            await asyncio.sleep(0.1)
    finally:
        await redis.aclose()
    raise AssertionError(f"{account_id} never reached {count} features")


async def test_the_named_change_lifts_the_tier_and_one_short_of_it_does_not(
    settings: Settings,
) -> None:
    account = "initech"
    async with running_worker(settings), Producer(settings) as p:
        await p.account(account, segment="smb", seats_purchased=10)
        for user in ("u1", "u2"):
            for _ in range(4):
                await p.send("login", event("login", account, user_id=user))
        await p.send("feature_use", event("feature_use", account, user_id="u1", feature="f0"))
        await p.send(
            "ticket",
            event("ticket", account, ticket_id="t1", status="escalated", priority="normal"),
        )
        assert await _features_reach(settings, account, 1) == "red"

        data = await _explain_json(settings, account)
        recovery = data["recovery"]
        assert (recovery["tier"], recovery["score"], recovery["alone"]) == ("yellow", 43, True)
        hint = next(c for c in recovery["changes"] if c["component"] == "feature_adoption")
        assert (hint["value"], hint["op"]) == (1.0, ">=")
        target = int(hint["target"])
        assert hint["by_itself_at"] is None  # features do not come by themselves
        assert recovery["by_itself_at"] is None  # usage only fades with no new events
        seats = next(c for c in recovery["changes"] if c["component"] == "license_utilization")
        assert (seats["signal"], seats["op"]) == ("active_user_share", ">=")
        table = await _explain_text(settings, account)
        assert (
            "license_utilization from 0.2 to at least 0.75 (6 more active users of 10"
            " seats)" in table
        )

        for n in range(1, target - 1):  # one feature short of the target
            await p.send(
                "feature_use", event("feature_use", account, user_id="u1", feature=f"f{n}")
            )
        assert await _features_reach(settings, account, target - 1) == "red"
        await p.send(
            "feature_use", event("feature_use", account, user_id="u1", feature=f"f{target - 1}")
        )
        records = await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: any(a["tier"] == "yellow" for a in alerts_for(rs, account)),
            within=30,
        )
    alerts = alerts_for(records, account)
    assert [a["tier"] for a in alerts] == ["red", "yellow"]
    assert alerts[-1]["components"]["feature_adoption"]["value"] == target
    assert all(valid_alert(a) for a in alerts)
    red = alerts[0]["recovery"]  # the alert's own next steps, at the time it was sent
    assert red["tier"] == "yellow"
    assert red["changes"]
    assert "recovery" in alerts[-1]  # yellow: green is still above it


async def test_an_account_is_told_when_its_escalations_age_out(settings: Settings) -> None:
    account = "hooli"
    now = time.time()
    async with running_worker(settings), Producer(settings) as p:
        await p.account(account, segment="smb", seats_purchased=4)
        for n in range(2):  # 85 days ago: they leave the 90-day window in about 5 days
            await p.send(
                "ticket",
                event(
                    "ticket",
                    account,
                    now - 85 * DAY,
                    ticket_id=f"t{n}",
                    status="escalated",
                    priority="normal",
                ),
            )
        for user in ("u1", "u2"):
            for _ in range(20):
                await p.send("login", event("login", account, user_id=user))
        for n in range(8):
            await p.send(
                "feature_use", event("feature_use", account, user_id="u1", feature=f"f{n}")
            )
        assert await _features_reach(settings, account, 8, escalations=2) == "yellow"
    data = await _explain_json(settings, account)
    recovery = data["recovery"]
    assert recovery["tier"] == "green"
    escalations = next(c for c in recovery["changes"] if c["component"] == "escalations")
    assert (escalations["value"], escalations["op"], escalations["target"]) == (2.0, "<=", 0)
    by_itself = datetime.fromisoformat(recovery["by_itself_at"]).timestamp()
    assert escalations["by_itself_at"] == recovery["by_itself_at"]
    assert 4 * DAY <= by_itself - now <= 6 * DAY
    table = await asyncio.to_thread(
        subprocess.run,
        [*HEALTHSCORE, "explain", account],
        env={**os.environ, "HEALTHSCORE_REDIS_URL": settings.redis_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "escalations from 2 to at most 0 (by itself on" in table.stdout
