"""Everything under tests/integration runs against a real broker and a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from worker.settings import Settings

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
