"""The benchmark says which contender runs which phase, and how far it has come."""

from __future__ import annotations

import io

import pytest

from bench.progress import Phases


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_each_phase_is_announced_numbered_and_timed() -> None:
    stream, clock = io.StringIO(), _Clock()
    phases = Phases(stream, every_seconds=5, clock=clock)
    with phases.phase("healthscore: 300 events (10k)"):
        count = phases.counter("healthscore (10k)", 300)
        count(10)  # within the first interval: quiet
        clock.now = 6
        count(150)
        count(160)  # a second look inside one interval: quiet
    with pytest.raises(RuntimeError):
        _fail_in(phases, clock)
    assert stream.getvalue().splitlines() == [
        "bench: [1] healthscore: 300 events (10k) ...",
        "bench:     healthscore (10k): 150 of 300 events (50%)",
        "bench: [1] healthscore: 300 events (10k) done in 6.0 s",
        "bench: [2] quix: 300 events ...",
        "bench: [2] quix: 300 events failed after 2.5 s",
    ]


def _fail_in(phases: Phases, clock: _Clock) -> None:
    with phases.phase("quix: 300 events"):
        clock.now = 8.5
        raise RuntimeError
