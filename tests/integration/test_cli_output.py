"""``healthscore explain`` as a user runs it, on an account whose attributes are hostile:
rich markup, a hyperlink, an ANSI escape and a newline are printed as text."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

from redis.asyncio import Redis

from tests.integration.harness import Producer, alerts_for, event, read_until, running_worker
from worker.modelfile import load_model
from worker.settings import Settings
from worker.terminal import visible
from worker.windows.store import WindowStore

HEALTHSCORE = [sys.executable, "-m", "worker.cli"]
# Within the schema's 64 characters each; any string is a valid segment or plan.
SEGMENT = "[/] [link=http://x]click[/link]"
PLAN = "\x1b[31mred\nsecond line\r[bold]"


async def _score_hostile(settings: Settings) -> None:
    async with running_worker(settings), Producer(settings) as p:
        await p.account("hostile", segment=SEGMENT, plan=PLAN, seats_purchased=4)
        await p.send("login", event("login", "hostile", user_id="u1", session_seconds=900))
        await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: any(
                "license_utilization" in a["components"] for a in alerts_for(rs, "hostile")
            ),
        )
        redis = Redis.from_url(settings.redis_url)
        try:  # the attributes and the login may be applied in different batches
            for _ in range(100):
                if (await WindowStore(redis, load_model()).read("hostile", time.time())).attrs:
                    break
                await asyncio.sleep(0.1)
        finally:
            await redis.aclose()


def _explain(settings: Settings, account: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSCORE_")}
    # Wide, so that no line is wrapped and every value can be looked for whole.
    env |= {"HEALTHSCORE_REDIS_URL": settings.redis_url, "COLUMNS": "1000"}
    return subprocess.run(
        [*HEALTHSCORE, "explain", account], env=env, capture_output=True, timeout=60
    )


def test_explain_prints_hostile_attributes_as_text(settings: Settings) -> None:
    asyncio.run(_score_hostile(settings))
    result = _explain(settings, "hostile")
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    out = result.stdout.decode()
    assert b"\x1b" not in result.stdout
    assert b"\r" not in result.stdout
    header, attributes = out.splitlines()[:2]
    assert header.startswith(f"hostile ({SEGMENT}): score ")
    assert attributes == f"attributes: plan={visible(PLAN)}, seats_purchased=4"
    assert "\\x1b[31mred\\nsecond line\\r[bold]" in attributes


def test_explain_prints_a_hostile_account_id_as_text(settings: Settings) -> None:
    result = _explain(settings, "[/]\x1b]8;;http://x\x1b\\[link=http://x]a\nb")
    assert result.returncode == 1, result.stderr.decode(errors="replace")
    assert b"\x1b" not in result.stdout
    assert result.stdout.decode() == (
        "[/]\\x1b]8;;http://x\\x1b\\[link=http://x]a\\nb: no data in any window"
        " (unknown account?)\n"
    )
