"""Everything under tests/integration runs against a real broker and a real Redis;
the Redis Cluster tests against a real cluster of three primaries."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.conftest import _unavailable, started
from worker.embeddedcluster import EmbeddedRedisCluster
from worker.settings import Settings

REDIS_CLUSTER_ENV = "HEALTHSCORE_TEST_REDIS_CLUSTER_URL"

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A conftest's hook sees every collected item, not only those in its directory.
    for item in items:
        if item.path.resolve().is_relative_to(_HERE):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    """An asyncio client on the test's Redis (flushed by ``settings``)."""
    client = Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """A Redis Cluster shared by the session's cluster tests (each empties it):
    ``HEALTHSCORE_TEST_REDIS_CLUSTER_URL`` (``redis+cluster://host:port,...``), else
    three local primaries. No container: a cluster in Docker advertises addresses the
    host cannot reach without more set-up than it is worth here."""
    if url := os.environ.get(REDIS_CLUSTER_ENV):
        yield url
        return
    try:
        cluster = EmbeddedRedisCluster()
        cluster.start()
    except Exception as exc:
        _unavailable("Redis Cluster", [f"{REDIS_CLUSTER_ENV} is not set", f"embedded: {exc}"])
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[EmbeddedRedisCluster]:
    """A private cluster of three primaries whose data survives a node's ``kill()`` and
    ``start()`` (every write fsynced to its AOF): for tests that take a node away."""
    yield from started(
        EmbeddedRedisCluster(persist_dir=tmp_path / "cluster"), "restartable Redis Cluster"
    )
