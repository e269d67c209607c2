"""What the notifier may commit (pure): per partition, up to the first record not yet
acknowledged by Slack.

A record is either done (posted and acknowledged, filtered out, a duplicate) or held
(waiting in a digest). A partition's commit position is its lowest held offset, or
one past the last record done: never past a record Slack has not acknowledged.
"""

from __future__ import annotations

from collections.abc import Iterable

Partition = tuple[str, int]  # (topic, partition)


class Offsets:
    def __init__(self) -> None:
        self._next: dict[Partition, int] = {}
        self._held: dict[Partition, set[int]] = {}
        self._committed: dict[Partition, int] = {}

    def done(self, partition: Partition, offset: int) -> None:
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)

    def hold(self, partition: Partition, offset: int) -> None:
        self._held.setdefault(partition, set()).add(offset)
        self.done(partition, offset)

    def release(self, places: Iterable[tuple[str, int, int]]) -> None:
        for topic, partition, offset in places:
            self._held.get((topic, partition), set()).discard(offset)

    def drop(self, partitions: Iterable[Partition]) -> None:
        for p in partitions:
            self._next.pop(p, None)
            self._held.pop(p, None)
            self._committed.pop(p, None)

    def to_commit(self) -> dict[Partition, int]:
        """Positions that moved since the last ``committed``."""
        positions = {
            p: min(self._held[p]) if self._held.get(p) else n for p, n in self._next.items()
        }
        return {p: n for p, n in positions.items() if self._committed.get(p) != n}

    def committed(self, positions: dict[Partition, int]) -> None:
        self._committed.update(positions)
