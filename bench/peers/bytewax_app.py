"""Peer "bytewax": the scoring job written the Bytewax 0.21 way.

Bytewax's Kafka source (``bytewax.connectors.kafka``, librdkafka through
confluent-kafka) reads the four event topics, ``key_on`` keys the stream by account
and one ``stateful_batch`` step keeps each account's windows in its logic's state,
one document per account as ``bench.peers.account`` lays it out. Bytewax hands the
step every event of an account that arrived since it last ran as one list: all of
them go into the windows, then the account is rescored once, as healthscore does
with its batches (the per-event peers rescore on every event). A tier change goes as
an alert through Bytewax's Kafka sink to the peer's output topic.

``--recovery`` runs it with Bytewax's recovery: every epoch (1 s, as Pathway
commits) the source's offsets and each account touched in it are snapshotted to
SQLite files in the run's data dir. Without it nothing is persisted and the run
measures processing alone, like Quix with changelogs off.

Bytewax's source assigns partitions itself (one librdkafka consumer per partition,
offsets in its recovery store, no consumer group): ``--group`` goes unused. Events
are parsed with orjson, not validated (see ``bench.peers.scoring``).

    python -m bench.peers.bytewax_app --result R --group G --output-topic T --expect N \
        --data-dir D [--scores S] [--recovery]    # with HEALTHSCORE_* set as for healthscore
"""

from __future__ import annotations

import copy
import logging
import signal
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSink, KafkaSinkMessage, KafkaSource
from bytewax.connectors.kafka import KafkaSourceMessage as Message
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.operators import StatefulBatchLogic
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main

from bench.ceiling import LIBRDKAFKA_TUNING
from bench.peers import account
from bench.peers.args import PeerArgs, parse
from bench.peers.progress import Progress
from bench.peers.scoring import Scorer
from worker.alerts import to_json
from worker.settings import Settings

log = logging.getLogger(__name__)

EPOCH = timedelta(seconds=1)
RawMessage = Message[bytes | None, bytes | None]


class AccountLogic(StatefulBatchLogic[RawMessage, bytes, account.Doc]):
    """One account's windows; each batch of its events in, at most one alert out."""

    def __init__(
        self, scorer: Scorer, types: dict[str, str], progress: Progress, resume: account.Doc | None
    ) -> None:
        self.scorer = scorer
        self.types = types
        self.progress = progress
        self.doc = account.new_doc() if resume is None else resume

    def on_batch(self, values: list[RawMessage]) -> tuple[list[bytes], bool]:
        self.progress.started()
        scorer, doc = self.scorer, self.doc
        now = time.time()
        now_bucket = scorer.now_bucket(now)
        cause = None
        for message in values:
            assert message.topic is not None
            assert message.value is not None
            event = scorer.parse(self.types[message.topic], message.value)
            if account.apply(scorer, doc, event, now_bucket):
                cause = event, message
        if cause is None:  # all older than the longest window
            self.progress.processed(events=len(values), rescores=0)
            return [], StatefulBatchLogic.RETAIN
        event, message = cause
        source = (str(message.topic), int(message.partition or 0), int(message.offset or 0))
        scored = account.rescore(scorer, doc, event, source, now, now_bucket)
        self.progress.scored(event.account_id, scored.score, account.tier(doc))
        self.progress.processed(alerts=scored.alert is not None, events=len(values), rescores=1)
        alerts = [] if scored.alert is None else [to_json(scored.alert)]
        return alerts, StatefulBatchLogic.RETAIN

    def snapshot(self) -> account.Doc:
        # Bytewax's contract: the snapshot must not change after it is taken.
        return copy.deepcopy(self.doc)


class StoppableSource(FixedPartitionedSource[RawMessage, int | None]):
    """Bytewax's Kafka source, whose partitions end once ``stop`` is called: a dataflow
    whose inputs all ended completes, and the process exits cleanly. (Ctrl-C raises
    inside whichever step runs, and Bytewax reports that as a failed step.) The first
    records read start the peer's clock: the step sees them only after a whole poll
    of every partition."""

    def __init__(self, source: KafkaSource, progress: Progress) -> None:
        self.source = source
        self.progress = progress
        self.stopping = False

    def stop(self, *_: object) -> None:
        self.stopping = True

    def list_parts(self) -> list[str]:
        return self.source.list_parts()

    def build_part(
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> StatefulSourcePartition[RawMessage, int | None]:
        return _Stoppable(self, self.source.build_part(step_id, for_part, resume_state))


class _Stoppable(StatefulSourcePartition[RawMessage, int | None]):
    def __init__(
        self, source: StoppableSource, part: StatefulSourcePartition[Any, int | None]
    ) -> None:
        self.source = source
        self.part = part

    def next_batch(self) -> Iterable[RawMessage]:
        if self.source.stopping:
            raise StopIteration
        batch = list(self.part.next_batch())  # a list already: no copy of its items
        if batch:
            self.source.progress.started()
        return batch

    def next_awake(self) -> datetime | None:
        return self.part.next_awake()

    def snapshot(self) -> int | None:
        return self.part.snapshot()

    def close(self) -> None:
        self.part.close()


def build_flow(
    settings: Settings, args: PeerArgs, progress: Progress, source: StoppableSource
) -> Dataflow:
    brokers = [settings.kafka_bootstrap]
    scorer, types = Scorer(), settings.event_topics
    flow = Dataflow("healthscore-peer")
    events = op.input("events", flow, source)
    by_account = op.key_on("account", events, _account_of)
    alerts = op.stateful_batch(
        "score", by_account, lambda resume: AccountLogic(scorer, types, progress, resume)
    )
    records = op.map("record", alerts, _record)
    # linger.ms: what healthscore's alert producer and the other peers use.
    op.output(
        "alerts", records, KafkaSink(brokers, args.output_topic, add_config={"linger.ms": "5"})
    )
    return flow


def _account_of(message: RawMessage) -> str:
    assert message.key is not None
    return message.key.decode()


def _record(keyed: tuple[str, bytes]) -> KafkaSinkMessage[bytes, bytes]:
    return KafkaSinkMessage(keyed[0].encode(), keyed[1])


def recovery(data_dir: str) -> RecoveryConfig:
    """SQLite recovery partitions in the run's data dir (one: one worker)."""
    path = Path(data_dir) / "recovery"
    path.mkdir(parents=True, exist_ok=True)
    init_db_dir(path, 1)
    return RecoveryConfig(path)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(__doc__.splitlines()[0], argv)
    progress = Progress(args.result, args.expect, args.scores)
    settings = Settings.from_env()
    # LIBRDKAFKA_TUNING: the embedded broker holds an empty fetch for the whole fetch
    # wait, and librdkafka's defaults then stall each partition about a second at a time.
    tuning = {k: str(v) for k, v in LIBRDKAFKA_TUNING.items()}
    source = StoppableSource(
        KafkaSource([settings.kafka_bootstrap], list(settings.event_topics), add_config=tuning),
        progress,
    )
    flow = build_flow(settings, args, progress, source)
    log.info("running %s recovery", "with" if args.recovery else "without")
    signal.signal(signal.SIGTERM, source.stop)  # the bench stops every peer with SIGTERM
    try:
        cli_main(
            flow,
            workers_per_process=1,
            epoch_interval=EPOCH,
            recovery_config=recovery(args.data_dir) if args.recovery else None,
        )
    finally:
        progress.write(final=True)


if __name__ == "__main__":
    main(sys.argv[1:])
