"""Prometheus metrics, on a registry of the worker's own (no import-time globals)."""

from __future__ import annotations

import errno
from http.server import ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from worker import endpoint
from worker.errors import AddressInUse, ConfigError
from worker.probes import Probes


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter("healthscore_events_total",
                              "Events applied to the windows, by type (not re-deliveries,"
                              " producer duplicates or events too old for every window).",
                              ["type"], registry=r)
        self.account_updates = Counter("healthscore_account_updates_total",
                                       "Account attribute records applied.", registry=r)
        self.dead_letters = Counter("healthscore_dead_letters_total",
                                    "Records sent to the dead-letter topic, by reason.",
                                    ["reason"], registry=r)
        self.replayed = Counter("healthscore_events_replayed_total",
                                "Re-delivered events skipped: already applied (offset fence).",
                                registry=r)
        self.duplicates = Counter("healthscore_events_duplicate_total",
                                  "Producer duplicates skipped: event id seen at another offset.",
                                  registry=r)
        self.expiry_rescored = Counter("healthscore_expiry_rescored_total",
                                       "Silent accounts rescored because their windows rolled.",
                                       registry=r)
        self.too_old = Counter("healthscore_events_too_old_total",
                               "Events older than every window: counted and dropped.", registry=r)
        self.distinct_capped = Counter(
            "healthscore_distinct_capped_total",
            "New distinct-set members not tracked: the account's set (users, features) was"
            " at HEALTHSCORE_MAX_DISTINCT_MEMBERS.", ["set"], registry=r)
        self.alerts = Counter("healthscore_alerts_total", "Tier-change alerts published, by tier.",
                              ["tier"], registry=r)
        self.retries = Counter("healthscore_retries_total",
                               "Batches retried because a dependency was away, by dependency.",
                               ["dependency"], registry=r)
        self.batch_seconds = Histogram(
            "healthscore_batch_seconds", "Time to process one batch, commit included.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r)
        self.batch_size = Histogram("healthscore_batch_records", "Records per batch.",
                                    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
                                    registry=r)
        self.assigned_partitions = Gauge("healthscore_assigned_partitions",
                                         "Input partitions this worker owns.", registry=r)
        self.consumption_paused = Gauge(
            "healthscore_consumption_paused",
            "1 while consumption is paused to wait out an outage (the partitions stay).",
            registry=r)

    def serve(self, port: int, host: str = "127.0.0.1", probes: Probes | None = None,
              limits: endpoint.Thresholds | None = None) -> ThreadingHTTPServer | None:
        """Serve /metrics, /healthz and /readyz on ``host``:``port`` (0: not at all) from
        a thread of its own (``worker.endpoint``).

        A bind that fails is a ``ConfigError`` naming the settings, not a traceback:
        the usual cause is a second worker on the same host with the same port."""
        if not port:
            return None
        try:
            return endpoint.start(host, port, self.registry, probes or Probes(),
                           limits or endpoint.Thresholds(60.0, 60.0))
        except OSError as exc:
            where = f"{host}:{port}"
            if exc.errno == errno.EADDRINUSE:
                raise AddressInUse(
                    f"metrics endpoint: {where} is already in use (another worker on this"
                    " host?); set HEALTHSCORE_METRICS_PORT to a free port, or 0 to turn it"
                    " off") from None
            raise ConfigError(f"metrics endpoint: cannot listen on {where} ({exc.strerror or exc});"
                              " check HEALTHSCORE_METRICS_HOST and HEALTHSCORE_METRICS_PORT"
                              ) from None
