"""Decode and validate input records; everything that fails becomes a dead letter."""
