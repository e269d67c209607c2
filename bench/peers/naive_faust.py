"""Peer "naive-faust": the scoring job as people usually first write it with faust.

One agent over the four event topics takes one event at a time and talks to
Redis (redis-py asyncio) once per command, awaiting each reply:

* HINCRBYFLOAT each of the event's counters in its day bucket of the account's
  counter hash, ZADD (GT) its user / feature to the account's last-seen sets;
* read the windows back: HGETALL the counter hash (summed per window here),
  ZCOUNT the sets a window's components read, HGETALL the account's state
  (event types seen, last published tier);
* score with the project's own model and code, HSET score, seen type and, on
  a tier change, the new tier, and send the alert to the output topic.

No faust tables: Redis is the state, as in healthscore. Counter cells that left
every window are deleted when a read finds them; set members are not pruned
(ZCOUNT only counts the window anyway). Events are parsed, not validated (see
``bench.peers.scoring``).

    python -m bench.peers.naive_faust --result R --group G --output-topic T --expect N \
        --data-dir D [--key-prefix P] [--scores S]    # with HEALTHSCORE_* set as for healthscore
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

import faust
import orjson
from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from bench.peers.args import PeerArgs, parse
from bench.peers.progress import Progress
from bench.peers.scoring import Parsed, Scorer
from worker.alerts import Alert, to_json
from worker.settings import Settings


class NaiveScorer:
    """The per-event Redis round trips, apart from faust so the agent stays plain."""

    def __init__(
        self, redis: Redis, scorer: Scorer, key_prefix: str, progress: Progress | None = None
    ) -> None:
        self.redis = redis
        self.scorer = scorer
        self.prefix = key_prefix
        self.progress = progress

    async def handle(self, event: Parsed, source: tuple[str, int, int]) -> Alert | None:
        """Apply one event and rescore its account; the alert when its tier changed."""
        scorer, r = self.scorer, self.redis
        now = time.time()
        now_bucket = scorer.now_bucket(now)
        if event.bucket < scorer.keep_from(now_bucket):
            return None  # older than the longest window: it cannot change a score
        base = f"{self.prefix}:{event.account_id}"
        counters, state = f"{base}:c", f"{base}:s"
        for counter, delta in event.increments:
            await r.hincrbyfloat(counters, f"{event.bucket}|{counter}", delta)
        for name, member in event.members:
            # GT: a late event must not move a last-seen time backwards.
            await r.zadd(f"{base}:{name}", {member: event.ts}, gt=True)

        # decode_responses: replies are str (the stubs cannot know).
        cells: dict[str, str] = await r.hgetall(counters)  # type: ignore[assignment]
        sums, stale = scorer.window_sums(cells, now_bucket)
        if stale:
            await r.hdel(counters, *stale)
        distinct = {}
        for window in scorer.windows:
            since = scorer.since(now_bucket, window)
            distinct[window] = {
                name: await r.zcount(f"{base}:{name}", since, "+inf")
                for name in scorer.distinct_at[window]
            }
        fields: dict[str, str] = await r.hgetall(state)  # type: ignore[assignment]
        seen = {k[5:] for k in fields if k.startswith("seen:")} | {event.event_type}
        published = orjson.loads(fields["pub"]) if "pub" in fields else None

        scored = scorer.score(event, scorer.views(sums, distinct), seen, published, source, now)
        update: dict[FieldT, EncodableT] = {f"seen:{event.event_type}": 1}
        if scored.score is not None:
            update["score"] = scored.score
        if scored.published is not None:
            update["pub"] = orjson.dumps(scored.published)
        await r.hset(state, mapping=update)
        if self.progress is not None:
            tier = (scored.published or published or {}).get("tier")
            self.progress.scored(event.account_id, scored.score, tier)
        return scored.alert


def build_app(settings: Settings, args: PeerArgs) -> tuple[faust.App, Progress]:
    app = faust.App(
        args.group,
        broker=f"kafka://{settings.kafka_bootstrap}",
        datadir=args.data_dir,
        store="memory://",
        web_enabled=False,
        # The event topics exist with this many partitions: faust must agree.
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_ms / 1000,
        # faust's default is 0; 5 ms is what healthscore's alert producer and librdkafka
        # (Quix) use, so the three produce their alerts on equal terms.
        producer_linger=0.005,
    )
    types = settings.event_topics
    events = app.topic(
        *types,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.topic_partitions,
    )
    alerts = app.topic(
        args.output_topic,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.topic_partitions,
    )
    scorer = Scorer()
    progress = Progress(args.result, args.expect, args.scores)

    @app.agent(events)
    async def score(stream: faust.StreamT[bytes]) -> None:
        # faust declares the topics it consumes, not the ones it only sends to.
        await alerts.maybe_declare()
        redis = Redis.from_url(settings.redis_url, decode_responses=True)
        naive = NaiveScorer(redis, scorer, args.key_prefix, progress)
        try:
            async for event in stream.events():
                message = event.message
                parsed = scorer.parse(types[message.topic], event.value)
                source = (message.topic, message.partition, message.offset)
                alert = await naive.handle(parsed, source)
                if alert is not None:
                    await alerts.send(key=parsed.account_id.encode(), value=to_json(alert))
                progress.processed(alerts=alert is not None)
        finally:
            await redis.aclose()

    return app, progress


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(__doc__.splitlines()[0], argv)
    app, progress = build_app(Settings.from_env(), args)
    worker = faust.Worker(app, loglevel="warning", quiet=True, workdir=args.data_dir)
    try:
        worker.execute_from_commandline()  # until SIGTERM; exits by SystemExit
    finally:
        progress.write(final=True)


if __name__ == "__main__":
    main(sys.argv[1:])
