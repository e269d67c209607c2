"""What the worker checks about Redis before it consumes anything.

Credentials and permissions first: a refusal raises the client's own error, which
``worker.errors`` (the one place that decides) turns into ``AccessDenied``, not a
retry. Then persistence: without it a Redis restart silently undoes exactly-once.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, NamedTuple

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.exceptions import ResponseError

from worker.errors import PersistenceRequired
from worker.windows.store import WindowStore
from worker.windows.wire import Client

log = logging.getLogger(__name__)
# An account id no producer sends (ids cannot hold a space): the start-up read touches
# the same keys and commands as a real one, and finds nothing.
PROBE_ACCOUNT = "healthscore start-up check"
LOST = (
    "a Redis restart loses {what}, so events are lost or applied twice and alert seq"
    " numbers start over (exactly-once breaks silently)"
)
EVERYTHING = "every account's windows, attributes, offset fences and published tiers"
SINCE_SNAPSHOT = "the writes since the last snapshot (windows, offset fences, published tiers)"
FIX = "run Redis with an append-only file (appendonly yes, appendfsync everysec or always)"
REFUSE = "HEALTHSCORE_REQUIRE_REDIS_PERSISTENCE=true makes the worker refuse to start instead"


class Persistence(NamedTuple):
    """What Redis says about its persistence; None where it would not say."""

    aof: bool | None
    save_points: str | None


async def check_redis(redis: Client, store: WindowStore, *, require_persistence: bool) -> None:
    """Log in, load the script, read as the worker reads; then the persistence check."""
    await redis.ping()  # AUTH happens on connecting: a wrong password fails here
    await store.load_script()
    await store.read(PROBE_ACCOUNT, time.time())
    if isinstance(redis, RedisCluster):  # each primary keeps its own slots' writes
        for node in redis.get_primaries():
            check_persistence(
                await persistence(redis, node),
                f"cluster node {node.name}",
                require=require_persistence,
            )
    else:
        check_persistence(await persistence(redis), _where(redis), require=require_persistence)


async def persistence(redis: Client, node: ClusterNode | None = None) -> Persistence:
    """How ``redis`` (on a cluster: its primary ``node``) persists its writes."""
    # Managed Redis often disables or renames CONFIG (and some INFO): then unknown.
    aof: bool | None = None
    save: str | None = None
    on: dict[str, Any] = {} if node is None else {"target_nodes": node}
    with contextlib.suppress(ResponseError, ValueError):
        aof = bool(int((await redis.info("persistence", **on)).get("aof_enabled", 0)))
    with contextlib.suppress(ResponseError):
        save = _text(_field(await redis.config_get("save", **on), "save"))
        if aof is None:
            aof = _text(_field(await redis.config_get("appendonly", **on), "appendonly")) == "yes"
    return Persistence(aof, save)


def check_persistence(found: Persistence, where: str, *, require: bool) -> None:
    """Warn (or refuse, if ``require``) unless Redis is known to persist its writes."""
    if found.aof:
        log.info("Redis %s persists to an append-only file", where)
        return
    if found.aof is False and found.save_points:
        log.warning(
            "Redis %s persists by RDB snapshots only (save %s): %s; %s",
            where,
            found.save_points,
            LOST.format(what=SINCE_SNAPSHOT),
            FIX,
        )
        return
    if found.aof is False and found.save_points == "":
        problem = (
            f"Redis {where} has no persistence (no append-only file, no RDB save"
            f" points): {LOST.format(what=EVERYTHING)}"
        )
    else:
        problem = (
            f"Redis {where}: persistence could not be checked (INFO persistence or"
            " CONFIG GET is not allowed); if it has none, " + LOST.format(what=EVERYTHING)
        )
    if require:
        raise PersistenceRequired(f"{problem}; HEALTHSCORE_REQUIRE_REDIS_PERSISTENCE is set")
    log.warning("%s; %s (%s)", problem, FIX, REFUSE)


def _where(redis: Redis) -> str:
    # Host and port only: the URL may hold a password.
    kwargs = redis.connection_pool.connection_kwargs
    return str(kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}")


def _field(config: dict[Any, Any], name: str) -> Any:
    return config.get(name, config.get(name.encode()))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
