"""Create the worker's topics when they are missing."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from worker.errors import ConfigError
from worker.runtime import kafka
from worker.settings import Settings

log = logging.getLogger(__name__)


def wanted_topics(settings: Settings, extra: Sequence[str] = ()) -> list[NewTopic]:
    def topic(name: str, **configs: str) -> NewTopic:
        return NewTopic(
            name,
            settings.topic_partitions,
            settings.topic_replication,
            topic_configs=configs or None,
        )

    return [
        *(topic(name) for name in settings.event_topics),
        # The latest attributes per account are all that matter: compact, never delete.
        topic(settings.topic_accounts, **{"cleanup.policy": "compact"}),
        # The latest override per account; its history is kept in Redis.
        topic(settings.topic_overrides, **{"cleanup.policy": "compact"}),
        topic(settings.topic_alerts),
        topic(settings.topic_deadletter),
        *(topic(name) for name in extra),
        # One model at a time: the newest record wins, so one partition, compacted.
        *(
            [
                NewTopic(
                    settings.topic_models,
                    1,
                    settings.topic_replication,
                    topic_configs={"cleanup.policy": "compact"},
                )
            ]
            if settings.topic_models
            else []
        ),
    ]


async def ensure_topics(settings: Settings, extra: Sequence[str] = ()) -> None:
    """Create missing topics (when asked to; ``extra`` are more topics like the alerts
    topic), then check the inputs are co-partitioned."""
    admin = kafka.admin(settings, client_id="healthscore-admin")
    await admin.start()
    try:
        if settings.create_topics:
            await _create_missing(admin, settings, extra)
        counts = {
            t["topic"]: len(t["partitions"])
            for t in await admin.describe_topics(settings.input_topics)
        }
    finally:
        await admin.close()
    check_copartitioned(counts)


async def _create_missing(
    admin: AIOKafkaAdminClient, settings: Settings, extra: Sequence[str]
) -> None:
    existing = set(await admin.list_topics())
    missing = [t for t in wanted_topics(settings, extra) if t.name not in existing]
    if missing:
        response = await admin.create_topics(missing)
        _raise_for_errors(response.topic_errors)
        log.info("created topics: %s", ", ".join(t.name for t in missing))


def check_copartitioned(partition_counts: dict[str, int]) -> None:
    """One partition count for every input topic, or accounts get two owners.

    The key (account_id) picks the same partition number in topics with the
    same count, and the range assignor hands equal partition numbers of all
    input topics to the same worker: so exactly one worker scores an account.
    """
    if len(set(partition_counts.values())) > 1:
        found = ", ".join(f"{t}: {n}" for t, n in sorted(partition_counts.items()))
        raise ConfigError(f"input topics must have the same number of partitions ({found})")


def _raise_for_errors(topic_errors: list[tuple[Any, ...]]) -> None:
    """The response carries one error code per topic; the call itself never raises."""
    for name, code, *rest in topic_errors:
        if code == 0 or code == TopicAlreadyExistsError.errno:  # another worker won the race
            continue
        message = rest[0] if rest else ""
        raise for_code(code)(f"creating topic {name}: {message}")
