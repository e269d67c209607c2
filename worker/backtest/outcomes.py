"""Outcome records (``schemas/outcome.schema.json``) read from a JSON-lines file or the
outcomes topic. A record that is not valid is counted, logged and skipped: one bad line
in a year of renewals must not stop a backtest."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from worker.contracts import first_error
from worker.errors import ConfigError
from worker.runtime.reader import read_to_end
from worker.settings import Settings

log = logging.getLogger(__name__)

CHURNED = "churned"


class Outcome(NamedTuple):
    account_id: str
    outcome: str  # renewed | churned | expanded | downgraded
    day: date  # when it took effect (UTC)

    @property
    def at(self) -> float:
        """Epoch seconds of the start of its day."""
        return datetime(self.day.year, self.day.month, self.day.day, tzinfo=UTC).timestamp()


class Outcomes(NamedTuple):
    records: list[Outcome]
    rejected: int  # not JSON or not valid against the schema: skipped
    source: str


def parse(raw: bytes | None, where: str) -> Outcome | None:
    """One record, or None (logged with ``where`` and the reason) when it is not valid."""
    try:
        body: Any = orjson.loads(raw or b"")
    except orjson.JSONDecodeError as exc:
        log.warning("skipped outcome %s: not JSON (%s)", where, exc)
        return None
    error = first_error("outcome", body)
    if error is not None:
        log.warning("skipped outcome %s: %s: %s", where, error[0] or "(record)", error[1])
        return None
    return Outcome(body["account_id"], body["outcome"], date.fromisoformat(body["date"]))


def from_lines(lines: Iterable[bytes], source: str) -> Outcomes:
    records, rejected = [], 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        outcome = parse(line, f"{source}:{number}")
        if outcome is None:
            rejected += 1
        else:
            records.append(outcome)
    return Outcomes(records, rejected, source)


def read_file(path: Path) -> Outcomes:
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise ConfigError(f"outcomes file {path}: {exc.strerror}") from None
    return from_lines(lines, str(path))


async def read_topic(settings: Settings, topic: str) -> Outcomes:
    records, rejected = [], 0
    async for batch in read_to_end(settings, [topic], settings.batch_max_records):
        for record in batch:
            outcome = parse(record.value, f"{topic}[{record.partition}]@{record.offset}")
            if outcome is None:
                rejected += 1
            else:
                records.append(outcome)
    return Outcomes(records, rejected, f"topic {topic}")


def churn_dates(outcomes: Sequence[Outcome]) -> dict[str, float]:
    """Each account's first churn, in epoch seconds."""
    first: dict[str, float] = {}
    for o in outcomes:
        if o.outcome == CHURNED and (o.account_id not in first or o.at < first[o.account_id]):
            first[o.account_id] = o.at
    return first
