"""Models from the compacted models topic, as a deployment changes them: ``healthscore
publish-model`` refuses a bad file and sends a good one; a worker (a subprocess) started
on an empty topic scores with the file, applies a published model without a restart
(``model_change`` alerts, both versions), rejects a bad record someone sent around the
command with the field named, and a worker started later begins with the topic's model,
as ``explain`` does."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import orjson

from tests.integration import chaos
from tests.integration.harness import Producer, read_until, valid_alert
from tests.integration.test_model_reload import LOW, NEAR, _last, _model, _send, _wait_for_log
from tests.integration.test_replay_cli import HEALTHSCORE
from worker.runtime.modeltopic import KEY
from worker.runtime.topics import ensure_topics
from worker.settings import Settings


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HEALTHSCORE, *args], env=chaos.env(settings), capture_output=True, text=True, timeout=60
    )


async def test_a_model_published_to_the_topic_reaches_every_worker(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "model.yaml"
    path.write_text(_model("topic-a"), "utf-8")
    settings = settings.replace(
        model_path=str(path), topic_models=f"models.{tmp_path.name}", model_reload_seconds=60
    )  # a record is read at once anyway
    await ensure_topics(settings)
    log = tmp_path / "worker.log"
    worker = chaos.start_worker(settings, log)
    try:
        await _send(settings)
        await read_until(
            settings, settings.topic_alerts, lambda rs: set(_last(rs)) == set(NEAR + LOW), within=60
        )
        await asyncio.sleep(1)

        bad = tmp_path / "bad.yaml"
        bad.write_text(_model("topic-bad").replace("weight: 0.85", "weight: -1", 1), "utf-8")
        refused = _cli(settings, "publish-model", str(bad))
        assert refused.returncode == 2
        assert "components.nps.weight" in refused.stderr
        async with Producer(settings) as p:  # around the command: the worker rejects it
            await p.raw(settings.topic_models, KEY, bad.read_bytes())
        text = await _wait_for_log(log, "model file rejected")
        assert "model topic-a goes on" in text
        assert f"model topic {settings.topic_models}[0]@0" in text
        assert "components.nps.weight" in text

        good = tmp_path / "good.yaml"
        good.write_text(_model("topic-b", green=50), "utf-8")
        published = _cli(settings, "publish-model", str(good))
        assert published.returncode == 0, published.stderr
        assert "published model topic-b" in published.stdout
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
    assert sorted(a["account_id"] for a in moved) == NEAR
    for alert in moved:
        assert valid_alert(alert)
        assert alert["cause"]["previous_model_version"] == "topic-a"
        assert alert["model_version"] == "topic-b"

    explained = _cli(settings, "explain", NEAR[0], "--json")
    assert explained.returncode == 0, explained.stderr
    assert orjson.loads(explained.stdout)["model"]["version"] == "topic-b"
    second = tmp_path / "second.log"
    worker = chaos.start_worker(settings, second)
    try:
        await _wait_for_log(second, "model topic-b, 8 components")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)


def test_publish_model_needs_the_topic_setting(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_text(_model("no-topic"), "utf-8")
    refused = _cli(settings.replace(topic_models=""), "publish-model", str(path))
    assert refused.returncode == 2
    assert "HEALTHSCORE_TOPIC_MODELS is not set" in refused.stderr
