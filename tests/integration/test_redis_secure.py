"""Redis as managed services run it: TLS (rediss://) with a certificate of a private CA,
an ACL user whose password is a mounted secret, ``requirepass`` on the default user.
Commands run as users run them; the worker is checked up to the broker (Redis comes
first at start-up, and no broker here has TLS)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.certs import Certs, make_certs
from tests.integration.test_startup import (
    HEALTHSCORE,
    _env,
    _one_error_line,
    _server,
    _worker_exits,
)
from worker.embedded import HOST, EmbeddedRedis, free_port

ADMIN_PASSWORD = "admin-tls-secret-5d2c"
SCORER_PASSWORD = "scorer-secret-a41f"


class _TlsRedis(EmbeddedRedis):
    """A redis-server that speaks TLS only, with ``requirepass`` and a ``scorer`` user."""

    def __init__(self, certs: Certs) -> None:
        super().__init__()
        self.certs = certs

    def command(self) -> list[str]:
        plain = super().command()
        port = plain.index("--port")
        return [
            *plain[:port],
            "--port",
            "0",
            "--tls-port",
            str(self.port),
            *plain[port + 2 :],
            "--tls-cert-file",
            str(self.certs.cert),
            "--tls-key-file",
            str(self.certs.key),
            "--tls-ca-cert-file",
            str(self.certs.ca),
            "--tls-auth-clients",
            "no",
            "--requirepass",
            ADMIN_PASSWORD,
        ]

    def admin(self) -> redis.Redis:
        return redis.Redis(
            host=HOST,
            port=self.port,
            password=ADMIN_PASSWORD,
            ssl=True,
            ssl_ca_certs=str(self.certs.ca),
            socket_timeout=2,
        )

    def _is_ready(self, proc: subprocess.Popen[bytes]) -> bool:
        try:
            with self.admin() as client:
                return bool(client.info("server").get("process_id") == proc.pid)
        except redis.RedisError:
            return False


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"), "redis")


@pytest.fixture(scope="module")
def tls_redis(certs: Certs) -> Iterator[_TlsRedis]:
    server = _TlsRedis(certs)
    try:
        server.start()
    except Exception as exc:
        pytest.skip(f"no redis-server with TLS: {exc}")
    try:
        with server.admin() as admin:
            admin.acl_setuser(
                "scorer",
                enabled=True,
                passwords=[f"+{SCORER_PASSWORD}"],
                keys=["*"],
                channels=["*"],
                commands=["+@all"],
            )
        yield server
    finally:
        server.stop()


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "redis-password"
    path.write_text(SCORER_PASSWORD + "\n")  # as a mounted secret often ends
    return path


def _explain(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HEALTHSCORE, "explain", "acme"], capture_output=True, text=True, env=env, timeout=120
    )


def _tls_env(server: _TlsRedis, ca: Path, password_file: Path) -> dict[str, str]:
    return _env(
        HEALTHSCORE_REDIS_URL=f"rediss://scorer@{HOST}:{server.port}/0",
        HEALTHSCORE_REDIS_CA_FILE=str(ca),
        HEALTHSCORE_REDIS_PASSWORD_FILE=str(password_file),
    )


def test_explain_reaches_redis_over_tls_as_an_acl_user(
    tls_redis: _TlsRedis, certs: Certs, password_file: Path
) -> None:
    result = _explain(_tls_env(tls_redis, certs.ca, password_file))
    assert result.returncode == 1, result.stderr  # reached: an account it has no data of
    assert "acme: no data in any window" in result.stdout
    assert result.stderr == ""


def test_the_worker_gets_past_redis_over_tls_and_never_logs_the_password(
    tls_redis: _TlsRedis, certs: Certs, password_file: Path, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*HEALTHSCORE, "worker"],
            stdout=subprocess.DEVNULL,
            stderr=out,
            env=_tls_env(tls_redis, certs.ca, password_file),
        )
    try:
        deadline = time.monotonic() + 90
        while "kafka unavailable" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        assert "kafka unavailable" in log.read_text()  # Redis checked: the broker is next
        with tls_redis.admin() as admin:  # the worker's idle connection: logged in as scorer
            assert "scorer" in {c["user"] for c in admin.client_list()}
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
    assert SCORER_PASSWORD not in log.read_text()


@pytest.mark.parametrize("command", ["explain", "worker"])
def test_a_wrong_ca_is_one_line_naming_the_ca_setting_and_exit_code_4(
    tls_redis: _TlsRedis, password_file: Path, tmp_path: Path, command: str
) -> None:
    other = make_certs(tmp_path, "other")  # a CA that did not sign the server's certificate
    env = _tls_env(tls_redis, other.ca, password_file)
    result = _explain(env) if command == "explain" else _worker_exits(env)
    assert result.returncode == 4, result.stderr
    line = _one_error_line(result)
    assert line.startswith("healthscore: Redis's TLS certificate is not trusted (")
    assert "CERTIFICATE_VERIFY_FAILED" in line
    assert "HEALTHSCORE_REDIS_CA_FILE" in line
    assert "unavailable" not in result.stderr  # not once taken for an outage


def test_a_wrong_password_in_the_file_is_access_denied_and_not_printed(
    tls_redis: _TlsRedis, certs: Certs, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-scorer-password-88")
    result = _worker_exits(_tls_env(tls_redis, certs.ca, wrong))
    assert result.returncode == 4, result.stderr
    assert _one_error_line(result).startswith("healthscore: Redis refused the worker (")
    assert "not-the-scorer-password-88" not in result.stderr


def test_requirepass_from_a_password_file_over_plain_redis(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(ADMIN_PASSWORD)
    with _server(password=ADMIN_PASSWORD) as server:
        env = _env(
            HEALTHSCORE_REDIS_URL=f"redis://{HOST}:{server.port}/0",
            HEALTHSCORE_REDIS_PASSWORD_FILE=str(secret),
        )
        assert _explain(env).returncode == 1  # reached, the account unknown
        refused = _explain({**env, "HEALTHSCORE_REDIS_PASSWORD_FILE": ""})
    assert refused.returncode == 4, refused.stderr
    assert "AuthenticationError" in _one_error_line(refused)


def test_a_tls_server_is_not_reached_without_tls() -> None:
    # rediss:// is what turns TLS on: a redis:// URL with a CA file is refused up front.
    env = _env(
        HEALTHSCORE_REDIS_URL=f"redis://{HOST}:{free_port()}/0",
        HEALTHSCORE_REDIS_CA_FILE="/etc/hostname",
    )
    result = _explain(env)
    assert result.returncode == 2, result.stderr
    assert "no rediss:// URL" in _one_error_line(result)
