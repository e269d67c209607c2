"""The worker, replay, explain and the account API on a real Redis Cluster of three
primaries: exact through a SIGKILL loop of the worker and through a primary killed and
restarted mid-stream (``chaos.verify``: every account's counters, distinct sets,
scores, published tier and alerts as an independent computation gives them)."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from redis.asyncio import RedisCluster

from tests.integration import chaos, kills
from worker.alerts import Alert, AlertModel, Cause
from worker.api.app import create_app
from worker.embedded import free_port
from worker.embeddedcluster import EmbeddedRedisCluster
from worker.modelfile import load_model
from worker.runtime.topics import ensure_topics
from worker.scoring.tierchange import Published
from worker.settings import Settings
from worker.windows import keys, published, server, wire
from worker.windows.outbox import Outbox, save_commands

HEALTHSCORE = [sys.executable, "-m", "worker.cli"]
KILLS = 2
EVENTS = 15_000


def _client(url: str) -> RedisCluster:
    client = server.connect(url, 10.0)
    assert isinstance(client, RedisCluster)
    return client


@pytest.fixture
async def cluster(settings: Settings, redis_cluster_url: str) -> AsyncIterator[RedisCluster]:
    """The session's cluster, emptied for this test."""
    client = _client(redis_cluster_url)
    await client.flushall(target_nodes=RedisCluster.PRIMARIES)
    try:
        yield client
    finally:
        await client.aclose()


def _healthscore(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """A command as an operator runs it, a subprocess on these settings."""
    return subprocess.run(
        [*HEALTHSCORE, *args],
        env=chaos.env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def _keys_per_primary(client: RedisCluster) -> list[int]:
    return [int(await client.dbsize(target_nodes=node)) for node in client.get_primaries()]


async def test_a_sigkill_loop_on_a_cluster_ends_with_the_exact_state(
    settings: Settings, cluster: RedisCluster, redis_cluster_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "workers.log"
    settings = settings.replace(
        redis_url=redis_cluster_url,
        batch_max_records=500,
        session_timeout_ms=chaos.KILLED_SESSION_MS,
    )
    rng = random.Random(20261204)
    stream = chaos.stream(rng, EVENTS)
    parts = [stream[n :: KILLS + 1] for n in range(KILLS + 1)]
    await ensure_topics(settings)
    ends = await chaos.produce_to(settings, parts[0])
    worker = chaos.start_worker(settings.replace(metrics_port=free_port()), log)
    skipped = []
    try:
        await chaos.wait_for_progress(cluster, log)  # type: ignore[arg-type]
        for part in parts[1:]:
            feed = kills.Feeder(settings, part, chunk=300)
            await feed()
            caught = await kills.kill_mid_batch(
                worker,
                settings,
                cluster,  # type: ignore[arg-type]
                log,
                rng,
                feed=feed,
                within=30.0,
                required=False,
            )
            ends |= await feed.rest()
            port = free_port()
            worker = chaos.start_worker(settings.replace(metrics_port=port), log)
            skipped.append(await kills.wait_for_replayed(port) if caught else 0.0)
        await chaos.wait_for_state(cluster, chaos.reference(stream), [worker], log)  # type: ignore[arg-type]
        await chaos.wait_for_commits(settings, ends, log)
        chaos.stop([worker])
        figures = await chaos.verify(settings, cluster, stream)  # type: ignore[arg-type]
        spread = await _keys_per_primary(cluster)
    finally:
        chaos.stop([worker])
    assert figures.accounts == chaos.ACCOUNTS
    assert len(spread) == 3, spread
    assert min(spread) > 0, spread  # every primary holds accounts
    assert any(skipped), "no kill interrupted a batch"
    print(
        figures.report(
            f"{KILLS} worker SIGKILLs mid-batch on a 3-primary cluster "
            f"({skipped} re-deliveries skipped after each)"
        )
    )
    await _replay_explain_and_api(settings, cluster, stream)


async def _replay_explain_and_api(
    settings: Settings, cluster: RedisCluster, stream: list[tuple[str, dict[str, object]]]
) -> None:
    """What users run next to the worker, on the state it left: explain and the API say
    what Redis holds; a replay into the emptied cluster rebuilds exactly it."""
    account = "acct-0001"
    pub = orjson.loads(await cluster.hget(keys.state_key(account), keys.PUBLISHED) or b"{}")
    explained = await asyncio.to_thread(_healthscore, settings, "explain", account, "--json")
    assert explained.returncode == 0, explained.stderr
    assert orjson.loads(explained.stdout)["published_tier"] == pub["tier"]

    app = create_app(load_model(settings.model_path), cluster)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
        listed = (await api.get("/accounts", params={"tier": pub["tier"], "limit": 500})).json()
        one = (await api.get(f"/accounts/{account}")).json()
    assert account in [row["account_id"] for row in listed["accounts"]]
    assert one["published_tier"] == pub["tier"]

    await cluster.flushall(target_nodes=RedisCluster.PRIMARIES)
    # --force: the embedded broker keeps listing the stopped worker as a member.
    replayed = await asyncio.to_thread(
        _healthscore, settings, "replay", "--from-beginning", "--force"
    )
    assert replayed.returncode == 0, replayed.stderr[-3000:]
    figures = await chaos.verify(settings, cluster, stream)  # type: ignore[arg-type]
    assert figures.accounts == chaos.ACCOUNTS


async def test_a_primary_killed_mid_stream_loses_and_doubles_nothing(
    settings: Settings, redis_cluster: EmbeddedRedisCluster, tmp_path: Path
) -> None:
    log = tmp_path / "workers.log"
    settings = settings.replace(
        redis_url=redis_cluster.url, batch_max_records=500, retry_backoff_max_seconds=0.5
    )
    stream = chaos.stream(random.Random(17), EVENTS)
    await ensure_topics(settings)
    ends = await chaos.produce_to(settings, stream)
    worker = chaos.start_worker(settings, log)
    client = _client(redis_cluster.url)
    try:
        await chaos.wait_for_progress(client, log)  # type: ignore[arg-type]
        redis_cluster.nodes[1].kill()  # its acknowledged writes are already fsynced
        await asyncio.sleep(1.0)
        redis_cluster.nodes[1].start()
        redis_cluster.wait_ok()
        await client.aclose()  # its connections to the killed node are gone
        client = _client(redis_cluster.url)
        await chaos.wait_for_state(client, chaos.reference(stream), [worker], log)  # type: ignore[arg-type]
        await chaos.wait_for_commits(settings, ends, log)
        chaos.stop([worker])
        figures = await chaos.verify(settings, client, stream)  # type: ignore[arg-type]
    finally:
        chaos.stop([worker])
        await client.aclose()
    assert "redis unavailable" in log.read_text()
    print(figures.report("1 of 3 cluster primaries SIGKILLed and restarted"))


async def test_a_crash_between_a_tier_and_its_index_move_is_mended_by_the_resend(
    cluster: RedisCluster,
) -> None:
    """On a cluster the new tier and its move between the tier indexes are in different
    slots, so a worker can die between the two: the alert is still in the outbox then,
    and resending it moves the account (once, and only while its tier is published)."""
    moved = Alert(
        "id",
        "acct-1",
        None,
        "green",
        "red",
        "R",
        80.0,
        30.0,
        None,
        {},
        Cause("event"),
        "live",
        "m",
        AlertModel("m", "default"),
        "2026-01-15T12:00:00.000+00:00",
        7,
    )
    state = keys.state_key("acct-1")
    index, fields = save_commands(2, "acct-1", moved)
    published_now = Published("red", 30.0, 7, {}, None, None)
    # What the dead worker managed: the outbox index, the tier with its alert; the old
    # index entry still there, the new one not.
    await wire.execute(
        cluster,
        [
            *index,
            ("HSET", state, keys.PUBLISHED, published.encode(published_now), *fields),
            ("ZADD", keys.tier_key("green"), 0, "acct-1"),
        ],
        5.0,
    )
    found = await Outbox(cluster, 5.0).unsent([2])
    assert [alert for _, alert in found] == [moved]
    assert await cluster.zscore(keys.tier_key("red"), "acct-1") == 0
    assert await cluster.zscore(keys.tier_key("green"), "acct-1") is None
