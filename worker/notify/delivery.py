"""consume -> post -> commit: the notifier's loop on its own consumer group.

Per batch of alert records: one Redis read of the ids Slack acknowledged already,
then each record in order: skipped (a duplicate, filtered out, not an alert),
posted on its own (retried until Slack answers 2xx), or held in the digest. After
a 2xx the alert ids are written to the ledger, and only then are offsets committed,
never past a record still held. A crash therefore re-reads at most what was not
committed; the ledger keeps what Slack acknowledged from being posted again. The
one window left: Slack answered 2xx and the process died before the ledger write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from typing import Any

import orjson
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError

from worker.errors import is_retriable
from worker.gaps import is_data_gap
from worker.notify.config import NotifyConfig
from worker.notify.digest import Digest, Place, digest_message
from worker.notify.format import alert_message
from worker.notify.ledger import Ledger
from worker.notify.offsets import Offsets, Partition
from worker.notify.route import Route, route
from worker.notify.slack import SlackPoster, Stopped
from worker.runtime import kafka
from worker.scoring.model import Model
from worker.scoring.segments import ModelSet, as_model_set
from worker.settings import Settings
from worker.windows import server

log = logging.getLogger(__name__)
SHUTDOWN_FLUSH_SECONDS = 10.0


class Notifier:
    def __init__(
        self, settings: Settings, config: NotifyConfig, model: Model | ModelSet, stop: asyncio.Event
    ) -> None:
        self.models = as_model_set(model)
        self.settings, self.config, self.model, self.stop = (
            settings,
            config,
            self.models.default,
            stop,
        )
        self.tiers = list(dict.fromkeys(t.name for m in self.models.all() for t in m.tiers))
        self.offsets = Offsets()
        self.digest = Digest()
        self.counts: Counter[str] = Counter()

    async def run(self) -> None:
        s, c = self.settings, self.config
        redis = server.client(s)
        self.ledger = Ledger(
            redis, c.webhook_id, max_backoff=s.retry_backoff_max_seconds, stop=self.stop
        )
        self.consumer = kafka.consumer(
            s,
            group_id=c.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=s.session_timeout_ms,
            max_poll_interval_ms=s.max_poll_interval_ms,
            fetch_max_wait_ms=s.fetch_max_wait_ms,
        )
        self.consumer.subscribe([s.topic_alerts], listener=_Revoked(self))
        try:
            async with SlackPoster(
                c.webhook_url,
                timeout=c.timeout_seconds,
                max_backoff=s.retry_backoff_max_seconds,
                stop=self.stop,
                webhook_id=c.webhook_id,
            ) as self.poster:
                await self.consumer.start()
                log.info(
                    "notifying Slack webhook %s from %s (group %s)",
                    c.webhook_id,
                    s.topic_alerts,
                    c.group_id,
                )
                with contextlib.suppress(Stopped):  # stopping while a post waits to retry
                    await self._loop()
                await self._shutdown_flush()
        finally:
            await self.consumer.stop()
            await redis.aclose()
            self.counts["retries"] = getattr(getattr(self, "poster", None), "retries", 0)
            log.info("stopped: %s", ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())))

    async def _loop(self) -> None:
        while not self.stop.is_set():
            batches = await self.consumer.getmany(timeout_ms=500, max_records=200)
            for tp, records in batches.items():
                await self._handle_batch(tp.topic, tp.partition, records)
            if self.digest.due(time.monotonic(), self.config.digest_seconds):
                await self._flush_digest(self.stop)
            await self._commit()

    async def _handle_batch(self, topic: str, partition: int, records: list[Any]) -> None:
        alerts = [(r.offset, _decode(r.value)) for r in records]
        ids = [str(a["alert_id"]) for _, a in alerts if a is not None]
        posted = await self.ledger.posted(ids)
        for offset, alert in alerts:
            if self.stop.is_set():
                return
            place = (topic, partition, offset)
            if alert is None and _data_gap(records, offset):
                # An outage of an event type, not an account's news: the worker's own
                # metric and record serve operators; people hear of the changes it held.
                self._done(place, "data_gaps")
            elif alert is None:
                log.warning(
                    "skipped a record that is not an alert at %s/%d@%d", topic, partition, offset
                )
                self._done(place, "not_alerts")
            elif alert["alert_id"] in posted or self.digest.holds(alert["alert_id"]):
                self._done(place, "duplicates")
            else:
                await self._handle(alert, place, posted)

    async def _handle(self, alert: dict[str, Any], place: Place, posted: set[str]) -> None:
        try:
            where = route(
                alert,
                self.config.filters,
                self.tiers,
                now=time.time(),
                stale_after=self.settings.catch_up_lag_seconds,
            )
            # Its window lengths are those of the segment model that decided it.
            model = self.models.for_segment((alert.get("model") or {}).get("segment"))
            payload = alert_message(alert, model, self.config.link_template)
        except (LookupError, TypeError, ValueError, AttributeError) as exc:
            # Someone else's record on the alerts topic: it can never be posted.
            log.warning(
                "skipped a malformed alert at %s/%d@%d (%s: %s)", *place, type(exc).__name__, exc
            )
            self._done(place, "not_alerts")
            return
        if where is Route.DROP:
            self._done(place, "filtered")
        elif where is Route.DIGEST:
            self.digest.add(alert, place, time.monotonic())
            self.offsets.hold((place[0], place[1]), place[2])
        else:
            what = f"alert {alert['alert_id']} ({alert['account_id']})"
            answer = await self.poster.post(payload, what)
            if answer.ok:
                await self.ledger.record([alert["alert_id"]])
                posted.add(alert["alert_id"])
                log.info("posted %s", what)
                self._done(place, "posted")
            else:
                log.error("Slack rejected %s (%d %s): skipped", what, answer.status, answer.body)
                self._done(place, "rejected")

    def _done(self, place: Place, count: str) -> None:
        self.counts[count] += 1
        self.offsets.done((place[0], place[1]), place[2])

    async def _flush_digest(self, stop: asyncio.Event) -> None:
        if not self.digest.places:
            return
        alerts = self.digest.alerts
        payload = digest_message(
            alerts, self.config.digest_seconds / 60.0, self.config.link_template, self.tiers
        )
        answer = await self.poster.post(payload, f"digest of {len(alerts)} alerts", stop)
        if answer.ok:
            await self.ledger.record([str(a["alert_id"]) for a in alerts])
            self.counts["digests"] += 1
            self.counts["digested"] += len(alerts)
        else:
            log.error(
                "Slack rejected a digest of %d alerts (%d %s): skipped",
                len(alerts),
                answer.status,
                answer.body,
            )
            self.counts["rejected"] += len(alerts)
        self.offsets.release(self.digest.places)
        self.digest = Digest()

    async def _shutdown_flush(self) -> None:
        """Post what the digest holds before exiting, for a bounded time; unposted, its
        alerts stay uncommitted and the next start reads them again."""
        drain = asyncio.Event()
        timer = asyncio.get_running_loop().call_later(SHUTDOWN_FLUSH_SECONDS, drain.set)
        try:
            await self._flush_digest(drain)
        except Stopped:
            log.warning("the digest could not be posted before exiting; it will be next time")
        finally:
            timer.cancel()
        await self._commit()

    async def _commit(self) -> None:
        positions = self.offsets.to_commit()
        if not positions:
            return
        offsets = {TopicPartition(t, p): n for (t, p), n in positions.items()}
        try:
            await self.consumer.commit(offsets)
        except CommitFailedError as exc:  # a rebalance: the next owner re-reads, the ledger skips
            log.warning("commit refused (%s); the records are read again", exc)
            return
        except Exception as exc:
            if not is_retriable(exc):
                raise
            log.warning(
                "commit failed (%s: %s); retried with the next one", type(exc).__name__, exc
            )
            return
        self.offsets.committed(positions)

    async def revoked(self, partitions: set[Partition]) -> None:
        await self._commit()
        self.digest.drop_partitions(partitions)
        self.offsets.drop(partitions)


class _Revoked(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._notifier.revoked({(tp.topic, tp.partition) for tp in revoked})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None


def _data_gap(records: list[Any], offset: int) -> bool:
    value = next(r.value for r in records if r.offset == offset)
    try:
        return is_data_gap(orjson.loads(value or b"null"))
    except orjson.JSONDecodeError:
        return False


def _decode(value: bytes | None) -> dict[str, Any] | None:
    try:
        alert = orjson.loads(value or b"null")
    except orjson.JSONDecodeError:
        return None
    needed = ("alert_id", "account_id", "tier", "score")
    if not isinstance(alert, dict) or any(k not in alert for k in needed):
        return None
    return alert
