"""A peer's own measurement, written as JSON for the parent process to poll.

The peer times itself from its first processed event to its last, so start-up,
group join and shutdown, which differ a lot between frameworks, stay out of the
figure; its CPU time (``time.process_time``: every thread of the process, the
engines' own threads included) over the same span gives its CPU per event. A peer
that works per batch calls ``started`` as it takes its first batch, so that batch
is inside the span.

With a ``scores`` path it also keeps each account's last score and published tier
and writes them there at the end, for the test that holds the peers' scores equal
to healthscore's on the same input.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import orjson

WRITE_EVERY_S = 0.5


class Progress:
    def __init__(
        self, path: str | Path, expect: int, scores: str | Path | None = None, lead_s: float = 0.0
    ) -> None:
        """``lead_s``: how long before its first call a peer may have been working on the
        events already (reading them), counted in its time."""
        self._lead_s = lead_s
        self._path = Path(path)
        self._expect = expect
        self._scores_path = None if scores is None else Path(scores)
        self._finals: dict[str, tuple[float | None, str | None]] = {}
        self.events = 0
        self.alerts = 0
        self.rescores = 0
        self.first: float | None = None
        self.last: float | None = None
        self._cpu_first = 0.0
        self._cpu = 0.0
        self._written = 0.0

    def started(self) -> None:
        """Work on the first event or batch begins (``processed`` implies it)."""
        if self.first is None:
            self.first = time.monotonic() - self._lead_s
            self._cpu_first = time.process_time()

    def processed(self, alerts: int = 0, events: int = 1, rescores: int | None = None) -> None:
        """``events`` done, ``alerts`` of them sent, in ``rescores`` scorings (one each if
        not given: a peer that scores per event)."""
        self.started()
        now = time.monotonic()
        self.last = now
        self.events += events
        self.alerts += alerts
        self.rescores += events if rescores is None else rescores
        # The expected last event is written at once: the parent stops the peer on it.
        done = self.events >= self._expect
        if done:
            # Before the result the parent stops the peer on: not only at exit, which an
            # engine stopped by a signal may skip.
            self.write_scores()
        self._cpu = time.process_time() - self._cpu_first
        if now - self._written >= WRITE_EVERY_S or done:
            self.write()

    def scored(self, account_id: str, score: float | None, tier: str | None) -> None:
        """The account's score after its latest event and the tier last published for it."""
        if self._scores_path is not None:
            self._finals[account_id] = (score, tier)

    def write(self, *, final: bool = False) -> None:
        self._written = time.monotonic()
        seconds = 0.0 if self.first is None or self.last is None else self.last - self.first
        data = {
            "events": self.events,
            "alerts": self.alerts,
            "rescores": self.rescores,
            "seconds": seconds,
            "cpu_seconds": self._cpu,
            "final": final,
        }
        _replace(self._path, orjson.dumps(data))
        if final:
            self.write_scores()

    def write_scores(self) -> None:
        if self._scores_path is not None:
            _replace(self._scores_path, orjson.dumps(self._finals))


def _replace(path: Path, data: bytes) -> None:
    """Replace, never rewrite in place: the parent must not read a half-written file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def read_scores(path: str | Path) -> dict[str, tuple[float | None, str | None]]:
    """What ``Progress.write(final=True)`` left at ``scores``: account -> (score, tier)."""
    data: dict[str, list[Any]] = orjson.loads(Path(path).read_bytes())
    return {account: (pair[0], pair[1]) for account, pair in data.items()}


def read(path: str | Path) -> dict[str, float] | None:
    try:
        data: dict[str, float] = orjson.loads(Path(path).read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None
    return data
