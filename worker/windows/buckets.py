"""Bucket arithmetic. A window of N buckets is the current bucket and the N-1 before it."""

from __future__ import annotations

import math


def bucket_of(ts: float, bucket_seconds: int) -> int:
    return math.floor(ts / bucket_seconds)


def oldest_bucket(now_bucket: int, window_buckets: int) -> int:
    """The first bucket still inside a window that ends in ``now_bucket``."""
    return now_bucket - window_buckets + 1


def state_ttl_seconds(max_window_buckets: int, bucket_seconds: int) -> int:
    """How long window keys outlive an account's last event.

    One bucket more than the longest window, so nothing still inside a window
    can expire; anything older is dead weight.
    """
    return (max_window_buckets + 1) * bucket_seconds
