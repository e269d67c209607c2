"""The benchmark reads a process' CPU to well under a clock tick."""

from __future__ import annotations

import os
import time

from bench import cputime


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_a_few_milliseconds_of_cpu_read_as_what_they_were() -> None:
    # /proc/<pid>/stat counts 10 ms ticks: 3 ms of CPU there reads as 0 or 10 ms.
    before = cputime.cpu_seconds(os.getpid())
    _spin(0.003)
    spent = cputime.cpu_seconds(os.getpid()) - before
    assert 0.003 <= spent < 0.009


def test_it_reads_what_the_process_itself_reads() -> None:
    read, own = cputime.cpu_seconds(os.getpid()), time.process_time()
    assert abs(read - own) < 0.005


def test_the_tick_fallback_reads_the_same_process_to_a_few_ticks() -> None:
    _spin(0.05)
    ticks, exact = cputime._ticks(os.getpid()), cputime.cpu_seconds(os.getpid())
    assert 0 <= exact - ticks < 0.05
