"""The one place logging is set up: plain lines for a person at a terminal, one JSON
object a line for whatever collects a container's or a service's output."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from worker.settings import Settings

PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Where a log call names a record (``extra=``), a collector can filter on it.
RECORD_FIELDS = ("topic", "partition", "offset")


class JsonFormatter(logging.Formatter):
    """ts (UTC, ISO 8601), level, logger, message, the record's position where the
    call gives it, and the traceback as one string field (never a second line)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in RECORD_FIELDS:
            if (value := record.__dict__.get(name)) is not None:
                line[name] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        elif record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        # default=str: a log line must never fail on a value orjson cannot encode.
        return orjson.dumps(line, default=str).decode()


def wants_json(log_format: str, stream: TextIO) -> bool:
    if log_format == "auto":
        isatty = getattr(stream, "isatty", None)
        return not (isatty is not None and isatty())
    return log_format == "json"


def configure(settings: Settings, stream: TextIO | None = None) -> None:
    """As ``logging.basicConfig``: nothing changes where the root logger has handlers
    already (an embedding program's, pytest's)."""
    stream = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        JsonFormatter() if wants_json(settings.log_format, stream) else logging.Formatter(PLAIN)
    )
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler])
    # aiokafka logs every rebalance step at INFO; keep the worker's own lines readable.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.root.level))
