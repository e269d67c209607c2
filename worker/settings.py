"""All configuration, read once at start-up from ``HEALTHSCORE_*`` environment variables.

Every field documents itself (``help``); the README's configuration table is
checked against this list by a test, so the two cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.errors import ConfigError
from worker.scoring.vocabulary import VOCABULARY

PREFIX = "HEALTHSCORE_"
MIN_REQUEST_BYTES = 65536


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")


@dataclass(frozen=True, slots=True)
class Settings:
    kafka_bootstrap: str = _setting("127.0.0.1:9092", "Kafka bootstrap servers, comma-separated.")
    # Not in the repr: a URL may carry the ACL user's password (redis://user:pass@host).
    redis_url: str = field(
        default="redis://127.0.0.1:6379/0",
        repr=False,
        metadata={
            "help": (
                "Redis URL for the window store: redis://[user:password@]host:port/db, rediss:// for"
                " TLS; a Redis Cluster as redis+cluster://[user:password@]host:port[,host:port...]"
                " (rediss+cluster:// for TLS), any of its primaries."
            )
        },
    )
    group_id: str = _setting("healthscore", "Kafka consumer group of the scoring workers.")
    topic_login: str = _setting("events.login", "Topic of login events.")
    topic_feature_use: str = _setting("events.feature_use", "Topic of feature-use events.")
    topic_ticket: str = _setting("events.ticket", "Topic of support-ticket events.")
    topic_survey: str = _setting("events.survey", "Topic of NPS/CSAT survey events.")
    topic_accounts: str = _setting("accounts", "Compacted topic of account attributes.")
    topic_overrides: str = _setting(
        "overrides",
        "Compacted topic of CSM overrides (a pinned tier or an adjusted component,"
        " with reason, author and expiry), keyed by account.",
    )
    topic_outcomes: str = _setting(
        "outcomes",
        "Topic of account outcomes (renewed, churned, expanded, downgraded) that "
        "`healthscore backtest` checks the score against; the worker does not read it.",
    )
    topic_alerts: str = _setting("health.alerts", "Topic the tier-change alerts go to.")
    topic_deadletter: str = _setting("health.deadletter", "Topic of rejected input records.")
    topic_partitions: int = _setting(6, "Partitions for topics the worker creates.")
    topic_replication: int = _setting(1, "Replication factor for topics the worker creates.")
    create_topics: bool = _setting(True, "Create missing topics at start-up.")
    model_path: str = _setting("", "Scoring model file (YAML); empty = the packaged default.")
    topic_models: str = _setting(
        "",
        "Compacted topic to take the model from instead of the file: the newest record's"
        " value is a model file's text (`healthscore publish-model` checks and sends one);"
        " the file is used until the topic holds one. Empty: the file only.",
    )
    model_reload_seconds: float = _setting(
        30.0,
        "How often the worker reads the model file again and applies a changed, valid"
        " one without a restart (SIGHUP: at once); 0 = only on SIGHUP.",
    )
    model_rescore_batch: int = _setting(
        500,
        "Accounts rescored per turn of the loop after a model change, between batches of events.",
    )
    max_message_bytes: int = _setting(65536, "Larger messages are dead-lettered unread.")
    max_request_bytes: int = _setting(
        1048576,
        "Largest produce request the worker sends (the producer's max_request_size);"
        " a dead letter whose key and value would not fit carries prefixes, lengths and SHA-256.",
    )
    max_future_skew_seconds: float = _setting(
        300.0, "Events stamped further ahead of the clock are dead-lettered."
    )
    dedup_horizon_seconds: float = _setting(
        86400.0, "How long an event id is remembered to drop producer duplicates."
    )
    dedup_max_ids: int = _setting(5000, "Most event ids remembered per account.")
    resident_accounts: int = _setting(
        50000,
        "Most accounts whose windows a worker holds in memory (about 7 KB each);"
        " others are read from Redis when their events come.",
    )
    max_distinct_members: int = _setting(
        25000,
        "Most members tracked per account in each distinct set (active users,"
        " features used); beyond it new ones are not tracked and distinct counts are lower"
        " bounds, flagged in explain.",
    )
    expiry_check_seconds: float = _setting(
        1.0, "How often the worker looks for silent accounts whose windows rolled."
    )
    peer_refresh_seconds: float = _setting(
        3600.0,
        "Longest an account scored by its rank among its segment's peers (a percentile"
        " component) keeps a rank read from them: a silent account is rescored by then.",
    )
    catch_up_lag_seconds: float = _setting(
        300.0,
        "Records older than this behind the present are history being caught up on"
        " (a backlog, backfill or replay): an account's tier then follows its score alone,"
        " with hysteresis only between live evaluations.",
    )
    batch_max_records: int = _setting(
        30000,
        "Most records taken from Kafka in one batch (under a backlog; a quiet stream sends"
        " smaller ones after HEALTHSCORE_BATCH_TIMEOUT_MS).",
    )
    batch_timeout_ms: int = _setting(50, "Longest wait to fill a batch.")
    fetch_max_wait_ms: int = _setting(
        50,
        "Longest the broker may hold a fetch that found nothing (a broker that does not"
        " answer as soon as records arrive adds up to this much latency).",
    )
    session_timeout_ms: int = _setting(
        10000, "Consumer-group session timeout: how soon a dead worker's partitions move."
    )
    max_poll_interval_ms: int = _setting(
        300000, "Longest a stuck worker keeps its partitions; an outage it waits out never counts."
    )
    broker_timeout_ms: int = _setting(
        40000,
        "Longest wait for the broker to acknowledge a publish or a commit; then it is retried.",
    )
    redis_timeout_seconds: float = _setting(
        10.0,
        "Longest wait for Redis to answer one batch's commands, or any other call; then"
        " it is retried.",
    )
    redis_wait_replicas: int = _setting(
        0,
        "Redis replicas that must have a batch's writes (WAIT) before its alerts are"
        " published and its offsets committed; 0: no wait.",
    )
    redis_wait_aof: bool = _setting(
        False,
        "Also wait until the batch's writes are fsynced to the AOF of the primary and"
        " of those replicas (WAITAOF, Redis 7.2 or later; start-up fails without it).",
    )
    redis_wait_timeout_seconds: float = _setting(
        5.0,
        "Longest wait for those replicas or that fsync; then the batch is retried,"
        " never committed.",
    )
    retry_backoff_max_seconds: float = _setting(
        30.0, "Ceiling of the exponential back-off while Redis or Kafka is away."
    )
    require_redis_persistence: bool = _setting(
        False,
        "Refuse to start when Redis has neither an append-only file nor RDB save points"
        " (or this cannot be checked); off: a warning only.",
    )
    dev_env: str = _setting(
        ".healthscore/dev.env",
        "File where healthscore dev writes the broker and Redis addresses"
        " it started (relative: to the current directory); other commands take them from it"
        " when neither a flag nor the environment sets them.",
    )
    # `healthscore notify slack`: the Slack notifier (worker/notify/).
    slack_webhook_url: str = field(
        default="",
        repr=False,
        metadata={
            "help": (
                "Slack incoming-webhook URL of the notifier (a secret: never logged); or use"
                " HEALTHSCORE_SLACK_WEBHOOK_FILE."
            )
        },
    )
    slack_webhook_file: str = _setting(
        "", "File holding the Slack webhook URL (a mounted secret), read at start-up."
    )
    slack_link_template: str = _setting(
        "",
        "Link from a Slack message to the account in the CSM's tool, with {account_id},"
        " e.g. https://crm.example.com/accounts/{account_id}; empty: no link.",
    )
    slack_timeout_seconds: float = _setting(
        10.0, "Longest wait for Slack to answer one post; then it is retried."
    )
    notify_group_id: str = _setting(
        "healthscore-notify-slack",
        "Kafka consumer group of the Slack notifier on the alerts"
        " topic (its own offsets, apart from other consumers).",
    )
    notify_tiers: str = _setting(
        "", "Tiers whose alerts are posted, comma-separated (the new tier); empty: all."
    )
    notify_direction: str = _setting(
        "any",
        "Which tier changes are posted: any, down (worse tiers, and first scores below"
        " the best) or up.",
    )
    notify_segments: str = _setting(
        "", "Account segments whose alerts are posted, comma-separated; empty: all."
    )
    notify_digest_minutes: float = _setting(
        10.0,
        "Catch-up alerts (a backlog, a replay) and first scores are posted as one digest"
        " per this many minutes (fractions allowed) instead of one message each.",
    )
    api_host: str = _setting(
        "127.0.0.1",
        "Address `healthscore api` binds; 0.0.0.0 for every interface (then set a token).",
    )
    api_port: int = _setting(8080, "Port of `healthscore api`.")
    api_token: str = _setting(
        "",
        "Bearer token every API request must carry (Authorization: Bearer ...); empty: none asked.",
    )
    api_token_file: str = _setting(
        "",
        "File holding that token (a mounted secret), read at start-up; used when"
        " HEALTHSCORE_API_TOKEN is empty.",
    )
    # Secure connections (worker/runtime/kafka.py, worker/windows/server.py).
    kafka_security_protocol: str = _setting(
        "PLAINTEXT", "How every Kafka client connects: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    kafka_sasl_mechanism: str = _setting(
        "PLAIN", "SASL mechanism (SASL_* protocols): PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."
    )
    kafka_sasl_username: str = _setting("", "SASL user name (SASL_* protocols).")
    kafka_sasl_password: str = field(
        default="",
        repr=False,
        metadata={
            "help": (
                "SASL password (a secret: never logged); or use HEALTHSCORE_KAFKA_SASL_PASSWORD_FILE."
            )
        },
    )
    kafka_sasl_password_file: str = _setting(
        "", "File holding the SASL password (a mounted secret), read at start-up."
    )
    kafka_ssl_cafile: str = _setting(
        "",
        "CA bundle (PEM) the broker's certificate is checked against (SSL, SASL_SSL);"
        " empty: the system's CAs.",
    )
    kafka_ssl_certfile: str = _setting(
        "", "Client certificate (PEM) for brokers that ask for one (mutual TLS)."
    )
    kafka_ssl_keyfile: str = _setting("", "Private key (PEM) of that client certificate.")
    kafka_ssl_check_hostname: bool = _setting(
        True, "Check that the broker's certificate names the host connected to."
    )
    redis_ca_file: str = _setting(
        "",
        "CA bundle (PEM) a rediss:// server's certificate is checked against; empty: the"
        " system's CAs.",
    )
    redis_password_file: str = _setting(
        "",
        "File holding the Redis password (a mounted secret), read at start-up; the user"
        " (ACL) comes from the URL. Used when the URL carries no password.",
    )
    metrics_host: str = _setting(
        "127.0.0.1",
        "Address the /metrics endpoint binds; 0.0.0.0 for every interface"
        " (containers, remote scrapers).",
    )
    metrics_port: int = _setting(9464, "Port of the Prometheus /metrics endpoint; 0 turns it off.")
    healthz_max_poll_age_seconds: float = _setting(
        120.0,
        "/healthz fails once the worker's loop has not polled Kafka (nor waited out a"
        " back-off) for this long: it is wedged. Above the longest batch, Redis timeout or"
        " broker timeout.",
    )
    readyz_max_age_seconds: float = _setting(
        30.0,
        "/readyz fails once Kafka or Redis has not answered for this long (and while"
        " consumption is paused by an outage).",
    )
    log_level: str = _setting("INFO", "Log level (DEBUG, INFO, WARNING, ERROR).")
    log_format: str = _setting(
        "auto",
        "Log lines as JSON objects (json), as plain text (plain), or auto: plain on"
        " a terminal, JSON otherwise (containers, log collectors).",
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build the settings from ``environ`` (default: the process environment)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(env_name(f.name))
            if raw is not None and raw != "":
                values[f.name] = _parse(f.name, f.default, raw)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        for name in (
            "topic_partitions",
            "topic_replication",
            "max_message_bytes",
            "batch_max_records",
            "batch_timeout_ms",
            "fetch_max_wait_ms",
            "session_timeout_ms",
            "max_poll_interval_ms",
            "broker_timeout_ms",
            "dedup_max_ids",
            "resident_accounts",
            "max_distinct_members",
            "model_rescore_batch",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{env_name(name)} must be at least 1")
        for name in (
            "max_future_skew_seconds",
            "retry_backoff_max_seconds",
            "dedup_horizon_seconds",
            "expiry_check_seconds",
            "catch_up_lag_seconds",
            "model_reload_seconds",
        ):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{env_name(name)} must be a finite number >= 0, not {value}")
        for name in (
            "redis_timeout_seconds",
            "redis_wait_timeout_seconds",
            "healthz_max_poll_age_seconds",
            "readyz_max_age_seconds",
            "peer_refresh_seconds",
        ):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{env_name(name)} must be a finite number > 0")
        if self.redis_wait_replicas < 0:
            raise ConfigError(f"{env_name('redis_wait_replicas')} must be at least 0")
        if self.max_request_bytes < MIN_REQUEST_BYTES:
            raise ConfigError(
                f"{env_name('max_request_bytes')} must be at least"
                f" {MIN_REQUEST_BYTES}: room for a dead letter's envelope"
            )
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"{env_name('metrics_port')} must be a port (0-65535)")
        if not self.redis_url.startswith(REDIS_SCHEMES):
            raise ConfigError(
                f"{env_name('redis_url')}: the URL is no Redis URL"
                " (redis://, rediss://, unix://, redis+cluster:// or"
                " rediss+cluster://)"
            )
        if not 1 <= self.api_port <= 65535:
            raise ConfigError(f"{env_name('api_port')} must be a port (1-65535)")
        if self.api_token_file and not Path(self.api_token_file).is_file():
            raise ConfigError(f"{env_name('api_token_file')}: no file at {self.api_token_file!r}")
        if not self.metrics_host.strip():
            raise ConfigError(f"{env_name('metrics_host')} must be an address, e.g. 127.0.0.1")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError(f"{env_name('log_level')}: unknown level {self.log_level!r}")
        if self.log_format not in ("auto", "json", "plain"):
            raise ConfigError(
                f"{env_name('log_format')}: {self.log_format!r} is none of auto, json, plain"
            )
        if self.model_path and not Path(self.model_path).is_file():
            raise ConfigError(f"{env_name('model_path')}: no file at {self.model_path!r}")
        _validate_secure(self)

    def api_bearer_token(self) -> str:
        """The API's token: the setting, else the file's content without its line end."""
        if self.api_token or not self.api_token_file:
            return self.api_token
        return Path(self.api_token_file).read_text("utf-8").strip()

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @property
    def event_topics(self) -> dict[str, str]:
        """Topic name -> event type, for every type of the vocabulary: its topic setting
        (``topic_<type>``) where it has one, else ``events.<type>``."""
        return {getattr(self, f"topic_{name}", f"events.{name}"): name for name in VOCABULARY}

    @property
    def input_topics(self) -> list[str]:
        return [*self.event_topics, self.topic_accounts, self.topic_overrides]


def env_name(field_name: str) -> str:
    return PREFIX + field_name.upper()


def documented_settings() -> list[tuple[str, str, str]]:
    """(env var, default, help) for every setting: the README table's source."""
    return [
        (env_name(f.name), str(f.default), f.metadata["help"]) for f in dataclasses.fields(Settings)
    ]


def _parse(name: str, default: Any, raw: str) -> Any:
    try:
        if isinstance(default, bool):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{env_name(name)}={raw!r}: {exc}") from None
    return raw


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
FILE_SETTINGS = (
    "kafka_sasl_password_file",
    "kafka_ssl_cafile",
    "kafka_ssl_certfile",
    "kafka_ssl_keyfile",
    "redis_ca_file",
    "redis_password_file",
)


def _validate_secure(settings: Settings) -> None:
    if settings.kafka_security_protocol.upper() not in SECURITY_PROTOCOLS:
        raise ConfigError(
            f"{env_name('kafka_security_protocol')}:"
            f" {settings.kafka_security_protocol!r} is none of"
            f" {', '.join(SECURITY_PROTOCOLS)}"
        )
    if settings.kafka_sasl_mechanism.upper() not in SASL_MECHANISMS:
        raise ConfigError(
            f"{env_name('kafka_sasl_mechanism')}:"
            f" {settings.kafka_sasl_mechanism!r} is none of"
            f" {', '.join(SASL_MECHANISMS)}"
        )
    if settings.kafka_sasl_password and settings.kafka_sasl_password_file:
        raise ConfigError(
            f"set one of {env_name('kafka_sasl_password')} and"
            f" {env_name('kafka_sasl_password_file')}, not both"
        )
    if bool(settings.kafka_ssl_certfile) != bool(settings.kafka_ssl_keyfile):
        raise ConfigError(
            f"{env_name('kafka_ssl_certfile')} and {env_name('kafka_ssl_keyfile')} go together"
        )
    if settings.redis_ca_file and not settings.redis_url.startswith(
        ("rediss://", "rediss+cluster://")
    ):
        raise ConfigError(
            f"{env_name('redis_ca_file')} is set but {env_name('redis_url')} is"
            " no rediss:// URL (TLS)"
        )
    for name in FILE_SETTINGS:
        path = getattr(settings, name)
        if path and not Path(path).is_file():
            raise ConfigError(f"{env_name(name)}: no file at {path!r}")


def read_secret(path: str) -> str:
    """A mounted secret's content without its line end."""
    return Path(path).read_text("utf-8").strip()
