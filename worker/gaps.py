"""Data gaps: an integration outage is not every customer churning at once.

The model's ``data_gaps`` names event types and how long none may be missing. The
live loop tells ``DataGaps`` which types arrived in each batch (``arrived``) and asks
it, by the wall clock, whether one has been missing longer than its threshold across
the partitions this worker owns (``check``). While a gap is open, a tier change that
any component fed by the missing type moved is held (``holds``): not published, not
saved as published, the account rescheduled; when the type arrives again the gap
closes and the held accounts are rescored (``GapNews.released``).

Plain state, no I/O: the loop publishes the records and rescores. Gaps live in
memory only: a restarted worker starts with none open and detects a gap again once
the type has been missing for its threshold since the start. Holding saves nothing
and the held account keeps a due time, so a restart loses no tier change; it can at
most publish one the gap would have held, in the threshold after the restart.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from worker.scoring.model import Model
from worker.scoring.tierchange import TierChange
from worker.timefmt import rfc3339

log = logging.getLogger(__name__)
KIND = "data_gap"


@dataclass(slots=True)
class GapNews:
    """What the loop must do after ``arrived`` or ``check``."""

    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (key, record)
    released: list[tuple[int | None, str]] = field(default_factory=list)  # to rescore now


class DataGaps:
    def __init__(self, model: Model, now: float, worker: str | None = None) -> None:
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        self.last: dict[str, float] = {}
        self.open: dict[str, float] = {}  # event type -> opened at
        self.held: dict[str, int | None] = {}  # account -> partition
        self.use(model, now)

    def use(self, model: Model, now: float) -> None:
        """Watch as ``model`` says (a model reloaded live): a type it adds is watched from
        ``now``; one it drops is no longer, and its open gap is simply forgotten (the
        accounts it held are rescored anyway, under the new model)."""
        self.model = model
        self.thresholds = dict(model.data_gaps)
        self.last = {t: self.last.get(t, now) for t in self.thresholds}
        self.open = {t: at for t, at in self.open.items() if t in self.thresholds}
        # Component name -> the watched event types that feed it.
        self._fed_by = {c.name: c.signal.sources & self.thresholds.keys() for c in model.components}
        self._recheck = min(self.thresholds.values(), default=0)

    def arrived(self, event_types: Iterable[str], now: float) -> GapNews:
        """Events of these types were applied: their gaps, if open, close."""
        news = GapNews()
        for event_type in event_types:
            if event_type not in self.last:
                continue
            since = self.last[event_type]
            self.last[event_type] = now
            if self.open.pop(event_type, None) is not None:
                log.warning("data gap closed: %s events arrive again", event_type)
                news.records.append(self._record(event_type, "closed", since, now, ()))
        if news.records:
            news.released = [(p, a) for a, p in sorted(self.held.items())]
            self.held.clear()
        return news

    def check(self, now: float, partitions: Collection[int]) -> GapNews:
        """Gaps opened by the clock; with no partition owned there is nothing to watch."""
        news = GapNews()
        for event_type, threshold in self.thresholds.items():
            if not partitions:
                self.last[event_type] = now
            elif event_type not in self.open and now - self.last[event_type] >= threshold:
                self.open[event_type] = now
                log.warning(
                    "data gap: no %s events for %.0f s on partitions %s",
                    event_type,
                    now - self.last[event_type],
                    sorted(partitions),
                )
                news.records.append(
                    self._record(event_type, "open", self.last[event_type], now, partitions)
                )
        return news

    def holds(self, change: TierChange) -> bool:
        """Whether a component fed by a missing type moved this change (or its trigger)."""
        if not self.open:
            return False
        return any(
            self._fed_by.get(name, frozenset()) & self.open.keys()
            for name, moved in change.changes.items()
            if moved.contribution_change or moved is change.trigger
        )

    def hold(self, partition: int | None, account_id: str, now: float) -> float:
        """Remember a held account; returns when to rescore it should no gap close first."""
        self.held[account_id] = partition
        return now + self._recheck

    def gauges(self) -> Mapping[str, int]:
        return {t: int(t in self.open) for t in self.thresholds}

    def _record(
        self, event_type: str, state: str, since: float, now: float, partitions: Collection[int]
    ) -> tuple[str, dict[str, Any]]:
        return f"{KIND}:{event_type}", data_gap_record(
            event_type,
            state,
            since,
            now,
            self.thresholds[event_type],
            self.worker,
            partitions,
            self.model.version,
        )


def data_gap_record(
    event_type: str,
    state: str,
    since: float,
    now: float,
    threshold: int,
    worker: str,
    partitions: Collection[int],
    model_version: str,
) -> dict[str, Any]:
    """The record on the alerts topic (``schemas/datagap.schema.json``)."""
    return {
        "kind": KIND,
        "event_type": event_type,
        "state": state,
        "since": rfc3339(since),
        "detected_at": rfc3339(now),
        "threshold_seconds": threshold,
        "worker": worker,
        "partitions": sorted(partitions),
        "model_version": model_version,
    }


def is_data_gap(record: Any) -> bool:
    return isinstance(record, dict) and record.get("kind") == KIND
