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

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError

from worker.errors import ConfigError, Retriable
from worker.settings import Settings, env_name, read_secret
from worker.windows import keys, wire

log = logging.getLogger(__name__)


def client(settings: Settings) -> Redis:
    """The Redis client of every command: the URL's user (ACL) and password, else the
    password file's; over rediss://, the server's certificate checked against the CA file."""
    password = read_secret(settings.redis_password_file) if settings.redis_password_file else ""
    return connect(settings.redis_url, settings.redis_timeout_seconds,
                   ca_file=settings.redis_ca_file, password=password)


def connect(url: str, timeout: float, *, ca_file: str = "", password: str = "") -> Redis:
    """A client on which every command, connect and handshake gives up after ``timeout``
    seconds with a retriable error. redis-py's own default depends on its version
    (none at all on 5), and its own retries would multiply the wait: the worker
    retries in one place (``worker.runtime.retry``), counted and with paused polling.
    A password in the URL wins over ``password``."""
    options: dict[str, Any] = {}
    if password:
        options["password"] = password  # redis-py lets the URL's own override it
    if ca_file and url.startswith("rediss://"):
        options["ssl_ca_certs"] = ca_file
    return Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                          retry=Retry(NoBackoff(), 0), **options)


@dataclass(frozen=True, slots=True)
class Durability:
    """How durable a batch's writes must be before it goes on (the defaults: as Redis
    acknowledged them, no wait)."""

    replicas: int = 0  # replicas that must have the writes (WAIT, or WAITAOF's second)
    aof: bool = False  # the writes fsynced to the primary's AOF (and the replicas', WAITAOF)
    timeout: float = 5.0  # seconds a wait may take before the batch is retried

    @classmethod
    def of(cls, settings: Settings) -> Durability:
        return cls(settings.redis_wait_replicas, settings.redis_wait_aof,
                   settings.redis_wait_timeout_seconds)

    @property
    def waits(self) -> bool:
        return self.replicas > 0 or self.aof

    def command(self) -> wire.Command:
        milliseconds = max(1, math.ceil(self.timeout * 1000))  # 0 would mean forever
        if self.aof:
            return ("WAITAOF", 1, self.replicas, milliseconds)
        return ("WAIT", self.replicas, milliseconds)


async def wait(redis: Redis, durability: Durability, deadline: float) -> None:
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
        _, reply = await wire.execute(redis, [("INCR", keys.DURABLE), durability.command()],
                                      durability.timeout + deadline)
    except ResponseError as error:  # e.g. appendonly turned off since start-up
        raise Retriable(f"{name} failed: {error}") from None
    local, replicas = (int(reply[0]), int(reply[1])) if durability.aof else (1, int(reply))
    if local < 1 or replicas < durability.replicas:
        raise Retriable(
            f"{name}: {replicas} of {durability.replicas} replicas"
            + (" and no local AOF fsync" if local < 1 else "")
            + f" acknowledged the writes within {durability.timeout} s")


async def check(redis: Redis, durability: Durability, deadline: float) -> None:
    """At start-up: refuse a durability this server cannot give (``ConfigError``), warn
    when fewer replicas are connected than the wait asks for."""
    if not durability.waits:
        return
    has_waitaof, persistence, replication = await wire.execute(
        redis, [("COMMAND", "INFO", "WAITAOF"), ("INFO", "persistence"),
                ("INFO", "replication")], deadline)
    # Asked, not inferred from the version: forks number their versions their own way.
    if durability.aof and not any(has_waitaof):
        version = _info(await wire.execute(redis, [("INFO", "server")], deadline)).get(
            "redis_version", "?")
        raise ConfigError(
            f"{env_name('redis_wait_aof')}: this Redis ({version}) has no WAITAOF, which "
            "needs Redis 7.2 or later; upgrade it, or turn the setting off and run Redis "
            "with appendfsync always (see the README's Delivery section)")
    if durability.aof and _info(persistence).get("aof_enabled") != "1":
        raise ConfigError(f"{env_name('redis_wait_aof')}: this Redis runs without "
                          "appendonly, so no write would ever reach an AOF")
    connected = int(_info(replication).get("connected_slaves", "0"))
    if connected < durability.replicas:
        log.warning("%d Redis replicas connected, %d asked for (%s): each batch waits, "
                    "and is retried, until enough of them have its writes",
                    connected, durability.replicas, env_name("redis_wait_replicas"))


def _info(reply: Any) -> dict[str, str]:
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {name: value.strip() for name, value in pairs}
