"""The per-tier index the account API pages through (``hs:tier:{T}``): each account
under its last published tier, moved in the same MULTI that saves a new tier (so it
never disagrees with ``pub``), rebuilt from the ``pub`` fields by a replay."""

from __future__ import annotations

from collections.abc import Sequence

from worker.windows import keys, wire
from worker.windows.wire import Client


def move(account_id: str, previous: str | None, tier: str) -> list[wire.Command]:
    """From ``previous`` (None: a first tier) to ``tier``."""
    commands: list[wire.Command] = []
    if previous is not None:
        commands.append(("ZREM", keys.tier_key(previous), account_id))
    commands.append(("ZADD", keys.tier_key(tier), 0, account_id))
    return commands


class TierIndex:
    def __init__(self, redis: Client, timeout: float) -> None:
        self._redis = redis
        self._timeout = timeout

    async def counts(self, tiers: Sequence[str]) -> dict[str, int]:
        """Accounts per published tier: one ZCARD each, no scan."""
        replies = await wire.execute(
            self._redis, [("ZCARD", keys.tier_key(t)) for t in tiers], self._timeout
        )
        return {tier: int(count) for tier, count in zip(tiers, replies, strict=True)}
