"""Peer-relative components through real topics and Redis: an account's percentile
sub-score, and its tier, move when other accounts of its segment change, with no
event of its own, by the refresh schedule at the latest."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

from redis.asyncio import Redis

from tests.integration.harness import (
    Producer,
    alerts_for,
    event,
    read_until,
    running_worker,
    valid_alert,
)
from worker.replay import Replay
from worker.settings import Settings
from worker.windows import keys

HEALTHSCORE = [sys.executable, "-m", "worker.cli"]
# One component, so the score is the percentile: green from 70, red below 40 (37 to
# fall to it from green, the margin).
MODEL = """
version: percentile-test
bucket: 1d
tiers:
  margin: 3
  levels:
    - {name: green, label: Doing well, min_score: 70}
    - {name: yellow, label: Take notice, min_score: 40}
    - {name: red, label: Requires attention, min_score: 0}
components:
  login_frequency:
    signal: logins_per_active_user
    window: 30d
    weight: 1.0
    curve: {percentile: {better: higher}}
"""
TARGET = "target"


def _model_file(tmp_path: Any) -> str:
    path = tmp_path / "percentile.yaml"
    path.write_text(MODEL)
    return str(path)


async def _logins(p: Producer, account: str, count: int) -> None:
    for _ in range(count):
        await p.send("login", event("login", account, user_id="u1"))


def _tier_is(account: str, tier: str) -> Any:
    def done(records: list[dict[str, Any]]) -> bool:
        mine = alerts_for(records, account)
        return bool(mine) and mine[-1]["tier"] == tier

    return done


async def test_a_percentile_component_moves_as_peers_change(
    settings: Settings, tmp_path: Any
) -> None:
    # The target logs in 5 times (one user: 5 logins per active user). Two smb peers at
    # 1 put it at the top of its segment: (2 below + 1/2) / 3 = 83.3, green. Three
    # enterprise accounts at 10 are not its peers. Then five more smb accounts come in at
    # 10: (2 + 1/2) / 8 = 31.25, red, without a login of the target's own.
    settings = settings.replace(model_path=_model_file(tmp_path), peer_refresh_seconds=1.0)
    async with running_worker(settings), Producer(settings) as p:
        await p.account(TARGET, segment="smb", seats_purchased=5)
        for i in range(2):
            await p.account(f"smb-{i}", segment="smb", seats_purchased=5)
        for i in range(3):
            await p.account(f"ent-{i}", segment="enterprise", seats_purchased=5)
        await _logins(p, TARGET, 5)
        for i in range(2):
            await _logins(p, f"smb-{i}", 1)
        for i in range(3):
            await _logins(p, f"ent-{i}", 10)
        await read_until(settings, settings.topic_alerts, _tier_is(TARGET, "green"), 60)
        for i in range(2, 7):
            await p.account(f"smb-{i}", segment="smb", seats_purchased=5)
            await _logins(p, f"smb-{i}", 10)
        alerts = await read_until(settings, settings.topic_alerts, _tier_is(TARGET, "red"), 60)
        explained = _explain(settings, TARGET)
        members = await _peer_set(settings, "smb")

    mine = alerts_for(alerts, TARGET)
    green = next(a for a in mine if a["tier"] == "green")
    red = mine[-1]
    assert all(valid_alert(a) for a in mine)
    assert abs(green["components"]["login_frequency"]["value"] - 250 / 3) < 0.01
    assert red["previous_tier"] in {"green", "yellow"}
    assert red["components"]["login_frequency"]["value"] == 31.25
    assert red["score"] == 31.25
    # No record of the target's own: its peers moved, its rank was read again.
    assert red["cause"]["kind"] == "window_expiry"
    assert members == {
        TARGET: 5.0,
        **{f"smb-{i}": 1.0 for i in range(2)},
        **{f"smb-{i}": 10.0 for i in range(2, 7)},
    }
    row = {c["name"]: c for c in explained["components"]}["login_frequency"]
    assert row["subscore"] == 31.25
    assert row["peers"] == {"segment": "smb", "value": 5.0, "percentile": 31.25, "accounts": 8}
    assert explained["tier"] == "red"


async def test_an_account_that_changes_segment_leaves_its_old_peers(
    settings: Settings, tmp_path: Any
) -> None:
    settings = settings.replace(model_path=_model_file(tmp_path), peer_refresh_seconds=1.0)
    async with running_worker(settings), Producer(settings) as p:
        await p.account(TARGET, segment="smb", seats_purchased=5)
        await _logins(p, TARGET, 3)
        await read_until(settings, settings.topic_alerts, lambda rs: bool(alerts_for(rs, TARGET)))
        await p.account(TARGET, segment="enterprise", seats_purchased=5)
        await _wait_for_member(settings, "enterprise")
        smb, enterprise = await _peer_set(settings, "smb"), await _peer_set(settings, "enterprise")
    assert smb == {}
    assert enterprise == {TARGET: 3.0}


async def test_a_replay_rebuilds_the_peer_sets_and_the_ranks(
    settings: Settings, tmp_path: Any
) -> None:
    # Values 1..5 in smb: the live run and the replay end with the same sets, and the
    # target (3) at the 50th percentile of 5.
    settings = settings.replace(model_path=_model_file(tmp_path), peer_refresh_seconds=1.0)
    accounts = {f"smb-{n}": n for n in (1, 2, 4, 5)} | {TARGET: 3}
    async with running_worker(settings), Producer(settings) as p:
        for account, logins in accounts.items():
            await p.account(account, segment="smb", seats_purchased=5)
            await _logins(p, account, logins)
        # Every login applied, not only every account ranked: a set of five can still
        # hold an account's value from before its last login.
        await _wait_for_set(settings, "smb", {a: float(n) for a, n in accounts.items()})
    live = await _peer_set(settings, "smb")
    report = await Replay(settings, force=True).run()
    rebuilt = await _peer_set(settings, "smb")
    explained = _explain(settings, TARGET)
    assert report.accounts == len(accounts)
    assert live == {a: float(n) for a, n in accounts.items()}
    assert rebuilt == live
    row = {c["name"]: c for c in explained["components"]}["login_frequency"]
    assert row["peers"] == {"segment": "smb", "value": 3.0, "percentile": 50.0, "accounts": 5}


async def _wait_for_set(settings: Settings, segment: str, expected: dict[str, float]) -> None:
    deadline = time.monotonic() + 30
    while (found := await _peer_set(settings, segment)) != expected:
        assert time.monotonic() < deadline, f"{segment} ranks {found}, not {expected}"
        await asyncio.sleep(0.1)


async def _peer_set(settings: Settings, segment: str) -> dict[str, float]:
    redis = Redis.from_url(settings.redis_url)
    try:
        found = await redis.zrange(
            keys.peers_key("login_frequency", segment), 0, -1, withscores=True
        )
    finally:
        await redis.aclose()
    return {member.decode(): score for member, score in found}


async def _wait_for_member(settings: Settings, segment: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if TARGET in await _peer_set(settings, segment):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{TARGET} never ranked among {segment}")


def _explain(settings: Settings, account: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSCORE_")}
    env |= {
        "HEALTHSCORE_REDIS_URL": settings.redis_url,
        "HEALTHSCORE_MODEL_PATH": settings.model_path,
    }
    result = subprocess.run(
        [*HEALTHSCORE, "explain", account, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    data: dict[str, Any] = json.loads(result.stdout)
    return data
