"""Create the worker's topics when they are missing."""

from __future__ import annotations

import logging
from contextlib import suppress

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from worker.settings import Settings

log = logging.getLogger(__name__)


def wanted_topics(settings: Settings) -> list[NewTopic]:
    def topic(name: str, **configs: str) -> NewTopic:
        return NewTopic(name, settings.topic_partitions, settings.topic_replication,
                        topic_configs=configs or None)

    return [
        *(topic(name) for name in settings.event_topics),
        # The latest attributes per account are all that matter: compact, never delete.
        topic(settings.topic_accounts, **{"cleanup.policy": "compact"}),
        topic(settings.topic_alerts),
        topic(settings.topic_deadletter),
    ]


async def ensure_topics(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                                client_id="healthscore-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted_topics(settings) if t.name not in existing]
        if not missing:
            return
        with suppress(TopicAlreadyExistsError):  # another worker won the race
            await admin.create_topics(missing)
        log.info("created topics: %s", ", ".join(t.name for t in missing))
    finally:
        await admin.close()
