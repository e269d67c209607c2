"""The progress of a long command: a bar on a terminal, a log line now and then elsewhere."""

from __future__ import annotations

import io
import logging

import pytest

from worker.progress import Reporter


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "worker.progress"]


def test_off_a_terminal_it_logs_the_total_then_a_line_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = _Clock()
    stream = io.StringIO()
    with (
        caplog.at_level(logging.INFO, logger="worker.progress"),
        Reporter("replay", stream, interactive=False, every_seconds=10, clock=clock) as p,
    ):
        p.start(1000)
        p.advance(100)
        clock.now += 5
        p.advance(100)  # within the interval: quiet
        clock.now += 6
        p.advance(300)
        for _ in range(50):
            p.advance(0)  # a flood of batches inside one interval: one line at most
    assert _messages(caplog) == [
        "replay: 1000 records to read",
        "replay: 500 of 1000 records (50%)",
        "replay: read 500 of 1000 records (50%)",
    ]
    assert stream.getvalue() == ""  # no bar drawn into a log


def test_more_read_than_the_end_offsets_promised_is_never_over_100_percent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        caplog.at_level(logging.INFO, logger="worker.progress"),
        Reporter("replay", io.StringIO(), interactive=False) as p,
    ):
        p.start(10)
        p.advance(12)
    assert _messages(caplog)[-1] == "replay: read 12 of 12 records (100%)"


def test_on_a_terminal_it_draws_a_bar_of_records_read_of_the_total(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = io.StringIO()
    with (
        caplog.at_level(logging.INFO, logger="worker.progress"),
        Reporter("replay", stream, interactive=True) as p,
    ):
        p.start(400)
        p.advance(150)
        p.advance(250)
    assert "replay" in stream.getvalue()
    assert "400/400" in stream.getvalue()
    assert _messages(caplog) == []  # the bar says it; no log lines under it


def test_the_terminal_decision_follows_the_stream() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert Reporter("x", Tty())._bar is not None
    assert Reporter("x", io.StringIO())._bar is None
