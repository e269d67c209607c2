"""What an error means is decided in one place: an outage is retried, a refusal is not."""

from __future__ import annotations

import asyncio
import logging
import ssl

import pytest
from aiokafka import errors as kafka
from redis import exceptions as redis

from worker.errors import (
    AccessDenied,
    AddressInUse,
    ConfigError,
    PersistenceRequired,
    Retriable,
    access_denied,
    is_retriable,
)
from worker.metrics import Metrics
from worker.runtime.retry import retrying
from worker.startup import Persistence, check_persistence

REDIS_DENIALS = [
    redis.AuthenticationError("invalid username-password pair or user is disabled."),
    redis.AuthenticationError("Authentication required."),  # NOAUTH
    redis.AuthenticationWrongNumberOfArgsError("wrong number of arguments for 'auth'"),
    redis.AuthorizationError("denied"),
    redis.NoPermissionError("this user has no permissions to run the 'evalsha' command"),
    redis.NoPermissionError("this user has no permissions to access one of the keys"),
    # A command an ACL refuses inside a script, as the script's error.
    redis.ResponseError(
        "NOPERM this user has no permissions to run the 'hset' command"
        " script: 1a2b, on @user_script:12."
    ),
]
KAFKA_DENIALS = [
    kafka.TopicAuthorizationFailedError(),
    kafka.GroupAuthorizationFailedError(),
    kafka.ClusterAuthorizationFailedError(),
    kafka.TransactionalIdAuthorizationFailed(),
    kafka.SaslAuthenticationFailed("Authentication failed: Invalid username or password"),
    kafka.UnsupportedSaslMechanismError("PLAIN not enabled"),
    kafka.IllegalSaslStateError(),
    kafka.AuthenticationFailedError(),
    kafka.AuthenticationMethodNotSupported(),
]
OUTAGES = [
    redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
    redis.TimeoutError("Timeout reading from socket"),
    redis.BusyLoadingError("Redis is loading the dataset in memory"),
    # A Redis Cluster between states: a primary away, slots moving.
    redis.ClusterDownError("CLUSTERDOWN The cluster is down"),
    redis.MovedError("3999 127.0.0.1:6381"),
    redis.AskError("3999 127.0.0.1:6381"),
    redis.TryAgainError("TRYAGAIN"),
    redis.SlotNotCoveredError("Slot 3999 not covered by the cluster"),
    ConnectionRefusedError(111, "Connection refused"),
    TimeoutError(),
    kafka.KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9092)]"),
    kafka.KafkaTimeoutError(),
    kafka.NodeNotReadyError(),
    kafka.NotLeaderForPartitionError(),
    Retriable("the broker did not acknowledge the commit"),
]


@pytest.mark.parametrize("exc", REDIS_DENIALS + KAFKA_DENIALS, ids=repr)
def test_refusals_are_access_denied_not_retried(exc: Exception) -> None:
    assert not is_retriable(exc)
    denied = access_denied(exc)
    assert isinstance(denied, AccessDenied)
    assert isinstance(denied, ConfigError)
    message = str(denied)
    assert "\n" not in message
    assert type(exc).__name__ in message
    setting = "HEALTHSCORE_REDIS_URL" if exc in REDIS_DENIALS else "HEALTHSCORE_GROUP_ID"
    assert setting in message


@pytest.mark.parametrize("exc", OUTAGES, ids=repr)
def test_outages_are_retried_and_no_refusal(exc: Exception) -> None:
    assert is_retriable(exc)
    assert access_denied(exc) is None


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("a bug"),
        redis.ResponseError("WRONGTYPE"),
        redis.OutOfMemoryError("OOM"),
        kafka.RecordTooLargeError(),
    ],
)
def test_other_errors_are_neither(exc: Exception) -> None:
    assert access_denied(exc) is None
    assert not is_retriable(exc)


def test_exit_codes_are_distinct() -> None:
    codes = [c.exit_code for c in (ConfigError, AddressInUse, AccessDenied, PersistenceRequired)]
    assert codes == [2, 3, 4, 5]


async def test_a_wrong_password_is_tried_once_an_outage_again() -> None:
    calls = {"denied": 0, "away": 0}
    stop = asyncio.Event()

    async def denied() -> None:
        calls["denied"] += 1
        if calls["denied"] > 1:  # retried: end it, as Stopping rather than the refusal
            stop.set()
        raise redis.AuthenticationError("invalid username-password pair")

    async def away_once() -> None:
        calls["away"] += 1
        if calls["away"] == 1:
            raise redis.ConnectionError("Connection refused")

    with pytest.raises(redis.AuthenticationError):
        await retrying(denied, "redis", max_backoff=0.01, metrics=Metrics(), stop=stop)
    await retrying(away_once, "redis", max_backoff=0.01, metrics=Metrics(), stop=stop)
    assert calls == {"denied": 1, "away": 2}


@pytest.mark.parametrize(
    ("found", "warning"),
    [
        (Persistence(aof=False, save_points=""), "has no persistence"),
        (Persistence(aof=None, save_points=None), "persistence could not be checked"),
        (Persistence(aof=False, save_points=None), "persistence could not be checked"),
        (Persistence(aof=False, save_points="3600 1"), "RDB snapshots only"),
        (Persistence(aof=True, save_points=None), None),
        (Persistence(aof=True, save_points=""), None),
    ],
)
def test_persistence_warnings(
    found: Persistence, warning: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="worker.startup"):
        check_persistence(found, "redis:6379", require=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if warning is None:
        assert warnings == []
    else:
        [message] = warnings
        assert warning in message
        assert "redis:6379" in message
        assert "appendonly yes" in message


@pytest.mark.parametrize(
    "found", [Persistence(aof=False, save_points=""), Persistence(aof=None, save_points=None)]
)
def test_required_persistence_refuses_what_it_cannot_confirm(found: Persistence) -> None:
    with pytest.raises(PersistenceRequired, match="HEALTHSCORE_REQUIRE_REDIS_PERSISTENCE"):
        check_persistence(found, "redis:6379", require=True)


def test_required_persistence_accepts_aof_and_snapshots() -> None:
    check_persistence(Persistence(aof=True, save_points=""), "r", require=True)
    check_persistence(Persistence(aof=False, save_points="60 1"), "r", require=True)


@pytest.mark.parametrize(
    ("exc", "setting"),
    [
        (
            redis.ConnectionError(
                "Error 1 connecting to 127.0.0.1:6380. [SSL: CERTIFICATE_VERIFY_FAILED] certificate"
                " verify failed: self-signed certificate (_ssl.c:1000)."
            ),
            "HEALTHSCORE_REDIS_CA_FILE",
        ),
        (kafka.KafkaConnectionError("Unable to bootstrap"), "HEALTHSCORE_KAFKA_SSL_CAFILE"),
    ],
)
def test_an_untrusted_certificate_is_access_denied_not_an_outage(
    exc: Exception, setting: str
) -> None:
    if isinstance(exc, kafka.KafkaError):
        exc.__cause__ = ssl.SSLCertVerificationError(1, "certificate verify failed")
    denied = access_denied(exc)
    assert isinstance(denied, AccessDenied)
    assert "TLS certificate is not trusted" in str(denied)
    assert setting in str(denied)
    assert not is_retriable(exc)
