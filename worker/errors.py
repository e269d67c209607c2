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
propagates and stops the worker rather than silently dropping data.
"""

from __future__ import annotations

from enum import StrEnum


class HealthscoreError(Exception):
    """Base of every error the worker raises on purpose."""


class ConfigError(HealthscoreError):
    """Settings or the model file are invalid; raised at start-up only."""


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
    # Imported lazily: the error module must stay importable without the I/O stacks.
    from aiokafka.errors import KafkaError
    from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError

    if isinstance(exc, ConnectionError | TimeoutError | BusyLoadingError | OSError):
        return True
    if isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", False)) or _is_transport_error(exc)
    return False


def _is_transport_error(exc: BaseException) -> bool:
    from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError

    return isinstance(exc, KafkaConnectionError | KafkaTimeoutError | NodeNotReadyError)
