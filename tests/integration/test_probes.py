"""``healthscore worker`` as users run it: its probes answer on the metrics port, and
/readyz turns 503 while Redis is frozen (SIGSTOP: connections hang, nothing is refused)
and 200 again once it thaws, while /healthz stays 200 (an outage is not a wedged loop)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration import chaos
from tests.integration.harness import running_worker
from worker.embedded import HOST, EmbeddedRedis, free_port
from worker.settings import Settings

Answer = tuple[int, Any]  # the body: parsed JSON, else bytes
DEADLINE = 90.0


def _get(port: int, path: str) -> Answer:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=10) as resp:
            status, body, kind = resp.status, resp.read(), resp.headers["Content-Type"]
    except urllib.error.HTTPError as err:
        status, body, kind = err.code, err.read(), err.headers["Content-Type"]
    return status, json.loads(body) if kind == "application/json" else body


def _until(
    port: int, path: str, wanted: Callable[[Answer], bool], proc: subprocess.Popen[bytes], log: Path
) -> Answer:
    deadline = time.monotonic() + DEADLINE
    last: Answer | None = None
    while True:
        assert proc.poll() is None, f"the worker exited:\n{chaos.tail(log)}"
        with contextlib.suppress(OSError):  # not listening yet
            if wanted(last := _get(port, path)):
                return last
        assert time.monotonic() < deadline, f"{path} last said {last}\n{chaos.tail(log)}"
        time.sleep(0.2)


@pytest.fixture
def worker_log(tmp_path: Path) -> Path:
    return tmp_path / "worker.log"


@contextlib.contextmanager
def _worker(settings: Settings, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = chaos.start_worker(settings, log)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_readyz_fails_while_redis_is_frozen_and_recovers(
    settings: Settings, restartable_redis: EmbeddedRedis, worker_log: Path
) -> None:
    port = free_port()
    settings = settings.replace(
        redis_url=restartable_redis.url,
        metrics_port=port,
        redis_timeout_seconds=1.0,
        retry_backoff_max_seconds=0.5,
        readyz_max_age_seconds=5.0,
    )
    pid = restartable_redis.pid
    assert pid is not None
    with _worker(settings, worker_log) as proc:
        _, ready = _until(port, "/readyz", lambda a: a[0] == 200, proc, worker_log)
        assert ready["ready"] is True, ready
        assert ready["partitions"] == settings.topic_partitions * len(settings.input_topics)
        os.kill(pid, signal.SIGSTOP)
        try:
            _, paused = _until(
                port,
                "/readyz",
                lambda a: (
                    a[0] == 503
                    and isinstance(a[1], dict)
                    and "consumption paused: redis unavailable" in a[1]["reasons"]
                ),
                proc,
                worker_log,
            )
            assert paused["ready"] is False
            status, alive = _get(port, "/healthz")
            assert status == 200, alive
            assert alive["alive"] is True
        finally:
            os.kill(pid, signal.SIGCONT)
        _until(port, "/readyz", lambda a: a[0] == 200, proc, worker_log)


def test_metrics_still_served_and_any_other_path_is_404(
    settings: Settings, worker_log: Path
) -> None:
    port = free_port()
    with _worker(settings.replace(metrics_port=port), worker_log) as proc:
        _until(port, "/readyz", lambda a: a[0] == 200, proc, worker_log)
        status, metrics = _get(port, "/metrics")
        assert status == 200
        assert b"healthscore_assigned_partitions 18.0" in metrics  # 6 input topics x 3
        assert _get(port, "/healthz")[0] == 200
        for path in ("/", "/health", "/metrics/x", "/readyz.json"):
            assert _get(port, path)[0] == 404, path


async def test_a_wedged_event_loop_fails_healthz(settings: Settings) -> None:
    # The probes are answered by a thread of their own from what the loop last recorded:
    # a loop blocked in a synchronous call (here a sleep) cannot keep /healthz green.
    port = free_port()
    settings = settings.replace(metrics_port=port, healthz_max_poll_age_seconds=1.0)
    async with running_worker(settings) as worker:
        server = worker.serve_endpoint()
        assert server is not None
        try:
            await _until_async(port, "/healthz", 200)
            answers: list[Answer] = []
            probe = threading.Timer(3.0, lambda: answers.append(_get(port, "/healthz")))
            probe.start()
            time.sleep(4.0)  # noqa: ASYNC251 (wedges the event loop, on purpose)
            probe.join()
            [(status, body)] = answers
            assert status == 503, body
            assert "event loop stuck" in body["reasons"][0]
            await _until_async(port, "/healthz", 200)
        finally:
            server.shutdown()
            server.server_close()


async def _until_async(port: int, path: str, status: int) -> None:
    deadline = time.monotonic() + DEADLINE
    while (answer := await asyncio.to_thread(_get, port, path))[0] != status:
        assert time.monotonic() < deadline, answer
        await asyncio.sleep(0.2)
