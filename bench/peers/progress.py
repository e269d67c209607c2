"""A peer's own measurement, written as JSON for the parent process to poll.

The peer times itself from its first processed event to its last, so start-up,
group join and shutdown, which differ a lot between frameworks, stay out of the
figure.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson

WRITE_EVERY_S = 0.5


class Progress:
    def __init__(self, path: str | Path, expect: int) -> None:
        self._path = Path(path)
        self._expect = expect
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

    def write(self, *, final: bool = False) -> None:
        self._written = time.monotonic()
        seconds = 0.0 if self.first is None or self.last is None else self.last - self.first
        data = {"events": self.events, "alerts": self.alerts, "seconds": seconds, "final": final}
        # Replace, never rewrite in place: the parent must not read a half-written file.
        tmp = self._path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(data))
        os.replace(tmp, self._path)


def read(path: str | Path) -> dict[str, float] | None:
    try:
        data: dict[str, float] = orjson.loads(Path(path).read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None
    return data
