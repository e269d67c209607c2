"""Pure scoring: the model, component sub-scores, the roll-up, tiers and attribution.

Nothing in this package does I/O; every function takes plain data and returns
plain data, so the whole of it is unit-tested without Redis or Kafka.
"""
