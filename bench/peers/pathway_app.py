"""Peer "pathway": the scoring job written the Pathway 0.33 way.

Pathway's Kafka input (librdkafka) reads the four event topics into one table of raw
records, committed into the computation every second (``autocommit_duration_ms``).
``groupby`` on the message key (the account) and a custom stateful reducer
(``pw.reducers.stateful_many``) keep each account's windows in the reducer's state,
one document per account as ``bench.peers.account`` lays it out. Pathway calls the
reducer once per account and commit with every event of the account in it: all of
them go into the windows, then the account is rescored once, as healthscore does
with its batches. The reducer's value also carries the alerts of that rescore;
``flatten`` turns them into rows and Pathway's Kafka output writes the new ones to
the peer's output topic.

The state is ``(commit, alerts, document)``: the document is a ``pw.PyObjectWrapper``
(a Python object the engine holds without converting it) updated in place, and the
commit number makes each new value differ from the last, so the engine never takes
the update for a no-op.

Pathway's Kafka input takes one topic a reader: four readers, each in a consumer group
of its own named after ``--group``, concatenated. Nothing is persisted. Events are parsed with orjson, not validated (see ``bench.peers.scoring``).

    python -m bench.peers.pathway_app --result R --group G --output-topic T --expect N \
        --data-dir D [--scores S]    # with HEALTHSCORE_* set as for healthscore
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

import pathway as pw

from bench.ceiling import LIBRDKAFKA_TUNING
from bench.peers import account
from bench.peers.args import PeerArgs, parse
from bench.peers.progress import Progress
from bench.peers.scoring import Scorer
from worker.alerts import to_json
from worker.settings import Settings

log = logging.getLogger(__name__)

COMMIT_MS = 1000
State = tuple[int, tuple[bytes, ...], pw.PyObjectWrapper[account.Doc]]
Rows = list[tuple[list[Any], int]]


class AccountReducer:
    """The ``stateful_many`` combiner: an account's state and one commit's events in,
    its new state out."""

    def __init__(self, scorer: Scorer, types: dict[str, str], progress: Progress) -> None:
        self.scorer = scorer
        self.types = types
        self.progress = progress

    def __call__(self, state: State | None, rows: Rows) -> State:
        self.progress.started()
        scorer = self.scorer
        commit, doc = (0, account.new_doc()) if state is None else (state[0], state[2].value)
        now = time.time()
        now_bucket = scorer.now_bucket(now)
        cause = None
        for (data, meta), count in rows:
            if count <= 0:
                continue  # the input only appends: nothing is ever retracted
            source = meta.value
            event = scorer.parse(self.types[source["topic"]], data)
            if account.apply(scorer, doc, event, now_bucket):
                cause = event, (source["topic"], source["partition"], source["offset"])
        alerts: tuple[bytes, ...] = ()
        if cause is not None:
            event, where = cause
            scored = account.rescore(scorer, doc, event, where, now, now_bucket)
            self.progress.scored(event.account_id, scored.score, account.tier(doc))
            alerts = () if scored.alert is None else (to_json(scored.alert),)
        self.progress.processed(
            alerts=len(alerts), events=len(rows), rescores=0 if cause is None else 1
        )
        wrapped = state[2] if state is not None else pw.PyObjectWrapper(doc)
        return commit + 1, alerts, wrapped


def _alerts_of(state: State) -> tuple[bytes, ...]:
    return state[1]


def _read(settings: Settings, group: str, topic: str) -> pw.Table[Any]:
    """One event topic (Pathway's Kafka input takes one topic a reader), in a consumer
    group of its own: readers sharing one would rebalance it as each joins."""
    rdkafka = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": f"{group}.{topic}",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": str(settings.session_timeout_ms),
        # The embedded broker holds an empty fetch for the whole fetch wait, and
        # librdkafka's defaults then stall each partition about a second at a time.
        **{k: str(v) for k, v in LIBRDKAFKA_TUNING.items()},
    }
    table: pw.Table[Any] = pw.io.kafka.read(
        rdkafka,
        topic=topic,
        format="raw",
        with_metadata=True,
        autocommit_duration_ms=COMMIT_MS,
        name=f"events-{topic}",
    )
    return table


def build(settings: Settings, args: PeerArgs, progress: Progress) -> None:
    """The computation graph: Kafka in, per-account reduce, alerts to Kafka."""
    types = settings.event_topics
    events = pw.Table.concat_reindex(*(_read(settings, args.group, topic) for topic in types))
    # The stubs bound the state to the engine's plain values; a wrapped object is one too.
    reducer = pw.reducers.stateful_many(AccountReducer(Scorer(), types, progress))  # type: ignore[type-var]
    accounts = events.groupby(pw.this.key).reduce(
        pw.this.key, state=reducer(pw.this.data, pw.this._metadata)
    )
    alerts = accounts.select(
        pw.this.key,
        alert=pw.apply_with_type(_alerts_of, tuple[bytes, ...], pw.this.state),
    ).flatten(pw.this.alert)
    # A rescore replaces the account's alerts of the one before: only the new ones go out.
    new = alerts.to_stream().filter(pw.this.is_upsert)
    producer = {"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": "5"}
    pw.io.kafka.write(
        new, producer, args.output_topic, format="raw", key=new.key, value=new.alert, name="alerts"
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(__doc__.splitlines()[0], argv)
    # Pathway reads for up to a commit before the reducer sees the first event: that
    # second is counted, so the figure can only understate Pathway.
    progress = Progress(args.result, args.expect, args.scores, lead_s=COMMIT_MS / 1000)
    build(Settings.from_env(), args, progress)
    try:
        pw.run(monitoring_level=pw.MonitoringLevel.NONE)
    except SystemExit as stop:
        # Pathway turns SIGTERM, which the bench stops every peer with, into this exit
        # once the engine has shut down cleanly.
        if stop.code != 128 + signal.SIGTERM:
            raise
        log.info("stopped")
    finally:
        progress.write(final=True)


if __name__ == "__main__":
    main(sys.argv[1:])
