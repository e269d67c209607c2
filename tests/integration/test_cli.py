"""The command line as a user runs it: ``dev`` end to end, ``explain`` on live state."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.integration import chaos
from tests.integration.harness import Producer, alerts_for, event, read_until, running_worker
from worker.commands import alert_line
from worker.modelfile import load_model
from worker.settings import Settings
from worker.windows.store import WindowStore

HEALTHSCORE = [sys.executable, "-m", "worker.cli"]
SUMMARY = r"(?m)^\d+ accounts scored: \d+ (green|yellow|red)(, \d+ (green|yellow|red))*$"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSCORE_")}
    return {**env, "HEALTHSCORE_METRICS_PORT": "0", **extra}


def test_dev_sums_up_catch_up_alerts_and_cleans_up(tmp_path: Path) -> None:
    log = tmp_path / "dev.log"
    with log.open("wb") as out:
        # In its own directory: dev writes its address file there, not into the checkout.
        proc = subprocess.Popen(
            [*HEALTHSCORE, "dev", "--accounts", "40", "--rate", "300"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_env(),
            cwd=tmp_path,
        )
    try:
        text = _wait_for(log, proc, SUMMARY, within=90)
        assert "ready" in text
        bootstrap = re.search(r"(?m)^\s+broker\s+(\S+)", text)
        assert bootstrap, text[:2000]
        alerts = asyncio.run(
            chaos.read_topic(Settings(kafka_bootstrap=bootstrap[1]), Settings().topic_alerts)
        )
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert "stopped" in text
    # The simulator's history scored every account as catch-up: counted, not listed.
    caught_up = [a for a in alerts if a["delivery"] == "catch_up"]
    assert caught_up, alerts[:3]
    live_first = [a for a in alerts if a["previous_tier"] is None and a["delivery"] == "live"]
    assert not live_first, live_first[:3]
    listed = [alert_line(a) for a in caught_up if alert_line(a) in text]
    assert not listed, listed[:5]
    ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", text)]
    assert ports, text[:2000]
    for port in set(ports):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open after exit"


def _wait_for(log: Path, proc: subprocess.Popen[bytes], pattern: str, within: float) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if re.search(pattern, text):
            return text
        if proc.poll() is not None:
            pytest.fail(f"healthscore dev exited with {proc.returncode}:\n{text[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"no {pattern!r} within {within} s:\n{log.read_text()[-3000:]}")


async def _score_stark(settings: Settings) -> None:
    async with running_worker(settings), Producer(settings) as p:
        await p.account("stark", segment="enterprise", seats_purchased=4)
        for n in range(2):
            await p.send("login", event("login", "stark", user_id=f"u{n}", session_seconds=900))
        await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: any(
                "license_utilization" in a["components"] for a in alerts_for(rs, "stark")
            ),
        )
        # The alert may come from the first login's batch: wait for the second one too.
        redis = Redis.from_url(settings.redis_url)
        store = WindowStore(redis, load_model())
        try:
            for _ in range(100):
                state = await store.read("stark", time.time())
                if max(w.distinct("users") for w in state.windows.values()) == 2:
                    break
                await asyncio.sleep(0.1)
        finally:
            await redis.aclose()


def test_explain_reports_score_tier_and_components(settings: Settings) -> None:
    asyncio.run(_score_stark(settings))
    env = _env(HEALTHSCORE_REDIS_URL=settings.redis_url)
    result = subprocess.run(
        [*HEALTHSCORE, "explain", "stark", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(result.stdout)
    assert report["segment"] == "enterprise"
    components = {c["name"]: c for c in report["components"]}
    assert components["license_utilization"]["value"] == 0.5
    assert components["nps"]["value"] is None  # no data: left out, not zero
    assert report["score"] == pytest.approx(
        sum(c["contribution"] for c in components.values() if c["contribution"] is not None),
        abs=0.05,
    )
    assert report["tier"] == report["published_tier"]

    table = subprocess.run(
        [*HEALTHSCORE, "explain", "stark"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "license_utilization" in table
    assert "no data" in table

    unknown = subprocess.run(
        [*HEALTHSCORE, "explain", "nobody"], env=env, capture_output=True, text=True, timeout=60
    )
    assert unknown.returncode == 1
