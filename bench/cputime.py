"""Another process' CPU time, to the nanosecond.

``/proc/<pid>/stat`` counts in clock ticks (10 ms) and truncates user and system time
apart, so a run of a few tens of milliseconds of CPU could read as none at all. Linux
gives every process a CPU clock that ``clock_gettime`` reads for any pid (what glibc's
``clock_getcpuclockid`` returns): all its threads, those that ended included."""

from __future__ import annotations

import os
import time

_CPUCLOCK_SCHED = 2  # the clock of the scheduler's runtime, not the sampled ticks


def cpu_seconds(pid: int) -> float:
    """User plus system CPU of process ``pid`` (all its threads) so far."""
    try:
        return time.clock_gettime(((~pid) << 3) | _CPUCLOCK_SCHED)
    except OSError:  # not Linux, or the clock refused: the ticks are the fallback
        return _ticks(pid)


def _ticks(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
