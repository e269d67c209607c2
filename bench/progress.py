"""What a benchmark run is doing: a line on stderr as each phase starts and ends (which
contender, which scenario), and a count now and then while a contender works through
its events, so a quarter-hour run is never silent. stdout keeps only the results."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO


class Phases:
    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        every_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream  # None: sys.stderr as it is when a line is written
        self.every = every_seconds
        self.clock = clock
        self.number = 0

    def say(self, line: str) -> None:
        print(f"bench: {line}", file=self.stream or sys.stderr, flush=True)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.number += 1
        number, started = self.number, self.clock()
        self.say(f"[{number}] {name} ...")
        try:
            yield
        except BaseException:
            self.say(f"[{number}] {name} failed after {self.clock() - started:.1f} s")
            raise
        self.say(f"[{number}] {name} done in {self.clock() - started:.1f} s")

    def counter(self, name: str, total: int) -> Callable[[int], None]:
        """A callback for how many of ``total`` are done: a line every few seconds."""
        last = self.clock()

        def done(n: int) -> None:
            nonlocal last
            if self.clock() - last >= self.every:
                last = self.clock()
                self.say(f"    {name}: {n} of {total} events ({100 * n // max(total, 1)}%)")

        return done
