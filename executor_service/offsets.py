"""Which offsets of each partition may be committed: those below the first unfinished message.

Messages of one partition finish out of order (a slow job next to fast ones); committing a
later message's offset would tell the group that an earlier, still running one is done, and a
crash would then lose it. So a partition's commit point is the offset of its first unfinished
message, or one past its last message when all are finished.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable

Partition = Hashable  # aiokafka's TopicPartition


class Offsets:
    def __init__(self) -> None:
        # Per partition: offset -> finished, in fetch (= offset) order.
        self._pending: dict[Partition, OrderedDict[int, bool]] = {}
        self._ready: dict[Partition, int] = {}  # commit points reached
        self._committed: dict[Partition, int] = {}  # commit points the group has

    def fetched(self, partition: Partition, offset: int) -> None:
        pending = self._pending.setdefault(partition, OrderedDict())
        last = next(reversed(pending), None) if pending else self._ready.get(partition)
        if last is not None and offset < last:
            # Offsets went back: the partition's log was replaced (a broker restarted without
            # its state). Points of the old log mean nothing in the new one, and committing
            # one would skip the new log's messages.
            self.forget([partition])
            pending = self._pending.setdefault(partition, OrderedDict())
        pending[offset] = False

    def partitions(self) -> list[Partition]:
        """The partitions tracked."""
        return list(self._pending.keys() | self._ready.keys())

    def finished(self, partition: Partition, offset: int) -> None:
        pending = self._pending.get(partition)
        if pending is not None and offset in pending:
            pending[offset] = True

    def unfinished(self, partitions: Iterable[Partition] | None = None) -> int:
        """Messages not finished yet, in `partitions` (all when None)."""
        chosen = self._pending.keys() if partitions is None else partitions
        return sum(
            1
            for partition in chosen
            for done in self._pending.get(partition, {}).values()
            if not done
        )

    def to_commit(self) -> dict[Partition, int]:
        """The partitions whose commit point is ahead of what the group has (a failed commit
        is offered again), with that point."""
        for partition, pending in self._pending.items():
            while pending:
                offset, done = next(iter(pending.items()))
                if not done:
                    break
                pending.popitem(last=False)
                self._ready[partition] = offset + 1
        return {
            partition: point
            for partition, point in self._ready.items()
            if point > self._committed.get(partition, -1)
        }

    def committed(self, points: dict[Partition, int]) -> None:
        self._committed.update(points)

    def forget(self, partitions: Iterable[Partition]) -> None:
        """Stop tracking partitions this member no longer owns (after a rebalance): their
        unfinished messages will be redelivered to the new owner, whose claim skips those
        already started here."""
        for partition in partitions:
            self._pending.pop(partition, None)
            self._ready.pop(partition, None)
            self._committed.pop(partition, None)
