"""Prometheus metrics, on a registry of the worker's own (no import-time globals)."""

from __future__ import annotations

import errno
from collections import Counter as Tally
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from http.server import ThreadingHTTPServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from worker import endpoint
from worker.alerts import Alert
from worker.errors import AddressInUse, ConfigError, Reason
from worker.probes import Probes
from worker.scoring.vocabulary import VOCABULARY

# From a fast batch to a worker minutes behind; past 600 s an alert is late whatever the cause.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000, 20000)
FIRST_SCORE = "none"  # the ``from`` of a transition that is an account's first tier


def batch_buckets(max_records: int) -> tuple[int, ...]:
    """The batch-size buckets, the last one the largest batch the consumer asks for."""
    return (*(b for b in BATCH_BUCKETS if b < max_records), max_records)


class Metrics:
    def __init__(
        self, registry: CollectorRegistry | None = None, *, batch_max_records: int = 30000
    ) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # The process's own CPU, memory, file descriptors, Python version and collections,
        # on this registry (the default one, where prometheus_client puts them, is not served).
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.events = Counter(
            "healthscore_events_total",
            "Events applied to the windows, by type (not re-deliveries,"
            " producer duplicates or events too old for every window).",
            ["type"],
            registry=r,
        )
        self.account_updates = Counter(
            "healthscore_account_updates_total", "Account attribute records applied.", registry=r
        )
        self.overrides = Counter(
            "healthscore_overrides_total",
            "Account overrides set (or edited), expired and cleared.",
            ["event"],
            registry=r,
        )
        self.dead_letters = Counter(
            "healthscore_dead_letters_total",
            "Records sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=r,
        )
        self.replayed = Counter(
            "healthscore_events_replayed_total",
            "Re-delivered events skipped: already applied (offset fence).",
            registry=r,
        )
        self.duplicates = Counter(
            "healthscore_events_duplicate_total",
            "Producer duplicates skipped: event id seen at another offset.",
            registry=r,
        )
        self.expiry_rescored = Counter(
            "healthscore_expiry_rescored_total",
            "Silent accounts rescored because their windows rolled.",
            registry=r,
        )
        self.too_old = Counter(
            "healthscore_events_too_old_total",
            "Events older than every window: counted and dropped.",
            registry=r,
        )
        self.distinct_capped = Counter(
            "healthscore_distinct_capped_total",
            "New distinct-set members not tracked: the account's set (users, features) was"
            " at HEALTHSCORE_MAX_DISTINCT_MEMBERS.",
            ["set"],
            registry=r,
        )
        self.alerts = Counter(
            "healthscore_alerts_total",
            "Tier-change alerts published, by tier.",
            ["tier"],
            registry=r,
        )
        self.retries = Counter(
            "healthscore_retries_total",
            "Batches retried because a dependency was away, by dependency.",
            ["dependency"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "healthscore_batch_seconds",
            "Time to process one batch, commit included.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.batch_size = Histogram(
            "healthscore_batch_records",
            "Records per batch.",
            buckets=batch_buckets(batch_max_records),
            registry=r,
        )
        self.assigned_partitions = Gauge(
            "healthscore_assigned_partitions", "Input partitions this worker owns.", registry=r
        )
        self.consumption_paused = Gauge(
            "healthscore_consumption_paused",
            "1 while consumption is paused to wait out an outage (the partitions stay).",
            registry=r,
        )
        self._new_metrics(r)
        self._zero_known_labels()

    def _new_metrics(self, r: CollectorRegistry) -> None:
        self.consumer_lag = Gauge(
            "healthscore_consumer_lag",
            "Records behind the high watermark, per assigned input partition (after each batch).",
            ["topic", "partition"],
            registry=r,
        )
        self.event_to_alert = Histogram(
            "healthscore_event_to_alert_seconds",
            "Live alerts: the Kafka timestamp of the record that triggered the change to the"
            " broker's acknowledgement of the alert.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.accounts = Gauge(
            "healthscore_accounts",
            "Accounts per published tier, all workers together (the same value on every"
            " worker: aggregate with max, not sum).",
            ["tier"],
            registry=r,
        )
        self.transitions = Counter(
            "healthscore_tier_transitions_total",
            "Tier changes saved for publishing, by previous tier (none: a first score) and tier.",
            ["from", "to"],
            registry=r,
        )
        self.data_gap = Gauge(
            "healthscore_data_gap",
            "1 while no event of the type has arrived on this worker's partitions for the"
            " model's data_gaps threshold (an outage, not churn), else 0.",
            ["type"],
            registry=r,
        )
        self.model_reloads = Counter(
            "healthscore_model_reloads_total",
            "Changes of the model file found while running, by result: applied, or rejected"
            " (invalid; the running model goes on).",
            ["result"],
            registry=r,
        )
        self.model_info = Gauge(
            "healthscore_model_info",
            "1 for the model file in use: its version and"
            " fingerprint (all workers should show one).",
            ["version", "fingerprint"],
            registry=r,
        )
        self.model_rescored = Counter(
            "healthscore_model_rescored_total",
            "Accounts rescored because the model changed (``runtime.remodel``).",
            registry=r,
        )
        self.held = Counter(
            "healthscore_held_tier_changes_total",
            "Tier changes held back (not published) because a data gap moved them.",
            registry=r,
        )

    def _zero_known_labels(self) -> None:
        """A series at 0 from start-up for each label value known in advance: a panel of
        rates shows 0, not "no data", and the alert on a quiet event type (deploy/prometheus)
        also fires for a type not seen since the worker started."""
        for event_type in VOCABULARY:
            self.events.labels(event_type)
        for reason in Reason:
            self.dead_letters.labels(str(reason))
        for dependency in ("kafka", "redis"):
            self.retries.labels(dependency)

    def set_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        for (topic, partition), lag in lags.items():
            self.consumer_lag.labels(topic, str(partition)).set(lag)

    def drop_lag(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Partitions this worker no longer owns: their series end here, not stay frozen."""
        for topic, partition in partitions:
            with suppress(KeyError):  # never measured
                self.consumer_lag.remove(topic, str(partition))

    def observe_latency(self, origins: Sequence[float], acknowledged: float) -> None:
        for origin in origins:
            self.event_to_alert.observe(max(0.0, acknowledged - origin))

    def set_tier_counts(self, counts: Mapping[str, int]) -> None:
        for tier, count in counts.items():
            self.accounts.labels(tier).set(count)

    def tier_changes(self, alerts: Sequence[tuple[str, Alert]]) -> None:
        """Once per batch, for changes just saved: each moves one account between tiers."""
        moves = Tally((a.previous_tier or FIRST_SCORE, a.tier) for _, a in alerts)
        for (was, now), count in moves.items():
            self.transitions.labels(was, now).inc(count)
            if was != FIRST_SCORE:
                self.accounts.labels(was).dec(count)
            self.accounts.labels(now).inc(count)

    def serve(
        self,
        port: int,
        host: str = "127.0.0.1",
        probes: Probes | None = None,
        limits: endpoint.Thresholds | None = None,
    ) -> ThreadingHTTPServer | None:
        """Serve /metrics, /healthz and /readyz on ``host``:``port`` (0: not at all) from
        a thread of its own (``worker.endpoint``).

        A bind that fails is a ``ConfigError`` naming the settings, not a traceback:
        the usual cause is a second worker on the same host with the same port."""
        if not port:
            return None
        try:
            return endpoint.start(
                host,
                port,
                self.registry,
                probes or Probes(),
                limits or endpoint.Thresholds(60.0, 60.0),
            )
        except OSError as exc:
            where = f"{host}:{port}"
            if exc.errno == errno.EADDRINUSE:
                raise AddressInUse(
                    f"metrics endpoint: {where} is already in use (another worker on this"
                    " host?); set HEALTHSCORE_METRICS_PORT to a free port, or 0 to turn it"
                    " off"
                ) from None
            raise ConfigError(
                f"metrics endpoint: cannot listen on {where} ({exc.strerror or exc});"
                " check HEALTHSCORE_METRICS_HOST and HEALTHSCORE_METRICS_PORT"
            ) from None
