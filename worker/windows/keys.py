"""Redis key layout. Every key of an account carries the ``{account_id}`` hash tag,
so all of them live in one Redis Cluster slot and one script can touch them all.

==================  =====  ==================================================  =========
key                 type   content                                             expiry
==================  =====  ==================================================  =========
hs:{A}:c            hash   ``<bucket>|<counter>`` -> sum, e.g. ``20414|login``  idle TTL
hs:{A}:u            zset   distinct set ``users``: member (an active user) ->  idle TTL
                           last-seen epoch seconds
hs:{A}:f            zset   distinct set ``features``: the same                 idle TTL
hs:{A}:d:<set>      zset   any other distinct set of the event vocabulary      idle TTL
                           (``scoring.vocabulary``): the same; ``x:<signal>``
                           for a model file's own distinct count
hs:{A}:e            zset   digests of recent (type, event_id) -> time applied  dedup horizon
hs:{A}:s            hash   attrs, write count (ver),                          none
                           seen:<type> -> newest bucket with an event of it,
                           last published tier (pub),
                           mode: catch_up when its last evaluation
                           caught up on history (absent: live),
                           off:<topic>:<partition> -> last applied offset,
                           capped:<set> -> latest time of a member the
                           distinct bound left out,
                           a running replay's own tier chain (pub:replay),
                           outbox:<seq> -> an alert saved but not yet known sent,
                           ovr: the active override, past ones, and the
                           offset of the last override record applied,
                           peers: the peer group its values are ranked in
==================  =====  ==================================================  =========

Per partition number P (input topics are co-partitioned, so an account has one):

==================  =====  ==================================================  =========
hs:due:{P}          zset   account -> when data next leaves one of its windows  none
hs:pending:{P}      set    accounts with an alert in their outbox               none
==================  =====  ==================================================  =========

Per tier T, the index the account API pages through (``GET /accounts?tier=T``):

==================  =====  ==================================================  =========
hs:tier:{T}         zset   account -> 0 (paged by name, ZRANGEBYLEX)           none
==================  =====  ==================================================  =========

Per peer group G (an account's ``segment``, empty for accounts without one) and
component C scored by percentile rank (``scoring.peers``, ``windows.peers``):

==================  =====  ==================================================  =========
hs:peers:{C:G}      zset   account -> its latest raw value of C                none
==================  =====  ==================================================  =========

Written when an account is scored (ZADD, ZREM when C has no data), left when its
segment changes; the state hash's ``peers`` field names the group its values are
in. The component comes first: its name has no ``:``, so no segment name can make
two pairs one key. Each set is one Cluster slot (its own hash tag), so the sets of
a model spread over the cluster by group and component. A group too large for one
slot would be split into N sets by a hash of the account (``{C:G:n}``), each rank
then summing N sets' counts (3N commands instead of 3): not needed below millions
of accounts per group, and not done.

It holds each account under its last published tier (``pub``): moved in the same
MULTI that saves a new tier (on a Redis Cluster, where the two are in different slots,
right after it, and again when its alert is resent from the outbox: ``cluster``),
rebuilt from the ``pub`` fields by a replay. One key
per tier is one Redis Cluster slot per tier: fine on one Redis, a hot slot on a
cluster (split it by a hash of the account then).

One more, ``hs:durable`` (a counter), is written before each wait for replicas or
the AOF (``server.wait``): waiting for it waits for every write before it. On a
Redis Cluster each primary has its own, ``hs:durable:{n}`` with an ``n`` whose slot
that primary holds.

The outbox makes alerts at-least-once: an alert is saved with the tier it
publishes, before it is sent, and cleared once the broker has it. Whoever owns
partition P next (the same worker after a restart, or another after a
rebalance) sends what ``hs:pending:{P}`` still names before anything else.

The schedule lets the owner of partition P rescore silent accounts when their
windows roll, without scanning all accounts; it lives in Redis, so it survives
restarts and moves with the partition on a rebalance.

The state hash has no TTL (a tombstone that would leave it holding only its
write count deletes it instead): besides the offsets that fence re-deliveries, it holds the account's attributes (from a compacted
topic that is not re-read) and the last published tier, whose ``seq`` must keep
counting up for consumers to de-duplicate.

An account has one sorted set per distinct set the model's signals read. The
first two kept their one-letter names, so windows written before sets were named
load as they are.
"""

from __future__ import annotations

import functools

PREFIX = "hs"


_SET_SUFFIXES = {"users": "u", "features": "f"}  # named before sets had their own prefix


@functools.cache
def _set_suffixes(sets: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f":{_SET_SUFFIXES.get(name) or 'd:' + name}" for name in sets)


def account_keys(account_id: str, sets: tuple[str, ...]) -> list[str]:
    """The counters hash, the state hash, the recent ids, then one sorted set per
    distinct set in ``sets``, in that order."""
    tag = f"{PREFIX}:{{{account_id}}}"
    # The sets' suffixes made once per model: this runs for every account of a batch.
    return [f"{tag}:c", f"{tag}:s", f"{tag}:e", *map(tag.__add__, _set_suffixes(sets))]


def set_key(account_id: str, name: str) -> str:
    """The sorted set of the distinct set ``name`` (member -> last seen) of an account."""
    return account_keys(account_id, (name,))[-1]


def state_key(account_id: str) -> str:
    return f"{PREFIX}:{{{account_id}}}:s"


# Fields of the state hash.
ATTRS = "attrs"
PUBLISHED = "pub"
SEEN_PREFIX = "seen:"
VERSION = "ver"  # counted up by every script call: a worker's copy knows when it is stale
# The mode of the account's last evaluation (``scoring.mode``), set only while it is
# catch_up: absent for a live account, so a live stream never writes it.
MODE = "mode"
OVERRIDE = "ovr"  # the account's override state (``windows.overrides``), absent without one
PEERS = "peers"  # the peer group its values are in (``windows.peers``), absent: none yet


OUTBOX_PREFIX = "outbox:"


def due_key(partition: int) -> str:
    return f"{PREFIX}:due:{{{partition}}}"


def model_key(partition: int) -> str:
    """The model every account of the partition has been rescored under (its fingerprint
    and version): a worker that finds another one rescores them (``runtime.remodel``)."""
    return f"{PREFIX}:model:{{{partition}}}"


def peers_key(component: str, group: str) -> str:
    """The sorted set of ``component``'s raw values in peer group ``group``."""
    return f"{PREFIX}:peers:{{{component}:{group}}}"


def tier_key(tier: str) -> str:
    return f"{PREFIX}:tier:{{{tier}}}"


TIER_KEYS = f"{PREFIX}:tier:*"


def pending_key(partition: int) -> str:
    return f"{PREFIX}:pending:{{{partition}}}"


ALL_PENDING = f"{PREFIX}:pending:{{*}}"  # a SCAN pattern for every partition's outbox


def is_pending_key(key: str) -> bool:
    return key.startswith(f"{PREFIX}:pending:{{")


def outbox_field(seq: int) -> str:
    return f"{OUTBOX_PREFIX}{seq}"


# A replay's own trail of tier changes, kept apart from the live chain (PUBLISHED).
REPLAY_PUBLISHED = "pub:replay"
OFFSET_PREFIX = "off:"
ALL_KEYS = f"{PREFIX}:*"
DURABLE = f"{PREFIX}:durable"


def durable_key(tag: int) -> str:
    """``DURABLE`` of one Redis Cluster node: each primary's in a slot it holds."""
    return f"{DURABLE}:{{{tag}}}"


def account_of_state_key(key: str) -> str | None:
    """The account whose state hash ``key`` is, or None for any other key."""
    head, tail = f"{PREFIX}:{{", "}:s"
    if key.startswith(head) and key.endswith(tail):
        return key[len(head) : -len(tail)]
    return None


def partition_of(state_fields: list[str]) -> int | None:
    """The input partition an account's events come from, from its offset fences
    (``off:<topic>:<partition>``); None for an account that never sent an event."""
    for name in state_fields:
        if name.startswith(OFFSET_PREFIX):
            return int(name.rsplit(":", 1)[1])
    return None
