"""A healthscore worker as the benchmark runs it: its own process, like production.

Its progress is read from outside, as an operator would: events scored from its
Prometheus endpoint, offsets from the consumer group, memory from /proc.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import BinaryIO

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from bench.cputime import cpu_seconds
from worker.embedded import free_port
from worker.settings import Settings, env_name


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as the HEALTHSCORE_* environment a worker process reads them from."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSCORE_")}
    for f in fields(settings):
        value = getattr(settings, f.name)
        env[env_name(f.name)] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


@dataclass
class Progress:
    events: int  # healthscore_events_total, all types
    alerts: int
    committed: int  # offsets committed by the group over the event topics
    rss_bytes: int
    batches: int = 0  # batches begun: counted as each starts, before its events are decoded
    cpu_seconds: float = 0.0  # the worker process' CPU so far (Redis' not included)


class WorkerProcess:
    """``healthscore worker`` in a child process; a context manager."""

    def __init__(self, settings: Settings, log_path: Path, profile: Path | None = None) -> None:
        """``profile``: record the process with py-spy into this file (collapsed stacks)."""
        self.settings = settings if settings.metrics_port else _with_port(settings)
        self._log_path = log_path
        self._profile = profile
        self._proc: subprocess.Popen[bytes] | None = None
        self._profiler: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None
        self._partitions = [
            TopicPartition(t, p)
            for t in self.settings.event_topics
            for p in range(self.settings.topic_partitions)
        ]

    def __enter__(self) -> WorkerProcess:
        self._log = log = self._log_path.open("ab")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "worker"],
            env=settings_env(self.settings),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if self._profile is not None:
            self._profiler = subprocess.Popen(
                [
                    _py_spy(),
                    "record",
                    "--pid",
                    str(self._proc.pid),
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                    "--output",
                    str(self._profile),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._profiler is not None:
            self._profiler.wait(30)  # it writes its file when the process is gone
        if self._log is not None:
            self._log.close()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def metrics(self) -> dict[str, float]:
        """Sample name -> value summed over labels; {} while the endpoint is not up."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.settings.metrics_port}/metrics", timeout=2
            ) as r:
                text = r.read().decode()
        except OSError:
            return {}
        totals: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
        return totals

    async def wait_ready(self, within: float = 60.0) -> None:
        """Until the worker has partitions assigned."""
        deadline = time.monotonic() + within
        while self.metrics().get("healthscore_assigned_partitions", 0) < 1:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"the worker exited; see {self._log_path}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker not assigned partitions in {within} s")
            await asyncio.sleep(0.1)

    async def progress(self, admin: AIOKafkaAdminClient) -> Progress:
        m = self.metrics()
        # Partitions named: the embedded broker drops the connection on "all of them".
        offsets = await admin.list_consumer_group_offsets(
            self.settings.group_id, partitions=self._partitions
        )
        committed = sum(o.offset for o in offsets.values() if o.offset > 0)
        return Progress(
            int(m.get("healthscore_events_total", 0)),
            int(m.get("healthscore_alerts_total", 0)),
            committed,
            self.rss_bytes(),
            int(m.get("healthscore_batch_records_count", 0)),
            cpu_seconds(self.pid),
        )


def _py_spy() -> str:
    beside = Path(sys.executable).with_name("py-spy")  # the virtualenv's, off PATH
    return str(beside) if beside.exists() else "py-spy"


def _with_port(settings: Settings) -> Settings:
    from dataclasses import replace

    return replace(settings, metrics_port=free_port())


async def run_to_end(
    worker: WorkerProcess,
    total: int,
    within: float,
    report: Callable[[int], None] | None = None,
) -> tuple[float, Progress, Progress, int]:
    """Seconds from the first batch begun to the last offset committed, the progress
    at start and end (events, alerts, RSS), and the RSS once a quarter was done: the
    working set is in place by then, so growth after it would be a leak. ``worker``
    is a fresh one, with the events already written."""
    entered = time.perf_counter()
    admin = AIOKafkaAdminClient(bootstrap_servers=worker.settings.kafka_bootstrap)
    await admin.start()
    try:
        progress_start = await worker.progress(admin)
        # A batch already begun began after ``wait_ready`` last looked (0.1 s before the
        # call): a run of one batch (the side-by-side prefix) would otherwise never start.
        started = entered if progress_start.batches else None
        quarter_rss = 0
        deadline = time.monotonic() + within
        while True:
            progress = await worker.progress(admin)
            # Not the events counted: they are counted once a batch is decoded, and a short
            # run can be one batch, its decoding then left out of the time.
            if started is None and progress.batches > progress_start.batches:
                started = time.perf_counter()
            if not quarter_rss and progress.committed >= total / 4:
                quarter_rss = progress.rss_bytes
            if report is not None:
                report(progress.committed)
            if progress.committed >= total or time.monotonic() > deadline:
                break
            # Each look costs the worker a metrics rendering: often only until it starts,
            # then at most a twentieth of the time so far, so a short run (the prefix run
            # side by side with the peers) is not measured in whole half seconds.
            await asyncio.sleep(
                0.05
                if started is None
                else min(0.5, max(0.05, (time.perf_counter() - started) / 20))
            )
        elapsed = time.perf_counter() - (started or time.perf_counter())
        return elapsed, progress_start, progress, quarter_rss
    finally:
        await admin.close()
