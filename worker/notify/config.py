"""The notifier's configuration: settings, overridden by command-line flags, checked once."""

from __future__ import annotations

import hashlib
import math
import string
from dataclasses import dataclass
from pathlib import Path

from worker.errors import ConfigError
from worker.settings import Settings, env_name

DIRECTIONS = ("any", "down", "up")


@dataclass(frozen=True, slots=True)
class Filters:
    """Which alerts reach Slack; the empty sets mean "all"."""

    tiers: frozenset[str] = frozenset()
    direction: str = "any"
    segments: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    webhook_url: str
    link_template: str
    timeout_seconds: float
    group_id: str
    filters: Filters
    digest_seconds: float

    def __repr__(self) -> str:  # the URL is a secret: never in a log or a traceback
        return f"NotifyConfig(webhook={self.webhook_id}, group_id={self.group_id!r})"

    @property
    def webhook_id(self) -> str:
        """A stable, non-secret name of the webhook: keys its ledger, names it in logs."""
        return hashlib.sha256(self.webhook_url.encode()).hexdigest()[:16]


def notify_config(settings: Settings) -> NotifyConfig:
    """Check the notifier's settings (flags already applied) and read the secrets file."""
    url = _webhook_url(settings)
    direction = settings.notify_direction.strip().lower()
    if direction not in DIRECTIONS:
        raise ConfigError(
            f"{env_name('notify_direction')}: {settings.notify_direction!r}"
            f" is not one of {', '.join(DIRECTIONS)}"
        )
    minutes = settings.notify_digest_minutes
    if not math.isfinite(minutes) or minutes <= 0:
        raise ConfigError(f"{env_name('notify_digest_minutes')} must be a number > 0")
    timeout = settings.slack_timeout_seconds
    if not math.isfinite(timeout) or timeout <= 0:
        raise ConfigError(f"{env_name('slack_timeout_seconds')} must be a number > 0")
    _check_template(settings.slack_link_template)
    if not settings.notify_group_id.strip():
        raise ConfigError(f"{env_name('notify_group_id')} must not be empty")
    filters = Filters(_names(settings.notify_tiers), direction, _names(settings.notify_segments))
    return NotifyConfig(
        url,
        settings.slack_link_template.strip(),
        timeout,
        settings.notify_group_id.strip(),
        filters,
        minutes * 60.0,
    )


def _webhook_url(settings: Settings) -> str:
    url, path = settings.slack_webhook_url.strip(), settings.slack_webhook_file.strip()
    if url and path:
        raise ConfigError(
            f"set one of {env_name('slack_webhook_url')} and"
            f" {env_name('slack_webhook_file')}, not both"
        )
    if path:
        try:
            url = Path(path).read_text("utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"{env_name('slack_webhook_file')}: cannot read {path!r} ({exc.strerror or exc})"
            ) from None
        if not url:
            raise ConfigError(f"{env_name('slack_webhook_file')}: {path!r} is empty")
    if not url:
        raise ConfigError(
            f"no Slack webhook: --webhook-url, {env_name('slack_webhook_url')}"
            f" or {env_name('slack_webhook_file')}"
        )
    if not url.startswith(("https://", "http://")):
        # Not echoed: a mistyped secret is still a secret.
        raise ConfigError("the Slack webhook URL must start with https:// (or http://)")
    return url


def _check_template(template: str) -> None:
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ConfigError(f"{env_name('slack_link_template')}: {exc}") from None
    if fields - {"account_id"}:
        raise ConfigError(
            f"{env_name('slack_link_template')}: only {{account_id}} can be"
            f" filled in, not {', '.join(sorted(fields - {'account_id'}))}"
        )


def _names(raw: str) -> frozenset[str]:
    return frozenset(part.strip() for part in raw.split(",") if part.strip())
