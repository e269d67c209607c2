"""Redis side of a replay: wipe derived state, keep what consumers were told, and walk
every known account. Each step goes in chunks over SCAN, never one huge reply.

What survives a reset is what consumers were told or promised: each account's
last published tier (``pub``), so the alert chain (``seq``) they de-duplicate on
goes on where it stopped, and its outbox of alerts not yet known sent, with the
index of those (the next live owner sends them).
Everything else (windows, offset fences, event ids, attributes, caches, the
expiry schedule) is rebuilt from the topics; the tier indexes from the published
tiers (``reindex``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from worker.scoring.tierchange import Published
from worker.windows import keys, wire
from worker.windows import published as published_tier
from worker.windows.wire import Client

SCAN_COUNT = 1000
EXCHANGE_SECONDS = 60.0  # one chunk's commands: a rebuild is no hot path

# Keep the published tier with the higher seq: an alert read back from the topic
# must never roll the chain back behind what Redis already holds.
_KEEP_NEWER = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and cjson.decode(current)['seq'] >= tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""


async def _chunks(redis: Client, match: str) -> AsyncIterator[list[str]]:
    chunk: list[str] = []
    async for key in redis.scan_iter(match=match, count=SCAN_COUNT):
        chunk.append(key.decode() if isinstance(key, bytes) else key)
        if len(chunk) >= SCAN_COUNT:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def reset(redis: Client) -> int:
    """Delete every healthscore key but published tiers and outboxes; returns accounts
    whose published tier was kept.

    A state hash loses its other fields by ``HDEL`` rather than being deleted and
    written back: a reset cut off at any point (a killed replay, a dropped connection
    mid-pipeline) never leaves an account without the tier consumers were told, and
    running it again finishes the job."""
    kept = 0
    async for chunk in _chunks(redis, keys.ALL_KEYS):
        states = [k for k in chunk if keys.account_of_state_key(k) is not None]
        others = [
            k for k in chunk if keys.account_of_state_key(k) is None and not keys.is_pending_key(k)
        ]
        async with redis.pipeline(transaction=False) as pipe:
            for key in states:
                pipe.hkeys(key)
            fields = await pipe.execute()
        async with redis.pipeline(transaction=False) as pipe:
            for key in others:  # one by one: on a Redis Cluster they span slots
                pipe.unlink(key)
            for key, names in zip(states, fields, strict=True):
                if doomed := [name for name in names if not _promised(name)]:
                    pipe.hdel(key, *doomed)
                kept += keys.PUBLISHED.encode() in names
            await pipe.execute()
    return kept


async def reindex(redis: Client) -> int:
    """Build the tier indexes (``keys.tier_key``) afresh from the published tiers;
    returns the accounts indexed. A reset drops them with everything derived; run after
    the published tiers are seeded, it puts every account back under its ``pub``."""
    async for chunk in _chunks(redis, keys.TIER_KEYS):
        async with redis.pipeline(transaction=False) as pipe:
            for key in chunk:  # one by one: on a Redis Cluster they span slots
                pipe.unlink(key)
            await pipe.execute()
    indexed = 0
    async for chunk in _chunks(redis, keys.state_key("*")):
        names = [a for k in chunk if (a := keys.account_of_state_key(k)) is not None]
        async with redis.pipeline(transaction=False) as pipe:
            for account in names:
                pipe.hget(keys.state_key(account), keys.PUBLISHED)
            published = await pipe.execute()
        by_tier: dict[str, dict[str, int]] = {}
        for account, pub in zip(names, published, strict=True):
            if pub is not None:
                by_tier.setdefault(published_tier.decode(pub).tier, {})[account] = 0
        if by_tier:
            async with redis.pipeline(transaction=False) as pipe:
                for tier, members in by_tier.items():
                    pipe.zadd(keys.tier_key(tier), members)
                await pipe.execute()
        indexed += sum(len(m) for m in by_tier.values())
    return indexed


def _promised(field: bytes) -> bool:
    name = field.decode()
    return name == keys.PUBLISHED or name.startswith(keys.OUTBOX_PREFIX)


async def seed_published(redis: Client, alerts: Iterable[dict[str, Any]]) -> int:
    """Remember each account's newest alert as its published tier, unless Redis knows a
    newer one: a rebuild into an empty Redis then continues the chain consumers saw."""
    newest: dict[str, dict[str, Any]] = {}
    for alert in alerts:
        account = alert["account_id"]
        if account not in newest or alert["seq"] > newest[account]["seq"]:
            newest[account] = alert
    if not newest:
        return 0
    keep_newer = await redis.script_load(_KEEP_NEWER)  # on every primary of a cluster
    calls: list[wire.Command] = [
        (
            "EVALSHA",
            keep_newer,
            1,
            keys.state_key(account),
            keys.PUBLISHED,
            alert["seq"],
            published_tier.encode(_snapshot(alert)),
        )
        for account, alert in newest.items()
    ]
    written = 0
    for at in range(0, len(calls), SCAN_COUNT):  # redis-py's cluster pipeline has no EVALSHA
        replies = await wire.execute(redis, calls[at : at + SCAN_COUNT], EXCHANGE_SECONDS)
        written += sum(int(w) for w in replies)
    return written


def _snapshot(alert: dict[str, Any]) -> Published:
    """The published-tier snapshot (see ``scoring.tierchange.snapshot``) an alert carries."""
    return published_tier.of_alert(alert)


async def accounts(
    redis: Client, *, forget: str | None = None
) -> AsyncIterator[list[tuple[int | None, str]]]:
    """Every account with a state hash, in chunks of (input partition, account);
    ``forget`` names a state field to drop on the way (a finished replay's trail)."""
    async for chunk in _chunks(redis, keys.state_key("*")):
        names = [a for k in chunk if (a := keys.account_of_state_key(k)) is not None]
        async with redis.pipeline(transaction=False) as pipe:
            for account in names:
                pipe.hkeys(keys.state_key(account))
                if forget is not None:
                    pipe.hdel(keys.state_key(account), forget)
            replies = await pipe.execute()
        fields = replies[::2] if forget is not None else replies
        yield [
            (keys.partition_of([f.decode() for f in names_of]), account)
            for account, names_of in zip(names, fields, strict=True)
        ]
