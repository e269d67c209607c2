"""One post to the Slack webhook, with the notifier's retry policy.

slack_sdk's ``AsyncWebhookClient`` speaks the webhook protocol; its built-in retry
handlers are turned off (``retry_handlers=[]``) and the policy is here instead,
because the notifier must retry for as long as it takes: an alert is committed only
after a 2xx, and the built-in handlers give up after a fixed count and do not retry a
timeout. The policy:

* 2xx: acknowledged.
* 429: wait ``Retry-After`` seconds (1 when absent, at most ``MAX_RETRY_AFTER``), again.
* 5xx, a timeout, a connection error: capped exponential back-off, again.
* 400, 413, 422 (``invalid_payload``, too large, ...): this message can never be
  posted; it is logged, counted and skipped (``Rejected``), never retried forever.
* any other 4xx (403 ``action_prohibited``, 404 ``no_service``, 410
  ``channel_is_archived``, ...): the webhook itself is refused, and every alert would
  be refused with it. The notifier stops (``WebhookRefused``) without committing, so
  the alerts are posted once the webhook is fixed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.webhook.async_client import AsyncWebhookClient

from worker.errors import ConfigError

log = logging.getLogger(__name__)
MAX_RETRY_AFTER = 300.0
REJECTED = frozenset({400, 413, 422})


class WebhookRefused(ConfigError):
    """Slack refuses the webhook (revoked, channel archived, posting prohibited)."""


class Stopped(Exception):
    """Asked to stop while waiting to retry a post: nothing was acknowledged."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class SlackPoster:
    def __init__(
        self, url: str, *, timeout: float, max_backoff: float, stop: asyncio.Event, webhook_id: str
    ) -> None:
        self._url, self._timeout, self._max_backoff = url, timeout, max_backoff
        self._stop, self.webhook_id = stop, webhook_id
        self._session: aiohttp.ClientSession | None = None
        self._client: AsyncWebhookClient | None = None
        self.retries = 0

    async def __aenter__(self) -> SlackPoster:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        quiet = logging.getLogger("worker.notify.slack_sdk")
        # slack_sdk logs the URL (a secret) at DEBUG when its logger's own level allows it.
        quiet.setLevel(logging.WARNING)
        self._client = AsyncWebhookClient(
            self._url, session=self._session, retry_handlers=[], logger=quiet
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(
        self, payload: dict[str, Any], what: str, stop: asyncio.Event | None = None
    ) -> Answer:
        """Post until Slack answers 2xx or rejects this message (``Answer`` not ok);
        raises ``WebhookRefused``, or ``Stopped`` when ``stop`` (default: the poster's)
        is set while it waits to retry."""
        assert self._client is not None, "use the poster as an async context manager"
        delay = 0.5
        while True:
            try:
                response = await self._client.send_dict(payload)
            except aiohttp.InvalidURL:
                raise ConfigError("the Slack webhook URL is not a valid URL") from None
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                wait, why = _jitter(delay), f"{type(exc).__name__} (no answer)"
                delay = min(delay * 2, self._max_backoff)
            else:
                answer = Answer(response.status_code, str(response.body or "")[:200])
                if answer.ok or answer.status in REJECTED:
                    return answer
                if answer.status == 429:
                    wait, why = _retry_after(response.headers), "429 rate limited"
                elif answer.status >= 500:
                    wait, why = _jitter(delay), f"{answer.status} {answer.body}"
                    delay = min(delay * 2, self._max_backoff)
                else:
                    raise WebhookRefused(
                        f"Slack refused webhook {self.webhook_id} ({answer.status}"
                        f" {answer.body}): check HEALTHSCORE_SLACK_WEBHOOK_URL; nothing was"
                        " committed, the alerts are posted once it works"
                    )
            self.retries += 1
            log.warning("Slack: %s for %s; retrying in %.1f s", why, what, wait)
            await _pause(wait, stop or self._stop)


async def _pause(seconds: float, stop: asyncio.Event) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return
    raise Stopped()


def _retry_after(headers: Any) -> float:
    raw = None
    for key, value in (headers or {}).items():
        if str(key).lower() == "retry-after":
            raw = value
    try:
        seconds = float(raw) if raw is not None else 1.0
    except (TypeError, ValueError):
        seconds = 1.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _jitter(seconds: float) -> float:
    return seconds * random.uniform(0.8, 1.2)
