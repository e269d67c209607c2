"""Liveness and readiness: facts the consumer loop records, judged for the probe endpoint.

The loop writes plain timestamps and flags; the endpoint's thread reads them. A wedged
loop stops writing, so its probes fail without needing the loop to answer anything.
Single attribute writes and reads are atomic in CPython: no lock is needed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import NamedTuple

DEPENDENCIES = ("kafka", "redis")


class Verdict(NamedTuple):
    ok: bool
    body: dict[str, object]


class Probes:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # Start-up counts as a sign of life: the loop has not polled yet.
        self.last_beat = clock()
        self.polled_once = False
        self.answered: dict[str, float] = {}
        self.paused_for: str | None = None
        self.partitions: int | None = None  # held; None before the first assignment
        self.revoking = False

    def beat(self) -> None:
        """The loop polled, or waited out one back-off: it is not wedged."""
        self.last_beat = self._clock()

    async def sleep(self, seconds: float) -> None:
        """A back-off outside the consumer group (start-up): a sign of life, then a sleep."""
        self.beat()
        await asyncio.sleep(seconds)

    def polled(self) -> None:
        self.polled_once = True
        self.beat()

    def answer(self, dependency: str, age: float = 0.0) -> None:
        """``dependency`` answered ``age`` seconds ago."""
        at = self._clock() - max(0.0, age)
        if at > self.answered.get(dependency, float("-inf")):
            self.answered[dependency] = at

    def healthz(self, max_poll_age: float) -> Verdict:
        age = self._clock() - self.last_beat
        reasons = (
            []
            if age <= max_poll_age
            else [f"event loop stuck: no poll for {age:.0f} s (limit {max_poll_age:g} s)"]
        )
        return Verdict(
            not reasons,
            {"alive": not reasons, "reasons": reasons, "last_poll_age_seconds": round(age, 3)},
        )

    def readyz(self, max_age: float) -> Verdict:
        reasons = self._not_ready(max_age)
        ages = {dep: round(self._clock() - at, 3) for dep, at in self.answered.items()}
        return Verdict(
            not reasons,
            {
                "ready": not reasons,
                "reasons": reasons,
                "partitions": self.partitions,
                "answered_ages_seconds": ages,
            },
        )

    def _not_ready(self, max_age: float) -> list[str]:
        if self.paused_for is not None:
            return [f"consumption paused: {self.paused_for} unavailable"]
        reasons = []
        if self.partitions is None or not self.polled_once:
            reasons.append("no partitions assigned yet")
        elif self.revoking:
            reasons.append("partitions being rebalanced")
        for dep in DEPENDENCIES:
            # A worker holding no partition fetches nothing: Kafka's silence says nothing.
            if dep == "kafka" and not self.partitions:
                continue
            at = self.answered.get(dep)
            if at is None:
                reasons.append(f"{dep} has not answered yet")
            elif (age := self._clock() - at) > max_age:
                reasons.append(f"{dep} last answered {age:.0f} s ago (limit {max_age:g} s)")
        return reasons
