"""``healthscore notify slack``: flags over settings, then the notifier until a signal."""

from __future__ import annotations

import argparse
import asyncio
import signal

from worker.notify.config import notify_config
from worker.notify.delivery import Notifier
from worker.runtime.modeltopic import newest_models
from worker.settings import Settings

OVERRIDES = (
    "slack_webhook_url",
    "slack_webhook_file",
    "slack_link_template",
    "notify_group_id",
    "notify_tiers",
    "notify_direction",
    "notify_segments",
    "notify_digest_minutes",
)


def notify_slack(settings: Settings, args: argparse.Namespace) -> int:
    changes = {
        name: getattr(args, name) for name in OVERRIDES if getattr(args, name, None) is not None
    }
    # A flag naming the webhook one way replaces a setting naming it the other way.
    if "slack_webhook_url" in changes:
        changes.setdefault("slack_webhook_file", "")
    if "slack_webhook_file" in changes:
        changes.setdefault("slack_webhook_url", "")
    settings = settings.replace(**changes)
    config = notify_config(settings)
    model = asyncio.run(newest_models(settings))

    async def run() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await Notifier(settings, config, model, stop).run()

    asyncio.run(run())
    return 0
