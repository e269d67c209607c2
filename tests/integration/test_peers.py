"""The benchmark's peers do healthscore's work: on the same small input, each peer
ends with the same score per account as healthscore's worker, and a tier the model
allows for it.

Run the way the benchmark runs them: the worker and each peer as processes over the
same preloaded topics. The peers come with the bench extra (faust-streaming,
quixstreams, bytewax, pathway), which CI installs: a missing one fails there.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.asyncio import Redis

from bench.contender import WorkerProcess, run_to_end
from bench.data import events, preload
from bench.peers.progress import read_scores
from bench.peers.run import run_peer
from tests.conftest import require_module
from worker.modelfile import load_model
from worker.runtime.topics import ensure_topics
from worker.scoring.evaluate import component_values
from worker.scoring.model import Model
from worker.scoring.rollup import score_components
from worker.scoring.tiers import next_tier
from worker.settings import Settings
from worker.windows import keys
from worker.windows.store import WindowStore

EVENTS = 400
ACCOUNTS = 30
# Inside both windows of the default model (30 and 90 days) however long the test
# takes: a UTC midnight passing during the run moves no event out of a window.
SPREAD_DAYS = 20
FRAMEWORK = {
    "naive-faust": "faust",
    "quix": "quixstreams",
    "bytewax": "bytewax",
    "bytewax-recovery": "bytewax",
    "pathway": "pathway",
}

Finals = dict[str, tuple[float | None, str | None]]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("peer", sorted(FRAMEWORK))
async def test_peer_scores_like_healthscore(
    peer: str, settings: Settings, redis_client: Redis, tmp_path: Path
) -> None:
    require_module(FRAMEWORK[peer], "the bench extra: pip install -e '.[dev,bench]'")
    await ensure_topics(settings)
    sent = await preload(settings, events(EVENTS, ACCOUNTS, seed=11, spread_days=SPREAD_DAYS))
    model = load_model()
    ours = await _healthscore(settings, redis_client, model, sent, tmp_path)

    scores, output = tmp_path / f"{peer}.json", f"{settings.topic_alerts}.{peer}"
    result = await asyncio.to_thread(
        run_peer,
        peer,
        bootstrap=settings.kafka_bootstrap,
        redis_url=settings.redis_url,
        settings=settings,
        total_events=sent,
        timeout_s=300.0,
        output_topic=output,
        scores=scores,
    )
    assert (result.events, result.exit_code) == (sent, 0), result
    # Every alert the peer counted reached its output topic.
    assert await _records(settings, output, result.alerts) == result.alerts > 0
    theirs = read_scores(scores)

    assert set(theirs) == set(ours)
    assert len(ours) == ACCOUNTS
    wrong = {a: (ours[a], theirs[a]) for a in sorted(ours) if not _agree(model, ours[a], theirs[a])}
    assert not wrong, f"{len(wrong)} of {len(ours)} accounts (healthscore, {peer}): {wrong}"
    # Not vacuous: the input reaches more than one tier.
    assert len({tier for _, tier in ours.values()}) > 1, ours


async def _healthscore(
    settings: Settings, redis: Redis, model: Model, sent: int, tmp_path: Path
) -> Finals:
    """Each account's score from the worker's windows in Redis, and its published tier."""
    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        await worker.wait_ready()
        _, _, end, _ = await run_to_end(worker, sent, within=240.0)
    assert end.committed == sent, f"the worker committed {end.committed} of {sent} events"
    store, now = WindowStore(redis, model), time.time()
    finals: Finals = {}
    for account in {
        a.decode().split("{")[1].split("}")[0]
        async for a in redis.scan_iter(match=keys.state_key("*"))
    }:
        state = await store.read(account, now)
        card = score_components(
            model, component_values(model, state.windows, state.attrs, state.seen, {}, None)
        )
        published = await redis.hget(keys.state_key(account), keys.PUBLISHED)
        finals[account] = (card.score, orjson.loads(published)["tier"] if published else None)
    return finals


async def _records(settings: Settings, topic: str, expect: int) -> int:
    """How many records ``topic`` holds, read from the start until ``expect`` came (and a
    moment more, for any beyond) or 20 s passed. Read, not the end offsets: the embedded
    broker's do not count records."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, fetch_max_wait_ms=50)
    await consumer.start()
    try:
        await consumer.topics()  # the cluster's metadata, the peer's topic in it
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen, deadline = 0, time.monotonic() + 20.0
        while seen < expect and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            seen += sum(len(records) for records in batches.values())
        batches = await consumer.getmany(timeout_ms=300)
        return seen + sum(len(records) for records in batches.values())
    finally:
        await consumer.stop()


def _agree(
    model: Model, ours: tuple[float | None, str | None], theirs: tuple[float | None, str | None]
) -> bool:
    """The same score (up to float summing order) and the same tier, or, where the score
    lies within the model's margin of a boundary, tiers that hysteresis keeps for it:
    which one an account ends in then depends on the path, and healthscore rescores
    once per batch where the peers rescore per event."""
    (score, tier), (peer_score, peer_tier) = ours, theirs
    if score is None or peer_score is None:
        return (score, tier) == (peer_score, peer_tier)
    if peer_score != pytest.approx(score, rel=1e-9, abs=1e-9):
        return False
    return tier == peer_tier or (
        tier is not None
        and peer_tier is not None
        and all(next_tier(model, score, t).name == t for t in (tier, peer_tier))
    )
