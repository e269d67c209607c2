"""Models from a compacted topic: the newest record's value is a model file's text.

A deployment of many workers changes its model by publishing once (``healthscore
publish-model FILE``, which checks the file first) rather than by editing a file on
every host. The worker reads the topic to its end at start-up, then follows it; what
arrives goes through ``ModelWatch`` exactly as a changed file does: checked, rejected
with the bad field named (the running model goes on), or applied and every account
rescored. Until the topic holds a record the model file is used.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from worker.errors import ConfigError
from worker.modelfile import model_text
from worker.modelfile.segments import parse_models
from worker.runtime import kafka
from worker.runtime.modelwatch import fingerprint
from worker.runtime.reader import read_to_end
from worker.runtime.topics import ensure_topics
from worker.scoring.segments import ModelSet
from worker.settings import Settings, env_name

log = logging.getLogger(__name__)
KEY = b"model"  # every record has it: compaction keeps the newest alone
RETRY_SECONDS = 5.0


class ModelTopic:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._topic = settings.topic_models
        self._latest: tuple[str, str] | None = None  # (text, where it came from)
        self._positions: dict[TopicPartition, int] = {}
        self._task: asyncio.Task[None] | None = None
        self.on_new: Callable[[], None] = lambda: None  # told when a record arrives

    def source(self) -> tuple[str, str]:
        """The newest model text and its name in errors; the model file's while the
        topic has none."""
        if self._latest is None:
            return model_text(self._settings.model_path)
        return self._latest

    async def read(self) -> None:
        """Everything the topic holds now (the worker's first model comes from it)."""
        async for records in read_to_end(self._settings, [self._topic], 100):
            for record in records:
                self._take(record)
                tp = TopicPartition(record.topic, record.partition)
                self._positions[tp] = record.offset + 1

    def follow(self) -> None:
        self._task = asyncio.create_task(self._follow(), name="model-topic")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _follow(self) -> None:
        while True:  # a broker outage: start again from where it got to
            try:
                await self._consume()
            except KafkaError as exc:
                log.warning(
                    "following model topic %s: %s; again in %g s", self._topic, exc, RETRY_SECONDS
                )
                await asyncio.sleep(RETRY_SECONDS)

    async def _consume(self) -> None:
        consumer = kafka.consumer(
            self._settings,
            client_id="healthscore-models",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            await consumer.topics()
            parts = [
                TopicPartition(self._topic, p)
                for p in sorted(consumer.partitions_for_topic(self._topic) or ())
            ]
            consumer.assign(parts)
            for tp in parts:
                consumer.seek(tp, self._positions.get(tp, 0))
            while True:
                batches = await consumer.getmany(timeout_ms=1000)
                for tp, records in batches.items():
                    for record in records:
                        self._take(record)
                        self._positions[tp] = record.offset + 1
                    self.on_new()
        finally:
            await consumer.stop()

    def _take(self, record: ConsumerRecord[bytes, bytes]) -> None:
        where = f"model topic {record.topic}[{record.partition}]@{record.offset}"
        if record.value is None:  # a tombstone clears nothing: the running model stays
            return
        try:
            self._latest = (record.value.decode("utf-8"), where)
        except UnicodeDecodeError:
            # Kept as text ModelWatch rejects, naming the record, rather than skipped.
            self._latest = (f"not UTF-8: {record.value[:40]!r}", where)


async def newest(settings: Settings) -> tuple[str, str]:
    """The model text the deployment scores with, for the commands beside the worker
    (explain, the API, replay, notify, backtest): the models topic's newest record when
    one is configured and holds one, else the model file's."""
    if not settings.topic_models:
        return model_text(settings.model_path)
    topic = ModelTopic(settings)
    await topic.read()
    return topic.source()


async def newest_models(settings: Settings) -> ModelSet:
    return parse_models(*await newest(settings))


async def publish(settings: Settings, path: str) -> str:
    """Check the model file as a worker would, then send it to the models topic; a file
    that fails is never sent (a worker would reject it too, but every worker would log
    it). Returns the line to print."""
    if not settings.topic_models:
        raise ConfigError(
            f"{env_name('topic_models')} is not set: the workers read the model file, not a topic"
        )
    text, source = model_text(path)
    models = parse_models(text, source)
    await ensure_topics(settings)
    producer = kafka.producer(settings, client_id="healthscore-publish-model", acks="all")
    await producer.start()
    try:
        sent = await producer.send_and_wait(settings.topic_models, text.encode(), key=KEY)
    finally:
        await producer.stop()
    return (
        f"published model {models.default.version} ({fingerprint(text)}) to "
        f"{settings.topic_models}@{sent.offset}"
    )
