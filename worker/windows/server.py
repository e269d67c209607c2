"""The Redis server as the worker uses it: a client whose every call is bounded, and how
durable a batch's writes must be before anything of the batch is published or committed.

Redis acknowledges a write once it is in memory. What survives after that depends
on how the server is run (see the README's Delivery section): a killed process
loses nothing the AOF has, but a machine crash under ``appendfsync everysec``, or a
failover to a replica the writes had not reached, loses acknowledged writes. The
worker commits its offsets after the writes, so those events would be gone for
good. ``wait`` closes that gap where it is configured: the batch goes on only once
N replicas (``WAIT``), and the AOF on disk (``WAITAOF``), have its writes.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError

from worker.errors import ConfigError, Retriable
from worker.settings import Settings, env_name, read_secret
from worker.windows import cluster, keys, wire

log = logging.getLogger(__name__)


def client(settings: Settings) -> wire.Client:
    """The Redis client of every command: the URL's user (ACL) and password, else the
    password file's; over rediss://, the server's certificate checked against the CA file."""
    password = read_secret(settings.redis_password_file) if settings.redis_password_file else ""
    return connect(
        settings.redis_url,
        settings.redis_timeout_seconds,
        ca_file=settings.redis_ca_file,
        password=password,
    )


def connect(url: str, timeout: float, *, ca_file: str = "", password: str = "") -> wire.Client:
    """A client on which every command, connect and handshake gives up after ``timeout``
    seconds with a retriable error. redis-py's own default depends on its version
    (none at all on 5), and its own retries would multiply the wait: the worker
    retries in one place (``worker.runtime.retry``), counted and with paused polling.
    A password in the URL wins over ``password``. A ``redis+cluster://`` URL gives a
    cluster client (``cluster_client``)."""
    options: dict[str, Any] = {}
    if password:
        options["password"] = password  # redis-py lets the URL's own override it
    if ca_file and url.startswith(("rediss://", "rediss+cluster://")):
        options["ssl_ca_certs"] = ca_file
    if url.startswith(CLUSTER_SCHEMES):
        return cluster_client(url, timeout, options)
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        **options,
    )


CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")


def cluster_client(url: str, timeout: float, options: dict[str, Any]) -> RedisCluster:
    """``redis+cluster://[user:password@]host:port[,host:port...]``: any primaries to
    learn the cluster's slot map from. The same bounds as one Redis: no retries of
    redis-py's own, and its reading of the slot map again after a MOVED is the
    worker's (``cluster``)."""
    scheme, _, rest = url.partition("://")
    credentials, _, hosts = rest.rpartition("@")
    nodes = []
    for address in hosts.rstrip("/").split(","):
        host, _, port = address.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(
                f"{env_name('redis_url')}: {address!r} is no host:port of a cluster node"
            )
        nodes.append(ClusterNode(host.strip("[]"), int(port)))
    if credentials:
        user, _, secret = credentials.partition(":")
        options["password"] = unquote(secret) if secret else options.get("password")
        options["username"] = unquote(user) or None
    return RedisCluster(
        startup_nodes=nodes,
        ssl=scheme == "rediss+cluster",
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        require_full_coverage=True,
        **options,
    )


@dataclass(frozen=True, slots=True)
class Durability:
    """How durable a batch's writes must be before it goes on (the defaults: as Redis
    acknowledged them, no wait)."""

    replicas: int = 0  # replicas that must have the writes (WAIT, or WAITAOF's second)
    aof: bool = False  # the writes fsynced to the primary's AOF (and the replicas', WAITAOF)
    timeout: float = 5.0  # seconds a wait may take before the batch is retried

    @classmethod
    def of(cls, settings: Settings) -> Durability:
        return cls(
            settings.redis_wait_replicas,
            settings.redis_wait_aof,
            settings.redis_wait_timeout_seconds,
        )

    @property
    def waits(self) -> bool:
        return self.replicas > 0 or self.aof

    def command(self) -> wire.Command:
        milliseconds = max(1, math.ceil(self.timeout * 1000))  # 0 would mean forever
        if self.aof:
            return ("WAITAOF", 1, self.replicas, milliseconds)
        return ("WAIT", self.replicas, milliseconds)


async def wait(redis: wire.Client, durability: Durability, deadline: float) -> None:
    """Until every write this process made so far is as durable as configured; else
    ``Retriable``, so nothing is published or committed on writes a failover could lose.

    ``WAIT`` counts the replication offset of its own connection's last write, and a
    batch writes over several connections. So one more write goes first, on the
    connection that waits: it is replicated after everything the batch wrote before
    it (all of which Redis has answered), and waiting for it waits for all of them.
    """
    if not durability.waits:
        return
    name = "WAITAOF" if durability.aof else "WAIT"
    try:
        if isinstance(redis, RedisCluster):  # each primary has its own replicas and AOF
            found = await cluster.wait_each(
                redis, durability.command(), durability.timeout + deadline
            )
        else:
            _, reply = await wire.execute(
                redis, [("INCR", keys.DURABLE), durability.command()], durability.timeout + deadline
            )
            found = [reply]
    except ResponseError as error:  # e.g. appendonly turned off since start-up
        raise Retriable(f"{name} failed: {error}") from None
    for reply in found:
        _acknowledged(name, durability, reply)


def _acknowledged(name: str, durability: Durability, reply: Any) -> None:
    local, replicas = (int(reply[0]), int(reply[1])) if durability.aof else (1, int(reply))
    if local < 1 or replicas < durability.replicas:
        raise Retriable(
            f"{name}: {replicas} of {durability.replicas} replicas"
            + (" and no local AOF fsync" if local < 1 else "")
            + f" acknowledged the writes within {durability.timeout} s"
        )


async def check(redis: wire.Client, durability: Durability, deadline: float) -> None:
    """At start-up: refuse a durability this server (each primary of a cluster) cannot
    give (``ConfigError``), warn when fewer replicas are connected than the wait asks for."""
    if not durability.waits:
        return
    asked: list[wire.Command] = [
        ("COMMAND", "INFO", "WAITAOF"),
        ("INFO", "persistence"),
        ("INFO", "replication"),
        ("INFO", "server"),
    ]
    if isinstance(redis, RedisCluster):
        for replies in await cluster.on_each_primary(redis, asked, deadline):
            _check(durability, *replies)
    else:
        _check(durability, *await wire.execute(redis, asked, deadline))


def _check(
    durability: Durability, has_waitaof: Any, persistence: Any, replication: Any, server: Any
) -> None:
    # Asked, not inferred from the version: forks number their versions their own way.
    if durability.aof and not any(has_waitaof):
        version = _info(server).get("redis_version", "?")
        raise ConfigError(
            f"{env_name('redis_wait_aof')}: this Redis ({version}) has no WAITAOF, which "
            "needs Redis 7.2 or later; upgrade it, or turn the setting off and run Redis "
            "with appendfsync always (see the README's Delivery section)"
        )
    if durability.aof and _info(persistence).get("aof_enabled") != "1":
        raise ConfigError(
            f"{env_name('redis_wait_aof')}: this Redis runs without "
            "appendonly, so no write would ever reach an AOF"
        )
    connected = int(_info(replication).get("connected_slaves", "0"))
    if connected < durability.replicas:
        log.warning(
            "%d Redis replicas connected, %d asked for (%s): each batch waits, "
            "and is retried, until enough of them have its writes",
            connected,
            durability.replicas,
            env_name("redis_wait_replicas"),
        )


def _info(reply: Any) -> dict[str, str]:
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {name: value.strip() for name, value in pairs}
