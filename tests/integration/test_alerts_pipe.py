"""``healthscore alerts --json`` as a pipe's source, the way a consumer script reads it:
each alert arrives as it is published, and SIGTERM ends it cleanly with nothing held."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

import orjson

from tests.integration import chaos
from tests.integration.harness import Producer, event, read_until, running_worker
from tests.unit.test_readme import run_consumer
from worker.runtime.topics import ensure_topics
from worker.settings import Settings

HEALTHSCORE = [sys.executable, "-m", "worker.cli"]
Lines = queue.Queue[bytes | None]


def _lines(stream: IO[bytes]) -> Lines:
    """The lines of ``stream`` as they come, None at its end (a thread: a pipe blocks)."""
    lines: Lines = queue.Queue()

    def read() -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


async def _next(lines: Lines) -> bytes:
    line = await asyncio.to_thread(lines.get, timeout=120)
    assert line is not None, "the command's output ended"
    return line


async def _publish_and_read(
    settings: Settings, proc: subprocess.Popen[bytes], lines: Lines
) -> list[bytes]:
    """Alerts published by a real worker while the command runs; the lines printed."""
    async with running_worker(settings), Producer(settings) as p:
        await p.send("login", event("login", "pipe-1", user_id="u1", session_seconds=900))
        printed = [await _next(lines)]
        # Through the pipe while the command still runs: not held until it exits.
        assert proc.poll() is None
        for account in ("pipe-2", "pipe-3"):
            await p.send("login", event("login", account, user_id="u1", session_seconds=900))
        for n in range(2):  # two escalations and a detractor: yellow -> red
            await p.send(
                "ticket",
                event("ticket", "pipe-1", ticket_id=f"t{n}", status="escalated", priority="urgent"),
            )
        await p.send("survey", event("survey", "pipe-1", kind="nps", score=2))
        on_topic = await read_until(
            settings, settings.topic_alerts, lambda alerts: len(alerts) == 4, within=120
        )
    while len(printed) < len(on_topic):
        printed.append(await _next(lines))
    assert proc.poll() is None
    return printed


def test_alerts_json_streams_each_alert_through_a_pipe_and_exits_0_on_sigterm(
    settings: Settings, tmp_path: Path
) -> None:
    asyncio.run(ensure_topics(settings))
    # As a user's shell runs it: stdout a pipe, so block-buffered unless the command
    # flushes (PYTHONUNBUFFERED, set in some CI and container setups, would hide that).
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HEALTHSCORE_") and k != "PYTHONUNBUFFERED"
    }
    env |= {
        "HEALTHSCORE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "HEALTHSCORE_TOPIC_ALERTS": settings.topic_alerts,
    }
    with (tmp_path / "stderr.log").open("wb") as err:
        proc = subprocess.Popen(
            [*HEALTHSCORE, "alerts", "--json", "--from-beginning"],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
        )
    assert proc.stdout is not None
    lines = _lines(proc.stdout)
    try:
        printed = asyncio.run(_publish_and_read(settings, proc, lines))
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0, (tmp_path / "stderr.log").read_text()
    while (line := lines.get(timeout=60)) is not None:
        printed.append(line)
    proc.stdout.close()
    raw, printed = printed, [orjson.loads(line) for line in printed]
    published = asyncio.run(chaos.read_topic(settings, settings.topic_alerts))
    # Every alert, once, exactly as published (the pipe carries the record unchanged).
    assert sorted(printed, key=lambda a: a["alert_id"]) == sorted(
        published, key=lambda a: a["alert_id"]
    )
    assert [
        (a["account_id"], a["previous_tier"], a["tier"])
        for a in printed
        if a["account_id"] == "pipe-1"
    ] == [("pipe-1", None, "yellow"), ("pipe-1", "yellow", "red")]
    # The README's consumer on this very output, one alert delivered twice: each once.
    assert run_consumer([line.rstrip(b"\n") for line in raw + raw[:1]]) == [
        f"{a['account_id']}: {a['previous_tier']} -> {a['tier']}" for a in printed
    ]
