"""Wiring only: settings -> model -> Redis -> window store -> pipeline -> consumer loop."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable, Callable
from contextlib import suppress
from functools import partial
from http.server import ThreadingHTTPServer

from worker import compiled
from worker.clock import Clock, WallClock
from worker.endpoint import Thresholds
from worker.errors import access_denied
from worker.metrics import Metrics
from worker.pipeline import Pipeline
from worker.runtime import modelwatch
from worker.runtime.loop import ConsumerLoop
from worker.runtime.modeltopic import ModelTopic
from worker.runtime.modelwatch import Loaded, ModelWatch
from worker.runtime.remodel import Remodel
from worker.runtime.retry import Stopping, retrying
from worker.runtime.topics import ensure_topics
from worker.scoring.model import Model
from worker.scoring.segments import ModelSet, as_model_set
from worker.settings import Settings
from worker.startup import check_redis
from worker.windows import server
from worker.windows.store import WindowStore

log = logging.getLogger(__name__)


class Worker:
    """One scoring worker process: owns its Redis client, pipeline and consumer loop."""

    def __init__(
        self,
        settings: Settings,
        model: Model | ModelSet | None = None,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        source: modelwatch.Source | None = None,
    ) -> None:
        """``source``: where the model's text comes from (the models topic); default the
        model file."""
        self.settings = settings
        source = source or modelwatch.file_source(settings.model_path)
        # A model given in code (tests) is not read again; its fingerprint is its version.
        loaded = (
            Loaded(as_model_set(model), f"version:{as_model_set(model).default.version}")
            if model
            else modelwatch.load(source)
        )
        self.models = loaded.models
        self.model = self.models.default
        self.metrics = metrics or Metrics(batch_max_records=settings.batch_max_records)
        self.redis = server.client(settings)
        self.durability = server.Durability.of(settings)
        store = WindowStore.from_settings(self.redis, self.models.windows, settings)
        self.store = store  # checked at start-up (``check_redis``)
        self.pipeline = Pipeline(settings, self.models, store, clock or WallClock(), self.metrics)
        watch = (
            None
            if model
            else ModelWatch(source, loaded, settings.model_reload_seconds, self.metrics)
        )
        remodel = Remodel(
            self.redis, loaded, settings.model_rescore_batch, settings.redis_timeout_seconds
        )
        self.loop = ConsumerLoop(
            settings, self.pipeline, self.metrics, watch=watch, remodel=remodel
        )

    async def run(self) -> None:
        """Check Redis, create topics, consume until ``stop()``. An outage is waited out;
        credentials or permissions refused, now or later, raise ``AccessDenied``."""
        log.info("hot path: %s", compiled.describe())  # `healthscore dev` shows it too
        try:
            await self._retry(
                lambda: check_redis(
                    self.redis,
                    self.store,
                    require_persistence=self.settings.require_redis_persistence,
                ),
                "redis",
            )
            await self._retry(
                partial(
                    server.check, self.redis, self.durability, self.settings.redis_timeout_seconds
                ),
                "redis",
            )
            await self._retry(lambda: ensure_topics(self.settings), "kafka")
            await self.loop.run()
        except Stopping as stopping:  # asked to stop before consuming began
            log.info("stopped while waiting for %s", stopping)
        except Exception as exc:
            if (denied := access_denied(exc)) is None:
                raise
            raise denied from exc
        finally:
            await self.redis.aclose()

    async def _retry(self, operation: Callable[[], Awaitable[None]], dependency: str) -> None:
        await retrying(
            operation,
            dependency,
            max_backoff=self.settings.retry_backoff_max_seconds,
            metrics=self.metrics,
            stop=self.loop.stop_requested,
            wait=self.loop.probes.sleep,
        )
        self.loop.probes.answer(dependency)

    def serve_endpoint(self) -> ThreadingHTTPServer | None:
        """/metrics, /healthz and /readyz on the metrics address (``ConfigError`` if busy)."""
        limits = Thresholds(
            self.settings.healthz_max_poll_age_seconds, self.settings.readyz_max_age_seconds
        )
        return self.metrics.serve(
            self.settings.metrics_port, self.settings.metrics_host, self.loop.probes, limits
        )

    def stop(self) -> None:
        self.loop.stop()

    def reload(self) -> None:
        """SIGHUP: read the model file at the next turn of the loop."""
        if self.loop.watch is not None:
            self.loop.watch.asked = True


# The hot path allocates many short-lived objects per batch (records, plans, alerts)
# while the worker holds up to HEALTHSCORE_RESIDENT_ACCOUNTS accounts. With CPython's
# default gen-0 threshold (700) the collector runs every few hundred allocations and
# its older generations keep walking the held accounts: about a fifth of the CPU at
# 10k accounts. Reference cycles are rare here, so collecting less often costs
# little memory.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    gc.freeze()  # what start-up built (modules, the model) is never garbage
    gc.set_threshold(*GC_THRESHOLDS)


async def serve(settings: Settings) -> None:
    """Run a worker until SIGINT/SIGTERM, then stop cleanly (finish, commit, close)."""
    models = await _model_topic(settings) if settings.topic_models else None
    worker = Worker(settings, source=models.source if models else None)
    if models is not None:
        models.on_new = worker.reload  # a new record is read at the next turn of the loop
        models.follow()
    tune_gc()
    worker.serve_endpoint()
    log.info(
        "model %s, %d components; metrics on %s",
        worker.model.version,
        len(worker.model.components),
        f"{settings.metrics_host}:{settings.metrics_port}" if settings.metrics_port else "off",
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError):
            loop.add_signal_handler(sig, worker.stop)
    with suppress(NotImplementedError, AttributeError):  # no SIGHUP on Windows
        loop.add_signal_handler(signal.SIGHUP, worker.reload)
    try:
        await worker.run()
    finally:
        if models is not None:
            await models.close()


async def _model_topic(settings: Settings) -> ModelTopic:
    """The models topic, created if missing and read to its end: the first model is its
    newest record. An unreachable broker is waited out, as the worker's start-up does."""
    models = ModelTopic(settings)

    async def read() -> None:
        await ensure_topics(settings)
        await models.read()

    await retrying(
        read,
        "kafka",
        max_backoff=settings.retry_backoff_max_seconds,
        metrics=Metrics(),
        stop=asyncio.Event(),
    )
    return models
