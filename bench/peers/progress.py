"""A peer's own measurement, written as JSON for the parent process to poll.

The peer times itself from its first processed event to its last, so start-up,
group join and shutdown, which differ a lot between frameworks, stay out of the
figure.

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
    def __init__(self, path: str | Path, expect: int, scores: str | Path | None = None) -> None:
        self._path = Path(path)
        self._expect = expect
        self._scores_path = None if scores is None else Path(scores)
        self._finals: dict[str, tuple[float | None, str | None]] = {}
        self.events = 0
        self.alerts = 0
        self.first: float | None = None
        self.last: float | None = None
        self._written = 0.0

    def processed(self, alerts: int = 0) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = now
        self.last = now
        self.events += 1
        self.alerts += alerts
        # The expected last event is written at once: the parent stops the peer on it.
        if now - self._written >= WRITE_EVERY_S or self.events == self._expect:
            self.write()

    def scored(self, account_id: str, score: float | None, tier: str | None) -> None:
        """The account's score after its latest event and the tier last published for it."""
        if self._scores_path is not None:
            self._finals[account_id] = (score, tier)

    def write(self, *, final: bool = False) -> None:
        self._written = time.monotonic()
        seconds = 0.0 if self.first is None or self.last is None else self.last - self.first
        data = {"events": self.events, "alerts": self.alerts, "seconds": seconds, "final": final}
        # Replace, never rewrite in place: the parent must not read a half-written file.
        tmp = self._path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(data))
        os.replace(tmp, self._path)
        if final and self._scores_path is not None:
            self._scores_path.write_bytes(orjson.dumps(self._finals))


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
