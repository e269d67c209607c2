"""``healthscore worker`` at start-up, run as users run it: a busy metrics port, the
metrics address, Redis refusing the worker's credentials or permissions, and Redis
without persistence. Each with a private ``redis-server`` (no broker needed: Redis is
checked, and the metrics endpoint bound, before the broker is contacted)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio

from worker.embedded import HOST, EmbeddedRedis, free_port
from worker.modelfile import load_model
from worker.startup import check_redis
from worker.windows.store import WindowStore

HEALTHSCORE = [sys.executable, "-m", "worker.cli"]
ADMIN_PASSWORD = "admin-secret-0b1e"


class _Redis(EmbeddedRedis):
    """A private redis-server with extra arguments (later ones win) and a password."""

    def __init__(
        self, *args: str, password: str | None = None, persist_dir: Path | None = None
    ) -> None:
        super().__init__(persist_dir=persist_dir)
        self.args, self.password = list(args), password

    def command(self) -> list[str]:
        auth = ["--requirepass", self.password] if self.password else []
        return [*super().command(), *auth, *self.args]

    def client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, password=self.password, socket_timeout=1)

    def _is_ready(self, proc: subprocess.Popen[bytes]) -> bool:
        try:
            with self.client() as client:
                return bool(client.info("server").get("process_id") == proc.pid)
        except redis.RedisError:
            return False


@contextlib.contextmanager
def _server(
    *args: str, password: str | None = None, persist_dir: Path | None = None
) -> Iterator[_Redis]:
    server = _Redis(*args, password=password, persist_dir=persist_dir)
    try:
        server.start()
    except Exception as exc:
        pytest.skip(f"no redis-server: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def protected_redis() -> Iterator[_Redis]:
    """A redis-server with ``requirepass`` and ACL users lacking one permission each."""
    with _server(password=ADMIN_PASSWORD) as server, server.client() as admin:
        admin.acl_setuser(
            "noscript",
            enabled=True,
            passwords=["+pw"],
            keys=["*"],
            channels=["*"],
            commands=["+@all", "-@scripting"],
        )
        admin.acl_setuser(
            "otherkeys",
            enabled=True,
            passwords=["+pw"],
            keys=["other:*"],
            channels=["*"],
            commands=["+@all"],
        )
        # Managed Redis often allows neither CONFIG nor INFO: the worker must still run.
        admin.acl_setuser(
            "managed",
            enabled=True,
            passwords=["+pw"],
            keys=["*"],
            channels=["*"],
            commands=["+@all", "-config", "-info"],
        )
        yield server


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSCORE_")}
    # A broker that is not there: every test here is decided before it is contacted.
    return {
        **env,
        "HEALTHSCORE_METRICS_PORT": "0",
        "HEALTHSCORE_KAFKA_BOOTSTRAP": f"{HOST}:{free_port()}",
        "HEALTHSCORE_RETRY_BACKOFF_MAX_SECONDS": "1",
        **extra,
    }


def _worker_exits(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # A deadline for a hang, not a timing claim: these exits take well under a second.
    return subprocess.run(
        [*HEALTHSCORE, "worker"], env=env, capture_output=True, text=True, timeout=120
    )


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("healthscore:")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.rstrip("\n").endswith(errors[0]), result.stderr  # the last word
    return errors[0]


# --------------------------------------------------------------------------- metrics


def test_a_busy_metrics_port_is_one_line_and_exit_code_3() -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _worker_exits(
            _env(
                HEALTHSCORE_METRICS_PORT=str(port),
                HEALTHSCORE_REDIS_URL=f"redis://{HOST}:{free_port()}/0",
            )
        )
    assert result.returncode == 3, result.stderr
    line = _one_error_line(result)
    assert f"{HOST}:{port} is already in use" in line
    assert "HEALTHSCORE_METRICS_PORT" in line


def _answers(host: str, port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=2) as response:
            return b"healthscore_events_total" in response.read()
    except OSError:
        return False


@pytest.mark.parametrize(
    ("setting", "bound", "not_bound"),
    [
        (None, "127.0.0.1", "127.0.0.2"),  # the default: loopback
        ("127.0.0.2", "127.0.0.2", "127.0.0.1"),
    ],
)
def test_metrics_answer_on_the_configured_host_only(
    setting: str | None, bound: str, not_bound: str
) -> None:
    port = free_port()
    host = {} if setting is None else {"HEALTHSCORE_METRICS_HOST": setting}
    # Redis is not there either: the worker waits for it, serving metrics meanwhile.
    proc = subprocess.Popen(
        [*HEALTHSCORE, "worker"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(
            HEALTHSCORE_METRICS_PORT=str(port),
            **host,
            HEALTHSCORE_REDIS_URL=f"redis://{HOST}:{free_port()}/0",
        ),
    )
    try:
        deadline = time.monotonic() + 60
        while not _answers(bound, port) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _answers(bound, port), f"no /metrics on {bound}:{port}"
        with socket.socket() as probe:
            assert probe.connect_ex((not_bound, port)) != 0, f"{not_bound}:{port} answers"
        assert proc.poll() is None  # an unreachable Redis is waited out, not an exit
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=60)
    assert "redis unavailable" in stderr
    assert proc.returncode == 0, stderr


# --------------------------------------------------------------------------- access


@pytest.mark.parametrize(
    ("credentials", "says"),
    [
        (":not-the-password-7f3a@", "AuthenticationError"),  # WRONGPASS
        ("", "AuthenticationError"),  # NOAUTH: no password at all
        ("noscript:pw@", "NoPermissionError: this user has no permissions to run the 'script"),
        ("otherkeys:pw@", "NoPermissionError: this user has no permissions to access"),
    ],
)
def test_redis_refusing_the_worker_is_one_line_and_exit_code_4(
    protected_redis: _Redis, credentials: str, says: str
) -> None:
    url = f"redis://{credentials}{HOST}:{protected_redis.port}/0"
    result = _worker_exits(_env(HEALTHSCORE_REDIS_URL=url))
    assert result.returncode == 4, result.stderr
    line = _one_error_line(result)
    assert line.startswith("healthscore: Redis refused the worker (")
    assert says in line
    assert "HEALTHSCORE_REDIS_URL" in line
    assert "not-the-password" not in result.stderr  # the URL's password is never printed
    assert "unavailable" not in result.stderr  # not once taken for an outage


def test_explain_with_a_wrong_password_is_one_line_and_exit_code_4(protected_redis: _Redis) -> None:
    url = f"redis://:not-the-password-7f3a@{HOST}:{protected_redis.port}/0"
    result = subprocess.run(
        [*HEALTHSCORE, "explain", "acme"],
        capture_output=True,
        text=True,
        env=_env(HEALTHSCORE_REDIS_URL=url),
        timeout=120,
    )
    assert result.returncode == 4, result.stderr
    assert _one_error_line(result).startswith("healthscore: Redis refused the worker (")


def test_a_redis_without_config_and_info_is_used_with_a_warning(
    protected_redis: _Redis, tmp_path: Path
) -> None:
    url = f"redis://managed:pw@{HOST}:{protected_redis.port}/0"
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*HEALTHSCORE, "worker"],
            stdout=subprocess.DEVNULL,
            stderr=out,
            env=_env(HEALTHSCORE_REDIS_URL=url, HEALTHSCORE_LOG_FORMAT="plain"),
        )
    try:
        deadline = time.monotonic() + 60
        while "kafka unavailable" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    text = log.read_text()
    assert re.search(
        r"WARNING worker\.startup: Redis \S+: persistence could not be checked", text
    ), text
    assert "kafka unavailable" in text  # past the Redis checks: on to the broker


# --------------------------------------------------------------------------- persistence


async def _startup_warnings(server: _Redis, caplog: pytest.LogCaptureFixture) -> list[str]:
    client = redis.asyncio.Redis(host=HOST, port=server.port, password=server.password)
    try:
        with caplog.at_level(logging.INFO, logger="worker.startup"):
            await check_redis(client, WindowStore(client, load_model()), require_persistence=False)
    finally:
        await client.aclose()
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_redis_without_persistence_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with _server("--appendonly", "no", "--save", "") as server:
        [warning] = await _startup_warnings(server, caplog)
    assert "has no persistence (no append-only file, no RDB save points)" in warning
    assert "offset fences" in warning
    assert "appendonly yes" in warning


async def test_redis_with_an_append_only_file_is_not(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    with _server(persist_dir=tmp_path / "aof") as server:
        assert await _startup_warnings(server, caplog) == []


async def test_redis_with_snapshots_only_is_warned_about(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    with _server("--save", "3600 1", "--dir", str(tmp_path)) as server:
        [warning] = await _startup_warnings(server, caplog)
    assert "RDB snapshots only (save 3600 1)" in warning


def test_required_persistence_refuses_to_start_with_exit_code_5() -> None:
    with _server("--appendonly", "no", "--save", "") as server:
        result = _worker_exits(
            _env(HEALTHSCORE_REDIS_URL=server.url, HEALTHSCORE_REQUIRE_REDIS_PERSISTENCE="true")
        )
    assert result.returncode == 5, result.stderr
    line = _one_error_line(result)
    assert "has no persistence" in line
    assert "HEALTHSCORE_REQUIRE_REDIS_PERSISTENCE" in line
