"""The one error hierarchy, and the one place that decides what an error means.

Two families:

* ``BadInput`` -- the message itself is wrong. Retrying can never help, so the
  record goes to the dead-letter topic with a machine-readable ``reason`` and the
  worker commits past it.
* ``Retriable`` -- the world is wrong for now (Redis or the broker is away). The
  worker backs off and tries the same batch again; nothing is skipped.

Anything else is a bug. Raised while handling one input record, it becomes that
record's dead letter (``internal_error``, see ``internal_error``): a record must
never stop the worker, and set aside it is not lost either. Elsewhere it
propagates and stops the worker rather than silently dropping data. One more
family stops it on purpose:

* ``ConfigError`` -- the worker cannot run as configured (bad settings, the
  metrics address taken, credentials or permissions refused by Redis or Kafka).
  Retrying cannot help either; the command line prints its one-line message and
  exits with its ``exit_code``.
"""

from __future__ import annotations

from enum import StrEnum


class HealthscoreError(Exception):
    """Base of every error the worker raises on purpose."""


class ConfigError(HealthscoreError):
    """The worker cannot run as configured: settings or the model file are invalid, or
    a dependency refuses it (the subclasses). Never retried."""

    exit_code = 2  # the process' exit status (README, Operations: exit codes)


class AddressInUse(ConfigError):
    """The metrics endpoint's address is taken (another worker on the same host?)."""

    exit_code = 3


class AccessDenied(ConfigError):
    """Redis or Kafka refused the worker's credentials or a permission it needs, or their
    TLS certificate is not one the worker trusts.

    Not an outage: waiting never makes a wrong password or CA right, so it is not retried.
    """

    exit_code = 4


class PersistenceRequired(ConfigError):
    """Redis has no persistence (or it could not be checked) and it was required."""

    exit_code = 5


class Reason(StrEnum):
    """Machine-readable dead-letter reasons (the ``reason`` field of a dead-letter record)."""

    OVERSIZE = "oversize"
    INVALID_JSON = "invalid_json"
    SCHEMA_VIOLATION = "schema_violation"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    BAD_KEY = "bad_key"
    UNKNOWN_TOPIC = "unknown_topic"
    # Handling the record raised something no check foresaw (a bug, or input no
    # check knows yet): the record is set aside rather than stopping the worker.
    INTERNAL_ERROR = "internal_error"


class BadInput(HealthscoreError):
    """A message that can never be processed: it is dead-lettered, not retried."""

    def __init__(self, reason: Reason, detail: str, field: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.field = field


def internal_error(exc: BaseException) -> BadInput:
    """What an unforeseen failure while handling one record means: a dead letter."""
    return BadInput(Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")


class Retriable(HealthscoreError):
    """A dependency is unavailable; the same work is retried after a back-off."""


class Unreachable(HealthscoreError):
    """A command could not reach Redis or the broker as it started. It exits with this
    one line rather than a traceback; only the worker waits for its dependencies."""

    def __init__(self, dependency: str, cause: BaseException) -> None:
        detail = " ".join(str(cause).split()) or type(cause).__name__
        super().__init__(f"cannot reach {dependency}: {detail}")
        self.dependency = dependency


def is_retriable(exc: BaseException) -> bool:
    """Decide, in one place, whether an exception from an I/O edge is worth retrying."""
    if isinstance(exc, Retriable):
        return True
    if isinstance(exc, HealthscoreError) or access_denied(exc) is not None:
        return False  # redis-py's AuthenticationError is a ConnectionError: ask first
    # Imported lazily: the error module must stay importable without the I/O stacks.
    from aiokafka.errors import KafkaError
    from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError

    if isinstance(exc, ConnectionError | TimeoutError | BusyLoadingError | OSError):
        return True
    if _is_cluster_in_motion(exc):
        return True
    if isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", False)) or _is_transport_error(exc)
    return False


def _is_cluster_in_motion(exc: BaseException) -> bool:
    """A Redis Cluster between states: a primary away (CLUSTERDOWN, a slot not covered),
    slots moving (MOVED, ASK, TRYAGAIN). redis-py raises these from its own cluster
    calls (the hot path's exchanges turn them into ``Retriable`` themselves)."""
    from redis.exceptions import (
        AskError,
        ClusterDownError,
        ClusterError,
        SlotNotCoveredError,
        TryAgainError,
    )

    return isinstance(
        exc, AskError | ClusterDownError | ClusterError | SlotNotCoveredError | TryAgainError
    )


def _is_transport_error(exc: BaseException) -> bool:
    from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError

    return isinstance(exc, KafkaConnectionError | KafkaTimeoutError | NodeNotReadyError)


def access_denied(exc: BaseException) -> AccessDenied | None:
    """``exc`` as an ``AccessDenied`` with a one-line message naming the setting to
    check, if Redis or Kafka refused credentials or a permission; else None."""
    if isinstance(exc, AccessDenied):
        return exc
    from redis.exceptions import (
        AuthenticationError,
        AuthenticationWrongNumberOfArgsError,
        AuthorizationError,
        NoPermissionError,
        ResponseError,
    )

    redis_denials = (
        AuthenticationError,
        AuthenticationWrongNumberOfArgsError,
        AuthorizationError,
        NoPermissionError,
    )
    # A command refused inside a script comes back as a script error; its text names it.
    if isinstance(exc, redis_denials) or (isinstance(exc, ResponseError) and "NOPERM" in str(exc)):
        return AccessDenied(
            f"Redis refused the worker ({_one_line(exc)}); check the user,"
            " password and ACL permissions of HEALTHSCORE_REDIS_URL"
        )
    if _untrusted_certificate(exc):
        kafka = _is_kafka_error(exc)
        setting = "HEALTHSCORE_KAFKA_SSL_CAFILE" if kafka else "HEALTHSCORE_REDIS_CA_FILE"
        return AccessDenied(
            f"{'Kafka' if kafka else 'Redis'}'s TLS certificate is not"
            f" trusted ({_one_line(exc)}); check {setting} and the host name"
        )
    if _is_kafka_denial(exc):
        return AccessDenied(
            f"Kafka refused the worker ({_one_line(exc)}); check the"
            " broker's ACLs for HEALTHSCORE_GROUP_ID and the topics, and"
            " its authentication (HEALTHSCORE_KAFKA_BOOTSTRAP)"
        )
    return None


def _is_kafka_denial(exc: BaseException) -> bool:
    from aiokafka import errors

    denials = (
        errors.TopicAuthorizationFailedError,
        errors.GroupAuthorizationFailedError,
        errors.ClusterAuthorizationFailedError,
        errors.TransactionalIdAuthorizationFailed,
        errors.DelegationTokenAuthorizationFailed,
        errors.SaslAuthenticationFailed,
        errors.UnsupportedSaslMechanismError,
        errors.IllegalSaslStateError,
        errors.AuthenticationFailedError,
        errors.AuthenticationMethodNotSupported,
    )
    return isinstance(exc, denials)


def _untrusted_certificate(exc: BaseException) -> bool:
    """A certificate check failed, here or in what the client wrapped (redis-py keeps only
    the text of the ``ssl`` error it turns into a ``ConnectionError``)."""
    import ssl

    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError) or (
            "CERTIFICATE_VERIFY_FAILED" in str(seen)
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _is_kafka_error(exc: BaseException) -> bool:
    from aiokafka.errors import KafkaError

    return isinstance(exc, KafkaError)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "no detail"
    return f"{type(exc).__name__}: {text}"
