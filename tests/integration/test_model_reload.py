"""A model file changed under a running worker (a subprocess, as users run it): a bad
one is rejected with the bad field named and the old model goes on; a good one is
applied without a restart, every account rescored under it, and each tier it moves
published once with ``cause.kind = "model_change"`` and both versions."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

from tests.integration import chaos
from tests.integration.harness import Producer, event, read_until, valid_alert
from worker.modelfile import default_model_text
from worker.runtime.topics import ensure_topics
from worker.settings import Settings
from worker.windows import keys

NEAR = [f"near-{n}" for n in range(6)]  # about 58: yellow, green once green starts at 50
LOW = [f"low-{n}" for n in range(2)]  # about 42: yellow under both


def _model(version: str, green: int = 70) -> str:
    return (
        default_model_text()
        .replace("version: default-2026.11", f"version: {version}")
        .replace("min_score: 70}", f"min_score: {green}}}")
    )


async def _send(settings: Settings) -> None:
    async with Producer(settings) as p:
        for account in NEAR + LOW:
            await p.account(account, segment="smb", seats_purchased=2)
            for user in ("u1", "u2"):
                for _ in range(8):
                    await p.send("login", event("login", account, user_id=user))
            for n in range(5 if account in NEAR else 1):
                await p.send(
                    "feature_use", event("feature_use", account, user_id="u1", feature=f"f{n}")
                )


def _last(alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {a["account_id"]: a for a in alerts}


def _read(log: Path) -> str:
    return log.read_text(errors="replace")


async def _wait_for_log(log: Path, text: str, within: float = 30.0) -> str:
    deadline = time.monotonic() + within
    while text not in (found := _read(log)):
        assert time.monotonic() < deadline, chaos.tail(log)
        await asyncio.sleep(0.1)
    return found


async def test_a_model_file_changed_under_a_running_worker(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "model.yaml"
    path.write_text(_model("reload-a"), "utf-8")
    settings = settings.replace(
        model_path=str(path), model_reload_seconds=0.2, model_rescore_batch=2
    )
    await ensure_topics(settings)
    log = tmp_path / "worker.log"
    worker = chaos.start_worker(settings, log)
    try:
        await _send(settings)
        first = await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: (
                set(_last(rs)) == set(NEAR + LOW)
                and all(a["components"].get("feature_adoption") for a in _last(rs).values())
            ),
            within=60,
        )
        await asyncio.sleep(1)  # every event applied: the last alert is the account's tier
        before = _last(
            await read_until(settings, settings.topic_alerts, lambda rs: len(rs) >= len(first))
        )
        assert {a: x["tier"] for a, x in before.items()} == dict.fromkeys(NEAR + LOW, "yellow")
        assert {x["model_version"] for x in before.values()} == {"reload-a"}

        path.write_text(_model("reload-bad").replace("weight: 0.85", "weight: -1", 1), "utf-8")
        text = await _wait_for_log(log, "model file rejected")
        assert "model reload-a goes on" in text
        assert "components.nps.weight" in text, chaos.tail(log)

        path.write_text(_model("reload-b", green=50), "utf-8")
        worker.send_signal(signal.SIGHUP)  # read at once rather than within 0.2 s
        records = await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: all(_last(rs).get(a, {}).get("tier") == "green" for a in NEAR),
            within=60,
        )
        assert worker.poll() is None, chaos.tail(log)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    moved = [a for a in records if a["cause"]["kind"] == "model_change"]
    assert sorted(a["account_id"] for a in moved) == NEAR  # each once, the low ones not
    for alert in moved:
        assert valid_alert(alert)
        assert alert["cause"]["model_version"] == "reload-b"
        assert alert["cause"]["previous_model_version"] == "reload-a"
        assert alert["model_version"] == "reload-b"
        assert (alert["previous_tier"], alert["tier"]) == ("yellow", "green")
    redis = Redis.from_url(settings.redis_url)
    try:
        recorded = [await redis.get(keys.model_key(p)) for p in range(settings.topic_partitions)]
    finally:
        await redis.aclose()
    versions = {orjson.loads(r)["version"] for r in recorded if r is not None}
    assert versions == {"reload-b"}
    text = _read(log)
    assert "model file changed: reload-b" in text
    assert "every account rescored under model reload-b" in text


async def test_a_worker_started_with_a_changed_file_rescores_every_account(
    settings: Settings, tmp_path: Path
) -> None:
    """Changed across a restart: the partitions' record names the old model, so the new
    worker rescores them; started again with the same file, it rescores nothing."""
    path = tmp_path / "model.yaml"
    path.write_text(_model("restart-a"), "utf-8")
    # Three workers one after another in one group: each gets the partitions once the
    # one before has left, on Tansu once its session has run out.
    settings = settings.replace(
        model_path=str(path), model_reload_seconds=0, session_timeout_ms=chaos.KILLED_SESSION_MS
    )
    await ensure_topics(settings)
    log = tmp_path / "worker.log"
    worker = chaos.start_worker(settings, log)
    try:
        await _send(settings)
        await read_until(
            settings, settings.topic_alerts, lambda rs: set(_last(rs)) == set(NEAR + LOW), within=60
        )
        await asyncio.sleep(1)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    path.write_text(_model("restart-b", green=50), "utf-8")
    for start in (2, 3):  # the third start finds every partition recorded under restart-b
        worker = chaos.start_worker(settings, log)
        try:
            await _wait_for_assignments(log, start)
            records = await read_until(
                settings,
                settings.topic_alerts,
                lambda rs: all(_last(rs).get(a, {}).get("tier") == "green" for a in NEAR),
                within=60,
            )
            await _wait_for_log(log, "every account rescored under model restart-b")
            await asyncio.sleep(1)  # a walk, if one began, would log its partitions by now
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
    moved = [a for a in records if a["cause"]["kind"] == "model_change"]
    assert sorted(a["account_id"] for a in moved) == NEAR  # once: not again at the restart
    assert {a["cause"]["previous_model_version"] for a in moved} == {"restart-a"}
    assert "was scored under model restart-b" not in _read(log)


async def _wait_for_assignments(log: Path, count: int) -> None:
    deadline = time.monotonic() + 60
    while _read(log).count("assigned ") < count:
        assert time.monotonic() < deadline, chaos.tail(log)
        await asyncio.sleep(0.1)


async def test_a_worker_killed_mid_walk_leaves_the_rest_to_the_next_one(
    settings: Settings, tmp_path: Path
) -> None:
    """SIGKILL once the walk has begun: the partitions it had not recorded are walked
    again by the next worker, every moved account ends in its new tier, and no account
    has two different model_change alerts (one re-sent from an outbox is the same
    record). Many accounts, a chunk of one: the walk lasts long enough to be cut."""
    many = [f"walk-{n:04d}" for n in range(900)]
    path = tmp_path / "model.yaml"
    path.write_text(_model("walk-a"), "utf-8")
    # A short session: the killed worker's partitions come back sooner.
    settings = settings.replace(
        model_path=str(path),
        model_reload_seconds=0,
        model_rescore_batch=1,
        session_timeout_ms=chaos.KILLED_SESSION_MS,
    )
    await ensure_topics(settings)
    log = tmp_path / "worker.log"
    worker = chaos.start_worker(settings, log)
    try:
        async with Producer(settings) as p:
            for account in many:  # one user of two seats, one login: about 20, red
                await p.account(account, segment="smb", seats_purchased=2)
                await p.send("login", event("login", account, user_id="u1"))
        await read_until(
            settings, settings.topic_alerts, lambda rs: set(_last(rs)) == set(many), within=90
        )
        await asyncio.sleep(1)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    # Yellow from 10: every account moves from red to yellow under walk-b.
    path.write_text(_model("walk-b").replace("min_score: 40}", "min_score: 10}"), "utf-8")
    worker = chaos.start_worker(settings, log)
    try:
        await _wait_for_log(log, "rescoring it under walk-b", within=60)
    finally:
        worker.kill()  # SIGKILL: no clean shutdown, the walk cut short
        worker.wait(timeout=30)
    walked_before = _read(log).count("every account rescored under model walk-b")
    worker = chaos.start_worker(settings, log)
    try:
        records = await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: all(_last(rs).get(a, {}).get("tier") == "yellow" for a in many),
            within=90,
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert walked_before < settings.topic_partitions  # the kill did land mid-walk
    restarted = _read(log).rsplit("components; metrics on", 1)[-1]  # the last start
    assert "was scored under model walk-a: rescoring it under walk-b" in restarted
    moved: dict[str, set[str]] = {}
    for alert in records:
        if alert["cause"]["kind"] == "model_change":
            moved.setdefault(alert["account_id"], set()).add(alert["alert_id"])
    assert sorted(moved) == many
    assert all(len(ids) == 1 for ids in moved.values())
