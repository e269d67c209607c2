"""Catch-up alerts as one line of counts, for a terminal that a backlog would flood.

A backfill or a replay publishes an alert for every account it scores first or moves;
read one by one they bury the live changes. Live alerts are printed as they come;
catch-up ones (``delivery: catch_up``) are counted by each account's latest tier and
summed up in one line every few seconds while they arrive.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from rich.console import Console
from rich.text import Text

from worker.commands import TIER_STYLE, print_alert
from worker.terminal import visible

EVERY_SECONDS = 5.0


class CatchUpSummary:
    """An alert sink for ``tail_alerts``: live alerts one line each, catch-up ones
    counted. ``tiers``: the model's tier names, in the order the summary lists them."""

    def __init__(
        self,
        tiers: Sequence[str],
        console: Console | None = None,
        every: float = EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tiers = list(tiers)
        self._console = console or Console(soft_wrap=True)
        self._every = every
        self._clock = clock
        self._latest: dict[str, str] = {}  # account -> tier of its latest catch-up alert
        self._pending = False
        self._last = -float("inf")
        self._printed = ""

    def show(self, value: bytes | None) -> None:
        alert = _catch_up(value)
        if alert is None:
            print_alert(value, as_json=False)
            return
        self._latest[alert["account_id"]] = alert["tier"]
        self._pending = True

    def tick(self) -> None:
        if self._pending and self._clock() - self._last >= self._every:
            self._print()

    def close(self) -> None:
        if self._pending:
            self._print()

    def line(self) -> Text:
        counts: dict[str, int] = {}
        for tier in self._latest.values():
            counts[tier] = counts.get(tier, 0) + 1
        order = [t for t in self._tiers if t in counts] + sorted(set(counts) - set(self._tiers))
        text = Text(f"{len(self._latest)} accounts scored: ")
        for i, tier in enumerate(order):
            text.append(", " if i else "")
            text.append(f"{counts[tier]} {visible(tier)}", style=TIER_STYLE.get(tier, ""))
        return text

    def _print(self) -> None:
        line = self.line()
        if line.plain != self._printed:  # accounts that swapped tiers: no news
            self._console.print(line, highlight=False)
            self._printed = line.plain
        self._pending = False
        self._last = self._clock()


def _catch_up(value: bytes | None) -> dict[str, Any] | None:
    """The alert in ``value`` when it is a catch-up one; anything else is printed as
    ``healthscore alerts`` prints it (an alert, or a line on what it is not)."""
    try:
        alert = orjson.loads(value or b"null")
    except orjson.JSONDecodeError:
        return None
    if (
        isinstance(alert, dict)
        and alert.get("delivery") == "catch_up"
        and isinstance(alert.get("account_id"), str)
        and isinstance(alert.get("tier"), str)
    ):
        return alert
    return None
