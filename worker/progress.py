"""How far a long command has come: a progress bar for a person at a terminal, a log
line now and then for a log collector (a bar's redraws would be thousands of lines)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

log = logging.getLogger(__name__)


class Reporter:
    """``total`` once known, then ``advance`` per batch; ``close`` says where it ended.

    The total is what the end offsets promise; it can be a little off either way
    (transaction markers take offsets, a broker may list its end late), so the
    reporter never shows more done than total."""

    def __init__(
        self,
        what: str,
        stream: TextIO | None = None,
        *,
        interactive: bool | None = None,
        every_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.done = 0
        self.total: int | None = None
        self._stream = sys.stderr if stream is None else stream
        if interactive is None:
            interactive = bool(getattr(self._stream, "isatty", lambda: False)())
        self._every = every_seconds
        self._clock = clock
        self._last = clock()
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        if interactive:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=Console(file=self._stream, force_terminal=True),
                transient=False,
            )

    def __enter__(self) -> Reporter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self, total: int) -> None:
        self.total = total
        if self._bar is not None:
            self._bar.start()
            self._task = self._bar.add_task(self.what, total=total)
        else:
            log.info("%s: %d records to read", self.what, total)

    def advance(self, n: int) -> None:
        self.done += n
        if self.total is not None and self.done > self.total:
            self.total = self.done
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=self.done, total=self.total)
        elif self._clock() - self._last >= self._every:
            self._last = self._clock()
            log.info("%s: %s", self.what, self.line())

    def line(self) -> str:
        if not self.total:
            return f"{self.done} records"
        return f"{self.done} of {self.total} records ({100 * self.done // self.total}%)"

    def close(self) -> None:
        if self._bar is not None:
            if self._task is not None:
                self._bar.update(self._task, completed=self.done, total=self.total)
            self._bar.stop()
            self._bar = None
        elif self.total is not None:
            log.info("%s: read %s", self.what, self.line())
            self.total = None  # closed: a second close says nothing
