"""Peer "quix": the scoring job written the Quix Streams 3.28 way.

The four event topics become one StreamingDataFrame (``concat``; they are keyed by
account and co-partitioned, so the state of an account lives in one partition),
and one stateful ``apply`` keeps each account's windows in Quix state (RocksDB,
in a state dir of the run; changelog topics off, see below), one document per
account as ``bench.peers.account`` lays it out.

Every event updates its bucket, re-sums the 30- and 90-day windows ending now,
scores with the project's own model and code, and an alert goes on to the output
topic when the tier changes.

Why state and not Quix windows: the model's windows end at *now* (wall clock) and
are re-evaluated on every event, while a late event still belongs to the bucket of
its own timestamp. Quix's time windows (tumbling, hopping, sliding) are keyed by
event time and close after a grace period: the data here spreads each account's
events over 20 days in arbitrary order, so they would need a grace of weeks and
keep a window state per event (sliding) or per hop, and still not give "the
last 30 days as of now" nor distinct counts without a custom reducer. Two
windows (30 and 90 days) would also need two window operations joined back per
event. A dict of day buckets per account in ``State`` is the plain fit.

Changelog topics are off: the embedded broker keeps nothing on disk and the
bench measures processing, not recovery. Events are parsed with orjson, not
validated (see ``bench.peers.scoring``).

    python -m bench.peers.quix_app --result R --group G --output-topic T --expect N \
        --data-dir D [--scores S]    # with HEALTHSCORE_* set as for healthscore
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

from quixstreams import Application, State, message_context
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models import Topic, TopicConfig

from bench.peers import account
from bench.peers.args import PeerArgs, parse
from bench.peers.progress import Progress
from bench.peers.scoring import Scorer
from worker.alerts import Alert, to_json
from worker.settings import Settings

ACCOUNT = "account"  # one state document per account (the message key)


class StateScorer:
    """The stateful ``apply``: one event in, its alert (JSON bytes) or None out."""

    def __init__(self, scorer: Scorer, event_topics: dict[str, str], progress: Progress) -> None:
        self.scorer = scorer
        self.types = event_topics
        self.progress = progress

    def __call__(self, raw: bytes, state: State[str, Any]) -> bytes | None:
        ctx = message_context()
        alert = self._handle(raw, state, (ctx.topic, ctx.partition, ctx.offset))
        self.progress.processed(alerts=alert is not None)
        return None if alert is None else to_json(alert)

    def _handle(
        self, raw: bytes, state: State[str, Any], source: tuple[str, int, int]
    ) -> Alert | None:
        scorer = self.scorer
        event = scorer.parse(self.types[source[0]], raw)
        now = time.time()
        now_bucket = scorer.now_bucket(now)
        doc: account.Doc = state.get(ACCOUNT) or account.new_doc()
        if not account.apply(scorer, doc, event, now_bucket):
            return None
        scored = account.rescore(scorer, doc, event, source, now, now_bucket)
        state.set(ACCOUNT, doc)
        self.progress.scored(event.account_id, scored.score, account.tier(doc))
        return scored.alert


def _input_topic(app: Application, name: str) -> Topic:
    topic = app.topic(name, value_deserializer="bytes")
    # The embedded broker answers DescribeConfigs with nothing, and Quix derives the
    # (unused, changelogs are off) changelog config of a stateful step from the input
    # topics' retention: without it registering the state store fails on a KeyError.
    topic.broker_config.extra_config.setdefault("retention.ms", "-1")
    return topic


def build_app(settings: Settings, args: PeerArgs) -> tuple[Application, Progress]:
    app = Application(
        broker_address=settings.kafka_bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.data_dir,
        use_changelog_topics=False,
        loglevel="WARNING",
        # Merged topics are consumed time-aligned: when a partition's buffer runs dry,
        # Quix waits up to this long for a full batch (10k messages). Draining a finite
        # backlog, the default 1 s is spent idle on every last partial batch.
        consumer_poll_timeout=0.1,
        consumer_extra_config={
            "session.timeout.ms": settings.session_timeout_ms,
            # The embedded broker holds an empty fetch for the whole fetch wait even when
            # records arrive (see HEALTHSCORE_FETCH_MAX_WAIT_MS), and librdkafka backs off
            # a partition whose pre-fetch queue is full: with the defaults (500 ms wait,
            # 1 s back-off, 100k queued) the consumer stalls about a second at a time.
            "fetch.wait.max.ms": 50,
            "fetch.queue.backoff.ms": 10,
            "queued.min.messages": 1_000_000,
        },
    )
    progress = Progress(args.result, args.expect, args.scores)
    frames = [app.dataframe(_input_topic(app, name)) for name in settings.event_topics]
    sdf: StreamingDataFrame = frames[0]
    for other in frames[1:]:
        sdf = sdf.concat(other)
    alerts = app.topic(
        args.output_topic,
        value_serializer="bytes",
        config=TopicConfig(settings.topic_partitions, settings.topic_replication),
    )
    sdf = sdf.apply(StateScorer(Scorer(), settings.event_topics, progress), stateful=True)
    sdf.filter(lambda alert: alert is not None).to_topic(alerts)
    return app, progress


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(__doc__.splitlines()[0], argv)
    app, progress = build_app(Settings.from_env(), args)
    try:
        app.run()  # until SIGTERM
    finally:
        progress.write(final=True)


if __name__ == "__main__":
    main(sys.argv[1:])
