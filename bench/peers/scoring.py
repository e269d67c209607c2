"""The per-event work every peer shares: parse, plan the writes, sum the windows, score.

Pure (no Kafka, no Redis, no Quix), so the peers differ only in where they keep an
account's windows. Everything that decides a score is the project's own code
(``worker.windows.plan`` for what an event feeds, ``worker.scoring`` for the value,
tier and alert), run once per event, so the work per event is comparable.

Events are parsed with orjson and trusted: the bench writes schema-valid events,
and a peer that validated them would only measure the validator.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from worker.alerts import Alert, Cause, build_alert
from worker.modelfile import load_model
from worker.scoring.evaluate import component_values
from worker.scoring.mode import evaluation_mode
from worker.scoring.model import Model
from worker.scoring.rollup import score_components
from worker.scoring.signals import WindowView
from worker.scoring.tierchange import Published, decide, snapshot
from worker.scoring.vocabulary import VOCABULARY
from worker.settings import Settings
from worker.windows.buckets import bucket_of, oldest_bucket

# Both peers keep counters as "<bucket>|<counter>" -> sum, the layout healthscore uses.
Cells = Mapping[str, float | str]


@dataclass(frozen=True, slots=True)
class Parsed:
    event_type: str
    event_id: str
    account_id: str
    ts: float
    bucket: int
    increments: list[tuple[str, float]]  # (counter, delta), only counters the model reads
    members: list[tuple[str, str]]  # (set name, member): last seen at ts


@dataclass(frozen=True, slots=True)
class Scored:
    score: float | None
    alert: Alert | None  # set when the tier changed
    published: dict[str, Any] | None  # the new tier's snapshot: the next decision's baseline


class Scorer:
    """Built once per peer from the project's default model."""

    def __init__(self, model: Model | None = None, catch_up_lag: float | None = None) -> None:
        self.model = model = model or load_model()
        self.catch_up_lag = (
            Settings().catch_up_lag_seconds if catch_up_lag is None else catch_up_lag
        )
        self.bucket_seconds = model.bucket_seconds
        self.windows = sorted({c.window_buckets for c in model.components})
        self._counters = frozenset(n for c in model.components for n in c.signal.counters)
        # Only the sets some component reads at a window length are counted there.
        self.distinct_at = {
            w: sorted(
                {d for c in model.components if c.window_buckets == w for d in c.signal.distinct}
            )
            for w in self.windows
        }
        used = {d for sets in self.distinct_at.values() for d in sets}
        self._member_fields = {
            event_type: [(name, t.distinct[name]) for name in sorted(used) if name in t.distinct]
            for event_type, t in VOCABULARY.items()
        }

    def parse(self, event_type: str, raw: bytes) -> Parsed:
        body = orjson.loads(raw)
        ts = datetime.fromisoformat(body["ts"]).timestamp()
        increments = [
            (name, delta)
            for name, delta in VOCABULARY[event_type].increments(body)
            if name in self._counters
        ]
        members = [
            (name, body[field])
            for name, field in self._member_fields[event_type]
            if body.get(field) is not None
        ]
        return Parsed(
            event_type,
            body["event_id"],
            body["account_id"],
            ts,
            bucket_of(ts, self.bucket_seconds),
            increments,
            members,
        )

    def now_bucket(self, now: float) -> int:
        return bucket_of(now, self.bucket_seconds)

    def keep_from(self, now_bucket: int) -> int:
        """Older buckets are outside every window: events there are dropped, data pruned."""
        return oldest_bucket(now_bucket, self.model.max_window_buckets)

    def since(self, now_bucket: int, window: int) -> float:
        """Epoch seconds where a window of ``window`` buckets ending now starts."""
        return float(oldest_bucket(now_bucket, window) * self.bucket_seconds)

    def window_sums(
        self, cells: Cells, now_bucket: int
    ) -> tuple[dict[int, dict[str, float]], list[str]]:
        """Counter sums per window length, and the cells that fell out of every window."""
        sums: dict[int, dict[str, float]] = {w: {} for w in self.windows}
        starts = [(now_bucket - w, sums[w]) for w in self.windows]
        keep_from = self.keep_from(now_bucket)
        stale = []
        for cell, raw in cells.items():
            head, name = cell.split("|", 1)
            bucket = int(head)
            if bucket < keep_from:
                stale.append(cell)
                continue
            value = float(raw)
            for after, window in starts:
                if bucket > after:
                    window[name] = window.get(name, 0.0) + value
        return sums, stale

    def views(
        self, sums: Mapping[int, Mapping[str, float]], distinct: Mapping[int, Mapping[str, int]]
    ) -> dict[int, WindowView]:
        return {w: WindowView(sums[w], distinct[w]) for w in self.windows}

    def score(
        self,
        event: Parsed,
        windows: Mapping[int, WindowView],
        seen: Iterable[str],
        published: dict[str, Any] | None,
        source: tuple[str, int, int],
        now: float,
    ) -> Scored:
        """Healthscore's ``Pipeline._score`` for one event, without its per-batch cache:
        no account attributes (the bench sends none), the event itself as the cause."""
        values = component_values(self.model, windows, {}, frozenset(seen), {}, None)
        card = score_components(self.model, values)
        change = decide(self.model, card, None if published is None else Published(**published))
        if change is None:
            return Scored(card.score, None, None)
        topic, partition, offset = source
        cause = Cause("event", event.event_id, event.event_type, topic, partition, offset)
        # As the worker marks it; a peer decides with hysteresis throughout, as before.
        mode = evaluation_mode(event.ts, now, self.catch_up_lag)
        alert = build_alert(self.model, event.account_id, None, change, cause, now, mode=mode)
        return Scored(card.score, alert, snapshot(change)._asdict())
