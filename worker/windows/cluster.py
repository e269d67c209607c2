"""Exchanges with a Redis Cluster: each command goes to the primary holding its key's
hash slot, every node's share in one pipelined write, all nodes at once.

The key layout keeps whatever must be written together in one slot (an account's
keys share ``{account_id}``, the apply script touches only those), so the cluster
needs no cross-slot transaction for exactly-once. Two things a single Redis gives
for free are kept here by other means:

- **Order across keys.** One connection runs commands in the order sent; commands
  for different nodes run at the same time. A caller that needs an order across
  keys (the outbox's index before the alert it names) marks runs of commands
  (``ordered``): each run is cut where its node changes, and the n-th piece of
  every run goes out in the n-th wave, one wave after the other. A wave with an
  error reply ends the exchange: nothing ordered after it is sent.
- **MULTI across slots.** A MULTI ... EXEC block whose commands share a slot is
  sent as it is; one spanning slots (a new tier and its move between the tier
  indexes) loses its atomicity and is sent as its commands, in order, with the
  replies a transaction would have given. What that leaves open is closed where
  the block is made (``windows.outbox``: a resent alert moves its account again).

A reply saying the slot moved (MOVED, ASK) makes the client read the cluster's slot
map again, and the exchange is retried as a whole (``Retriable``), as are replies
that the cluster is down (CLUSTERDOWN, while a primary without a replica is away)
or busy (TRYAGAIN): every write of the hot path is fenced or idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import defaultdict
from collections.abc import Coroutine, Sequence
from typing import Any, NamedTuple

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.exceptions import AskError, ClusterDownError, RedisError, TryAgainError

from worker.errors import Retriable
from worker.windows import exchange, keys
from worker.windows.exchange import Command

log = logging.getLogger(__name__)

_QUEUED = b"QUEUED"
_SCRIPTS = frozenset({b"EVALSHA", b"EVAL", b"EVALSHA_RO", b"EVAL_RO", b"FCALL", b"FCALL_RO"})


class _Routed(NamedTuple):
    at: int  # its place in the caller's list (replies go back there)
    command: Command
    node: ClusterNode


class _Split(NamedTuple):
    """A MULTI block sent as its commands: where its MULTI, commands and EXEC were."""

    multi: int
    inner: list[int]
    exec: int


def slot_of(command: Command) -> int | None:
    """The hash slot of the command's key (a script's first key); None: it has none."""
    name = _bytes(command[0]).upper()
    if name in _SCRIPTS:
        return key_slot(_bytes(command[3])) if int(command[2]) > 0 else None
    return key_slot(_bytes(command[1])) if len(command) > 1 else None


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode() if not isinstance(value, str) else value.encode()


async def execute(
    client: RedisCluster, commands: Sequence[Command], deadline: float, ordered: Sequence[int] = ()
) -> list[Any]:
    """``wire.execute`` for a cluster: the same replies, in the same places."""
    await client.initialize()  # the slot map, read once (and again after a MOVED)
    routed, splits = _route(client, commands)
    replies: list[Any] = [None] * len(commands)
    for split in splits:
        replies[split.multi] = b"OK"
    try:
        async with asyncio.timeout(deadline):
            for wave in _waves(routed, len(commands), ordered):
                await _run_wave(wave, replies)
    except (AskError, ClusterDownError, TryAgainError) as error:
        if isinstance(error, AskError):  # MOVED too: the slots moved, read the map again
            with contextlib.suppress(RedisError, OSError):  # the retry reads it if not now
                await client.nodes_manager.initialize()
        raise Retriable(f"Redis Cluster: {error}") from None
    for split in splits:
        replies[split.exec] = [replies[at] for at in split.inner]
        for at in split.inner:
            replies[at] = _QUEUED
    return replies


def _route(client: RedisCluster, commands: Sequence[Command]) -> tuple[list[_Routed], list[_Split]]:
    """Each command with its node; MULTI blocks across slots taken apart."""
    routed: list[_Routed] = []
    splits: list[_Split] = []
    nodes = client.nodes_manager
    at = 0
    while at < len(commands):
        command = commands[at]
        if _bytes(command[0]).upper() == b"MULTI":
            end = next(
                i for i in range(at + 1, len(commands)) if _bytes(commands[i][0]).upper() == b"EXEC"
            )
            inner = range(at + 1, end)
            slots = {slot_of(commands[i]) for i in inner}
            slot = slots.pop() if len(slots) == 1 else None
            if slot is not None:  # one slot: a real transaction
                node = nodes.get_node_from_slot(slot)
                routed += [_Routed(i, commands[i], node) for i in range(at, end + 1)]
            else:
                splits.append(_Split(at, list(inner), end))
                routed += [_Routed(i, commands[i], _node(client, commands[i])) for i in inner]
            at = end + 1
            continue
        routed.append(_Routed(at, command, _node(client, command)))
        at += 1
    return routed, splits


def _node(client: RedisCluster, command: Command) -> ClusterNode:
    slot = slot_of(command)
    if slot is None:  # keyless: the server's own state (INFO, WAIT) is per node
        raise ValueError(f"{_bytes(command[0]).decode()} names no key: send it to a node")
    return client.nodes_manager.get_node_from_slot(slot)


def _waves(routed: list[_Routed], count: int, ordered: Sequence[int]) -> list[list[_Routed]]:
    """Commands by wave: outside any run all in the first; within a run, one wave
    further each time the node changes."""
    if not ordered:
        return [routed]
    bounds = [*ordered, count]
    run_of = [-1] * count
    for run, (start, end) in enumerate(itertools.pairwise(bounds)):
        for at in range(start, end):
            run_of[at] = run
    waves: dict[int, list[_Routed]] = defaultdict(list)
    last: dict[int, tuple[ClusterNode, int]] = {}  # run -> its last node and wave
    for item in routed:
        run = run_of[item.at]
        wave = 0
        if run >= 0:
            node, wave = last.get(run, (item.node, 0))
            if node is not item.node:
                wave += 1
            last[run] = (item.node, wave)
        waves[wave].append(item)
    return [waves[w] for w in sorted(waves)]


async def _run_wave(wave: list[_Routed], replies: list[Any]) -> None:
    """One wave: every node's commands in one exchange, all nodes at once; raise the
    first error reply once all of them are read."""
    by_node: dict[ClusterNode, list[_Routed]] = defaultdict(list)
    for item in wave:
        by_node[item.node].append(item)
    groups = list(by_node.items())
    found = await _all([_send(node, [i.command for i in items]) for node, items in groups])
    for (_, items), node_replies in zip(groups, found, strict=True):
        for item, reply in zip(items, node_replies, strict=True):
            replies[item.at] = reply
    exchange.raise_first_error([replies[item.at] for item in wave])


async def _all(work: list[Coroutine[Any, Any, list[Any]]]) -> list[list[Any]]:
    """Results in order; the first failure cancels the rest and is raised as itself
    (not in a group), so the one place that decides about retries sees it."""
    if len(work) == 1:
        return [await work[0]]
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(w) for w in work]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


async def _send(node: ClusterNode, commands: list[Command]) -> list[Any]:
    connection = node.acquire_connection()
    try:
        return await exchange.send(connection, commands)
    except BaseException:
        await connection.disconnect()  # replies may still be due on it
        raise
    finally:
        node.release(connection)


async def on_each_primary(
    client: RedisCluster, commands: Sequence[Command], deadline: float
) -> list[list[Any]]:
    """``commands`` on every primary (keyless ones: INFO, WAIT), replies per primary."""
    await client.initialize()
    async with asyncio.timeout(deadline):
        found = await _all([_send(node, list(commands)) for node in client.get_primaries()])
    for replies in found:
        exchange.raise_first_error(replies)
    return found


async def wait_each(client: RedisCluster, wait: Command, deadline: float) -> list[Any]:
    """``wait`` (WAIT or WAITAOF) on every primary, each after a write of its own on the
    same connection (``server.wait`` says why), its reply per primary."""
    await client.initialize()
    primaries = client.get_primaries()
    async with asyncio.timeout(deadline):
        found = await _all(
            [_send(node, [("INCR", _durable_key(client, node)), wait]) for node in primaries]
        )
    for replies in found:
        exchange.raise_first_error(replies)
    return [replies[1] for replies in found]


def _durable_key(client: RedisCluster, node: ClusterNode) -> str:
    """A key (``hs:durable:{n}``) whose slot ``node`` holds."""
    slots = client.nodes_manager.slots_cache
    for n in range(1 << 16):  # about as many tries as the cluster has nodes
        key = keys.durable_key(n)
        if slots[key_slot(key.encode())][0] is node:
            return key
    raise Retriable(f"Redis Cluster: node {node.name} holds no slot")
