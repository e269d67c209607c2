"""``GET /accounts``: one page of a tier's index (``keys.tier_key``), never a scan of all keys.

The index holds account ids under score 0, so a page is ``ZRANGEBYLEX`` from the
last id of the page before: stable while accounts come and go, no offsets to
skip. The segment is not indexed: it is an attribute that changes without a tier
change, so an index of it would need the apply script to keep it. It is filtered
while paging instead, with a bound on the index entries one request examines
(``SCAN_BUDGET``): a page may come back short, or empty, with a cursor to go on.
"""

from __future__ import annotations

import base64
from typing import NamedTuple

import orjson

from worker.windows import keys
from worker.windows import published as published_tier
from worker.windows.wire import Client

SCAN_BUDGET = 1000  # index entries examined per request at most, whatever the filter
CHUNK = 200  # entries read per round trip while filtering


class Row(NamedTuple):
    account_id: str
    tier: str
    score: float
    seq: int
    segment: str | None


# base64url without padding: a length of 1 mod 4 is no encoding of anything
CURSOR_PATTERN = "^([A-Za-z0-9_-]{4})*([A-Za-z0-9_-]{2,3})?$"


def encode_cursor(account_id: str) -> str:
    return base64.urlsafe_b64encode(account_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> bytes:
    """The position a cursor stands for: any string of ``CURSOR_PATTERN`` is one (the
    index is paged from it by name, whether or not such an account exists)."""
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))


async def page(
    redis: Client, tier: str, segment: str | None, after: bytes | None, limit: int
) -> tuple[list[Row], str | None]:
    """Up to ``limit`` accounts published in ``tier`` (and ``segment``) after ``after``,
    and the cursor of the next page (None: the index is exhausted)."""
    rows: list[Row] = []
    examined = 0
    last = after
    while True:
        want = min(CHUNK if segment is not None else limit - len(rows), SCAN_BUDGET - examined)
        ids = [
            _text(a)
            for a in await redis.zrangebylex(
                keys.tier_key(tier), b"-" if last is None else b"(" + last, b"+", start=0, num=want
            )
        ]
        for account, row in zip(ids, await _published(redis, ids), strict=True):
            last, examined = account.encode(), examined + 1
            # An account read between its tier's save and its index move (the MULTI
            # makes that rare) is listed by what ``pub`` says.
            if row is not None and row.tier == tier and (segment is None or row.segment == segment):
                rows.append(row)
            if len(rows) == limit or examined >= SCAN_BUDGET:
                return rows, encode_cursor(account)
        if len(ids) < want:
            return rows, None


async def _published(redis: Client, account_ids: list[str]) -> list[Row | None]:
    async with redis.pipeline(transaction=False) as pipe:
        for account in account_ids:
            pipe.hmget(keys.state_key(account), [keys.PUBLISHED, keys.ATTRS])
        replies = await pipe.execute()
    return [
        _row(account, pub, attrs)
        for account, (pub, attrs) in zip(account_ids, replies, strict=True)
    ]


def _row(account_id: str, pub: bytes | None, attrs: bytes | None) -> Row | None:
    if pub is None:
        return None
    published = published_tier.decode(pub)
    segment = orjson.loads(attrs).get("segment") if attrs is not None else None
    return Row(account_id, published.tier, published.score, published.seq, segment)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
