"""Rolling per-account windows in Redis, by event time.

``buckets`` is the time arithmetic, ``plan`` turns a batch of one account's
events into the writes it needs (pure), ``keys`` is the Redis key layout and
``store`` the thin Redis edge running ``apply.lua``.
"""
